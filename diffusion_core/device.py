"""Device choice: CUDA when available, then Apple MPS, else CPU."""
from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The fastest device here; DIFFUSION_DEVICE overrides it (e.g. 'cpu')."""
    if os.environ.get("DIFFUSION_DEVICE"):
        return torch.device(os.environ["DIFFUSION_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed`: all sampling randomness comes from it."""
    return torch.Generator(device=device).manual_seed(int(seed))
