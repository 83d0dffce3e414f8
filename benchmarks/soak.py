"""A public Space's day: N visitors, one after another (`--parallel` at a time), each opening the page, running its
tab's default settings on a random tab, fetching the run's GIF and leaving; resident memory of `python app.py`.

    .venv/bin/python -m benchmarks.soak --visitors 200 --json benchmarks/soak.json

Every 10 visitors it prints the server's resident memory (VmRSS from /proc) and the visitors' failed requests;
at the end the p95 of the page's load time (GET / and /config) as visitors arrived while others sampled.
A visitor's run uses the defaults the page shows: the tab's model card (sampler, steps, eta, guidance via
/TAB_info) and widgets.DEFAULTS (label, samples, refresh); only the seed is random.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks.app_fps import free_port, start

TABS = ("spiral", "digits", "fashion", "pokemon")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM of /proc/PID/status) in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def default_args(client, tab: str, seed: int) -> tuple:
    """The tab's Generate arguments as a new page shows them, with `seed`."""
    from widgets import DEFAULTS

    _, sampler, steps, eta, *guidance = client.predict(api_name=f"/{tab}_info")
    d = DEFAULTS[tab]
    steps = steps["value"] if isinstance(steps, dict) else steps
    if tab == "spiral":
        return sampler, steps, eta, seed, d["num"], d["refresh"]
    return sampler, steps, eta, guidance[0], d["label"], seed, d["num"], d["refresh"]


def visit(url: str, tab: str, seed: int) -> dict:
    """One visitor: load the page, run the tab's defaults, fetch the GIF, leave; its page time and any error."""
    from gradio_client import Client

    t0 = time.perf_counter()
    for path in ("/", "/config"):
        httpx.get(url + path, timeout=120).raise_for_status()
    page_ms = 1000 * (time.perf_counter() - t0)
    try:
        client = Client(url, download_files=False, verbose=False, httpx_kwargs={"timeout": 300})
    except Exception as e:  # noqa: BLE001 - a failed visit is counted, not fatal
        return {"tab": tab, "page_ms": page_ms, "error": f"{type(e).__name__}: {e}"}
    try:
        client.predict(*default_args(client, tab, seed), api_name=f"/{tab}")
        client.predict(api_name=f"/{tab}_gif")
        error = None
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
    finally:
        client.close()  # ends the heartbeat: the server sees the visitor leave
    return {"tab": tab, "page_ms": page_ms, "error": error}


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, round(0.95 * len(ranked)) - 1)]


def soak(visitors: int, parallel: int, seed: int, env: dict, out: Path | None = None) -> dict:
    """Run the visitors against a fresh `python app.py`; memory per 10 visitors, failures, page p95 (written to
    `out` every 10 visitors, so a long soak stopped early keeps its figures)."""
    port = free_port()
    proc, startup_s = start([sys.executable, "app.py"], env, port)
    url, rng, rows, results = f"http://127.0.0.1:{port}", random.Random(seed), [], []
    rows.append({"visitors": 0, **memory_mb(proc.pid), "failed": 0})
    print(json.dumps(rows[-1]), flush=True)
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(parallel) as pool:
            plan = [(rng.choice(TABS), rng.randrange(2**31 - 1)) for _ in range(visitors)]
            for done, result in enumerate(pool.map(lambda p: visit(url, *p), plan), start=1):
                results.append(result)
                if done % 10 == 0 or done == visitors:
                    failed = sum(r["error"] is not None for r in results)
                    rows.append({"visitors": done, **memory_mb(proc.pid), "failed": failed,
                                 "minutes": round((time.perf_counter() - t0) / 60, 1)})
                    print(json.dumps(rows[-1]), flush=True)
                    if out:
                        out.write_text(json.dumps(summary(results, rows, visitors, parallel, seed, startup_s)) + "\n")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return summary(results, rows, visitors, parallel, seed, startup_s)


def summary(results: list[dict], rows: list[dict], visitors: int, parallel: int, seed: int, startup_s: float) -> dict:
    """The soak's figures so far."""
    errors = [r for r in results if r["error"]]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"visitors": visitors, "done": len(results), "parallel": parallel, "seed": seed,
            "startup_s": round(startup_s, 1), "tabs": {tab: sum(r["tab"] == tab for r in results) for tab in TABS},
            "page_ms_p95": round(p95([r["page_ms"] for r in results]), 1), "failed": len(errors),
            "errors": errors[:10], "memory_mb": rows, "machine": platform.machine(), "cores": os.cpu_count(),
            "load": load}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--visitors", type=int, default=200)
    p.add_argument("--parallel", type=int, default=2, help="visitors at a time")
    p.add_argument("--seed", type=int, default=0, help="which tabs and seeds the visitors pick")
    p.add_argument("--threads", type=int, default=1, help="PLAYGROUND_THREADS of the app")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    env = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PLAYGROUND_THREADS": str(args.threads)}
    out = soak(args.visitors, args.parallel, args.seed, env, args.json)
    print(json.dumps({k: v for k, v in out.items() if k != "memory_mb"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
