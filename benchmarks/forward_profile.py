"""Where the time of peer_diffusers' UNet forward goes, compiled and channels-last (the fast sampling path): the
convolutions' share and GFLOP/s, each convolution shape's share, inductor's fused kernels' share, and the forward's
time on 1 and 2 threads.

    .venv/bin/python -m benchmarks.forward_profile [--batch 16] [--calls 10]

Uses torch.profiler with inductor's kernel profile (torch._inductor.config.cpp.enable_kernel_profile), on 1 thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch._inductor.config as inductor_config
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.peer_diffusers import OURS
from diffusion_core.fast import FastOptions, fast_model
from diffusion_core.models import build_model


def conv_gflop(model, inputs) -> float:
    """GFLOP of one forward pass's convolutions (torch's FLOP counter: 2 per multiply-add, strides counted)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(*inputs)
    return counter.get_flop_counts()["Global"][torch.ops.aten.convolution] / 1e9


@torch.inference_mode()
def forward_ms(model, inputs, calls: int) -> float:
    """Median milliseconds of one forward pass over `calls` timed calls (after 3 untimed ones)."""
    for _ in range(3):
        model(*inputs)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model(*inputs)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--calls", type=int, default=10)
    args = p.parse_args()
    inductor_config.cpp.enable_kernel_profile = True
    b = args.batch
    plain = build_model(OURS).eval()
    model = fast_model(plain, FastOptions(channels_last=True, compile=True))
    inputs = (torch.randn(b, 1, 28, 28), torch.full((b,), 500), torch.arange(b) % 10)
    gflop = conv_gflop(plain, inputs)
    torch.set_num_threads(2)
    ms_2 = forward_ms(model, inputs, 30)
    torch.set_num_threads(1)
    ms_1 = forward_ms(model, inputs, 30)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.calls):
            model(*inputs)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    convs = [e for e in events if e.key == "aten::mkldnn_convolution"]
    fused = [e for e in events if "cpp_fused" in e.key]
    conv_seconds = sum(e.self_cpu_time_total for e in convs) / 1e6
    rows = sorted(({"input, weight": e.input_shapes[:2], "share": round(e.self_cpu_time_total / total, 4)}
                   for e in convs), key=lambda r: -r["share"])
    print(json.dumps({
        "forward_ms_1_thread": round(ms_1, 1), "forward_ms_2_threads": round(ms_2, 1),
        "two_threads_speedup": round(ms_1 / ms_2, 2),
        "convolutions_per_forward": sum(e.count for e in convs) // args.calls,
        "convolution_share": round(conv_seconds * 1e6 / total, 3),
        "convolution_gflop_per_forward": round(gflop, 3),
        "convolution_gflop_per_s": round(gflop * args.calls / conv_seconds, 1),
        "fused_kernel_share": round(sum(e.self_cpu_time_total for e in fused) / total, 3),
        "largest_fused_kernel": max(((e.key, round(e.self_cpu_time_total / total, 4)) for e in fused),
                                    key=lambda kv: kv[1]),
        "convolutions": rows, "batch": b, "load_average": os.getloadavg(),
    }, indent=1))


if __name__ == "__main__":
    main()
