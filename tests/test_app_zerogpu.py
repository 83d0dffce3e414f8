"""ZeroGPU Spaces: where the `spaces` package is importable, every handler that runs a model (the sampling ones
and How it works' one step) runs under spaces.GPU, and nothing else does; the page's events call the decorated
handlers. A stand-in `spaces` records what it wraps."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import inspect, json, sys, types
wrapped = []
def GPU(fn):
    wrapped.append(fn.__name__)
    def on_gpu(*args, **kwargs):
        return fn(*args, **kwargs)
    if inspect.isgeneratorfunction(fn):
        def on_gpu(*args, **kwargs):
            yield from fn(*args, **kwargs)
    on_gpu.__name__, on_gpu.__wrapped__, on_gpu.on_gpu = fn.__name__, fn, True
    return on_gpu
sys.modules["spaces"] = types.SimpleNamespace(GPU=GPU)
import app
events = {f.api_name: getattr(f.fn, "on_gpu", False) for f in app.demo.fns.values() if f.api_name}
print(json.dumps({"wrapped": wrapped, "events": events}))
"""


def test_sampling_handlers_run_under_spaces_gpu_when_spaces_is_importable():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    # compare: the three image tabs' samplers side by side (editing) and the Spiral lab's flow against diffusion;
    # compare_samplers: the Spiral lab's samplers side by side
    assert sorted(got["wrapped"]) == (["compare"] * 4 + ["compare_samplers"] + ["complete_sketch"] * 3 + ["generate"] * 3 + ["inpaint"] * 3
                                      + ["instant_samples"] * 2 + ["interpolate"] * 3 + ["one_step", "spiral"])
    on_gpu = {name for name, flag in got["events"].items() if flag}
    editing = {f"{tab}_{run}" for tab in ("digits", "fashion", "pokemon")
               for run in ("inpaint", "interpolate", "compare")}
    assert on_gpu == {"spiral", "digits", "fashion", "pokemon", "digits_sketch", "fashion_sketch", "pokemon_sketch",
                      "one_step", "one_step_init", "one_step_new_example", "spiral_compare", "spiral_compare_samplers",
                      "digits_instant", "fashion_instant",
                      *editing}, got
