"""FED-GRPO rewards by name: ``@register_reward("name")`` on a function of one iteration's rollouts.

A reward is ``fn(batch) -> RewardValues``. ``batch`` (:class:`elign.rl.rewards.RewardBatch`) holds the
iteration's rollouts and trained steps, the MLFF backend and the final molecules (atomic numbers and positions
in Å, and the MLFF's score of them, computed once and shared by all rewards). The function returns one value per
rollout (a terminal reward, shape (B,)) or per rollout and trained step (a return-to-go, shape (B, S')), and a
status per rollout: ``"ok"`` where it scored the molecule, anything else (with a reason) where it could not.
An unscorable rollout's values are NaN: it is left out of its group's statistics, never given a made-up 0
(:mod:`elign.rl.advantages`). :func:`score_reward` checks that contract.

FED-GRPO's own channels are the rewards ``force`` and ``energy`` (:mod:`elign.rl.rewards`); their weights are
``finetune.weight_force`` and ``finetune.weight_energy``. Further rewards are added by ``finetune.extra_rewards``
(name, weight, normalization), each a channel of its own in the advantage (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elign.registries import REWARDS

__all__ = ["RewardValues", "register_reward", "get_reward", "available_rewards", "score_reward", "STATUS_OK"]

STATUS_OK = "ok"


@dataclass
class RewardValues:
    """What a reward returns for B rollouts.

    values: (B,) or (B, S') float, NaN where there is no value; status: (B,) "ok" or why the rollout has no
    value (None = every rollout scored); reason: (B,) text, "" where ok (None = none given); counts: counters
    for the log (added to the iteration's); details: other per-rollout arrays the caller may want.
    """

    values: np.ndarray
    status: np.ndarray | None = None
    reason: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        b = self.values.shape[0] if self.values.ndim else 0
        self.status = np.full(b, STATUS_OK, dtype=object) if self.status is None else np.asarray(self.status, object)
        self.reason = np.full(b, "", dtype=object) if self.reason is None else np.asarray(self.reason, object)

    @property
    def ok(self) -> np.ndarray:
        return self.status == STATUS_OK


RewardFunction = Callable[[Any], RewardValues]


def register_reward(name: str) -> Callable[[RewardFunction], RewardFunction]:
    """Decorator: register ``fn(batch) -> RewardValues`` as reward ``name`` (module doc)."""
    return REWARDS.decorator(name)


def get_reward(name: str) -> RewardFunction:
    """The reward function registered as ``name``; KeyError listing the registered names."""
    return REWARDS.get(name)


def available_rewards() -> list[str]:
    return REWARDS.names()


def score_reward(name: str, batch: Any) -> RewardValues:
    """Run reward ``name`` on ``batch`` and check what it returned (ValueError naming the reward otherwise):
    values of shape (B,) or (B, S'); a status per rollout; no value for a rollout whose status is not ok; a
    finite terminal value for every rollout whose status is ok."""
    out = get_reward(name)(batch)
    b, s = batch.num_rollouts, batch.num_trained
    if not isinstance(out, RewardValues):
        raise ValueError(f"reward {name!r} must return RewardValues, got {type(out).__name__}")
    if out.values.shape not in ((b,), (b, s)):
        raise ValueError(f"reward {name!r}: values of shape {out.values.shape}, expected ({b},) or ({b}, {s})")
    if out.status.shape != (b,) or out.reason.shape != (b,):
        raise ValueError(f"reward {name!r}: status and reason need one entry per rollout ({b})")
    per_row = out.values if out.values.ndim == 2 else out.values[:, None]
    valued = np.isfinite(per_row).any(axis=1)
    if (bad := np.flatnonzero(valued & ~out.ok)).size:
        i = int(bad[0])
        raise ValueError(f"reward {name!r} gives rollout {i} a value but its status is {out.status[i]!r}")
    if out.values.ndim == 1 and (bad := np.flatnonzero(out.ok & ~valued)).size:
        raise ValueError(
            f"reward {name!r} has no value for rollout {int(bad[0])} but its status is ok: give it a status and a "
            "reason (never a silent zero)"
        )
    return out
