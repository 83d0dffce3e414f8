"""Instant digits: the final grid of a few-step distilled model (training/distill.py) at the settings a visitor is
moving, drawn in one call with no stream, so that the page can redraw it as a slider moves."""
from __future__ import annotations

import time

import numpy as np

from ..data.datasets import to_uint8
from ..fast import default_options
from ..pipeline import Pipeline
from ..training.distill import DistillConfig
from .checks import check_number
from .runs import MAX_SAMPLES, MAX_SEED, check_label

INSTANT_MAX = 16  # digits an instant grid draws at most: label 'all' -> 1 per label (benchmarks/RESULTS.md, redraw)
# each tab's distilled students (docs/TRAINING.md): steps -> checkpoint name; Instant offers these step counts
STUDENTS = {"digits": {4: "digits_fast", 2: "digits_fast_2", 1: "digits_fast_1"},
            "fashion": {4: "fashion_fast", 2: "fashion_fast_2"}}
DEFAULT_STEPS = 2  # Instant's default: looks like 4 steps, redraws in half the time (docs/TRAINING.md)


def student_name(tab: str, steps) -> str:
    """The checkpoint name of `tab`'s distilled student of `steps` steps (one of STUDENTS[tab])."""
    if tab not in STUDENTS:
        raise ValueError(f"the {tab} tab has no distilled model: Instant is for {', '.join(STUDENTS)}")
    n = check_number("instant steps", steps, 1, 4, integer=True)
    if n not in STUDENTS[tab]:
        raise ValueError(f"instant steps must be one of {sorted(STUDENTS[tab])} (the {tab} tab's distilled "
                         f"students), not {n}")
    return STUDENTS[tab][n]


def instant_grid(pipe: Pipeline, tab: str, guidance, label, seed, per_label, g_max: float = DistillConfig.g_max
                 ) -> tuple[np.ndarray, str]:
    """(tagged grid of the final samples, status line) of one few-step run at the checkpoint's own sampler and
    steps, under bf16 autocast where the machine runs it natively (fast.py); g is held to [0, g_max], the range
    the student was distilled for, and the grid to INSTANT_MAX samples (1 per label with label 'all')."""
    from .viz import final_tags, tag_summary, tagged_grid

    g = min(check_number("guidance scale", guidance, 0, 10), g_max)
    lab = check_label(label, pipe.info.class_names)
    rows = len(pipe.info.class_names) if lab == "all" else 1
    asked = check_number("samples", per_label, 1, MAX_SAMPLES[tab] // rows, integer=True)
    per_label = min(asked, max(1, INSTANT_MAX // rows))  # a grid small enough to redraw while a slider moves
    seed = check_number("seed", seed, 0, MAX_SEED, integer=True)
    start, fast = time.perf_counter(), pipe.with_options(default_options(pipe.device))
    x, labels = fast.generate(per_label * rows, seed=seed, label=lab, guidance=g)
    images = to_uint8(x.cpu())
    tags = final_tags(pipe, x, images, [] if labels is None else labels.tolist())
    d = pipe.info.sampling
    held = f" (held at {g_max:g}, the most it was distilled for)" if float(guidance) > g_max else ""
    fewer = (f"; {per_label * rows} of the {asked * rows} asked, so that it redraws as you move: Generate draws them"
             " all" if per_label < asked else "")
    status = (f"Instant: {d.steps} distilled steps at g = {g:g}{held} in {time.perf_counter() - start:.2f} s"
              f"{fewer}{tag_summary(pipe, tags)}")
    return tagged_grid(images, tags, per_label, 56), status
