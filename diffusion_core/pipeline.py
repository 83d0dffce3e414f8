"""A loaded checkpoint ready to sample: model + schedule + metadata (+ the autoencoder of a latent model), shared by
the CLI, the evaluator and the app."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import torch
from torch import nn

from .device import default_device, make_generator
from .diffusion import DiffusionConfig, q_sample
from .fast import FastOptions, fast_model
from .files.card import headline
from .files.checkpoint import Checkpoint, CheckpointError
from .files.hub import resolve_checkpoint
from .guidance import check_interval, guided_eps_fn
from .models import Autoencoder, build_model, model_config_from_dict, model_config_to_dict
from .models.unet import Conditioned
from .samplers import EpsFn, Known, StepOutput, sample
from .schedules import Schedule

MAX_GUIDANCE = 10.0
AUTOENCODER_PREFIX = "autoencoder."  # the autoencoder's weights in a latent checkpoint's model.safetensors


@dataclass(frozen=True)
class SamplingDefaults:
    """The settings a checkpoint is shown with unless the user says otherwise."""

    sampler: str = "ddim"
    steps: int = 20
    eta: float = 0.0
    guidance: float = 2.0
    guidance_interval: tuple[int, int] | None = None  # guide only where t_lo < t <= t_hi (guidance.py); None: always

    def __post_init__(self) -> None:
        if self.guidance_interval is not None:  # JSON gives a list
            object.__setattr__(self, "guidance_interval", check_interval(self.guidance_interval))


@dataclass(frozen=True)
class ModelInfo:
    """What config.json says besides the network: data shape, labels, diffusion and sampling defaults."""

    dataset: str
    data_shape: tuple[int, ...]  # [C, H, W] for images, [D] for points
    class_names: tuple[str, ...] = ()
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    @property
    def is_image(self) -> bool:
        return len(self.data_shape) == 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def checkpoint_config(model_config, info: ModelInfo, training: dict | None = None) -> dict:
    """The config.json of a checkpoint."""
    d = asdict(info)
    d["data_shape"] = list(info.data_shape)
    d["class_names"] = list(info.class_names)
    return {"model": model_config_to_dict(model_config), **d, "training": training or {}}


def split_weights(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(denoiser weights, autoencoder weights) of a checkpoint's one state dict (the second empty in pixel space)."""
    n = len(AUTOENCODER_PREFIX)
    return ({k: v for k, v in state_dict.items() if not k.startswith(AUTOENCODER_PREFIX)},
            {k[n:]: v for k, v in state_dict.items() if k.startswith(AUTOENCODER_PREFIX)})


def parse_info(config: dict) -> ModelInfo:
    """ModelInfo from a config.json dict."""
    return ModelInfo(
        dataset=config["dataset"], data_shape=tuple(config["data_shape"]),
        class_names=tuple(config.get("class_names", ())),
        diffusion=DiffusionConfig(**config.get("diffusion", {})),
        sampling=SamplingDefaults(**config.get("sampling", {})),
    )


class Pipeline:
    """A denoiser and its schedule on one device. Holds no per-request state: safe to share between users."""

    def __init__(self, model: nn.Module, info: ModelInfo, source: str = "", device: torch.device | None = None,
                 measured: str = "", autoencoder: Autoencoder | None = None):
        self.device = device or default_device()
        self.model = model.to(self.device).eval().requires_grad_(False)
        # a latent model's decoder owns the pixels; the samplers never learn of it (they run on latents)
        self.autoencoder = None if autoencoder is None else autoencoder.to(self.device).eval().requires_grad_(False)
        self.info = info
        self.schedule: Schedule = info.diffusion.make_schedule().to(self.device)
        self.source = source
        self.measured = measured  # the model card's headline quality, in words (card.headline)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, device: torch.device | None = None) -> "Pipeline":
        """Build the model a checkpoint's config names and load its weights strictly."""
        try:
            info = parse_info(ckpt.config)
            model = build_model(model_config_from_dict(ckpt.config["model"]))
            ae = ckpt.config.get("autoencoder")
            autoencoder = None if ae is None else build_model(model_config_from_dict(ae))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{ckpt.path / 'config.json'}: invalid config: {e}") from e
        weights, ae_weights = split_weights(ckpt.state_dict)
        try:
            model.load_state_dict(weights, strict=True)
            if autoencoder is not None or ae_weights:
                autoencoder.load_state_dict(ae_weights, strict=True)
        except (RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{ckpt.path / 'model.safetensors'} does not match its config.json: {e}") from e
        return cls(model, info, ckpt.source, device, headline(ckpt.config), autoencoder)

    @classmethod
    def load(cls, name_or_path: str, repo_id: str | None = None, revision: str | None = None,
             fallback: str | None = None, device: torch.device | None = None) -> "Pipeline":
        """Load by local path or Hub repo id (see hub.resolve_checkpoint)."""
        return cls.from_checkpoint(resolve_checkpoint(name_or_path, repo_id, revision, fallback), device)

    def with_options(self, fast: FastOptions | None) -> "Pipeline":
        """A pipeline sharing this one's weights whose forward pass runs under `fast` (bf16 autocast, channels-last,
        torch.compile: fast.py); samples agree with the float32 path's to bf16 precision (tests/test_fast.py)."""
        pipe = copy.copy(self)
        pipe.model = fast_model(self.model, fast)
        return pipe

    def with_correction(self, correct: Callable[[EpsFn, torch.Tensor | None], EpsFn]) -> "Pipeline":
        """A pipeline sharing this one's weights whose eps_fn(labels, ...) is correct(its eps_fn, labels): a
        sampling-time correction (discriminator or anti-memorisation guidance, guidance.py) the samplers never see."""
        pipe, base = copy.copy(self), self.eps_fn
        pipe.eps_fn = lambda labels, *args, **kwargs: correct(base(labels, *args, **kwargs), labels)
        return pipe

    @property
    def image_shape(self) -> tuple[int, ...]:
        """[C, H, W] of what the pipeline shows and returns (the data shape, or the decoder's output for latents)."""
        if self.autoencoder is None:
            return self.info.data_shape
        c = self.autoencoder.config
        return (c.in_channels, c.image_size, c.image_size)

    def decode(self, x: torch.Tensor, exact: bool = True) -> torch.Tensor:
        """Pixels of what a sampler yields: D(z) for a latent model (Rombach et al. 2022), or with exact=False its
        linear preview (Autoencoder.decode_preview); x itself in pixel space."""
        if self.autoencoder is None:
            return x
        with torch.inference_mode():
            z = x.to(self.device)
            return self.autoencoder.decode(z) if exact else self.autoencoder.decode_preview(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """What the sampler works on for images x: the scaled latent E(x) for a latent model, x itself otherwise."""
        if self.autoencoder is None:
            return x
        with torch.inference_mode():
            return self.autoencoder.encode(x.to(self.device))

    def to_pixels(self, out: StepOutput, exact: bool = False) -> StepOutput:
        """A sampler's step with x_t and x0_pred in pixels (only the steps that are shown need it): the linear
        preview while a run streams, the decoder itself (exact) for the final samples."""
        if self.autoencoder is None:
            return out
        return replace(out, x_t=self.decode(out.x_t, exact), x0_pred=self.decode(out.x0_pred, exact))

    def labels_for(self, num: int, label: int | str | torch.Tensor | None) -> torch.Tensor | None:
        """Labels for a batch: one class, 'all' (spread evenly over the classes), a tensor, or None (unconditional)."""
        k = self.info.num_classes
        if label is None:
            return None
        if k == 0:
            raise ValueError("this checkpoint is unconditional: it takes no label")
        if isinstance(label, torch.Tensor) and label.is_floating_point():  # class-embedding weights (UNet.embed)
            if label.shape != (num, k + 1):
                raise ValueError(f"label weights must have shape ({num}, {k + 1}), got {tuple(label.shape)}")
            return label.to(self.device)
        if isinstance(label, torch.Tensor):
            labels = label.to(self.device, torch.long)
        elif label == "all":
            labels = torch.arange(num, device=self.device) * k // num
        else:
            labels = torch.full((num,), int(label), dtype=torch.long, device=self.device)
        if labels.shape != (num,) or labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"label must be in 0..{k - 1} or 'all', got {label if not isinstance(label, torch.Tensor) else 'a tensor'}")
        return labels

    def conditions_for(self, num: int, cond: torch.Tensor | None) -> torch.Tensor | None:
        """A batch's image conditions [num, k, h, w] (one [k, h, w] is repeated) for a conditioned model; None else."""
        k = getattr(getattr(self.model, "config", None), "cond_channels", 0)
        if (cond is None) != (k == 0):
            raise ValueError("this checkpoint draws into an image condition: pass cond" if k else
                             "this checkpoint takes no image condition")
        if cond is None:
            return None
        cond = cond.to(self.device, torch.float32)
        cond = cond.expand(num, *cond.shape) if cond.ndim == 3 else cond
        if cond.shape[:2] != (num, k) or cond.shape[2:] != self.info.data_shape[1:]:
            raise ValueError(f"cond must have shape ({num}, {k}, {', '.join(map(str, self.info.data_shape[1:]))}), "
                             f"got {tuple(cond.shape)}")
        return cond

    def eps_fn(self, labels: torch.Tensor | None, guidance: float, interval: tuple[int, int] | None = None,
               cond: torch.Tensor | None = None):
        """eps_fn(x_t, t) with guidance (on t_lo < t <= t_hi only, given an interval), evaluated without autograd;
        a conditioned model's image conditions `cond` (conditions_for) bound to it."""
        if not 0 <= guidance <= MAX_GUIDANCE:
            raise ValueError(f"guidance must be between 0 and {MAX_GUIDANCE}, got {guidance}")
        null = self.info.num_classes if self.info.num_classes else None
        model = self.model if cond is None else Conditioned(self.model, cond)
        fn = guided_eps_fn(model, labels, guidance, null, interval)
        return torch.inference_mode()(fn)

    def plan_settings(self, sampler: str | None, steps: int | None) -> tuple[str, int | None]:
        """(sampler, steps) with the checkpoint's defaults filled in; DDPM always takes every step (steps None)."""
        sampler = sampler or self.info.sampling.sampler
        return sampler, None if sampler == "ddpm" else (self.info.sampling.steps if steps is None else steps)

    def run(self, num: int, *, seed: int, label: int | str | None = None, sampler: str | None = None,
            steps: int | None = None, eta: float | None = None, guidance: float | None = None,
            guidance_interval: tuple[int, int] | None = None, x0: torch.Tensor | None = None,
            t_start: int | None = None, x_T: torch.Tensor | None = None, known: Known | None = None,
            resample: tuple[int, int] | None = None, cond: torch.Tensor | None = None) -> Iterator[StepOutput]:
        """Stream a sampling run. With `x0` and `t_start`, noise x0 to t_start first and denoise from there (SDEdit).
        `guidance_interval` None takes the checkpoint's default; (-1, T - 1) guides every step. `x_T`: the
        initial noise (else drawn from the seed); `known`, `resample`: inpainting (samplers.sample, editing.py);
        `cond`: a conditioned model's image conditions (conditions_for)."""
        d = self.info.sampling
        sampler, steps = self.plan_settings(sampler, steps)
        g = make_generator(seed, self.device)
        labels = self.labels_for(num, label)
        cond = self.conditions_for(num, cond)
        if x0 is not None:  # images, encoded first in latent space
            x0 = self.encode(x0.to(self.device).expand(num, *self.image_shape))
            t_start = self.schedule.T - 1 if t_start is None else t_start
            t = torch.full((num,), t_start, dtype=torch.long, device=self.device)
            eps = torch.randn((num, *self.info.data_shape), generator=g, device=self.device)
            x_T = q_sample(self.schedule, x0, t, eps)
        yield from sample(
            self.eps_fn(labels, d.guidance if guidance is None else guidance,
                        d.guidance_interval if guidance_interval is None else guidance_interval, cond), self.schedule,
            (num, *self.info.data_shape), generator=g, sampler=sampler, steps=steps,
            eta=d.eta if eta is None else eta, clip_x0=self.info.diffusion.clip_x0, x_T=x_T, t_start=t_start,
            prediction=self.info.diffusion.prediction, known=known, resample=resample)

    def generate(self, num: int, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The final samples of a run (decoded to pixels) and their labels."""
        out = None
        for out in self.run(num, **kwargs):
            pass
        return self.decode(out.x_t), self.labels_for(num, kwargs.get("label"))
