"""A faster forward pass for sampling, behind options: bfloat16 autocast (CPUs with AMX / AVX512-BF16, CUDA),
channels-last memory layout and torch.compile. The samplers never learn of it: the wrapped model takes and returns
what the model does (float32 outputs). benchmarks/fast_path.py measures each option; tests/test_fast.py checks
the fast path's samples against the float32 path's."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FastOptions:
    """Which speed-ups a Pipeline's forward pass uses; all off is the plain float32 model."""

    bf16: bool = False  # autocast matmuls and convolutions to bfloat16 (outputs cast back to float32)
    channels_last: bool = False  # NHWC activations (image models)
    compile: bool = False  # torch.compile the model (a cold compile takes 10-40 s on a CPU)


class FastModel(nn.Module):
    """`model` run under FastOptions; same call signature, float32 outputs, the wrapped model's config."""

    def __init__(self, model: nn.Module, options: FastOptions):
        super().__init__()
        self.inner, self.options, self.config = model, options, getattr(model, "config", None)
        if options.channels_last:
            self.inner = self.inner.to(memory_format=torch.channels_last)
        # compile fuses GroupNorm, SiLU and the adds around the convolutions; with channels-last, 1.3x the eager
        # forward on an AVX2 CPU (inductor's weight freezing measured no faster; benchmarks/RESULTS.md)
        self.run = torch.compile(self.inner, dynamic=False) if options.compile else self.inner

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """The model's output for x_t at t (labels, g, cond as the model takes them), as float32."""
        if self.options.channels_last and x_t.ndim == 4:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=self.options.bf16):
            out = self.run(x_t, t, *args, **kwargs)
        return out.float().contiguous()


def default_options(device: torch.device) -> FastOptions:
    """bf16 autocast where it is native (CUDA; a CPU with AMX / AVX512-BF16: device.cpu_has_fast_bf16), else none:
    emulated bf16 is slower than float32. Channels-last and compile stay off (benchmarks/RESULTS.md)."""
    from .device import cpu_has_fast_bf16

    return FastOptions(bf16=device.type == "cuda" or (device.type == "cpu" and bool(cpu_has_fast_bf16())))


def fast_model(model: nn.Module, options: FastOptions | None) -> nn.Module:
    """`model` itself when no option is on, else FastModel(model, options)."""
    if options is None or options == FastOptions():
        return model
    return FastModel(model, options)
