"""The 2D lab's core: its datasets, how a run is measured (metrics.data_distance: the mean distance of generated
points to the data), and the layers drawn over a live run (particle paths, the model's field on a grid, the density
of the current points)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..data.datasets import load_dataset
from ..data.points2d import TOY_SETS
from ..diffusion import x0_and_eps
from ..evaluation.metrics import data_distance, reference_points
from ..pipeline import Pipeline
from ..samplers import StepOutput
from .recording import Recording
from .runs import LiveFrame, RunSettings, Throttle, live_run
from .viz import spiral_frame, spiral_points, step_caption

LAB_SETS = ("spiral", *TOY_SETS)  # named sets with shipped models; a visitor's own is "drawing"
WORDS = {"spiral": "the spiral", "moons": "the two moons", "gaussians": "the 8 Gaussians",
         "checkerboard": "the checkerboard", "drawing": "your drawing"}  # what a run is measured against
PATHS = 50  # particles whose paths are drawn
FIELD_N, DENSITY_N, LIM = 21, 48, 3.0  # arrows per side, density cells per side, over [-LIM, LIM]^2 (x_t's panel)


def training_points(name: str, drawing: np.ndarray | None = None) -> torch.Tensor:
    """The points a model of `name` trains on: a named set's 10,000 (data.load_dataset) or the drawing's."""
    return reference_points(name, drawing) if name == "drawing" else load_dataset(name).x


def field_grid(n: int = FIELD_N, lim: float = LIM) -> torch.Tensor:
    """The arrows' feet: an n x n grid over [-lim, lim]^2, row by row from the bottom left, [n * n, 2]."""
    g = torch.linspace(-lim, lim, n)
    return torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)


def model_field(pipe: Pipeline, t: int, grid: torch.Tensor) -> np.ndarray:
    """The model's field at timestep t on the grid: the direction from x_t to x0_pred (for a flow model -s v,
    along its velocity), [n, 2]."""
    t = max(t, 0)
    tb = torch.full((len(grid),), t, dtype=torch.long, device=pipe.device)
    x = grid.to(pipe.device)
    x0_pred, _ = x0_and_eps(pipe.schedule, x, tb, pipe.eps_fn(None, 0.0)(x, tb), pipe.info.diffusion.prediction)
    return (x0_pred - x).cpu().numpy()


def density(points, n: int = DENSITY_N, lim: float = LIM) -> np.ndarray:
    """The density of points [N, 2] on an n x n grid over [-lim, lim]^2 (rows from the bottom), a histogram
    smoothed by two 3 x 3 box filters, scaled to 0..255 (uint8) for contour lines."""
    p = np.asarray(points, dtype=np.float64)
    h, _, _ = np.histogram2d(p[:, 1], p[:, 0], bins=n, range=[[-lim, lim], [-lim, lim]])
    for _ in range(2):
        padded = np.pad(h, 1)
        h = sum(padded[i:i + n, j:j + n] for i in range(3) for j in range(3)) / 9
    return np.round(255 * h / max(h.max(), 1e-12)).astype(np.uint8)


@dataclass
class Layers:
    """Which layers a run draws; the paths come from the run's recording (every step it kept)."""

    paths: bool = False
    field: bool = False
    density: bool = False
    shown: int = -1  # the last step whose path points were sent

    def payload(self, pipe: Pipeline, out: StepOutput, rec: Recording, done: bool) -> dict:
        """What a displayed frame adds for its layers: the path points [k, PATHS, 2] of the steps since the last
        frame (on the last frame all of them, at most 250 per particle, to replace what the page gathered), the
        field at the step's t and the density of x_t."""
        layers: dict = {"grid": [FIELD_N, DENSITY_N, LIM]} if self.paths or self.field or self.density else {}
        if self.paths:
            kept = sorted(i for i in rec.steps if (self.shown < i <= out.index or done))
            if done:  # at most about 250 per particle, the last one always
                thin = kept[::max(1, len(kept) // 250)]
                kept = thin + kept[-1:] if thin and thin[-1] != kept[-1] else thin
            if kept:
                layers["paths"] = np.stack([rec.steps[i][1][:PATHS] for i in kept]).astype(np.float32)
                layers["paths_all"], layers["paths_n"] = done, layers["paths"].shape[1]
            self.shown = out.index
        if self.field:
            layers["field"] = model_field(pipe, out.t, field_grid())
        if self.density:
            layers["density"] = density(out.x_t.detach().cpu().numpy())
        return layers


@dataclass(frozen=True)
class Measure:
    """What a run is measured against: a dataset's name and words, its dense sample, the backdrop drawn."""

    name: str = "spiral"
    words: str = "the spiral"
    reference: torch.Tensor | None = None
    cloud: np.ndarray | None = None  # faint data points behind the run (None: the spiral's curve)

    def distance(self, points) -> float:
        """Mean distance of points [N, 2] to the data (data_distance)."""
        return data_distance(points, self.name, self.reference)

    @property
    def backdrop(self) -> np.ndarray:
        """Points [n, 2] that show the data in a static figure: the cloud, or points along the spiral."""
        return spiral_points() if self.cloud is None else self.cloud


def measure_for(name: str, reference: torch.Tensor | None = None) -> Measure:
    """How a run on dataset `name` is measured and shown (a drawing's `reference`: its own points)."""
    if name == "spiral":
        return Measure()
    ref = reference_points(name, None if reference is None else reference.numpy())
    return Measure(name, WORDS[name], ref, ref[:1500].numpy())


def lab_stream(pipe: Pipeline, s: RunSettings, layers: Layers, measure: Measure) -> Iterator[LiveFrame]:
    """A 2D run for the live plot (spiral_frame with its layers), its status line with the mean distance of x_t
    to the data (estimated on 256 points while streaming, on all of them at the end), and its recording."""
    meter, start, dist = Throttle(0.25), time.monotonic(), float("nan")
    for out, rec in live_run(pipe, s):
        done = out.index == rec.total - 1
        if done or meter.due():
            dist = measure.distance(out.x_t if done else out.x_t[:256])
        status = f"{step_caption(out.index, rec.total, out.t)} · mean distance of x_t to {measure.words}: {dist:.3f}"
        if done:
            status = f"Done in {time.monotonic() - start:.1f} s · {status}"
        frame = spiral_frame(out.index, rec.total, out.t, out.x_t, out.x0_pred, done,
                             layers.payload(pipe, out, rec, done), measure.cloud)
        yield LiveFrame(out.index, (frame,), status, rec)
