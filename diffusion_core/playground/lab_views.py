"""What the 2D lab shows besides the live plot: a run's settings for a flow or diffusion model, the live training's
figure (loss curve and fresh samples), and flow matching against diffusion from the same noise (paths, and the
distance to the data at 1, 2, 4 and 8 steps). Plotly figures and Markdown; it never imports gradio."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..device import make_generator
from ..pipeline import Pipeline
from ..samplers import FLOW_SAMPLERS, SAMPLERS
from .lab import PATHS, Measure
from .runs import RunSettings, check_settings

FEW_STEPS = (1, 2, 4, 8)  # the comparison's table
DATA_COLOUR, DIFFUSION_COLOUR, FLOW_COLOUR = "rgba(128,128,128,0.25)", "#1f77b4", "#d62728"


def is_flow(pipe: Pipeline) -> bool:
    return pipe.info.diffusion.prediction == "flow"


def check_lab_settings(pipe: Pipeline, sampler: str, steps, eta, seed, num, refresh_s) -> RunSettings:
    """playground.check_settings for a 2D model that predicts eps or a flow velocity: a flow model takes Euler or
    Heun (eta unused), a diffusion model DDPM, DDIM or DPM-Solver++."""
    flow = is_flow(pipe)
    allowed = FLOW_SAMPLERS if flow else SAMPLERS
    if sampler not in allowed:
        kind = "a flow-matching model" if flow else "a diffusion model"
        raise ValueError(f"{kind} samples with {' or '.join(allowed)}, got {sampler!r}")
    s = check_settings(pipe, "spiral", "ddim" if flow else sampler, steps, 0.0 if flow else eta, 0.0, None, seed,
                       num, refresh_s)
    return replace(s, sampler=sampler)


def check_samplers_settings(pipe: Pipeline, steps, seed, num, refresh_s) -> RunSettings:
    """The samplers side by side on a 2D model (editing_views.compare_stream): a diffusion model only, DDIM and
    DPM-Solver++ at `steps`, `num` points each (playground.check_settings)."""
    if is_flow(pipe):
        raise ValueError("DDPM, DDIM and DPM-Solver++ sample a diffusion model: choose Model 'shipped, diffusion' "
                         "(or train one with the diffusion objective); a flow-matching model samples with Euler or Heun")
    return check_settings(pipe, "spiral", "ddim", steps, 0.0, 0.0, None, seed, num, refresh_s)


def steps_table(curves: dict | None, words: str, num: int) -> str:
    """Markdown: the mean distance to the data against steps, DDIM and DPM-Solver++, and DDPM at all T steps, of a
    shipped model (one dataset of benchmarks/lab_sampler_curves.json); None: a drawing, which has none."""
    if curves is None:
        return "No measured table for your drawing: its model is the one trained in this page."
    (T, ddpm), = curves["ddpm"].items()
    head = (f"**Mean distance to {words} against steps**, measured once on {num:,} points of the shipped model "
            f"(DDPM, all {T} steps: **{ddpm:.3f}**)\n\n| steps | DDIM (eta 0) | DPM-Solver++ |\n|---|---|---|")
    return "\n".join([head, *(f"| {k} | {d:.3f} | {curves['dpm++'][k]:.3f} |" for k, d in curves["ddim"].items())])


def training_figure(losses, samples: np.ndarray, backdrop: np.ndarray, title: str):
    """The live training's picture: the loss curve (EMA of batch losses, log scale) beside fresh samples over the
    data."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.08,
                        subplot_titles=("loss (EMA of batches)", title))
    steps, values = zip(*losses) if losses else ((), ())
    fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", line=dict(color=DIFFUSION_COLOUR)), 1, 1)
    fig.add_trace(go.Scattergl(x=backdrop[:, 0], y=backdrop[:, 1], mode="markers", hoverinfo="skip",
                               marker=dict(size=3, color=DATA_COLOUR)), 1, 2)
    fig.add_trace(go.Scattergl(x=samples[:, 0], y=samples[:, 1], mode="markers",
                               marker=dict(size=3, color=FLOW_COLOUR)), 1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(range=[-1.6, 1.6], row=1, col=2)
    fig.update_yaxes(range=[-1.6, 1.6], scaleanchor="x2", row=1, col=2)
    fig.update_layout(height=360, showlegend=False, template="plotly_white", margin=dict(l=40, r=10, t=40, b=40))
    return fig


@dataclass(frozen=True)
class Run2D:
    """One sampler's run from the shared noise: the paths of the first PATHS particles [steps + 1, PATHS, 2] and
    the final points [n, 2]."""

    label: str
    paths: np.ndarray
    final: np.ndarray


def run_from(pipe: Pipeline, x_T: torch.Tensor, sampler: str, steps: int | None, label: str) -> Run2D:
    """Sample from the given noise x_T (eta 0: DDIM is the probability-flow ODE) and keep every step's paths."""
    seen = [x_T[:PATHS].numpy()]
    out = None
    for out in pipe.run(len(x_T), seed=0, sampler=sampler, steps=steps, eta=0.0, x_T=x_T):
        seen.append(out.x_t[:PATHS].cpu().numpy())
    return Run2D(label, np.stack(seen), out.x_t.cpu().numpy())


def straightness(paths: np.ndarray) -> float:
    """The particles' path lengths over their distances from start to end, summed: 1 for straight paths (sums, so
    that a particle ending near its start does not dominate)."""
    length = np.linalg.norm(np.diff(paths, axis=0), axis=-1).sum()
    chord = np.linalg.norm(paths[-1] - paths[0], axis=-1).sum()
    return float(length / max(chord, 1e-9))


def late_share(paths: np.ndarray) -> float:
    """The share of the particles' path length covered in the last quarter of the steps (at least the last step):
    0.25 for an even pace; near 1 when the points hardly move until the end, where few large steps go wrong."""
    steps = np.linalg.norm(np.diff(paths, axis=0), axis=-1).sum(-1)
    return float(steps[min(len(steps) - 1, round(0.75 * len(steps))):].sum() / max(steps.sum(), 1e-9))


def few_step_table(diffusion: Pipeline, flow: Pipeline, x_T: torch.Tensor, measure: Measure) -> str:
    """Markdown: the mean distance to the data after 1, 2, 4 and 8 steps of DDIM (eta 0), Euler and Heun, all from
    x_T (Heun evaluates the model twice a step but the last)."""
    rows = []
    for k in FEW_STEPS:
        cells = [measure.distance(run_from(pipe, x_T, sampler, k, "").final)
                 for pipe, sampler in ((diffusion, "ddim"), (flow, "euler"), (flow, "heun"))]
        rows.append(f"| {k} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.3f} |")
    head = ("| steps | diffusion, DDIM (eta 0) | flow matching, Euler | flow matching, Heun |\n"
            "|---|---|---|---|")
    return "\n".join([head, *rows])


def compare(diffusion: Pipeline, flow: Pipeline, measure: Measure, *, seed: int, num: int, sampler: str,
            flow_sampler: str, steps: int):
    """Diffusion (DDPM or DDIM) and flow matching (Euler or Heun) from the same initial noise: (figure of both
    runs' paths, Markdown with their distances, straightness, and the few-step table)."""
    x_T = torch.randn((num, 2), generator=make_generator(seed, "cpu"))
    runs = (run_from(diffusion, x_T, sampler, None if sampler == "ddpm" else steps,
                     f"diffusion, {sampler.upper()}" + ("" if sampler == "ddpm" else f" {steps} steps")),
            run_from(flow, x_T, flow_sampler, steps, f"flow matching, {flow_sampler.capitalize()} {steps} steps"))
    words = [f"**{r.label}**: mean distance to the data {measure.distance(r.final):.3f}, paths "
             f"{straightness(r.paths):.2f}× as long as straight lines, {late_share(r.paths):.0%} of their length "
             "in the last quarter of the steps" for r in runs]
    table = few_step_table(diffusion, flow, x_T, measure)
    return compare_figure(runs, measure.backdrop), "  \n".join(words) + "\n\n" + table


def compare_figure(runs: tuple[Run2D, Run2D], backdrop: np.ndarray):
    """Both runs side by side: the data faint, the particles' paths from the shared noise, the final points."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=[r.label for r in runs], horizontal_spacing=0.06)
    for col, (run, colour) in enumerate(zip(runs, (DIFFUSION_COLOUR, FLOW_COLOUR)), start=1):
        fig.add_trace(go.Scattergl(x=backdrop[:, 0], y=backdrop[:, 1], mode="markers", hoverinfo="skip",
                                   marker=dict(size=3, color=DATA_COLOUR)), 1, col)
        gap = np.full((1, run.paths.shape[1], 2), np.nan)  # one trace: the paths separated by gaps
        lines = np.concatenate([run.paths, gap]).transpose(1, 0, 2).reshape(-1, 2)
        fig.add_trace(go.Scatter(x=lines[:, 0], y=lines[:, 1], mode="lines", hoverinfo="skip",
                                 line=dict(color=colour, width=1)), 1, col)
        fig.add_trace(go.Scattergl(x=run.final[:, 0], y=run.final[:, 1], mode="markers",
                                   marker=dict(size=3, color=colour)), 1, col)
        fig.add_trace(go.Scatter(x=run.paths[0, :, 0], y=run.paths[0, :, 1], mode="markers", hoverinfo="skip",
                                 marker=dict(size=5, color="black", symbol="circle-open")), 1, col)
    fig.update_xaxes(range=[-3, 3])
    fig.update_yaxes(range=[-3, 3])
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    fig.update_layout(height=460, showlegend=False, template="plotly_white", margin=dict(l=40, r=10, t=40, b=30))
    return fig
