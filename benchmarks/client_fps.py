"""Frames per second the app sends to a Python client during a spiral run, for each refresh interval.

    .venv/bin/python -m benchmarks.client_fps [--threads 1] [--refresh 0.04 0.03 0.02] [--repeats 3]

Starts `python app.py` (Hub offline, 1 torch thread by default) and streams the Spiral tab's default run (DDPM,
1000 steps, 1000 points) through `gradio_client` (`Client.submit`, no file downloads), timing each frame as it
arrives: frames/s is (frames - 1) / (last arrival - first arrival), the median over `repeats` seeds after a
warm-up run. The server sends at most one frame per refresh interval (first and last step always), so the rate
stays under 1 / refresh; where it falls further short, sampling or transport is the limit.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from benchmarks.app_fps import free_port, start
from diffusion_core.files.card import hardware_description


def stream_rate(client, refresh: float, seed: int) -> tuple[int, float, float]:
    """(frames received, frames/s between the first and the last, seconds of the whole run) of one spiral run."""
    t0, arrivals = time.perf_counter(), []
    for _ in client.submit("ddpm", 1000, 0.0, seed, 1000, refresh, api_name="/spiral"):
        arrivals.append(time.perf_counter())
    return len(arrivals), (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), arrivals[-1] - t0


def main() -> None:
    """Start the app, stream one warm-up run, then `repeats` runs per refresh interval; print the numbers."""
    from gradio_client import Client

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1", help="torch threads of the app (PLAYGROUND_THREADS)")
    p.add_argument("--refresh", type=float, nargs="+", default=[0.04, 0.03, 0.02])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(int(args.threads))  # this process only waits; hardware_description then names the app's
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PLAYGROUND_THREADS": args.threads}
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": hardware_description(),
              "load_before": os.getloadavg()}
    port = free_port()
    proc, _ = start([sys.executable, "app.py"], env, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", download_files=False, verbose=False)
        stream_rate(client, 0.04, 0)  # loads the model
        for refresh in args.refresh:
            runs = [stream_rate(client, refresh, seed) for seed in range(args.repeats)]
            report[f"refresh {refresh} s"] = {"frames": statistics.median(r[0] for r in runs),
                                              "frames_per_s": round(statistics.median(r[1] for r in runs), 1),
                                              "run_s": round(statistics.median(r[2] for r in runs), 2)}
    finally:
        proc.terminate()
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
