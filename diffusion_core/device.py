"""Device choice: CUDA when available, then Apple MPS, else CPU."""
from __future__ import annotations

import os
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that run bf16 matmuls natively


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


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX, by the flags in /proc/cpuinfo, or in `cpuinfo`);
    None where that cannot be read. Without them bf16 autocast is emulated, and slower than fp32 (on a 2-core AMD
    EPYC: 17 s a training step against 1.8)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set().union(*(line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")))
    return bool(flags & set(BF16_CPU_FLAGS)) if flags else None
