"""The paper run's pre-registered rule as code: every branch of docs/paper_run_rule.md on synthetic cards."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from elign.report.paper_rule import card_verdict, default_model, evaluation_at, main, screen_winner


def _card(force_diff=-0.05, force_p=0.001, stable_diff=0.01, stable_ci_high=0.03, uniqueness=1.0):
    return {
        "metrics": {
            "paired": {
                "force_rms_ev_per_ang": {"paired_diff": force_diff, "paired_p": force_p},
                "molecule_stable": {"paired_diff": stable_diff, "paired_ci_high": stable_ci_high},
            },
            "sets": {"aligned": {"uniqueness": uniqueness}},
        }
    }


@pytest.mark.parametrize(
    ("card", "success", "candidate_set"),
    [
        (_card(), True, None),
        (_card(force_p=0.02), False, "A"),  # force not significant, stability up: too little change
        (_card(force_diff=0.01, force_p=0.001, stable_diff=0.0), False, "A"),  # forces up, stability the same
        (_card(force_p=0.2, stable_diff=-0.01), False, "B"),  # force fails and stability drops: too much
        (_card(stable_diff=0.0), False, "B"),  # forces down but stability not higher
        (_card(uniqueness=0.94), False, "B"),  # diversity lost
        (_card(force_p=0.5, uniqueness=0.9), False, "B"),  # lost diversity outranks "too little"
        (_card(force_p=0.01), False, "A"),  # p < 0.01 is strict
    ],
)
def test_the_verdict_follows_the_rule(card, success, candidate_set):
    verdict = card_verdict(card)
    assert verdict["success"] is success and verdict["set"] == candidate_set


def _eval(stable, uniqueness, force):
    return {"eval_molecule_stability": stable, "eval_uniqueness": uniqueness, "eval_force_rms_mean_ev_per_ang": force}


def test_the_screen_winner_has_the_lowest_force_among_those_that_keep_stability_and_diversity():
    backbone = _eval(0.094, 1.0, 2.53)
    screens = {"A1": _eval(0.10, 1.0, 2.40), "A2": _eval(0.09, 1.0, 2.20)}  # A2 lower force but less stable
    assert screen_winner(backbone, screens) == {
        "winner": "A1",
        "qualified": ["A1"],
        "force_rms_ev_per_ang": {"A1": 2.40},
    }
    screens["A2"] = _eval(0.094, 0.96, 2.20)  # equal stability qualifies
    assert screen_winner(backbone, screens)["winner"] == "A2"
    screens["A2"] = _eval(0.094, 0.96, 2.40)  # a tie goes to the first (the smaller change)
    assert screen_winner(backbone, screens)["winner"] == "A1"
    none = screen_winner(backbone, {"B1": _eval(0.05, 1.0, 2.0), "B2": _eval(0.2, 0.9, 2.0)})
    assert none["winner"] is None and none["qualified"] == []


def test_the_default_run_takes_the_larger_force_reduction_that_keeps_stability():
    paper, b = _card(force_diff=-0.03, force_p=0.03), _card(force_diff=-0.08)
    assert default_model({"paper": paper, "b": b}) | {"force_diff_ev_per_ang": None} == {
        "model": "b",
        "qualified": ["paper", "b"],
        "meets_goal": True,
        "force_diff_ev_per_ang": None,
    }
    lost = _card(force_diff=-0.2, stable_diff=-0.03, stable_ci_high=-0.001)  # larger reduction, stability lost
    assert default_model({"paper": paper, "b": lost})["model"] == "paper"
    choice = default_model({"paper": _card(stable_ci_high=-0.01), "b": lost})
    assert choice["model"] == "paper" and choice["meets_goal"] is False and choice["qualified"] == []


def test_the_command_reads_cards_and_histories(tmp_path, capsys):
    card = tmp_path / "qm9-small-elign" / "card.json"
    card.parent.mkdir()
    card.write_text(json.dumps(_card(force_p=0.3)))
    assert main(["verdict", str(card)]) == 0
    assert json.loads(capsys.readouterr().out)["set"] == "A"
    backbone = tmp_path / "backbone_eval.json"
    backbone.write_text(json.dumps(_eval(0.09, 1.0, 2.5)))
    histories = []
    for name, force in (("A1", 2.3), ("A2", 2.4)):
        path = tmp_path / name / "finetune_history.parquet"
        path.parent.mkdir()
        rows = [
            {"iteration": i, "eval_molecules": 128.0 if i % 10 == 0 else None, **_eval(0.1, 1.0, force)}
            for i in (9, 10, 20)
        ]
        pd.DataFrame(rows).to_parquet(path)
        histories.append(str(path))
    assert main(["screens", str(backbone), *histories]) == 0
    assert json.loads(capsys.readouterr().out)["winner"] == "A1"
    with pytest.raises(ValueError, match="after iteration 20"):
        evaluation_at([{"iteration": 20, "eval_molecules": float("nan")}])
