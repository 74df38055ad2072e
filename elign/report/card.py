"""Model-card helpers shared by the shipping stages (:mod:`elign.stages.ship`, :mod:`elign.stages.ship_aligned`):
strict-JSON values and the learning-rate schedule in words. The card's Markdown: :mod:`elign.report.card_text`.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (an unknown time, say) as None: strict JSON has no NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def lr_schedule_text(pc: dict) -> str:
    """The learning-rate schedule of a ``pretrain`` config dump in words."""
    decay = pc.get("lr_decay")
    if decay is None:
        return f"constant {pc['lr']:g}"
    return (
        f"{pc['lr']:g} until step {decay['start_step']:,}, then {decay.get('shape', 'cosine')} decay to "
        f"{decay['final_lr']:g} at step {decay['end_step']:,}"
    )
