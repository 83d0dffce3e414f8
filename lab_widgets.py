"""The Spiral lab's widgets (the 2D lab on the Spiral tab): the dataset and model to sample, the layers over the live
plot, live training on a named or drawn dataset, flow matching against diffusion from the same noise, and DDPM, DDIM
and DPM-Solver++ side by side. Components, their texts, thin handlers and their wiring; the work is
diffusion_core.playground.lab, lab_views, editing_views and live_training."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

import gradio as gr

from diffusion_core.playground import editing_views, lab, lab_views

from diffusion_core.training import live_training

from diffusion_core.data import points2d
from diffusion_core.pipeline import Pipeline
from diffusion_core.playground import runs as pg
from diffusion_core.samplers import FLOW_SAMPLERS
from widgets import FLOW_SAMPLER_CHOICES, header_checked, ink_pad, live_scatter

ROOT = Path(__file__).resolve().parent
DATASETS = [("spiral", "spiral"), ("two moons", "moons"), ("8 Gaussians", "gaussians"),
            ("checkerboard", "checkerboard"), ("my drawing", "drawing")]
MODELS = [("shipped, diffusion", "diffusion"), ("shipped, flow matching", "flow"), ("trained in this page", "trained")]
LAB_STORE = pg.ModelStore({name: pg.CheckpointSpec(None, None, ROOT / "checkpoints" / name)
                           for name in [*points2d.TOY_SETS, *(f"{d}_flow" for d in lab.LAB_SETS)]})
ETA_NOTE = ("**eta** (DDIM): 0 follows the probability-flow ODE, a deterministic path per particle; 1 is the SDE, "
            "DDPM's fresh noise at every step. Turn **paths** on and move eta from 0 to 1: smooth curves become "
            "jittery walks that still end on the data.")
TRAIN_TEXT = ("Trains the spiral's MLP (4 × 64) from scratch on the chosen dataset, or on your drawing, in this "
              "page's own session (nobody else sees your model): the loss and fresh samples every "
              f"{400} steps. **Stop** keeps what was learned; then pick **Model: trained in this page** and "
              f"**Generate**. At most {live_training.MAX_TRAININGS} trainings run on the server at once, each at "
              f"most {live_training.MAX_SECONDS:g} s.")
DRAW_TEXT = ("Draw strokes (the points are spread over your ink), or type a word (rendered to points), or paste "
             f"points, one 'x y' per line ({points2d.MIN_POINTS} to {points2d.MAX_POINTS:,}). Typed points come "
             "first, then the word, then the drawing; all are scaled into [-1, 1]. Choose **Dataset: my drawing**.")
COMPARE_TEXT = ("The same initial noise through the shipped diffusion model (DDIM with eta 0 is the probability-flow "
                "ODE; or DDPM) and the flow-matching model of the dataset (the same MLP trained to predict the "
                "velocity along straight lines between noise and data, each noise sample paired in its training "
                "batch with a nearby data point by an optimal-transport plan). Diffusion's paths curve, and its "
                "points hardly move until the last steps; the flow model's paths come out nearly straight, at an "
                "even pace (the lengths below say how nearly). Along a straight path the velocity never changes, "
                "so one Euler step lands where the whole path ends: a few large steps still land near the data, "
                "as the table measures at 1, 2, 4 and 8 steps.")

SAMPLERS_TEXT = ("The same initial noise (**Seed** and **Number of points** above) through DDPM (all T steps), DDIM "
                 "(eta 0) and DPM-Solver++ at the steps below, side by side, streamed together, for the chosen "
                 "dataset's shipped diffusion model or the diffusion model trained in this page (not a "
                 "flow-matching one: it samples with Euler or Heun). As each sampler finishes, its caption gives "
                 "the mean distance of its points to the data and its compute time. **Stop** above stops it; the "
                 "table is the same trade-off measured once on 2,000 points.")
CURVES = json.loads((ROOT / "benchmarks" / "lab_sampler_curves.json").read_text())  # lab_sampler_curves.py


class LabContext(NamedTuple):
    """What the handlers take from app.py: the tab's model store, the GPU decorator, the error adapter and the page
    adapter of a stream."""

    store: Callable[[], pg.ModelStore]  # app.STORE at the time of the call
    gpu: Callable
    shown_in_page: Callable
    to_page: Callable


def lab_model(store: pg.ModelStore, dataset: str, model: str, trained) -> tuple[Pipeline, lab.Measure]:
    """The model Generate samples (a shipped one of the dataset, or the session's trained one) and its measure."""
    if model == "trained":
        if trained is None:
            raise ValueError("no model has been trained in this page yet: press Train first")
        return trained.pipe, lab.measure_for(trained.dataset, trained.reference)
    if model not in ("diffusion", "flow") or dataset not in lab.LAB_SETS:
        raise ValueError("your drawing has no shipped model: train one, then choose 'trained in this page'"
                         if dataset == "drawing" else f"unknown dataset {dataset!r} or model {model!r}")
    key = dataset if model == "diffusion" else f"{dataset}_flow"
    return (store.get("spiral") if key == "spiral" else LAB_STORE.get(key)), lab.measure_for(dataset)


def lab_controls() -> dict:
    """The lab's choices under the sampler controls: dataset, model, layers, the eta note."""
    c = {"dataset": gr.Radio(DATASETS, value="spiral", label="Dataset", elem_id="lab-dataset"),
         "model": gr.Radio(MODELS, value="diffusion", label="Model", elem_id="lab-model")}
    with gr.Row():
        c["paths"] = gr.Checkbox(False, label="paths (50 particles)", elem_id="lab-paths", min_width=80)
        c["field"] = gr.Checkbox(False, label="field (x_t → x0_pred)", elem_id="lab-field", min_width=80)
        c["density"] = gr.Checkbox(False, label="density contours", elem_id="lab-density", min_width=80)
    gr.Markdown(ETA_NOTE, elem_id="lab-eta-note")
    return c


def train_section() -> dict:
    """Live training: objective, steps, seconds, Train / Stop, and the drawing that may be the dataset."""
    c = {}
    with gr.Accordion("Train a model here, live", open=False):
        gr.Markdown(TRAIN_TEXT)
        c["objective"] = gr.Radio([("diffusion", "diffusion"), ("flow matching", "flow")], value="diffusion",
                                  label="Objective", elem_id="lab-objective")
        with gr.Row():
            c["steps"] = gr.Slider(100, live_training.MAX_STEPS, value=6000, step=100, label="Training steps",
                                   elem_id="lab-train-steps")
            c["seconds"] = gr.Slider(5, live_training.MAX_SECONDS, value=60, step=5, label="At most (s)",
                                     elem_id="lab-train-seconds")
        with gr.Row():
            c["go"] = gr.Button("Train", variant="primary", elem_id="lab-train")
            c["stop"] = gr.Button("Stop training", variant="stop", elem_id="lab-train-stop")
    with gr.Accordion("✏️ Draw your own dataset", open=False):
        gr.Markdown(DRAW_TEXT)
        c["pad"] = header_checked(gr.Sketchpad(image_mode="RGBA", type="numpy", layers=False, format="png",
                                               elem_id="lab-sketch", **ink_pad("Draw a shape")))
        c["word"] = gr.Textbox(label="or a word", max_length=points2d.MAX_WORD, elem_id="lab-word")
        c["points"] = gr.Textbox(label="or points, 'x y' per line", lines=3, elem_id="lab-points")
    return c


def compare_section() -> dict:
    """Flow matching against diffusion: samplers, steps, Compare."""
    c = {}
    with gr.Accordion("⚖️ Flow matching against diffusion, from the same noise", open=False):
        gr.Markdown(COMPARE_TEXT)
        with gr.Row():
            c["sampler"] = gr.Radio([("DDIM (eta 0)", "ddim"), ("DDPM", "ddpm")], value="ddim",
                                    label="Diffusion sampler", elem_id="lab-compare-sampler")
            c["flow_sampler"] = gr.Radio(FLOW_SAMPLER_CHOICES, value="euler", label="Flow sampler",
                                         elem_id="lab-compare-flow-sampler")
        c["steps"] = gr.Slider(1, 100, value=8, step=1, label="Steps", elem_id="lab-compare-steps")
        c["go"] = gr.Button("Compare", variant="primary", elem_id="lab-compare")
    return c


def samplers_section() -> dict:
    """The samplers side by side: the steps of DDIM and DPM-Solver++, Compare samplers."""
    c = {}
    with gr.Accordion("⚖️ Samplers side by side: DDPM, DDIM, DPM-Solver++ from one noise", open=False):
        gr.Markdown(SAMPLERS_TEXT)
        c["steps"] = gr.Slider(1, 200, value=20, step=1, label="Steps of DDIM and DPM-Solver++",
                               info="DDPM always takes all T steps", elem_id="lab-samplers-steps")
        c["go"] = gr.Button("Compare samplers", variant="primary", elem_id="lab-samplers")
    return c


def samplers_panel() -> dict:
    """The samplers side by side under the live plot (shown once Compare samplers is pressed): status, the three
    live plots (each captioned by the run), replay slider, GIF, the measured table."""
    c = {}
    with gr.Column(visible=False, elem_id="lab-samplers-panel") as c["samplers_panel"]:
        c["samplers_status"] = gr.Markdown(elem_id="lab-samplers-status")
        with gr.Row():
            c["samplers_plots"] = [live_scatter(f"lab-samplers-{name}", min_width=200)
                                   for name in ("ddpm", "ddim", "dpmpp")]
        c["samplers_replay"] = gr.Slider(0, 999, step=1, label="Replay: step", visible=False,
                                         elem_id="lab-samplers-replay")
        c["samplers_gif"] = gr.File(label="GIF of the comparison", visible=False, elem_id="lab-samplers-gif")
        c["samplers_table"] = gr.Markdown(elem_id="lab-samplers-table")
    c["samplers_state"] = gr.State(None, time_to_live=1800)
    return c


def samplers_table(dataset: str) -> str:
    """The measured distance-against-steps table of the dataset's shipped model (none for a drawing)."""
    return lab_views.steps_table(CURVES["curves"].get(dataset), lab.WORDS.get(dataset, "the data"), CURVES["num"])


def lab_panels() -> dict:
    """Under the live plot: the training's figure and status, the comparison's figure and readings, the samplers
    side by side, each shown once its button is first pressed."""
    c = {}
    with gr.Column(visible=False) as c["train_panel"]:
        c["train_status"] = gr.Markdown(elem_id="lab-train-status")
        c["train_plot"] = gr.Plot(show_label=False, elem_id="lab-train-plot")
    with gr.Column(visible=False) as c["compare_panel"]:
        c["compare_plot"] = gr.Plot(show_label=False, elem_id="lab-compare-plot")
        c["compare_text"] = gr.Markdown(elem_id="lab-compare-text")
    return c | samplers_panel()


def drawing_points(drawing, word: str, text: str):
    """The visitor's dataset from the sketchpad's composite, the word or the typed points (points2d.drawn_points)."""
    picture = drawing.get("composite") if isinstance(drawing, dict) else drawing
    return points2d.drawn_points(picture, word, text)


def make_train(ctx: LabContext):
    """Train's handler: stream (status, figure, the session's model) every preview; Stop keeps the last."""
    def train(dataset: str, objective: str, steps: float, seconds: float, drawing, word: str, points: str):
        with ctx.shown_in_page():
            drawn = drawing_points(drawing, word, points) if dataset == "drawing" else None
            data = lab.training_points(dataset, drawn)
            measure = lab.measure_for(dataset, None if drawn is None else data)
            steps = int(pg.check_number("training steps", steps, 1, live_training.MAX_STEPS, integer=True))
            seconds = pg.check_number("seconds", seconds, 1, live_training.MAX_SECONDS)
            for u in live_training.train_live(data, dataset, objective, steps, seconds):
                dist = measure.distance(u.samples)
                status = (f"{'Done' if u.done else 'Training'}: step {u.step:,}/{steps:,} in {u.seconds:.1f} s · "
                          f"loss {u.losses[-1][1]:.4f} · mean distance of {len(u.samples)} fresh samples to "
                          f"{measure.words}: {dist:.3f}")
                title = f"fresh samples at step {u.step:,} (distance {dist:.3f})"
                yield status, lab_views.training_figure(u.losses, u.samples, measure.backdrop, title), u.model
    return train


def make_compare(ctx: LabContext):
    """Compare's handler: both shipped models of the dataset from one noise (the seed and number of points above)."""
    @ctx.gpu
    def compare(dataset: str, sampler: str, flow_sampler: str, steps: float, seed: float, samples: float):
        with ctx.shown_in_page():
            diffusion, measure = lab_model(ctx.store(), dataset, "diffusion", None)
            flow, _ = lab_model(ctx.store(), dataset, "flow", None)
            if sampler not in ("ddim", "ddpm") or flow_sampler not in FLOW_SAMPLERS:
                raise ValueError(f"compare DDIM or DDPM with Euler or Heun, got {sampler!r} and {flow_sampler!r}")
            return lab_views.compare(
                diffusion, flow, measure, seed=int(pg.check_number("seed", seed, 0, pg.MAX_SEED, integer=True)),
                num=int(pg.check_number("points", samples, 1, 2000, integer=True)), sampler=sampler,
                flow_sampler=flow_sampler, steps=int(pg.check_number("steps", steps, 1, 100, integer=True)))
    return compare


def make_samplers(ctx: LabContext):
    """Compare samplers' handler: DDPM, DDIM and DPM-Solver++ from one noise on the lab's diffusion model, streamed
    into three live plots (editing_views.compare_stream measured against the dataset)."""
    @ctx.gpu
    def compare_samplers(dataset: str, model: str, steps: float, seed: float, samples: float, refresh_s: float,
                         trained=None, progress=gr.Progress()):
        with ctx.shown_in_page():
            pipe, measure = lab_model(ctx.store(), dataset, model, trained)
            s = lab_views.check_samplers_settings(pipe, steps, seed, samples, refresh_s)
            yield from ctx.to_page(editing_views.compare_stream(pipe, s, measure), progress)
    return compare_samplers


def flow_sampler_for(model: str, sampler: str, trained):
    """Switching between a diffusion and a flow model switches the sampler to one it takes."""
    flow = model == "flow" or (model == "trained" and trained is not None and trained.objective == "flow")
    if flow and sampler not in FLOW_SAMPLERS:
        return "euler"
    return "ddim" if not flow and sampler in FLOW_SAMPLERS else gr.skip()


def lab_sections() -> dict:
    """Everything the lab adds under Generate: its controls, the training and comparison sections."""
    return lab_controls() | {"train": train_section(), "compare": compare_section(), "samplers": samplers_section()}


def wire_lab(c: dict, views: dict, inputs: list, ctx: LabContext) -> tuple[list, dict]:
    """The lab's events: Train (with its Stop), Compare, Compare samplers and the sampler following the model.
    Returns the inputs Generate takes after the sampler controls (dataset, model, the three layers and the session's
    trained model) and the samplers side by side's run by api_name (for the tab's Stop, replay and GIF)."""
    trained = gr.State(None, time_to_live=1800)  # this visitor's model: never shared, dropped with the session
    t = c["train"]
    run = t["go"].click(make_train(ctx), [c["dataset"], t["objective"], t["steps"], t["seconds"], t["pad"], t["word"],
                                          t["points"]], [views["train_status"], views["train_plot"], trained],
                        api_name="spiral_train", show_progress_on=[views["train_status"]],
                        concurrency_id="training", concurrency_limit=live_training.MAX_TRAININGS)
    t["stop"].click(None, None, None, cancels=[run], api_name="spiral_train_stop", api_visibility="private")
    k = c["compare"]
    k["go"].click(make_compare(ctx), [c["dataset"], k["sampler"], k["flow_sampler"], k["steps"], inputs[3],
                                      inputs[4]], [views["compare_plot"], views["compare_text"]],
                  api_name="spiral_compare", concurrency_id="sampling")
    for button, panel in ((t["go"], views["train_panel"]), (k["go"], views["compare_panel"])):
        button.click(lambda: gr.update(visible=True), None, panel, queue=False, api_visibility="private")
    gr.on([c["model"].change], flow_sampler_for, [c["model"], inputs[0], trained], inputs[0],
          api_name="spiral_model_sampler", api_visibility="private", show_progress="hidden")
    return [*(c[k] for k in ("dataset", "model", "paths", "field", "density")), trained], wire_samplers(
        c, views, inputs, trained, ctx)


def wire_samplers(c: dict, views: dict, inputs: list, trained: gr.State, ctx: LabContext) -> dict:
    """Compare samplers: the panel shown with the dataset's table and its last replay and GIF hidden, then the run
    (the tab's seed, number of points and refresh) into the three plots, status and recording; {api_name: event}."""
    go, v = c["samplers"]["go"], views
    go.click(lambda dataset: (gr.update(visible=True), *(gr.update(visible=False),) * 2, samplers_table(dataset)),
             c["dataset"], [v["samplers_panel"], v["samplers_replay"], v["samplers_gif"], v["samplers_table"]],
             queue=False, api_visibility="private")
    run = go.click(make_samplers(ctx), [c["dataset"], c["model"], c["samplers"]["steps"], *inputs[3:6], trained],
                   [*v["samplers_plots"], v["samplers_status"], v["samplers_state"]],
                   api_name="spiral_compare_samplers", show_progress_on=[v["samplers_status"]],
                   concurrency_id="sampling")
    return {"spiral_compare_samplers": run}
