"""The local score machine: a denoiser built from the training set itself, each cell seeing only a patch.

Kamb and Ganguli 2024 ("An analytic theory of creativity in convolutional diffusion models") show what a small
convolutional denoiser does between memorising and generalising. Its x0_pred at each cell (h, w) is the posterior
mean of that cell over the training set, the examples weighed by how well a P x P patch of x_t around the cell
matches them (their LS machine: locality without translation equivariance; our sprites are centred):

    x0_pred[c, h, w] = sum_i softmax_i(-|x_t[:, patch(h, w)] - a z_i[:, patch(h, w)]|^2 / 2 s^2) z_i[c, h, w]

with a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t). A patch that covers the whole image from every cell is the
exact denoiser of the training set (Karras et al. 2022 eq. 57), which gives back training examples; smaller patches
let each region follow different examples: a mosaic that is new as a whole.

A patch spec says P at each t: "P" everywhere, or "P_hi@tau:P_lo", P_hi above t = tau and P_lo at or below it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .diffusion import extract, predict_eps
from .schedules import Schedule


def patch_size(spec: str, t: int) -> int:
    """The patch size (odd, in cells) that `spec` gives at step t."""
    hi, _, rest = spec.partition("@")
    tau, _, lo = rest.partition(":")
    size = int(hi) if not rest or t > int(tau) else int(lo)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"patch sizes must be odd and positive, got {size} from {spec!r}")
    return size


def unfold_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The patch x patch window of x [b, c, h, w] around each cell, zero off the grid, as [h*w, b, c*patch^2]."""
    return F.unfold(x, patch, padding=patch // 2).permute(2, 0, 1)


class PatchBank:
    """The training examples x [n, c, h, w] (and their labels), unfolded into patches once per patch size."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        self.x, self.labels = x, labels
        self.cells = x.flatten(2).permute(2, 0, 1).contiguous()  # [h*w, n, c]
        self._patches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._classes: dict[int, PatchBank] = {}

    def patches(self, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(the examples' patches [h*w, n, k], their squared norms [h*w, 1, n]) at this patch size."""
        if patch not in self._patches:
            z = unfold_patches(self.x, patch).contiguous()
            self._patches[patch] = z, (z * z).sum(-1)[:, None]
        return self._patches[patch]

    def x0(self, x_t: torch.Tensor, a: torch.Tensor, s: torch.Tensor, patch: int,
           allowed: torch.Tensor | None = None) -> torch.Tensor:
        """The LS machine's x0_pred for x_t [b, c, h, w] at per-example a, s [b]; allowed [b, n] (optional) says
        which examples each x_t may follow (its class's: conditioning)."""
        z, z_sq = self.patches(patch)
        x = unfold_patches(x_t, patch)
        a, s = a.view(1, -1, 1), s.view(1, -1, 1)
        d = (x * x).sum(-1, keepdim=True) - 2 * a * (x @ z.transpose(1, 2)) + a * a * z_sq  # |x_t - a z_i|^2, patch
        logits = -d / (2 * s * s)
        if allowed is not None:
            logits = logits.masked_fill(~allowed[None], float("-inf"))
        x0 = logits.softmax(-1) @ self.cells  # [h*w, b, c]
        return x0.permute(1, 2, 0).reshape(x_t.shape)

    def of_label(self, label: int) -> PatchBank:
        """The bank of this one's examples with this label (kept: a training run asks for each class every step)."""
        if label not in self._classes:
            self._classes[label] = PatchBank(self.x[(self.labels == label).to(self.x.device)])
        return self._classes[label]


def local_targets(schedule: Schedule, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                  bank: PatchBank, spec: str, null_label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) targets for a training batch: the LS machine's x0_pred at each example's t over the bank's examples
    of its label (all of them for the null label or an unconditional model), and the eps that goes with it
    (x_t = a x0 + s eps). Regressing these instead of the drawn (x0, eps) is Xu et al. 2023's stable target field
    with a patch posterior in place of the whole-image one."""
    a, s = extract(schedule.sqrt_alpha_bar, t, 1), extract(schedule.sqrt_one_minus_alpha_bar, t, 1)
    x0 = torch.empty_like(x_t)
    patches = torch.tensor([patch_size(spec, int(step)) for step in t])
    keys = patches[:, None] if labels is None else torch.stack([patches, labels.cpu()], 1)
    for key in keys.unique(dim=0):
        rows = (keys == key).all(1).to(x_t.device)
        conditional = labels is not None and int(key[1]) != null_label
        examples = bank.of_label(int(key[1])) if conditional else bank
        x0[rows] = examples.x0(x_t[rows], a[rows], s[rows], int(key[0]))
    return x0, predict_eps(schedule, x_t, t, x0)


def local_eps_fn(schedule: Schedule, bank: PatchBank, spec: str, allowed: torch.Tensor | None = None,
                 g: float = 1.0):
    """eps_fn(x_t, t) for `samplers.sample` whose x0_pred is the LS machine's; with g != 1, classifier-free guidance
    between the allowed examples and all of them, x0 = x0_all + g (x0_allowed - x0_all) (Ho and Salimans 2022; x0
    is linear in eps)."""
    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = extract(schedule.sqrt_alpha_bar, t, 1), extract(schedule.sqrt_one_minus_alpha_bar, t, 1)
        patch = patch_size(spec, int(t[0]))
        x0 = bank.x0(x_t, a, s, patch, allowed)
        if g != 1.0 and allowed is not None:
            x0_all = bank.x0(x_t, a, s, patch)
            x0 = x0_all + g * (x0 - x0_all)
        return predict_eps(schedule, x_t, t, x0)
    return eps_fn
