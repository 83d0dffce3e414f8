"""Diffusion Playground: watch noise become a spiral, a digit, a garment or a Pokémon, step by step. `python app.py`
(honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT). Handlers (thin adapters over diffusion_core) and the page's
wiring; the widgets are in widgets.py.
Environment: PLAYGROUND_CHECKPOINTS=DIR (folders spiral/, digits/, fashion/, pokemon/ instead of Hub/shipped),
PLAYGROUND_THREADS (torch threads), PLAYGROUND_CONCURRENCY (sampling runs at once, default 2)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import torch

import lab_widgets
from diffusion_core.data.datasets import DIGIT_CLASSES
from diffusion_core.files.checkpoint import CheckpointError
from diffusion_core.guidance import describe_interval
from diffusion_core.playground import instant, lab, lab_views, lesson, lesson_viz, sketch, viz
from diffusion_core.playground import runs as pg
from diffusion_core.playground.recording import RECORDINGS, give_back_memory
from diffusion_core.schedules import make_schedule
from editing_widgets import EDIT_TABS, Context, editing_sections, strip_note, wire_editing
from widgets import (CLASSES, INSTANT_TABS, ONE_STEP_PICTURES, PICTURE, PLOTLY_JS, SKETCHES, STATIC, controls,
                     instant_controls, live_outputs, sketch_section)

ROOT = Path(__file__).resolve().parent
GIF_DIR = Path(tempfile.gettempdir()) / "diffusion_playground"

# The one place that says where each tab's model comes from: a Hub repo at a pinned revision (commit), else
# the shipped copy in checkpoints/. None until the checkpoints are published (docs/PUBLISHING.md): the shipped
# copies are used. The README front matter's `models:` lists the same repos (tests/test_readme.py).
HUB_REPOS: dict[str, tuple[str, str] | None] = {"spiral": None, "digits": None, "fashion": None, "pokemon": None,
                                                # Instant mode's distilled students (playground/instant.STUDENTS)
                                                "digits_fast": None, "digits_fast_2": None, "digits_fast_1": None,
                                                "fashion_fast": None, "fashion_fast_2": None}
CHECKPOINTS = {name: pg.CheckpointSpec(*(repo or (None, None)), fallback=ROOT / "checkpoints" / name)
               for name, repo in HUB_REPOS.items()}
STORE = pg.ModelStore(CHECKPOINTS, os.environ.get("PLAYGROUND_CHECKPOINTS") or None)
CONCURRENCY = int(os.environ.get("PLAYGROUND_CONCURRENCY", "2"))
if os.environ.get("PLAYGROUND_THREADS"):
    torch.set_num_threads(int(os.environ["PLAYGROUND_THREADS"]))
gr.set_static_paths([str(STATIC), str(PLOTLY_JS.parent)])

EXAMPLES = {"the spiral (1,000 points)": (None, "spiral"), "a digit": (STATIC / "examples" / "digit.png", "digits"),
            "a garment": (STATIC / "examples" / "garment.png", "fashion"),  # Fashion-MNIST's first training image
            "a Pokémon sprite": (STATIC / "examples" / "pokemon.png", "pokemon")}  # x0 file, the tab whose model

try:  # ZeroGPU Spaces: run the sampling handlers on the GPU; elsewhere nothing changes
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        """No `spaces` package: the function unchanged."""
        return fn


@contextmanager
def shown_in_page():
    """Show the core's ValueError / CheckpointError (bad input, missing model) as a gr.Error in the page."""
    try:
        yield
    except (ValueError, CheckpointError) as e:
        raise gr.Error(str(e)) from None


# ---------------------------------------------------------------- handlers (adapters)

def model_info(tab: str) -> tuple:
    """Which checkpoint the tab uses (or why there is none); its default sampler, steps, eta (and guidance)."""
    n = 3 if tab == "spiral" else 4
    try:
        pipe = STORE.get(tab)
    except CheckpointError as e:
        return f"⚠️ **No {tab} model available.** {e}", *(gr.update(),) * n
    d, T = pipe.info.sampling, pipe.schedule.T
    source = pipe.source.replace(f"{ROOT}/", "")
    info = (f"**Model:** {source} · {pipe.info.diffusion.schedule} noise schedule, T = {T} · "
            f"predicts {pipe.info.diffusion.prediction}")
    if d.guidance_interval:  # guidance.py: guided only there, the label alone elsewhere
        info += f" · g > 1 applied at {describe_interval(d.guidance_interval)} only"
    if pipe.measured:
        info += f"  \n**Measured** (its model card): {pipe.measured}"
    return (info, d.sampler, gr.update(value=d.steps, maximum=T), d.eta, d.guidance)[:n + 1]


def to_page(frames, progress: gr.Progress):
    """Stream a core run to the page: outputs (None: unchanged) each frame; the status line and the progress bar
    at most 4 times a second (the browser's time goes to the picture); the recording for replay and the GIF."""
    throttle = pg.Throttle(0.25)
    for f in frames:
        status = f.step == f.rec.total - 1 or throttle.due()
        if status:
            progress((f.step + 1, f.rec.total), desc=f.status, unit="steps")
        yield *(gr.skip() if o is None else o for o in f.outputs), f.status if status else gr.skip(), f.rec


@gpu
def spiral(sampler: str, steps: float, eta: float, seed: float, samples: float, refresh_s: float,
           dataset: str = "spiral", model: str = "diffusion", paths: bool = False, field: bool = False,
           density: bool = False, trained=None, progress=gr.Progress()):
    """The Spiral lab's Generate: the live plot value (x_t and x0_pred points, and the layers asked for), status,
    recording; from the dataset's shipped diffusion or flow model, or the one trained in this session."""
    with shown_in_page():
        pipe, measure = lab_widgets.lab_model(STORE, dataset, model, trained)
        s = lab_views.check_lab_settings(pipe, sampler, steps, eta, seed, samples, refresh_s)
        yield from to_page(lab.lab_stream(pipe, s, lab.Layers(paths, field, density), measure), progress)


def make_generate(tab: str):
    """The Digits/Pokémon Generate: x_t grid, x0_pred grid, tagged final samples, status, recording."""
    @gpu
    def generate(sampler: str, steps: float, eta: float, guidance: float, label: str, seed: float,
                 samples: float, refresh_s: float, progress=gr.Progress()):
        with shown_in_page():
            pipe = STORE.get(tab)
            s = pg.check_settings(pipe, tab, sampler, steps, eta, guidance, label, seed, samples, refresh_s)
            yield from to_page(pg.image_stream(pipe, s), progress)
    return generate


def make_instant(tab: str):
    """Instant mode: the final grid of the tab's few-step model at the moving settings (nothing when it is off)."""
    @gpu
    def instant_samples(on: bool, steps: int, guidance: float, label: str, seed: float, samples: float):
        if not on:
            return gr.skip(), gr.skip()
        with shown_in_page():
            return instant.instant_grid(STORE.get(instant.student_name(tab, steps)), tab, guidance, label, seed,
                                        samples)
    return instant_samples


HANDLERS = {"spiral": spiral, **{tab: make_generate(tab) for tab in ("digits", "fashion", "pokemon")}}


SKETCH_TO_X0 = {"digits": sketch.sketch_to_x0, "fashion": sketch.sketch_to_garment,
                "pokemon": sketch.sketch_to_sprite}  # a drawing as the tab's x0


def make_complete(tab: str):
    """SDEdit on the Digits / Fashion / Pokémon tab: noise the drawing (or uploaded sprite) to step t_start, then denoise it
    with the tab's model, guided to the label."""
    @gpu
    def complete_sketch(drawing, t_start: float, sampler: str, steps: float, eta: float, guidance: float,
                        label: str, seed: float, samples: float, refresh_s: float, progress=gr.Progress()):
        with shown_in_page():
            pipe = STORE.get(tab)
            s = pg.check_settings(pipe, tab, sampler, steps, eta, guidance, label, seed, samples, refresh_s,
                                  t_start)
            yield from to_page(pg.image_stream(pipe, s, SKETCH_TO_X0[tab](drawing)), progress)
    return complete_sketch


def replay(step: float, rec: pg.Recording | None):
    """The live outputs and caption of a recorded step (the spiral's as real, hoverable plotly points)."""
    with shown_in_page():
        f = pg.replay_frame(rec, step)
    return *f.outputs, f.status


def finish_run(rec: pg.Recording | None, request: gr.Request):
    """After a run, finished or stopped: the replay slider over the steps it took, on the last one, the run's GIF,
    and (if stopped) why. The recording is the visitor's: it goes when they close the page (visitor_left)."""
    give_back_memory()  # the run's buffers, freed in a worker thread's arena
    if rec is not None and request is not None:
        RECORDINGS.own(request.session_hash, rec)
    if rec is None or not rec.steps:
        return gr.update(visible=False), gr.update(visible=False, value=None), gr.skip()
    last = max(rec.steps)
    stopped = f"Stopped at step {last + 1}/{rec.total}: replay or download the steps so far."
    return (gr.update(visible=True, maximum=last, value=last),
            gr.update(visible=True, value=str(viz.run_gif(rec, GIF_DIR))), gr.skip() if rec.finished else stopped)


def visitor_left(request: gr.Request) -> None:
    """A visitor closed or reloaded the page: their replay frames go now, not when their state expires."""
    RECORDINGS.leave(request.session_hash)
    give_back_memory()


def example_x0(example: str):
    """The How it works tab's example x0 and the tab whose model takes it."""
    if example not in EXAMPLES:
        raise gr.Error(f"example must be one of {', '.join(EXAMPLES)}, got {example!r}")
    path, tab = EXAMPLES[example]
    return lesson.load_example(path), tab


def forward(example: str, t: float):
    """x_t of an example under the linear and cosine schedules at timestep t, with the numbers behind them."""
    x0, _ = example_x0(example)
    with shown_in_page():
        out = lesson.forward_process(x0, t)
    return *(lesson_viz.forward_picture(x_t) for x_t, _ in out.values()), lesson_viz.schedule_table(out)


def label_choices(example: str):
    """The one step's label choices for the example's model: none, or one of its classes."""
    classes = CLASSES.get(EXAMPLES[example][1], ()) if example in EXAMPLES else ()
    return gr.update(choices=[lesson.NO_LABEL, *classes], value=lesson.NO_LABEL, interactive=bool(classes))


@gpu
def one_step(example: str, t: float, label: str, guidance: float, curve: tuple | None):
    """One call of the example's trained model at t (without a label, or for one under guidance g): x_t, the noise,
    the model's guess of it, x0_pred, their errors, and the errors at every t (computed once per example, label
    and g, kept in the session's state: moving t only moves the marker)."""
    x0, tab = example_x0(example)
    key = (example, label, guidance)
    with shown_in_page():
        pipe = STORE.get(tab)
        out = lesson.one_step(pipe, x0, t, label=label, guidance=guidance)
        if curve is None or curve[0] != key:
            curve = key, lesson.error_curve(pipe, x0, label=label, guidance=guidance)
    pictures = (lesson_viz.forward_picture(out.x_t), lesson_viz.noise_picture(out.eps),
                lesson_viz.noise_picture(out.eps_pred), lesson_viz.x0_pred_picture(out.x0_pred, out.x_t))
    asked = "no label" if label in (None, lesson.NO_LABEL) else f"label {label}, g = {guidance:g}"
    caption = (f"The {tab} model ({pipe.info.diffusion.schedule} schedule, t = {int(t)}, {asked}): x0_pred is off "
               f"by **{out.x0_error:.3f}** (RMS) where x_t was off by {out.x_t_error:.3f}; "
               f"its guess of ε is off by {out.eps_error:.3f}.")
    figure = lesson_viz.error_figure(curve[1], int(t), f"How far the {tab} model is off at each t ({asked})")
    return *pictures, caption, figure, curve


def schedule_plot(t: float):
    """beta_t, alpha_bar_t and SNR of the linear and cosine schedules, with a marker at t."""
    return lesson_viz.schedule_figure({k: make_schedule(k, 1000) for k in ("linear", "cosine")}, int(t))


# ---------------------------------------------------------------- layout
TABS = {"spiral": "Spiral", "digits": "Digits", "fashion": "Fashion", "pokemon": "Pokémon"}  # the generation tabs
SAMPLING = dict(concurrency_id="sampling", concurrency_limit=CONCURRENCY)


def generation_tab(demo: gr.Blocks, tab: str) -> None:
    """A tab that streams a run: controls, live x_t beside x0_pred, status, replay slider, GIF, final samples."""
    info = gr.Markdown(f"Loading the {tab} model…")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            inputs = controls(tab)
            fast = instant_controls(tab) if tab in INSTANT_TABS else None  # (on, steps)
            with gr.Row():
                go, stop = gr.Button("Generate", variant="primary"), gr.Button("Stop", variant="stop")
            lab_parts = lab_widgets.lab_sections() if tab == "spiral" else None  # the 2D lab
            drawing = sketch_section(tab) if tab in SKETCHES else None
            edits = editing_sections(tab) if tab in EDIT_TABS else None  # inpaint, interpolate, compare
        with gr.Column(scale=5):
            live = live_outputs(tab)
            status = gr.Markdown("Press **Generate** to start from pure noise.", elem_id=f"{tab}-status")
            replay_step = gr.Slider(0, 999, step=1, label="Replay: step", visible=False, elem_id=f"{tab}-replay")
            gif = gr.File(label="GIF of the run (x_t beside x0_pred)", elem_id=f"{tab}-gif", visible=False)
            what = "colour class" if tab == "pokemon" else "what LeNet reads"  # a copy says so under its tile
            final = [] if tab == "spiral" else [gr.Image(label=f"Final samples: {what} (green = as asked)",
                                                         format="png", elem_id=f"{tab}-final", interactive=False,
                                                         elem_classes="final-grid")]
            lab_outputs = lab_widgets.lab_panels() if lab_parts else None
            why = [strip_note(tab, edits)] if edits else []  # why slerp, directly under an interpolation strip
    state = gr.State(None, time_to_live=1800)
    outputs = [*live, *final, status, state]
    lab_runs = {}  # the lab's samplers side by side: its own plots, replay and GIF; the tab's Stop
    if lab_parts:  # Generate also takes the dataset, model, layers and the session's trained model
        lab_inputs, lab_runs = lab_widgets.wire_lab(lab_parts, lab_outputs, inputs, lab_widgets.LabContext(
            lambda: STORE, gpu, shown_in_page, to_page))
        inputs = [*inputs, *lab_inputs]
        v = lab_outputs
        replayable("spiral_compare_samplers", lab_runs, v["samplers_state"], v["samplers_replay"], v["samplers_gif"],
                   v["samplers_status"], v["samplers_plots"])
    runs = {tab: go.click(HANDLERS[tab], inputs, outputs, api_name=tab, show_progress_on=[status], **SAMPLING)}
    if fast is not None:  # every move of g, the label, the seed or the samples redraws; only the newest is computed
        guidance, label, seed, samples = inputs[3:7]
        gr.on([fast[0].change, fast[1].change, guidance.input, label.change, seed.change, samples.input],
              make_instant(tab), [*fast, guidance, label, seed, samples], [final[0], status], api_name=f"{tab}_instant",
              trigger_mode="always_last", show_progress="hidden", **SAMPLING)
    if drawing:
        runs[f"{tab}_sketch"] = drawing[2].click(make_complete(tab), [*drawing[:2], *inputs], outputs,
                                                api_name=f"{tab}_sketch", show_progress_on=[status], **SAMPLING)
    if edits:
        ctx = Context(lambda: STORE, to_page, gpu, shown_in_page, GIF_DIR)
        runs |= wire_editing(tab, edits, inputs, outputs, ctx, [replay_step, gif], **SAMPLING)
    stop.click(None, None, None, cancels=[*runs.values(), *lab_runs.values()], api_name=f"{tab}_stop",
               api_visibility="private")
    gr.on([go.click, *([drawing[2].click] if drawing else [])], lambda: (gr.update(visible=False),) * (2 + len(why)),
          None, [replay_step, gif, *why], queue=False, api_name=f"{tab}_new_run", api_visibility="private")
    replayable(tab, runs, state, replay_step, gif, status, live)
    demo.load(lambda: model_info(tab), None, [info, *inputs[:3 if tab == "spiral" else 4]], api_name=f"{tab}_info")


def replayable(name: str, runs: dict, state: gr.State, replay_step: gr.Slider, gif: gr.File, status: gr.Markdown,
               live: list) -> None:
    """After each run (api_name RUN_gif), also after Stop: the replay slider over its steps and its GIF; moving the
    slider (api_name NAME_replay) shows a recorded step in the `live` outputs."""
    for run, event in runs.items():
        event.then(finish_run, state, [replay_step, gif, status], api_name=f"{run}_gif", show_progress="hidden")
    replay_step.input(replay, [replay_step, state], [*live, status], api_name=f"{name}_replay",
                      trigger_mode="always_last", show_progress="hidden")


def how_tab(demo: gr.Blocks, tab: gr.Tab) -> None:
    """How it works: the forward process on an example, the linear vs cosine schedules, and one call of the
    example's trained model at the same t (run when the tab is opened: no model work, and on ZeroGPU no GPU call,
    for a visitor who never opens it)."""
    gr.Markdown((STATIC / "how_forward.md").read_text())
    with gr.Row(elem_id="how-controls"):  # sticky (playground.css): it drives every picture below
        example = gr.Radio(list(EXAMPLES), value="a digit", label="Example x0")
        t = gr.Slider(0, 999, value=250, step=1, label="Timestep t", elem_id="how-t")
    with gr.Row():
        pictures = [gr.Image(label=f"x_t, {k} schedule", format="png", elem_classes=PICTURE, elem_id=f"how-{k}",
                             interactive=False) for k in ("linear", "cosine")]
    numbers = gr.Markdown(elem_id="how-numbers")
    plot = gr.Plot(show_label=False, elem_id="how-plot")
    gr.Markdown((STATIC / "how_reverse.md").read_text())
    with gr.Row():
        label = gr.Dropdown([lesson.NO_LABEL, *DIGIT_CLASSES], value=lesson.NO_LABEL, label="Label",
                            info="none: the unconditional guess", elem_id="step-label",
                            allow_custom_value=True)  # the choices follow the example; lesson.one_step checks
        guidance = gr.Slider(0, 10, value=1, step=0.1, label="Guidance g (with a label)", elem_id="step-g",
                             info="ε = ε_none + g (ε_label − ε_none)")
    with gr.Row():
        step_pictures = [gr.Image(label=title, format="png", elem_classes=PICTURE, elem_id=f"step-{key}",
                                  interactive=False) for key, title in ONE_STEP_PICTURES]
    step_numbers = gr.Markdown(elem_id="step-numbers")
    step_plot, curve = gr.Plot(show_label=False, elem_id="step-plot"), gr.State(None)
    gr.on([example.change, t.input], forward, [example, t], [*pictures, numbers], api_name="forward",
          trigger_mode="always_last", show_progress="hidden")
    step_in, step_out = [example, t, label, guidance, curve], [*step_pictures, step_numbers, step_plot, curve]
    example.change(label_choices, example, label, api_name="label_choices", show_progress="hidden").then(
        one_step, step_in, step_out, api_name="one_step_new_example", api_visibility="private", show_progress="hidden")
    gr.on([t.input, label.input, guidance.input], one_step, step_in, step_out, api_name="one_step",
          trigger_mode="always_last", show_progress="hidden")
    gr.on([t.change, demo.load], schedule_plot, t, plot, api_name="schedule_plot", trigger_mode="always_last",
          show_progress="hidden")
    demo.load(forward, [example, t], [*pictures, numbers], api_name="how_init", api_visibility="private")
    tab.select(one_step, step_in, step_out, api_name="one_step_init", api_visibility="private",
               show_progress="hidden")


def build() -> gr.Blocks:
    """The whole page."""
    with gr.Blocks(title="Diffusion Playground", delete_cache=(3600, 3600)) as demo:
        gr.Markdown((STATIC / "intro.md").read_text(), elem_classes="intro")
        with gr.Tabs(overflow_behavior="wrap"):  # a phone shows every tab, none hidden in a "more" menu
            for tab, title in TABS.items():
                with gr.Tab(title, id=tab):
                    generation_tab(demo, tab)
            with gr.Tab("How it works", id="how") as how:
                how_tab(demo, how)
        demo.unload(visitor_left)
    demo.queue(max_size=64, default_concurrency_limit=CONCURRENCY)
    return demo


demo = build()
LAUNCH = dict(css_paths=[STATIC / "playground.css"], theme=gr.themes.Soft(),
              max_file_size=sketch.MAX_FILE_BYTES,  # uploads are drawings: larger files are refused as they arrive
              state_session_capacity=500)  # sessions kept (~0.3 MB each without their runs), least recent dropped

if __name__ == "__main__":
    demo.launch(**LAUNCH)
