"""The first stage of latent diffusion (Rombach et al. 2022): what training and measuring the sprite autoencoder adds
to the train command's loop, which runs it as it runs a denoiser when the config's model is an autoencoder."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import Dataset, silhouette_condition, to_uint8
from ..data.sprites import family_bucket, smooth_neighbours
from ..files.pictures import image_grid, save_png
from ..models.autoencoder import (Autoencoder, AutoencoderConfig, fit_preview, gradient_l1, reconstruction_loss,
                                  unit_variance_scale)
from ..pipeline import AUTOENCODER_PREFIX, split_weights
from .adversarial import Adversary

PREVIEW = 16  # held-out sprites in the preview grid


def is_heldout(name: str, every: int) -> bool:
    """Whether a sprite's family is held out of autoencoder training: crc32(family) % every == 0 (stable across runs
    and machines; a family goes whole, so no shiny twin of a held-out sprite is trained on)."""
    return every > 0 and family_bucket(name, every) == 0


def split_heldout(data: Dataset, every: int) -> tuple[Dataset, Dataset]:
    """(training part, held-out part) of a sprite dataset by family (is_heldout)."""
    held = torch.tensor([is_heldout(n, every) for n in data.item_names], dtype=torch.bool)

    def part(keep: torch.Tensor) -> Dataset:
        names = tuple(n for n, k in zip(data.item_names, keep.tolist()) if k)
        return replace(data, x=data.x[keep], labels=None if data.labels is None else data.labels[keep], item_names=names)
    return part(~held), part(held)


def autoencoder_loss(model: torch.nn.Module, x0: torch.Tensor, generator: torch.Generator, config,
                     adversary: Adversary | None = None, step: int = 0) -> torch.Tensor:
    """The stage's loss on a batch: edge-weighted L1 of a reconstruction through a posterior sample, plus the KL,
    the L1 on image gradients (config.gradient_weight) and, once the adversary is on, its weighted hinge term."""
    recon, mean, logvar = model(x0, generator)
    loss = reconstruction_loss(x0, recon, mean, logvar, config.edge_weight, config.kl_weight)
    if config.gradient_weight:
        loss = loss + config.gradient_weight * gradient_l1(x0, recon)
    if adversary is None:
        return loss
    last_layer = getattr(model, "module", model).decoder.layers[-1][-1].weight  # the decoder's last conv
    return loss + adversary.generator_term(x0, recon, loss, last_layer, step)


@torch.inference_mode()
def reconstruct(model: Autoencoder, x: torch.Tensor, batch: int = 256, snap: bool = True) -> torch.Tensor:
    """D(E(x)) through the posterior means, in batches (in the config's palette unless snap=False)."""
    return torch.cat([model.decode(model.encode(x[i:i + batch]), snap) for i in range(0, len(x), batch)])


@torch.inference_mode()
def latents(model: Autoencoder, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """E(x): the scaled posterior means, in batches."""
    return torch.cat([model.encode(x[i:i + batch]) for i in range(0, len(x), batch)])


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE)."""
    return float(10 * torch.log10(4.0 / (x.float() - y.float()).pow(2).mean()))


def reconstruction_report(model: Autoencoder, x: torch.Tensor) -> dict:
    """PSNR of D(E(x)) against x (after uint8 rounding, as shown: in the config's palette where it has one) and the
    median colour coherence of both; with a palette, the decoder's own output's figures too (`..._raw`). The
    decoder runs once: the palette is drawn on its output."""
    real = to_uint8(x)
    raw = reconstruct(model, x.to(next(model.parameters()).device), snap=False).cpu()
    report = fidelity(model.in_palette(raw), real) | {"coherence_real": float(np.median(smooth_neighbours(real))),
                                                       "images": len(x)}
    if model.config.palette:
        report |= {"palette": model.config.palette} | {f"{k}_raw": v for k, v in fidelity(raw, real).items()}
    return report


def fidelity(recon: torch.Tensor, real: np.ndarray) -> dict:
    """PSNR against the uint8 images `real` and median coherence of reconstructions [N, C, H, W] in [-1, 1], both
    after uint8 rounding (as shown)."""
    shown = to_uint8(recon)
    return {"psnr": psnr(torch.from_numpy(shown) / 127.5, torch.from_numpy(real) / 127.5),
            "coherence": float(np.median(smooth_neighbours(shown)))}


def preview_reconstructions(model: Autoencoder, heldout: Dataset, path: Path) -> None:
    """A grid of held-out sprites (odd rows) over their reconstructions (even rows)."""
    x = heldout.x[:PREVIEW]
    recon = reconstruct(model, x.to(next(model.parameters()).device)).cpu()
    rows = [t for i in range(0, len(x), 8) for t in (x[i:i + 8], recon[i:i + 8])]
    save_png(image_grid(to_uint8(torch.cat(rows)), nrow=8, scale=2), path)


def finish_autoencoder(model: Autoencoder, data: Dataset) -> tuple[AutoencoderConfig, dict]:
    """What a trained autoencoder gets before it is saved: the scale factor that gives the training latents unit
    variance (set on the model, returned in its config) and its least-squares linear preview (fit_preview), with
    the preview's RMS error on the training sprites."""
    x = data.x.to(next(model.parameters()).device)
    model.config = replace(model.config, scale_factor=1.0)
    model.config = replace(model.config, scale_factor=unit_variance_scale(latents(model, x)))
    return model.config, {"preview_rms": fit_preview(model, x)}


# ---------------------------------------------------------------- the second stage: a denoiser on the latents

def load_autoencoder(folder: str | Path) -> tuple[Autoencoder, dict]:
    """The trained autoencoder of a checkpoint folder (an autoencoder's own, or a latent denoiser's), frozen, and
    its training record."""
    from ..files.checkpoint import load_checkpoint
    from ..models import model_config_from_dict

    ckpt = load_checkpoint(folder)
    config = ckpt.config.get("autoencoder") or ckpt.config["model"]
    if config.get("type") != "autoencoder":
        raise ValueError(f"{folder} holds no autoencoder (its model is a {config.get('type')!r})")
    weights = split_weights(ckpt.state_dict)[1] if "autoencoder" in ckpt.config else ckpt.state_dict
    model = Autoencoder(model_config_from_dict(config))
    model.load_state_dict(weights, strict=True)
    record = ckpt.config.get("autoencoder_training") or ckpt.config.get("training", {})
    return model.eval().requires_grad_(False), record


CONDITIONS = ("", "silhouette")  # a latent denoiser's image condition: none, or the sprite's silhouette


def encode_dataset(model: Autoencoder, data: Dataset, mirrored: bool, condition: str = "") -> Dataset:
    """The dataset's latents, computed once before training (Rombach et al. 2022 train on a frozen encoder's
    latents); with `mirrored`, the mirror images' latents follow as more examples (a latent has no exact mirror);
    with `condition` "silhouette", each latent's sprite's silhouette as its image condition (silhouette_condition)."""
    x = torch.cat([data.x, data.x.flip(-1)]) if mirrored else data.x
    labels = None if data.labels is None else (torch.cat([data.labels] * 2) if mirrored else data.labels)
    names = data.item_names * 2 if mirrored else data.item_names
    z = latents(model, x).float()
    cond = silhouette_condition(x, z.shape[-1]) if condition == "silhouette" else None
    return replace(data, x=z, labels=labels, item_names=names, cond=cond)


def joined_weights(denoiser: dict[str, torch.Tensor], autoencoder: Autoencoder) -> dict[str, torch.Tensor]:
    """One state dict holding both parts (the inverse of split_weights), the autoencoder's in half precision."""
    return denoiser | {AUTOENCODER_PREFIX + k: v.half() if v.is_floating_point() else v
                       for k, v in autoencoder.state_dict().items()}
