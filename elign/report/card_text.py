"""The Markdown model card (``models/<name>/card.md``) rendered from ``card.json``."""

from __future__ import annotations

import json
from typing import Any

EDM_QM9 = {"atom_stability": 0.987, "molecule_stability": 0.820, "validity": 0.919, "valid_and_unique": 0.907}
"""EDM's QM9 model (9 x 256, ~1,100 epochs): Hoogeboom et al. 2022, Table 1."""


def _pct(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{100 * float(value):.1f} %"


def _hours(seconds: Any) -> str:
    return "n/a" if seconds is None or seconds != seconds else f"{float(seconds) / 3600:.2f} h"


def _segments(card: dict) -> list[str]:
    lines = [
        "| # | steps | train time | wall time | hardware | threads | device | compiled | code (git / source sha256) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(card["training"]["segments"]):
        hw = s.get("cpu", "unknown") + (f" + {s['gpu']}" if s.get("gpu") else "")
        sha = str(s.get("git_sha", "?"))
        code = (
            f"{sha[:12]}{' (dirty tree)' if sha.endswith('+dirty') else ''} / "
            f"{str(s.get('source_sha256', 'not recorded'))[:12]}"
        )
        lines.append(
            f"| {i + 1} | {s['start_step']:,}–{s['end_step']:,} | {_hours(s.get('train_seconds'))} | "
            f"{_hours(s.get('wall_seconds'))} | {hw} | {s.get('threads', '?')} | {s.get('device', '?')} | "
            f"{s.get('compiled', '?')} | {code}{' (' + s['note'] + ')' if s.get('note') else ''} |"
        )
    return lines


def _metrics(card: dict) -> list[str]:
    m = card["metrics"]
    lines = ["| metric | this backbone | EDM QM9 (9 × 256, Hoogeboom et al. 2022, Table 1) |", "|---|---|---|"]
    for key in ("atom_stability", "molecule_stability", "validity", "uniqueness", "valid_and_unique", "novelty"):
        lines.append(f"| {key.replace('_', ' ')} | {_pct(m.get(key))} | {_pct(EDM_QM9.get(key))} |")
    s = m.get("sampling", {})
    lines.append(
        f"\n{m['num_molecules']:,} molecules, T = {m['steps']} reverse steps, seed {m['seed']} (never used "
        f"in training), sizes from the training histogram; sampled at {s.get('molecules_per_s', 0):.3g} "
        f"molecules/s on {s.get('threads', '?')} CPU thread(s) (batch {m.get('batch_size')})."
    )
    return lines


def card_markdown(card: dict) -> str:
    """The card as Markdown: what it is, how to load it, the data, every training segment, curves, metrics."""
    w, a, d, t = card["weights"], card["architecture"], card["data"], card["training"]
    dyn = a["model_config"]["dynamics"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        card.get("summary", ""),
        "",
        "## Use",
        "",
        "```yaml",
        "pretrain:",
        "  source: {kind: shipped, name: " + card["name"] + "}",
        "```",
        "",
        f"`elign models` lists it; loading checks `{w['file']}` against sha256 `{w['sha256']}` ({w['bytes']:,} bytes, "
        f"{w['dtype']}). Weights: {w['selection']} (step {w['selected_step']:,}; EMA decay {w['ema_decay']}).",
        "",
        "## Architecture",
        "",
        f"EDM's EGNN dynamics, preset `{a['preset']}`: {dyn['n_layers']} layers × {dyn['hidden_nf']} hidden, "
        f"{a['parameters']:,} parameters; diffusion {a['model_config']['diffusion']['noise_schedule']}, "
        f"T = {a['model_config']['diffusion']['timesteps']}, atom types {a['model_config']['atom_decoder']}.",
        "",
        "## Data",
        "",
        f"{d['dataset']} from `{d['source']}`; split: {d['split']}. Train-set fingerprint `{d['fingerprint'][:16]}…`. "
        f"Validation loss (EDM's L2 ε-loss, {d['valid_molecules']:,} validation molecules, fixed noise): "
        f"{d['valid_loss']:.5f} ± {d['valid_loss_sem']:.5f}.",
        "",
        "## Training",
        "",
        f"{t['steps']:,} steps = {t['epochs']:.1f} epochs, batch {t['batch_size']}, {t['lr_schedule']}, EMA "
        f"{t['ema_decay']}. Training time {_hours(t['train_seconds'])} (wall {_hours(t['wall_seconds'])}, "
        "in-training evaluations included), in these segments:",
        "",
        *_segments(card),
        "",
        "![loss and in-training sample quality](curves.png)",
        "",
        "## Sample quality",
        "",
        *_metrics(card),
        "",
        "## Reproduce",
        "",
        f"`{card['reproduce']['command']}` retrains it from scratch with the same code "
        f"(expected: about {card['reproduce']['expected_wall_hours']:.1f} h of training on the hardware above, "
        "before the checkpoint selection and `elign models ship`).",
        "",
        "## Full training config",
        "",
        "```json",
        json.dumps(card["config"], indent=1, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)
