"""The one device resolver: a config's ``device`` setting (``auto`` / ``cpu`` / ``cuda``) to a torch device."""

from __future__ import annotations

from typing import Literal

import torch

from elign.config_checks import ConfigError

DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(choice: DeviceChoice | str, setting: str, local_rank: int | None = None) -> torch.device:
    """``auto`` = CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is a ConfigError naming
    ``setting`` (e.g. ``"sample.device"``). local_rank: under torchrun, the GPU ``local_rank % count``."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"{setting} is 'cuda' but torch sees no CUDA device (use 'auto' or 'cpu')")
    if local_rank is None:
        return torch.device("cuda")
    return torch.device("cuda", local_rank % torch.cuda.device_count())
