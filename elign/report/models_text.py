"""What the report's models are, in words: the opening sentence (which backbone "pretrained" is, and what
"aligned" is: a shipped aligned model, a FED-GRPO checkpoint, or FED-GRPO trained in this run, each with its
card) and the "Aligned model" section (a shipped aligned model's own comparison with its backbone, from its card).

Inputs: the pretrain stage's ``backbone.json`` and the finetune stage's ``aligned.json``
(:func:`elign.stages.finetune.aligned_record`).
"""

from __future__ import annotations

import pandas as pd

#: the card's paired metrics shown in the report: (card key, label, scale, unit)
CARD_METRICS = (
    ("force_rms_ev_per_ang", "MLFF force RMS", 1.0, "eV/Å"),
    ("relaxation_energy_kcal_mol", "relaxation energy", 1.0, "kcal/mol"),
    ("molecule_stable", "molecule stability", 100.0, "points"),
    ("valid", "validity", 100.0, "points"),
    ("valid_and_unique", "valid and unique", 100.0, "points"),
)


def backbone_phrase(backbone: dict | None) -> str | None:
    """What "pretrained" is, or None without a record."""
    if not backbone:
        return None
    kind, name = backbone.get("kind"), backbone.get("name")
    if kind == "shipped":
        return f'"pretrained" is the shipped backbone {name} (models/{name}/card.md)'
    if kind == "train":
        return f'"pretrained" is a backbone trained in this run ({backbone.get("steps", 0):,} steps)'
    return f'"pretrained" is the {kind} backbone {backbone.get("weights")}'


def aligned_phrase(aligned: dict | None) -> str | None:
    """What "aligned" is, or None without a record."""
    if not aligned:
        return None
    kind = aligned.get("kind")
    if kind == "shipped":
        card = aligned.get("card", {})
        what = card.get("summary") or f"FED-GRPO from {aligned.get('backbone', {}).get('name', 'the backbone')}"
        return f'"aligned" is the shipped model {aligned.get("name")} ({card.get("path")}): {what.rstrip(".")}'
    if kind == "train":
        s = aligned.get("settings", {})
        shared = "the frozen pretrained network on the shared steps" if s.get("reference_prefix") else "one network"
        return (
            f'"aligned" is FED-GRPO trained in this run from it: {s.get("iterations")} iterations of '
            f"{s.get('prompts_per_iteration')} × {s.get('rollouts_per_prompt')} rollouts branching after "
            f"{s.get('shared_prefix_steps')} shared reverse steps ({shared}), {aligned.get('mlff')} rewards"
        )
    return f'"aligned" is the FED-GRPO checkpoint {aligned.get("weights")} (sha256 {str(aligned.get("sha256"))[:12]})'


def models_sentence(backbone: dict | None, aligned: dict | None) -> str:
    """One sentence on what the run compares; empty without either record."""
    parts = [p for p in (backbone_phrase(backbone), aligned_phrase(aligned)) if p]
    return ("; ".join(parts) + ".") if parts else ""


def aligned_section(aligned: dict | None) -> tuple[str, pd.DataFrame] | None:
    """(intro, table) of a shipped aligned model's card: its training and its paired comparison with its backbone
    (its own samples, not this run's); None for other kinds or a card without a comparison."""
    if not aligned or aligned.get("kind") != "shipped":
        return None
    card = aligned.get("card", {})
    comparison, training = card.get("comparison") or {}, card.get("training") or {}
    paired = comparison.get("paired") or {}
    if not paired:
        return None
    wall_h = (training.get("wall_seconds") or 0) / 3600
    train_s = training.get("train_seconds")  # the trainer's own clock; wall = the sittings' sum (start-up too)
    hours = f"{train_s / 3600:.1f} h of training ({wall_h:.1f} h wall)" if train_s else f"{wall_h:.1f} h wall"
    intro = (
        f"Shipped aligned model {aligned.get('name')} ({card.get('path')}): {training.get('iterations')} FED-GRPO "
        f"iterations, {training.get('optimizer_steps')} optimizer steps, {hours}. Its card compares "
        f"{comparison.get('num_molecules')} molecules of it and of its backbone sampled with the same noise (seed "
        f"{comparison.get('seed')}, a seed training never used), pair by pair."
    )
    rows = []
    for key, label, scale, unit in CARD_METRICS:
        e = paired.get(key)
        if not e:
            continue
        f = lambda v, s=scale: "–" if v is None else f"{s * v:.3g}"  # noqa: E731
        rows.append(
            {
                "metric": label,
                "backbone": f(e.get("backbone")),
                "aligned": f(e.get("aligned")),
                "aligned − backbone [95 %]": f"{f(e.get('paired_diff'))} [{f(e.get('paired_ci_low'))}, "
                f"{f(e.get('paired_ci_high'))}] {unit}",
                "paired p": "–" if e.get("paired_p") is None else f"{e['paired_p']:.2g}",
                "pairs": e.get("n_pairs"),
            }
        )
    return intro, pd.DataFrame(rows)
