"""Networks, each built from its config dataclass: the denoisers TimeMLP (2D points), UNet (images) and
LocalDenoiser (each cell of a latent from its own patch), PatchMixture (a learnt patch prior's exact denoiser), and the
Autoencoder whose latents a latent denoiser works on."""
from __future__ import annotations

from dataclasses import asdict, fields

from torch import nn

from .autoencoder import Autoencoder, AutoencoderConfig
from .local import LocalConfig, LocalDenoiser
from .mlp import MLPConfig, TimeMLP
from .patch_mixture import PatchMixture, PatchMixtureConfig
from .unet import UNet, UNetConfig

MODELS = {"mlp": (MLPConfig, TimeMLP), "unet": (UNetConfig, UNet), "local": (LocalConfig, LocalDenoiser),
          "patch_mixture": (PatchMixtureConfig, PatchMixture), "autoencoder": (AutoencoderConfig, Autoencoder)}
ModelConfig = MLPConfig | UNetConfig | LocalConfig | PatchMixtureConfig | AutoencoderConfig


def model_config_from_dict(d: dict) -> ModelConfig:
    """Parse {'type': one of MODELS, ...fields} into its config dataclass, naming any unknown field."""
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in MODELS:
        raise ValueError(f"model type must be one of {sorted(MODELS)}, got {kind!r}")
    cls = MODELS[kind][0]
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {kind} config fields: {sorted(unknown)}")
    return cls(**d)


def model_config_to_dict(config: ModelConfig) -> dict:
    """The inverse of model_config_from_dict (JSON-ready)."""
    kind = next(k for k, (cls, _) in MODELS.items() if isinstance(config, cls))
    d = asdict(config)
    return {"type": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the network a config describes."""
    for cls, model in MODELS.values():
        if isinstance(config, cls):
            return model(config)
    raise TypeError(f"not a model config: {type(config).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
