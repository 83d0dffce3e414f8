"""The editing sections of the Digits, Fashion and Pokémon tabs: inpainting (RePaint), interpolation between two seeds
and the samplers side by side. Components, their texts and their wiring; the work is diffusion_core.playground.editing_views.
Each run streams into the tab's own x_t / x0_pred pictures, status, final picture and recording, so Stop, replay
and the GIF work as for Generate."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from diffusion_core import editing

from diffusion_core.playground import sketch
from diffusion_core.playground import editing_views as ev
from diffusion_core.playground import runs as pg
from widgets import CLASSES, STATIC, header_checked

ROOT = Path(__file__).resolve().parent
EDIT_TABS = ("digits", "fashion", "pokemon")
EXAMPLE = {"digits": ("digit.png", 10), "fashion": ("garment.png", 10), "pokemon": ("pokemon.png", 4)}  # file, zoom
FLD_VS_STEPS = ROOT / "docs" / "fld_vs_steps.png"
INPAINT_TEXT = ("Paint the part to fill with the brush, or pick a preset, choose **Label** and **Guidance** above, "
                "press **Inpaint**. At every step the known pixels are put back, noised to that step's t, while "
                "the model fills the hole (RePaint, Lugmayr et al. 2022). With **r = 1** that is all (plain "
                "replacement): the fill often ignores what is around it. With r > 1 the run jumps back up **j** "
                "steps and denoises them again, r times, so the hole and the known part can agree.")
INTERPOLATE_TEXT = ("**Seed** and **Label** above give one end, these the other. The initial noises are slerped "
                    "(and the class embeddings, when the labels differ) and each frame is sampled with DDIM, "
                    "eta 0, **Steps** and **Guidance** above: every frame is a deterministic function of its noise.")
COMPARE_TEXT = ("One **Seed** and **Label**, the same initial noise through DDPM (all T steps), DDIM (eta 0) and "
                "DPM-Solver++ at **Steps** above, side by side; each final sample shows its steps, its compute time "
                "and what is read in it. The curve: the same trade-off measured on 2,000 digits per point.")


class Context(NamedTuple):
    """What the handlers take from app.py: the model store, the page adapter of a stream, the GPU decorator, the
    error adapter and the GIF folder."""

    store: Callable[[], pg.ModelStore]  # app.STORE at the time of the call
    to_page: Callable
    gpu: Callable
    shown_in_page: Callable
    gif_dir: Path


def example_value(tab: str) -> dict:
    """The editor's starting value: the tab's example picture, enlarged so a brush can paint single pixels."""
    name, zoom = EXAMPLE[tab]
    pixels = np.asarray(Image.open(STATIC / "examples" / name).convert("RGB"))
    return {"background": sketch.enlarged(pixels, zoom), "layers": [], "composite": None}


def editing_sections(tab: str) -> dict:
    """The three accordions (in the tab's controls column); their components by name."""
    c = {}
    with gr.Accordion("🩹 Inpaint: mask part of a picture and let the model fill it", open=False):
        gr.Markdown(INPAINT_TEXT)
        c["picture"] = header_checked(gr.ImageEditor(
            value=example_value(tab), image_mode="RGBA", type="numpy", layers=False, format="png",
            sources=["upload", "clipboard"], label="Picture (paint the hole)", elem_id=f"{tab}-inpaint-picture",
            brush=gr.Brush(default_size=24, colors=["#ff00ff"], color_mode="fixed")))
        c["mask"] = gr.Radio(list(ev.MASKS), value="top half", label="Mask", elem_id=f"{tab}-inpaint-mask")
        with gr.Row():
            c["r"] = gr.Slider(1, editing.MAX_RESAMPLE[0], value=10, step=1, label="Resampling r",
                               info="1 = plain replacement", elem_id=f"{tab}-inpaint-r")
            c["j"] = gr.Slider(1, editing.MAX_RESAMPLE[1], value=10, step=1, label="Jump length j (steps)",
                               elem_id=f"{tab}-inpaint-j")
        c["inpaint"] = gr.Button("Inpaint", variant="primary")
    with gr.Accordion("🔀 Interpolate between two seeds", open=False):
        gr.Markdown(INTERPOLATE_TEXT)
        with gr.Row():
            c["seed_b"] = gr.Number(1, precision=0, minimum=0, maximum=pg.MAX_SEED, label="Second seed",
                                    elem_id=f"{tab}-seed-b")
            c["label_b"] = gr.Dropdown(list(CLASSES[tab]), value=CLASSES[tab][0], label="Second label",
                                       elem_id=f"{tab}-label-b")
        c["frames"] = gr.Slider(2, editing.MAX_FRAMES, value=8, step=1, label="Frames", elem_id=f"{tab}-frames")
        c["interpolate"] = gr.Button("Interpolate", variant="primary")
        c["strip_gif"] = gr.File(label="GIF of the interpolation", elem_id=f"{tab}-interpolation-gif")
    with gr.Accordion("⚖️ Samplers side by side", open=False):
        gr.Markdown(COMPARE_TEXT)
        c["compare"] = gr.Button("Compare samplers", variant="primary")
        gr.Image(str(FLD_VS_STEPS), label="FLD against steps (2,000 digits per point)", interactive=False,
                 buttons=["download"], elem_id=f"{tab}-fld-vs-steps")
    return c


def strip_note(tab: str, c: dict) -> gr.Markdown:
    """Why slerp, not lerp: one sentence for directly under the tab's final picture, shown when an interpolation
    strip is there (wire_editing)."""
    c["why"] = gr.Markdown(ev.SLERP_WHY, visible=False, elem_id=f"{tab}-slerp-why")
    return c["why"]


def handlers(tab: str, ctx: Context) -> dict[str, Callable]:
    """The three runs' handlers: check every input in the core, then stream to the page."""
    @ctx.gpu
    def inpaint(picture, mask: str, r: float, j: float, sampler: str, steps: float, eta: float, guidance: float,
                label: str, seed: float, samples: float, refresh_s: float, progress=gr.Progress()):
        with ctx.shown_in_page():
            pipe = ctx.store().get(tab)
            s = pg.check_settings(pipe, tab, sampler, steps, eta, guidance, label, seed, samples, refresh_s)
            image, brush = ev.editor_picture(picture, pipe.image_shape)
            stream = ev.inpaint_stream(pipe, s, image, ev.request_hole(mask, brush), r, j)
            yield from ctx.to_page(stream, progress)

    @ctx.gpu
    def interpolate(seed_b: float, label_b: str, frames: float, steps: float, guidance: float, label: str,
                    seed: float, refresh_s: float, progress=gr.Progress()):
        with ctx.shown_in_page():
            pipe = ctx.store().get(tab)
            s = pg.check_settings(pipe, tab, "ddim", steps, 0, guidance, label, seed, 1, refresh_s)
            yield from ctx.to_page(ev.interpolate_stream(pipe, s, seed_b, label_b, frames, ctx.gif_dir), progress)

    @ctx.gpu
    def compare(steps: float, guidance: float, label: str, seed: float, refresh_s: float, progress=gr.Progress()):
        with ctx.shown_in_page():
            pipe = ctx.store().get(tab)
            s = pg.check_settings(pipe, tab, "ddim", steps, 0, guidance, label, seed, 1, refresh_s)
            yield from ctx.to_page(ev.compare_stream(pipe, s), progress)

    return {"inpaint": inpaint, "interpolate": interpolate, "compare": compare}


def wire_editing(tab: str, c: dict, inputs: list, outputs: list, ctx: Context, hide: list, **events) -> dict:
    """Each button's run into the tab's outputs (`outputs`: x_t, x0_pred, final, status, recording); api_names
    TAB_inpaint, TAB_interpolate, TAB_compare; `hide` (and the slerp note, strip_note) hidden as a run starts, the
    note shown when an interpolation ends. Returns the events (for Stop, replay and the GIF)."""
    sampler, steps, eta, guidance, label, seed, samples, refresh = inputs
    fns = handlers(tab, ctx)
    ins = {"inpaint": [c["picture"], c["mask"], c["r"], c["j"], *inputs],
           "interpolate": [c["seed_b"], c["label_b"], c["frames"], steps, guidance, label, seed, refresh],
           "compare": [steps, guidance, label, seed, refresh]}
    why = [c["why"]] if "why" in c else []  # the slerp note, where the layout put one (strip_note)
    hide = [*hide, *why]  # first: the page runs a click's events one after the other, a stream to its end
    gr.on([c[name].click for name in fns], lambda: (gr.update(visible=False),) * len(hide), None, hide,
          queue=False, api_name=f"{tab}_new_edit", api_visibility="private")
    runs = {}
    for name, fn in fns.items():
        outs = [*outputs[:3], c["strip_gif"], *outputs[3:]] if name == "interpolate" else outputs
        runs[f"{tab}_{name}"] = c[name].click(fn, ins[name], outs, api_name=f"{tab}_{name}",
                                              show_progress_on=[outputs[3]], **events)
    for note in why:
        runs[f"{tab}_interpolate"].success(lambda: gr.update(visible=True), None, note, queue=False,
                                           api_name=f"{tab}_slerp_why", api_visibility="private")
    return runs
