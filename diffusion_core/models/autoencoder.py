"""A KL-regularised convolutional autoencoder for sprites (Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models", sec. 3 and appendix G): images [N, C, H, W] in [-1, 1] to latents [N, c, H/f, W/f] and back,
so that a denoiser can work on shape in a small latent while the decoder owns the pixels."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .palette import snap_to_palette
from .unet import Attention, ResBlock


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of an autoencoder; the downsampling factor is f = 2^(len(channels) - 1)."""

    in_channels: int = 3  # RGB sprites
    image_size: int = 48  # height = width; must be divisible by f
    latent_channels: int = 4  # c of the latent [c, H/f, W/f]
    channels: tuple[int, ...] = (32, 64, 128)  # width per resolution level, full resolution first
    num_res_blocks: int = 1  # residual blocks per level in the encoder (one more in the decoder)
    attention: bool = True  # self-attention in the middle of both halves, at the latent's resolution
    groups: int = 8  # GroupNorm groups
    scale_factor: float = 1.0  # latents are mean * scale_factor, chosen after training for unit variance (SD: 0.18215)
    palette: int = 0  # decode() snaps each image's figure to this many colours of its own (palette.py); 0 = off

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.image_size % self.factor:
            raise ValueError(f"image_size {self.image_size} not divisible by the downsampling factor {self.factor}")

    @property
    def factor(self) -> int:
        """The spatial downsampling factor f."""
        return 2 ** (len(self.channels) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """[c, H/f, W/f] of one latent."""
        side = self.image_size // self.factor
        return (self.latent_channels, side, side)


def _middle(width: int, config: AutoencoderConfig) -> nn.Sequential:
    """ResBlock -> attention -> ResBlock at the latent's resolution."""
    attn = Attention(width, config.groups) if config.attention else nn.Identity()
    return nn.Sequential(ResBlock(width, width, 0, config.groups), attn, ResBlock(width, width, 0, config.groups))


def _head(width: int, out: int, groups: int) -> nn.Sequential:
    """GroupNorm -> SiLU -> conv to `out` channels."""
    return nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, out, 3, padding=1))


class Encoder(nn.Module):
    """x -> (mean, logvar) of the diagonal Gaussian posterior q(z | x)."""

    def __init__(self, c: AutoencoderConfig):
        super().__init__()
        layers, ch = [nn.Conv2d(c.in_channels, c.channels[0], 3, padding=1)], c.channels[0]
        for level, width in enumerate(c.channels):
            for _ in range(c.num_res_blocks):
                layers.append(ResBlock(ch, width, 0, c.groups))
                ch = width
            if level < len(c.channels) - 1:
                layers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.layers = nn.Sequential(*layers, _middle(ch, c), _head(ch, 2 * c.latent_channels, c.groups))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.layers(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)


class Decoder(nn.Module):
    """z -> x, mirroring the encoder (nearest-neighbour upsampling then a conv, as the UNet)."""

    def __init__(self, c: AutoencoderConfig):
        super().__init__()
        ch = c.channels[-1]
        layers = [nn.Conv2d(c.latent_channels, ch, 3, padding=1), _middle(ch, c)]
        for level, width in reversed(list(enumerate(c.channels))):
            for _ in range(c.num_res_blocks + 1):
                layers.append(ResBlock(ch, width, 0, c.groups))
                ch = width
            if level > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]
        self.layers = nn.Sequential(*layers, _head(ch, c.in_channels, c.groups))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class Autoencoder(nn.Module):
    """E(x) = q(z | x) and D(z), with the latents the denoiser sees scaled by config.scale_factor."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = c = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        # a linear preview of D for live frames (D costs ~1 GFLOP an image, this ~1 MFLOP): each latent cell and its
        # 8 neighbours to the cell's f x f pixels, fitted by least squares (fit_preview), as SD's UIs preview latents
        self.preview = nn.Sequential(nn.Conv2d(c.latent_channels, c.in_channels * c.factor ** 2, 3, padding=1),
                                     nn.PixelShuffle(c.factor))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction, mean, logvar) with z drawn from q(z | x) by the reparameterisation z = mean + std * eps."""
        mean, logvar = self.encoder(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decoder(mean + torch.exp(0.5 * logvar) * eps), mean, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The scaled latent the denoiser works on: the posterior mean times scale_factor."""
        return self.encoder(x)[0] * self.config.scale_factor

    def decode(self, z: torch.Tensor, snap: bool = True) -> torch.Tensor:
        """Images in [-1, 1] from scaled latents, drawn in the config's palette (snap=False: the decoder's output)."""
        x = self.decoder(z / self.config.scale_factor).clamp(-1.0, 1.0)
        return self.in_palette(x) if snap else x

    def in_palette(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded images x drawn in the config's palette (palette.py); x itself when it has none."""
        return snap_to_palette(x, self.config.palette) if self.config.palette else x

    def decode_preview(self, z: torch.Tensor) -> torch.Tensor:
        """The linear preview of decode(z): blurrier, a thousand times cheaper."""
        return self.preview(z / self.config.scale_factor).clamp(-1.0, 1.0)


@torch.no_grad()
def fit_preview(model: Autoencoder, x: torch.Tensor, batch: int = 256) -> float:
    """Fit model.preview by least squares to map the posterior means of images x to x's pixels (each latent cell's
    3 x 3 neighbourhood, plus a bias, to its f x f pixels); its RMS error on x."""
    c, f = model.config, model.config.factor
    feats, targets = [], []
    for i in range(0, len(x), batch):
        z = model.encoder(x[i:i + batch])[0]
        feats.append(F.unfold(z, 3, padding=1).transpose(1, 2).reshape(-1, c.latent_channels * 9))
        targets.append(F.pixel_unshuffle(x[i:i + batch], f).flatten(2).transpose(1, 2).reshape(-1, c.in_channels * f * f))
    a, b = torch.cat(feats).double(), torch.cat(targets).double()
    a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], dim=1)
    w = torch.linalg.lstsq(a, b).solution  # [9 c + 1, C f^2]
    conv = model.preview[0]
    conv.weight.copy_(w[:-1].T.reshape(conv.weight.shape).to(conv.weight))
    conv.bias.copy_(w[-1].to(conv.bias))
    return float((a @ w - b).pow(2).mean().sqrt())


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over the latent's elements (Kingma & Welling 2014,
    appendix B): 0.5 * sum(mean^2 + var - 1 - logvar)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def edge_weights(x: torch.Tensor, weight: float) -> torch.Tensor:
    """1 + weight on the pixels whose colour differs from a 4-neighbour's (outlines and region borders), 1
    elsewhere: [N, 1, H, W]. Pixel art lives in those pixels; a plain L1 spends its effort on the flat fills."""
    dy = (x[:, :, 1:] - x[:, :, :-1]).abs().amax(1, keepdim=True) > 0.05
    dx = (x[..., 1:] - x[..., :-1]).abs().amax(1, keepdim=True) > 0.05
    edge = torch.zeros_like(x[:, :1], dtype=torch.bool)
    edge[:, :, 1:] |= dy
    edge[:, :, :-1] |= dy
    edge[..., 1:] |= dx
    edge[..., :-1] |= dx
    return 1.0 + weight * edge.to(x.dtype)


def gradient_l1(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the images' horizontal and vertical finite differences: a fill's mottling and a soft edge cost
    here even where the per-pixel L1 is small."""
    dy = (recon[:, :, 1:] - recon[:, :, :-1]).float() - (x[:, :, 1:] - x[:, :, :-1])
    dx = (recon[..., 1:] - recon[..., :-1]).float() - (x[..., 1:] - x[..., :-1])
    return 0.5 * (dy.abs().mean() + dx.abs().mean())


def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                        edge_weight: float, kl_weight: float) -> torch.Tensor:
    """Edge-weighted L1 per pixel value plus kl_weight times the KL per pixel value (the LDM's weighting: both
    terms over the same count, so kl_weight compares with the paper's 1e-6)."""
    l1 = (edge_weights(x, edge_weight) * (recon.float() - x).abs()).mean()
    return l1 + kl_weight * kl_divergence(mean.float(), logvar.float()).mean() / x[0].numel()


def unit_variance_scale(latents: torch.Tensor) -> float:
    """The scale factor 1 / std of latents (SD's 0.18215 was chosen this way), so the denoiser sees unit variance."""
    return float(1.0 / latents.float().std())

