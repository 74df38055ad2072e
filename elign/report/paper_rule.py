"""The rule written before the paper-scale run's comparison existed (``docs/paper_run_rule.md``), as code: the
verdict on an aligned model's card, the winner of a set of screens, and which shipped aligned model the default
run starts from. Applying it is then a command, not a judgement made after looking::

    python -m elign.report.paper_rule verdict models/qm9-small-elign/card.json
    python -m elign.report.paper_rule screens models/qm9-small-elign/training/backbone_eval.json \\
        models/qm9-small-elign-b/screens/A1/finetune_history.parquet models/qm9-small-elign-b/screens/A2/...
    python -m elign.report.paper_rule default models/qm9-small-elign/card.json models/qm9-small-elign-b/card.json

Cards are ``elign models ship-aligned``'s ``card.json`` (``metrics.paired``, ``metrics.sets``); screens are the
trainer's fresh-sample evaluation rows (``eval_*`` columns of ``finetune_history.parquet``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

FORCE_P = 0.01  # criterion 1: paired t test on the MLFF force RMS
MIN_UNIQUENESS = 0.95  # criterion 3
SCREEN_ITERATION = 20  # screens are judged by the evaluation after this iteration


def card_verdict(card: Mapping) -> dict:
    """Success (all three criteria) or which candidate set runs: "A" (too little change) or "B" (too much).

    Where the rule's two failure clauses overlap it reads: lost diversity (criterion 3) is too much change; a
    force test that fails with molecule stability not lower (Δ ≥ 0) is too little change; every other failure
    (criterion 2 failing, or criterion 1 failing with stability lower) is too much change.
    """
    paired, sets = card["metrics"]["paired"], card["metrics"]["sets"]
    force, stable = paired["force_rms_ev_per_ang"], paired["molecule_stable"]
    uniqueness = sets["aligned"]["uniqueness"]
    criteria = {
        "force": bool(force["paired_diff"] < 0 and force["paired_p"] < FORCE_P),
        "molecule_stability": bool(stable["paired_diff"] > 0),
        "uniqueness": bool(uniqueness is not None and uniqueness >= MIN_UNIQUENESS),
    }
    values = {
        "force_diff_ev_per_ang": force["paired_diff"],
        "force_p": force["paired_p"],
        "molecule_stability_diff": stable["paired_diff"],
        "uniqueness": uniqueness,
    }
    if all(criteria.values()):
        return {"success": True, "set": None, "criteria": criteria, "values": values, "why": "all three hold"}
    if not criteria["uniqueness"]:
        candidate_set, why = "B", "uniqueness below 95 %: too much change"
    elif not criteria["force"] and stable["paired_diff"] >= 0:
        candidate_set, why = "A", "no significant force reduction and stability not lower: too little change"
    else:
        candidate_set, why = "B", "stability not higher (or lower with the force test failing): too much change"
    return {"success": False, "set": candidate_set, "criteria": criteria, "values": values, "why": why}


def screen_winner(backbone: Mapping, screens: Mapping[str, Mapping]) -> dict:
    """The screen with the lowest evaluation force RMS among those with molecule stability at least the
    backbone's and uniqueness at least 95 %; ``screens`` in the rule's tie order (A1 before A2, B1 before B2).
    ``backbone`` and each screen: an evaluation row (``eval_molecule_stability``, ``eval_uniqueness``,
    ``eval_force_rms_mean_ev_per_ang``) on the same noise."""
    qualified = [
        name
        for name, row in screens.items()
        if row["eval_molecule_stability"] >= backbone["eval_molecule_stability"]
        and row["eval_uniqueness"] >= MIN_UNIQUENESS
    ]
    force = {name: screens[name]["eval_force_rms_mean_ev_per_ang"] for name in qualified}
    winner = min(qualified, key=lambda n: (force[n], qualified.index(n))) if qualified else None
    return {"winner": winner, "qualified": qualified, "force_rms_ev_per_ang": force}


def default_model(cards: Mapping[str, Mapping]) -> dict:
    """The shipped model with the larger paired force reduction among those that do not lose molecule stability
    (its 95 % interval wholly below zero); the paper-settings model (the first) when none qualifies."""
    names = list(cards)
    qualified = [n for n in names if not cards[n]["metrics"]["paired"]["molecule_stable"]["paired_ci_high"] < 0]
    diff = {n: cards[n]["metrics"]["paired"]["force_rms_ev_per_ang"]["paired_diff"] for n in names}
    if not qualified:
        return {"model": names[0], "qualified": [], "meets_goal": False, "force_diff_ev_per_ang": diff}
    best = min(qualified, key=lambda n: (diff[n], names.index(n)))
    return {
        "model": best,
        "qualified": qualified,
        "meets_goal": card_verdict(cards[best])["success"],
        "force_diff_ev_per_ang": diff,
    }


def evaluation_at(history: Sequence[Mapping], iteration: int = SCREEN_ITERATION) -> dict:
    """The evaluation row of ``history`` (rows of finetune_history.parquet) after ``iteration``."""
    for row in history:
        if int(row["iteration"]) == iteration and not _missing(row.get("eval_molecules")):
            return dict(row)
    raise ValueError(f"no fresh-sample evaluation after iteration {iteration} in this history")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elign.report.paper_rule", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("verdict", "screens", "default"))
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.action == "verdict":
        out = card_verdict(json.loads(args.files[0].read_text()))
    elif args.action == "screens":
        import pandas as pd

        backbone = json.loads(args.files[0].read_text())
        rows = {p.parent.name: evaluation_at(pd.read_parquet(p).to_dict("records")) for p in args.files[1:]}
        out = screen_winner(backbone, rows)
    else:
        out = default_model({p.parent.name: json.loads(p.read_text()) for p in args.files})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
