"""Our UNet + our DDIM against diffusers' UNet2DModel + DDIMScheduler of about the same size, same steps, same inputs.

    .venv/bin/python -m benchmarks.peer_diffusers [--threads 2] [--batch 16] [--steps 20] [--repeats 5]
        [--bf16] [--channels-last] [--compile] [--peer-same]

--bf16 / --channels-last / --compile run our UNet through fast.py's options (Pipeline.with_options); --peer-same
gives diffusers' UNet the same bf16 autocast, channels-last and torch.compile, for the like-for-like reading.

Prints images/s for both and their ratio, and our sampler's overhead: total sampling time divided by the
time spent in the model calls alone (1.00 = no overhead).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from diffusers import DDIMScheduler, UNet2DModel

from diffusion_core.fast import FastOptions, fast_model
from diffusion_core.models import UNetConfig, build_model, count_parameters
from diffusion_core.samplers import sample_final
from diffusion_core.schedules import make_schedule

OURS = UNetConfig(in_channels=1, image_size=28, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                  num_classes=10)


def diffusers_unet() -> UNet2DModel:
    """The diffusers UNet closest to OURS: 32/64/64 channels, attention at the lowest level, class embedding."""
    return UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       num_class_embeds=11).eval()


@torch.inference_mode()
def run_ours(model, batch: int, steps: int, seed: int) -> tuple[float, float]:
    """Seconds for one DDIM run with our sampler, and the seconds spent inside the model."""
    s, labels, inside = make_schedule("cosine"), torch.arange(batch) % 10, [0.0]

    def eps_fn(x, t):
        t0 = time.perf_counter()
        out = model(x, t, labels)
        inside[0] += time.perf_counter() - t0
        return out

    t0 = time.perf_counter()
    sample_final(eps_fn, s, (batch, 1, 28, 28), generator=torch.Generator().manual_seed(seed), sampler="ddim",
                 steps=steps, clip_x0=True)
    return time.perf_counter() - t0, inside[0]


@torch.inference_mode()
def run_diffusers(model, batch: int, steps: int, seed: int, options: FastOptions = FastOptions()) -> float:
    """Seconds for the same DDIM run with diffusers' UNet2DModel and DDIMScheduler."""
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    sched.set_timesteps(steps)
    labels = torch.arange(batch) % 10
    t0 = time.perf_counter()
    x = torch.randn((batch, 1, 28, 28), generator=torch.Generator().manual_seed(seed))
    for t in sched.timesteps:
        x_in = x.contiguous(memory_format=torch.channels_last) if options.channels_last else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.bf16):
            out = model(x_in, t, class_labels=labels).sample.float()
        x = sched.step(out, t, x).prev_sample
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="our UNet under bf16 autocast (fast.py)")
    p.add_argument("--channels-last", action="store_true", help="our UNet channels-last (fast.py)")
    p.add_argument("--compile", action="store_true", help="our UNet through torch.compile (fast.py)")
    p.add_argument("--peer-same", action="store_true",
                   help="diffusers' UNet under the same bf16 / channels-last / compile")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    options = FastOptions(bf16=args.bf16, channels_last=args.channels_last, compile=args.compile)
    peer = options if args.peer_same else FastOptions()
    plain, theirs_plain = build_model(OURS).eval(), diffusers_unet()
    ours = fast_model(plain, options)
    theirs = theirs_plain.to(memory_format=torch.channels_last) if peer.channels_last else theirs_plain
    theirs = torch.compile(theirs, dynamic=False) if peer.compile else theirs  # as fast.py compiles ours
    run_ours(ours, args.batch, args.steps, 0), run_diffusers(theirs, args.batch, args.steps, 0, peer)  # warm-up
    t_ours, t_inside, t_theirs = [], [], []
    for r in range(args.repeats):  # interleaved, so machine load hits both alike
        total, inside = run_ours(ours, args.batch, args.steps, r)
        t_ours.append(total), t_inside.append(inside)
        t_theirs.append(run_diffusers(theirs, args.batch, args.steps, r, peer))
    ips = lambda ts: args.batch * len(ts) / sum(ts)  # noqa: E731
    print(json.dumps({
        "ours_options": options.__dict__, "diffusers_options": peer.__dict__,
        "ours_params": count_parameters(plain), "diffusers_params": count_parameters(theirs_plain),
        "ours_images_per_s": round(ips(t_ours), 1), "diffusers_images_per_s": round(ips(t_theirs), 1),
        "speed_ratio_ours_over_diffusers": round(sum(t_theirs) / sum(t_ours), 3),
        # each repeat's ratio (the two runs side by side in time), median: a burst of load on the shared machine
        # during one run moves the total's ratio, not this one
        "speed_ratio_median_of_repeats": round(statistics.median(b / a for a, b in zip(t_ours, t_theirs)), 3),
        "sampler_overhead_total_over_model": round(sum(t_ours) / sum(t_inside), 4),
        "batch": args.batch, "steps": args.steps, "threads": args.threads, "repeats": args.repeats,
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
