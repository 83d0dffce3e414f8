"""A patch discriminator and the VQGAN adversarial loss (Esser et al. 2021, "Taming Transformers", sec. 3.1 and eq. 7;
the LDM's autoencoders are trained with it, Rombach et al. 2022 appendix G): it judges each overlapping patch of an
image real or reconstructed, so the decoder is pushed towards crisp local texture rather than the blur an L1 settles on.
Training-only: no checkpoint ships its weights."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017; taming's NLayerDiscriminator): `layers` stride-2 4x4 convs, one stride-1 conv,
    then one logit per patch. With 2 layers a logit sees 34 x 34 pixels (3 layers: 70, more than a 48 x 48 sprite)."""

    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 2, groups: int = 8):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for n in range(1, layers + 1):
            out = width * min(2 ** n, 8)
            stride = 2 if n < layers else 1  # the last hidden conv keeps the resolution, as taming's
            # GroupNorm where taming has BatchNorm: a logit then depends on its own image only, not on the batch
            mods += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), nn.GroupNorm(groups, out), nn.LeakyReLU(0.2)]
            ch = out
        self.layers = nn.Sequential(*mods, nn.Conv2d(ch, 1, 4, 1, 1))
        for m in self.modules():  # taming's weights_init: N(0, 0.02) convs, N(1, 0.02) norm scales
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.GroupNorm):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, 1, h, w], one per patch: > 0 reads as a real sprite."""
        return self.layers(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss (Lim & Ye 2017; taming's hinge_d_loss):
    0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))."""
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss: -mean D(x_rec) (taming's g_loss)."""
    return -logits_fake.float().mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    eps: float = 1e-4) -> torch.Tensor:
    """VQGAN's lambda (Esser et al. 2021, eq. 7): ||grad_L rec_loss|| / (||grad_L g_loss|| + eps) at the decoder's
    last layer L, clamped to [0, 1e4] and detached, so the adversarial term pulls as hard as the reconstruction."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.float().norm() / (g_grad.float().norm() + eps)).clamp(0.0, 1e4).detach()
