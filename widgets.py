"""The playground's widgets: each generation tab's sampler controls, its live picture (the spiral's persistent plotly
figure with a canvas overlay, or x_t beside x0_pred grids) and its drawing / sprite editor for SDEdit. Components
and their fixed texts only; the handlers that run models and the page's wiring are in app.py."""
from __future__ import annotations

import random
from pathlib import Path

import gradio as gr
import numpy as np
import plotly
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs
from gradio.data_classes import FileData
from PIL import Image

from diffusion_core.data.datasets import DIGIT_CLASSES, FASHION_CLASSES
from diffusion_core.data.sprites import COLOUR_CLASSES
from diffusion_core.playground import runs as pg
from diffusion_core.playground import instant, sketch, viz

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"

SAMPLER_CHOICES = [("DDPM (ancestral, all T steps)", "ddpm"), ("DDIM", "ddim"), ("DPM-Solver++ (2M)", "dpm++")]
FLOW_SAMPLER_CHOICES = [("Euler (flow matching)", "euler"), ("Heun (flow matching)", "heun")]  # the Spiral lab's
CLASSES = {"digits": DIGIT_CLASSES, "fashion": FASHION_CLASSES, "pokemon": COLOUR_CLASSES}
LABELS = {tab: [(f"all (one row per {what})", "all"), *CLASSES[tab]]
          for tab, what in (("digits", "digit"), ("fashion", "class"), ("pokemon", "colour"))}
DEFAULTS = {"spiral": dict(num=1000, label=None, refresh=0.03), "digits": dict(num=4, label="all", refresh=0.04),
            "fashion": dict(num=4, label="all", refresh=0.04), "pokemon": dict(num=9, label="blue", refresh=0.04)}

SCATTER_HTML = ('<div class="live-scatter"><div class="live-plot"></div><canvas class="live-canvas"></canvas>'
                '<div class="live-caption"></div></div>')  # the caption, under the plot: a frame's "caption"
SCATTER_CSS = (".live-scatter{position:relative;width:100%;min-height:430px}"
               ".live-canvas{position:absolute;left:0;top:0;pointer-events:none}"
               ".live-caption{text-align:center;font-weight:600;padding:2px 4px}.live-caption:empty{display:none}")
SCATTER_JS = (STATIC / "live_scatter.js").read_text() + "\nwindow.LiveScatter.mount(element, props, watch);"
PICTURE = ["pixelated", "labelled"]  # how it works: sharp pixels, the label above the picture (playground.css)
ONE_STEP_PICTURES = (("xt", "x_t (its schedule)"), ("eps", "ε (added)"), ("eps-pred", "ε_θ(x_t, t) (guessed)"),
                     ("x0-pred", "x0_pred"))


def sampler_controls(sampler: str, steps: float):
    """DDPM takes every timestep (steps fixed at T); eta only applies to DDIM."""
    ddpm = sampler == "ddpm"
    steps_update = gr.update(value=1000, interactive=False) if ddpm else gr.update(
        value=20 if steps >= 1000 else steps, interactive=True)
    return steps_update, gr.update(visible=sampler == "ddim")


def controls(tab: str) -> list:
    """The sampler controls of a generation tab, in the handlers' argument order (no label/guidance: spiral)."""
    d, images = DEFAULTS[tab], tab != "spiral"
    ids = {name: dict(elem_id=f"{tab}-{name}") for name in ("sampler", "steps", "eta", "guidance", "label", "seed",
                                                              "samples", "refresh")}
    sampler = gr.Dropdown(SAMPLER_CHOICES + (FLOW_SAMPLER_CHOICES if tab == "spiral" else []), value="ddim",
                          label="Sampler", **ids["sampler"])
    steps = gr.Slider(1, 1000, value=20, step=1, label="Steps", info="DDPM always takes all T steps", **ids["steps"])
    eta_info = ("DDIM's fresh noise: 0 = none, 1 = as much as DDPM" if images else
                "0: the probability-flow ODE, one smooth path a point; 1: the SDE (DDPM's noise). Paths on: see both")
    eta = gr.Slider(0, 1, value=0, step=0.05, label="eta", info=eta_info, **ids["eta"])
    sampler.change(sampler_controls, [sampler, steps], [steps, eta], api_name=f"{tab}_sampler_controls",
                   api_visibility="private")
    guidance = gr.Slider(0, 10, value=2, step=0.5, label="Guidance scale g", visible=images,
                         info="0 ignores the label, 1 follows it, more insists on it", **ids["guidance"])
    label = gr.Dropdown(LABELS.get(tab, []), value=d["label"], label="Label", visible=images, **ids["label"])
    with gr.Row(equal_height=True):
        seed = gr.Number(0, precision=0, minimum=0, maximum=pg.MAX_SEED, label="Seed", scale=4, **ids["seed"])
        dice = gr.Button("Random", scale=1, min_width=70)
    dice.click(lambda: random.randint(0, pg.MAX_SEED), None, seed, api_name=f"{tab}_dice", api_visibility="private")
    samples = gr.Slider(1, pg.MAX_SAMPLES[tab], value=d["num"], step=1,
                        label="Samples per label" if images else "Number of points",
                        info="with label 'all': samples per row" if images else None, **ids["samples"])
    refresh = gr.Slider(pg.REFRESH_S[0], 1.0, value=d["refresh"], step=0.02, label="Refresh every (s)",
                        info="how often the picture is redrawn; sampling never waits for it", **ids["refresh"])
    return [sampler, steps, eta, *([guidance, label] if images else []), seed, samples, refresh]


INSTANT_TABS = tuple(instant.STUDENTS)  # tabs with few-step distilled models (checkpoints/TAB_fast, TAB_fast_2, ...)
INSTANT_STEPS_INFO = {  # what the step choice trades, measured (the students' cards, docs/TRAINING.md)
    "digits": "2 and 4 look alike (FLD 2.7 and 2.2 at g = 2); 1 is the fastest, a few digits scratchy (6.2)",
    "fashion": "a quick look: FLD 9.3 (2 steps) and 7.9 (4) at g = 2, where Generate's DDIM-20 reaches 2.7"}


def instant_controls(tab: str) -> tuple[gr.Checkbox, gr.Radio]:
    """Instant mode: the final grid redraws as g, the seed, the label or the samples move (no Generate), from the
    distilled student of the steps chosen beside it."""
    on = gr.Checkbox(False, label="Instant: redraw the final samples as you move g, the seed or the label",
                     info="a model distilled from this one, g up to 4; Generate still shows every step",
                     elem_id=f"{tab}-instant")
    steps = gr.Radio(sorted(instant.STUDENTS[tab], reverse=True), value=instant.DEFAULT_STEPS,
                     label="Instant: steps of the distilled model", info=INSTANT_STEPS_INFO[tab],
                     elem_id=f"{tab}-instant-steps")
    return on, steps


def live_outputs(tab: str) -> list:
    """Spiral: the live scatter; images: x_t and x0_pred grids side by side."""
    if tab == "spiral":
        return [live_scatter("spiral-live", head=f'<script src="/gradio_api/file={PLOTLY_JS}"></script>')]
    grid = dict(format="png", height=440, interactive=False, buttons=["download"],
                elem_classes=["pixelated", "live-grid"])
    with gr.Row(equal_height=True):
        return [gr.Image(label="x_t (noisy sample)", elem_id=f"{tab}-xt", **grid),
                gr.Image(label="x0_pred (model's guess of the clean image)", elem_id=f"{tab}-x0", **grid)]


def live_scatter(elem_id: str, **kwargs) -> gr.HTML:
    """A live 2D plot (static/live_scatter.js: x_t beside x0_pred, a frame's caption under them) showing the spiral
    until a run streams into it; the page's first one loads plotly.js (`head`)."""
    return gr.HTML({"curve": viz.encode_points(viz.spiral_points())}, html_template=SCATTER_HTML,
                   css_template=SCATTER_CSS, js_on_load=SCATTER_JS, elem_id=elem_id, **kwargs)


MAX_PENDING_BYTES = 64 * 2**20  # pictures a browser sent ahead of its event: a drawing's are tens of kB


def header_checked(editor: gr.ImageEditor) -> gr.ImageEditor:
    """`editor` reading each uploaded picture's header before Gradio decodes it (Gradio's preprocess decodes the
    whole picture, even with type="filepath"): one over sketch.MAX_SIDE, a file over sketch.MAX_FILE_BYTES or one
    that is not a picture is refused with a message in milliseconds; the pictures browsers send ahead of their
    events wait in at most MAX_PENDING_BYTES, the oldest dropped first. Its methods are wrapped, not subclassed:
    Gradio writes a .pyi stub beside any module that subclasses a component."""
    convert, accept = editor.convert_and_format_image, editor.accept_blobs

    def convert_and_format_image(file: FileData | bytes | None, flatten_on_white: bool = False):
        if file is not None:
            try:
                sketch.check_picture_file(file.path if isinstance(file, FileData) else bytes(file))
            except ValueError as e:
                raise gr.Error(str(e)) from None
        return convert(file, flatten_on_white)

    @server
    def accept_blobs(data: AcceptBlobs) -> None:
        index = data.data.get("index")
        if index not in (None, "null") and not (str(index).isdigit() and int(index) < 8):
            raise gr.Error(f"layer index must be below 8, got {index!r}")  # else a list that long is made
        accept(data)
        pending = editor.blob_storage
        pending[data.data["id"]] = pending.pop(data.data["id"])  # the newest last
        sizes = {key: sum(len(b or b"") for b in (v.background, v.composite, *v.layers)) for key, v in pending.items()}
        for key in list(sizes)[:-1]:  # oldest first, never the one just sent
            if sum(sizes.values()) <= MAX_PENDING_BYTES:
                break
            pending.pop(key, None)
            del sizes[key]

    editor.convert_and_format_image, editor.accept_blobs = convert_and_format_image, accept_blobs
    return editor


def ink_pad(label: str) -> dict:
    """Settings of a 280 px sketchpad with one black brush: the Digits and Fashion tabs draw on it alike."""
    return dict(label=label, canvas_size=(280, 280),
                brush=gr.Brush(default_size=22, colors=["#000000"], color_mode="fixed"))


EXAMPLE_SPRITE = sketch.enlarged(np.asarray(Image.open(STATIC / "examples" / "pokemon.png").convert("RGB")), 4)
SKETCHES = {  # tab: (accordion title, what it says, editor, its settings, button, default t_start)
    "digits": ("✏️ Draw a digit and let the model finish it",
               "Pick the brush, draw, press **Complete**. SDEdit noises your drawing to step **t** and denoises it "
               "from there: a small t keeps your strokes, a large t only their rough shape.",
               gr.Sketchpad, ink_pad("Draw a digit"), "Complete my drawing", 600),
    "fashion": ("✏️ Draw a garment and let the model finish it",
                "Draw the shape of a shoe, a bag, a dress or a shirt, filled in or as an outline, pick what it is in "
                "**Label** above, press **Complete**. SDEdit noises your drawing to step **t** and denoises it: a "
                "small t keeps your strokes, a large t only their rough shape.",
                gr.Sketchpad, ink_pad("Draw a garment"), "Complete my drawing", 600),
    "pokemon": ("✏️ Recolour a sprite, or draw one",
                "A sprite is loaded: pick a colour in **Label** above (or **all** for one row per colour), press "
                "**Recolour**. SDEdit noises the picture to step **t** and denoises it, guided to the colour: a "
                "small t keeps it as it is, a large t keeps only its rough shape. Upload your own sprite (on a "
                "transparent or white background; pixel art enlarged k times is read back at its own size) or "
                "draw one with the brush.",
                gr.ImageEditor, dict(label="Sprite to start from", sources=["upload", "clipboard"],
                                     value={"background": EXAMPLE_SPRITE, "layers": [], "composite": None},
                                     brush=gr.Brush(default_size=12, color_mode="defaults")),
                "Recolour", 700),
}


def sketch_section(tab: str) -> tuple:
    """A drawing (or uploaded picture), the noise level to start from, and the button that completes it (SDEdit)."""
    title, text, editor, settings, button, t_default = SKETCHES[tab]
    with gr.Accordion(title, open=False):
        gr.Markdown(text)
        pad = header_checked(editor(image_mode="RGBA", type="numpy", layers=False, format="png",
                                    elem_id=f"{tab}-sketch", **settings))  # png: webp is lossy, blurs pixel art
        t_start = gr.Slider(1, 999, value=t_default, step=1, label="Noise level t to start from",
                            elem_id=f"{tab}-t-start")
        go = gr.Button(button, variant="primary")
    return pad, t_start, go
