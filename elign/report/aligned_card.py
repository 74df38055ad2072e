"""The aligned model's card: the paired comparison with its backbone (statistics over pairs of molecules
sampled from both models with one noise plan) and the card's Markdown. Sampling, scoring and writing
``models/<name>/``: :mod:`elign.stages.ship_aligned`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from elign.stats.paired import paired_columns

#: per-molecule columns compared pair by pair: (card key, metrics column)
PAIRED = (
    ("force_rms_ev_per_ang", "force_rms_ev_per_ang"),
    ("relaxation_energy_kcal_mol", "relaxation_energy_kcal_mol"),
    ("molecule_stable", "molecule_stable"),
    ("atom_stable_fraction", "atom_stable_fraction"),
    ("valid", "valid"),
    ("valid_and_unique", "valid_and_unique"),  # valid and the first of its SMILES in the set: uniqueness per pair
)
SET_KEYS = ("molecule_stability", "atom_stability", "validity", "uniqueness", "valid_and_unique", "novelty")


def paired_comparison(frames: dict[str, pd.DataFrame], seed: int, n_resamples: int = 10_000) -> dict[str, Any]:
    """Per metric: each model's mean and the paired difference aligned − backbone [95 % interval], p."""
    base, aligned = frames["backbone"], frames["aligned"]
    if not np.array_equal(base["num_atoms"].to_numpy(), aligned["num_atoms"].to_numpy()):
        raise ValueError("the two sample sets differ in their sizes row by row: they are not paired")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for key, col in PAIRED:
        a, b = (pd.to_numeric(f[col], errors="coerce").to_numpy(dtype=float) for f in (base, aligned))
        cols = paired_columns(a, b, n_resamples, 0.95, rng, "percentile")
        out[key] = {"backbone": float(np.nanmean(a)), "aligned": float(np.nanmean(b)), **cols}
    return out


def _row(key: str, entry: dict, scale: float, unit: str) -> str:
    f = lambda v: f"{scale * v:.3g}"  # noqa: E731
    p = entry.get("paired_p")
    return (
        f"| {key} | {f(entry['backbone'])} | {f(entry['aligned'])} | {f(entry['paired_diff'])} "
        f"[{f(entry['paired_ci_low'])}, {f(entry['paired_ci_high'])}] {unit} | {p:.2g} | {entry['n_pairs']} |"
    )


def aligned_card_markdown(card: dict) -> str:
    """The card for people: what the model is, where it came from, how it was trained, how it compares."""
    m, t = card["metrics"], card["training"]
    lines = [
        f"# {card['name']}: aligned from {card['backbone']['name']}",
        "",
        card.get("summary") or "",
        "",
        f"- backbone: `{card['backbone']['name']}` (weights sha256 `{card['backbone']['sha256'][:16]}`)",
        f"- weights: `{card['weights']['file']}` (sha256 `{card['weights']['sha256'][:16]}`)",
        f"- FED-GRPO: {t['iterations']} iterations, {t['optimizer_steps']} optimizer steps, "
        f"{t['train_seconds'] / 3600:.1f} h of training in {len(t['segments'])} segment(s)",
        f"- code: {', '.join(s[:10] for s in t['code_shas']) or 'unknown'}",
        "",
        f"## Paired comparison with the backbone ({m['num_molecules']} molecules each, seed {m['seed']}, same noise)",
        "",
        "| metric | backbone | aligned | aligned − backbone [95 %] | paired p | pairs |",
        "|---|---|---|---|---|---|",
    ]
    units = {"force_rms_ev_per_ang": (1, "eV/Å"), "relaxation_energy_kcal_mol": (1, "kcal/mol")}
    for key, entry in m["paired"].items():
        scale, unit = units.get(key, (100, "points"))
        lines.append(_row(key, entry, scale, unit))
    sets = m["sets"]
    lines += ["", "| set metric | backbone | aligned |", "|---|---|---|"]
    for key in SET_KEYS:
        b, a = sets["backbone"].get(key), sets["aligned"].get(key)
        fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        lines.append(f"| {key} | {fmt(b)} | {fmt(a)} |")
    lines += _speed_lines(m)
    lines += [
        "",
        "## Segments",
        "",
        "| started | code | cpu / gpu | threads | iterations | wall (h) | ended |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in t["segments"]:
        hw = s.get("gpu") or s.get("cpu")
        it = s.get("iterations", [None, None])
        lines.append(
            f"| {s.get('started')} | {str(s.get('code_sha'))[:10]} | {hw} | {s.get('threads')} | "
            f"{it[0]} → {it[1]} | {s.get('wall_seconds', 0) / 3600:.2f} | {_segment_end(s)} |"
        )
    lines += _evaluation_lines(t.get("evaluations") or [])
    lines += ["", "![FED-GRPO curves](curves.png)", "", f"Reproduce: `{card['reproduce']['command']}`", ""]
    return "\n".join(lines)


def _speed_lines(m: dict) -> list[str]:
    """Sampling time of both models for the comparison (one process, one after the other, the same sizes)."""
    sec = m.get("sampling_seconds") or {}
    if not {"backbone", "aligned"} <= set(sec) or not sec["backbone"]:
        return []
    b, a = float(sec["backbone"]), float(sec["aligned"])
    return [
        "",
        f"Sampling time ({m['num_molecules']} molecules each, batch {m.get('batch_size')}, {m.get('threads')} "
        f"thread(s), one process): backbone {b:.1f} s, aligned {a:.1f} s, aligned / backbone ×{a / b:.3f}.",
    ]


def _segment_end(segment: dict) -> str:
    """How a sitting ended: its exit status (0: finished or stopped by --max-minutes; 143: killed) and any note."""
    status = segment.get("exit_status")
    words = [f"exit {status}" if status is not None else "exit status not recorded"]
    if segment.get("note"):
        words.append(str(segment["note"]).replace("|", "/"))
    return "; ".join(words)


def _evaluation_lines(rows: list[dict]) -> list[str]:
    """The run's fresh-sample evaluations on fixed noise, the backbone's first (iteration 0)."""
    if not rows:
        return []
    pct = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f} %"  # noqa: E731
    num = lambda v: "n/a" if v is None or v != v else f"{v:.3g}"  # noqa: E731
    lines = [
        "",
        f"## Fresh samples during training ({rows[0].get('eval_molecules')} molecules, the same noise each time)",
        "",
        "| iteration | model | molecule stability | validity | uniqueness | force RMS (eV/Å) | relaxation (kcal/mol) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['iteration']} | {r['model']} | {pct(r.get('eval_molecule_stability'))} | "
            f"{pct(r.get('eval_validity'))} | {pct(r.get('eval_uniqueness'))} | "
            f"{num(r.get('eval_force_rms_mean_ev_per_ang'))} | {num(r.get('eval_relaxation_energy_mean_kcal_mol'))} |"
        )
    return lines
