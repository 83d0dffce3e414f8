"""Training configs: one dataclass, with a preset per shipped checkpoint."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..diffusion import DiffusionConfig
from ..flow import COUPLINGS
from ..local_score import patch_size
from ..models import AutoencoderConfig, MLPConfig, ModelConfig, UNetConfig, model_config_from_dict, model_config_to_dict
from ..pipeline import SamplingDefaults
from .autoencoder_stage import CONDITIONS

LR_DECAYS = ("constant", "cosine")
OBJECTIVES = ("diffusion", "flow")  # flow: flow matching on straight paths (flow.py), for the 2D models
TOY_DATASETS = ("moons", "gaussians", "checkerboard")  # points2d.TOY_SETS: trained with the spiral's recipe


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved into the checkpoint so the run can be repeated."""

    dataset: str
    model: ModelConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    steps: int = 10_000  # optimiser steps
    batch_size: int = 128  # per process
    lr: float = 5e-4  # AdamW learning rate after warm-up
    warmup_steps: int = 200  # linear learning-rate warm-up
    lr_decay: str = "constant"  # after warm-up: 'constant', or 'cosine' (to zero at the last step)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm
    ema_decay: float = 0.999  # EMA of the weights; the shipped weights are the EMA ones
    label_dropout: float = 0.1  # probability of replacing a label by the null label (classifier-free guidance)
    hflip: bool = False  # random horizontal flips (sprites)
    max_per_family: int = 0  # sprites: train on at most this many forms per family (sprites.cap_families); 0 = all
    older_drawings: bool = False  # sprites: add the older gen7x drawings (sprites.OLDER) before the caps
    max_per_drawing: int = 0  # sprites: at most this many colourings of each drawing (sprites.cap_drawings); 0 = all
    autoencoder: str = ""  # latent diffusion: the trained autoencoder's checkpoint folder; '' = pixel space
    condition: str = ""  # latent diffusion: the denoiser's image condition, '' or 'silhouette' (CONDITIONS)
    kl_weight: float = 1e-6  # autoencoder: weight of the KL term per pixel value (the LDM's 1e-6)
    edge_weight: float = 0.0  # autoencoder: extra L1 weight on pixels at a colour edge (autoencoder.edge_weights)
    gradient_weight: float = 0.0  # autoencoder: weight of the L1 on image gradients (autoencoder.gradient_l1)
    disc_weight: float = 0.0  # autoencoder: weight of the patch discriminator's hinge loss (VQGAN, times its adaptive
    # lambda; the LDM's 0.5); 0 = no discriminator
    disc_start: int = 0  # autoencoder: optimiser step from which the discriminator trains and counts (a warm-up)
    disc_layers: int = 2  # autoencoder: stride-2 layers of the patch discriminator (2: a logit sees 34 x 34 pixels)
    disc_width: int = 64  # autoencoder: the discriminator's first width (taming's ndf)
    holdout_every: int = 0  # autoencoder: hold out the sprite families with crc32 % this == 0 (measured on); 0 = none
    train_only: str = ""  # train only the parameters whose names start with this ('refine.': the RefineHead); '' = all
    coupling: str = "independent"  # flow matching: noise paired with data at random, or 'ot' (flow.ot_noise_for)
    local_target: str = ""  # a patch spec: regress the local score machine's x0 over the training set at that patch
    # (local_score.local_targets) instead of each example's own; '' = the example's (L_simple)
    seed: int = 0
    sample_every: int = 1000  # steps between sample grids written to OUT/samples/
    save_every: int = 500  # steps between resumable training states
    grad_accum: int = 1  # gradient accumulation steps (Accelerate)
    mixed_precision: str = "auto"  # 'auto' = bf16 on CUDA, else fp32; or 'no' | 'fp16' | 'bf16'

    def __post_init__(self) -> None:
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"unknown lr_decay {self.lr_decay!r}: choose one of {LR_DECAYS}")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {self.coupling!r}: choose one of {COUPLINGS}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}: choose one of {CONDITIONS}")
        if self.condition and not self.autoencoder:
            raise ValueError("an image condition is a latent denoiser's: set autoencoder too")
        if self.local_target and (self.diffusion.prediction == "flow" or not self.autoencoder):
            raise ValueError("local targets are a latent diffusion model's (its mirror images are examples): "
                             "set autoencoder, and not for flow matching")
        for t in (0, self.diffusion.T - 1) if self.local_target else ():
            patch_size(self.local_target, t)  # a clear error now for a bad spec, not at the first training step
        knows = {k: getattr(self.model, k) for k in ("T", "prediction") if hasattr(self.model, k)}
        if any(getattr(self.diffusion, k) != v for k, v in knows.items()):
            raise ValueError(f"the model computes with its own {knows}: they must be the run's diffusion settings")
        if self.coupling != "independent" and self.diffusion.prediction != "flow":
            raise ValueError("an OT coupling pairs a flow model's noise with its data: use it with --objective flow")

    def lr_factor(self, step: int) -> float:
        """The learning rate at optimiser step `step` over `lr`: linear warm-up, then constant or a half cosine
        (Loshchilov & Hutter 2017) that reaches zero at the last step."""
        warm = min(1.0, (step + 1) / max(self.warmup_steps, 1))
        if self.lr_decay == "constant":
            return warm
        progress = min(1.0, max(0, step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = model_config_to_dict(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config fields: {sorted(unknown)}")
        d["model"] = model_config_from_dict(d["model"])
        d["diffusion"] = DiffusionConfig(**d.get("diffusion", {}))
        d["sampling"] = SamplingDefaults(**d.get("sampling", {}))
        return cls(**d)


PRESETS = {
    "spiral": TrainConfig(
        # 64 wide, cosine-decayed LR: mean distance 0.0078 in 12k steps (128 wide, constant LR: 0.0085 at 2.5x the cost)
        dataset="spiral", model=MLPConfig(hidden=64, num_layers=4),
        diffusion=DiffusionConfig(schedule="linear", clip_x0=False),
        sampling=SamplingDefaults(sampler="ddpm", steps=1000, guidance=0.0),
        steps=12_000, batch_size=1000, lr=2e-3, warmup_steps=200, lr_decay="cosine", ema_decay=0.995, label_dropout=0.0,
        sample_every=4000, save_every=2000),
    "digits": TrainConfig(
        dataset="digits", model=UNetConfig(in_channels=1, image_size=28, base_channels=32, channel_mults=(1, 2, 2),
                                           num_res_blocks=1, num_classes=10),
        # v-prediction + Min-SNR-5: clean digits by step 1,000 where the eps model still drew speckled ones
        diffusion=DiffusionConfig(prediction="v", snr_gamma=5.0),
        # guidance only at t <= 600 (guidance.py; chosen by FLD, README): DDIM-20 g=2 FLD 13.8 every step, 4.8 on
        # EDM2's sigma interval (0.28, 5.42] = (166, 881], 2.1 on t <= 600 (2,000 samples each, shipped checkpoint)
        sampling=SamplingDefaults(sampler="ddim", steps=20, guidance=2.0, guidance_interval=(-1, 600)),
        # bf16 autocast: 2x the images/s of fp32 on CPUs with AMX / AVX512-BF16 (benchmarks/train_throughput.py)
        steps=7_500, batch_size=128, lr=1e-3, warmup_steps=300, lr_decay="cosine", ema_decay=0.999, label_dropout=0.2,
        save_every=250, mixed_precision="bf16"),
    "pokemon": TrainConfig(
        # patch 2 (the UNet runs on 12 x 24 x 24): twice the channels of a 48 x 48 UNet for less compute; base 48:
        # base 32's samples stayed speckled over 45,000 steps, base 48 is cleaner after 13,000 (README)
        dataset="pokemon", model=UNetConfig(in_channels=3, image_size=48, patch_size=2, base_channels=48,
                                            channel_mults=(1, 2, 3), num_res_blocks=1, num_classes=10),
        diffusion=DiffusionConfig(prediction="v", snr_gamma=5.0),  # the digits recipe
        # eta 1 (stochastic DDIM, Song et al. 2021 eq. 16): fewer speckles inside the figures than eta 0 at 50 steps
        sampling=SamplingDefaults(sampler="ddim", steps=50, eta=1.0, guidance=3.0),
        steps=13_000, batch_size=64, lr=1e-3, warmup_steps=500, lr_decay="cosine", ema_decay=0.999, label_dropout=0.2,
        hflip=True, sample_every=2000, save_every=250, mixed_precision="bf16"),
    "pokemon_autoencoder": TrainConfig(
        # f = 4: 48 x 48 x 3 sprites to 12 x 12 x 8 latents (6x fewer numbers), trained on L1 weighted 3x at colour
        # edges, where the outlines are; bf16: 2.5x the images/s of fp32 on this AMX CPU (52 vs 20, one thread)
        dataset="pokemon", model=AutoencoderConfig(latent_channels=8, channels=(32, 64, 128)),
        steps=2_500, batch_size=32, lr=4e-4, warmup_steps=200, lr_decay="cosine", ema_decay=0.998, hflip=True,
        older_drawings=True, kl_weight=1e-6, edge_weight=2.0, holdout_every=20, sample_every=1000, save_every=250,
        mixed_precision="bf16"),
    "pokemon_latent": TrainConfig(
        # the second stage: the UNet on the autoencoder's 8 x 12 x 12 latents (unit variance, not clipped), with the
        # pixel model's recipe (v-prediction, Min-SNR-5, colour classes, guidance) and the mirror images' latents
        dataset="pokemon", model=UNetConfig(in_channels=8, image_size=12, base_channels=64, channel_mults=(1, 2, 2),
                                            num_res_blocks=1, num_classes=10),
        diffusion=DiffusionConfig(prediction="v", snr_gamma=5.0, clip_x0=False),
        sampling=SamplingDefaults(sampler="ddim", steps=50, eta=1.0, guidance=3.0),
        autoencoder="checkpoints/pokemon_autoencoder", older_drawings=True,
        steps=20_000, batch_size=128, lr=5e-4, warmup_steps=500, lr_decay="cosine", ema_decay=0.999, label_dropout=0.2,
        hflip=True, sample_every=2000, save_every=500, mixed_precision="bf16"),
}
PRESETS |= {name: replace(PRESETS["spiral"], dataset=name) for name in TOY_DATASETS}


def with_objective(config: TrainConfig, objective: str) -> TrainConfig:
    """`config` for `objective`: as it is for diffusion; for flow matching the same MLP predicts the velocity on
    straight paths (Lipman et al. 2023; Liu et al. 2023) and samples with Euler, 100 steps (flow.py)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {OBJECTIVES}")
    if objective == "diffusion":
        return config
    if not isinstance(config.model, MLPConfig):
        raise ValueError("flow matching is offered for the 2D models (an MLP), not for images")
    return replace(config, diffusion=replace(config.diffusion, prediction="flow", clip_x0=False, snr_gamma=0.0),
                   sampling=SamplingDefaults(sampler="euler", steps=100, guidance=0.0))


def read_config_file(path: str | Path, seen: tuple[Path, ...] = ()) -> dict:
    """A JSON config file's fields. One may name another file as {"extends": "other.json"} (relative to its own
    folder): that file's fields first, then its own over them (a later stage of a run keeps the first one's model)."""
    path = Path(path).resolve()
    if path in seen:
        raise ValueError(f"config files extend each other in a loop: {' -> '.join(map(str, seen + (path,)))}")
    fields = json.loads(path.read_text())
    base = fields.pop("extends", None)
    return {**read_config_file(path.parent / base, seen + (path,)), **fields} if base else fields


def load_train_config(dataset: str, path: str | Path | None = None, **overrides) -> TrainConfig:
    """The preset for `dataset`, updated by a JSON file (any subset of fields, `read_config_file`) and then by
    `overrides`."""
    if dataset not in PRESETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(PRESETS)}")
    config = PRESETS[dataset]
    if path is not None:
        d = config.to_dict()
        d.update(read_config_file(path))
        config = TrainConfig.from_dict(d)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
