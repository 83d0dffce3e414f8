"""A learnt patch mixture: the exact denoiser of a Gaussian mixture prior on each cell's P x P patch (Zoran and Weiss
2011, "From learning models of natural image patches to whole image restoration", with isotropic components), fitted
by denoising like any denoiser here. Each cell position has M atoms (means mu_j, one learnt variance sigma^2 for
all), and a cell weighs its own position's atoms and those of the positions within `reach` cells. With
x_t = a x0 + s eps (Ho et al. 2020, eq. 4), the patch p of x_t under atom j is N(a mu_j, v I), v = a^2 sigma^2 + s^2,
so

    w_j = softmax_j(log pi_j(label, position) - |p - a mu_j|^2 / (2 v))
    x0_pred(cell) = sum_j w_j [mu_j + (a sigma^2 / v) (p - a mu_j)]_centre

(Bishop 2006, sec. 9.2 and 2.3.3). With sigma -> 0 and uniform weights over one position's atoms this is Kamb and
Ganguli's local score machine with the atoms as its training set (`local_score.py`): a memory of patches, which a
convolutional network of this project's size cannot hold, as parameters. The network outputs eps or v from x0_pred,
so it holds its schedule's sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) as buffers, saved with its weights
(`init_from_data` sets them from the run's schedule)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_VAR_INIT = math.log(1e-3)  # atoms start nearly as sharp as the LS machine's examples (sigma -> 0)
LOG_VAR_RANGE = (-20.0, 2.0)  # sigma^2 from 2e-9 (the machine: 0) to e^2
OTHER_CLASS = -30.0  # log-weight of an atom drawn from another class in a class's row at the start (none)


@dataclass(frozen=True)
class PatchMixtureConfig:
    """Shape of a PatchMixture."""

    in_channels: int = 8  # channels of x_t (a latent's)
    image_size: int = 12  # height = width of x_t
    patch: int = 3  # odd: each cell's patch is patch x patch cells
    atoms: int = 128  # mixture components per cell position
    reach: int = 1  # a cell weighs the atoms of positions up to `reach` cells away (Chebyshev)
    num_classes: int = 0  # 0: unconditional; else labels 0..num_classes-1 plus the null label num_classes
    T: int = 1000  # the run's number of diffusion steps (the length of the schedule it holds)
    prediction: str = "v"  # the output: 'eps' or 'v', as the run's DiffusionConfig says

    def __post_init__(self) -> None:
        if self.patch < 1 or self.patch % 2 == 0:
            raise ValueError(f"patch must be a positive odd number of cells, got {self.patch}")
        if self.prediction not in ("eps", "v"):
            raise ValueError(f"a patch mixture predicts 'eps' or 'v', got {self.prediction!r}")


def neighbours(x: torch.Tensor, reach: int) -> torch.Tensor:
    """[..., H, W] values of each position's neighbourhood: [H*W, ..., R] with R = (2 reach + 1)^2, zero off the
    grid (the positions' own values in unfold order)."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    cols = F.unfold(x.reshape(1, -1, h, w), 2 * reach + 1, padding=reach)  # [1, prod(lead) * R, H*W]
    return cols.reshape(*lead, -1, h * w).movedim(-1, 0)


def draw_examples(labels: torch.Tensor | None, num: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of `num` of n examples drawn without replacement, each class as often as it can be (round robin over
    the classes' shuffled examples); at random without labels."""
    if labels is None:
        return torch.randperm(n, generator=generator)[:num]
    queues = [members[torch.randperm(len(members), generator=generator)].tolist()
              for members in (torch.nonzero(labels == k)[:, 0] for k in labels.unique())]
    order = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return torch.tensor(order[:num])


class PatchMixture(nn.Module):
    """eps_theta(x_t, t[, label]) (or v) as the posterior mean of a learnt patch mixture (module docstring)."""

    def __init__(self, config: PatchMixtureConfig):
        super().__init__()
        self.config = c = config
        d, size = c.in_channels * c.patch ** 2, (c.image_size, c.image_size)
        self.mean = nn.Parameter(torch.randn(c.atoms, d, *size))  # mu_j per position (init_from_data sets them)
        self.log_var = nn.Parameter(torch.tensor(LOG_VAR_INIT))  # log sigma^2, shared by the atoms
        self.log_prior = nn.Parameter(torch.zeros(c.num_classes + 1, c.atoms, *size))  # last row: the null label
        self.offset = nn.Parameter(torch.zeros((2 * c.reach + 1) ** 2))  # log-weight of a neighbour's atoms
        self.register_buffer("a", torch.full((c.T,), torch.nan))  # sqrt(alpha_bar_t): set by init_from_data
        self.register_buffer("s", torch.full((c.T,), torch.nan))  # sqrt(1 - alpha_bar_t)
        self.register_buffer("valid", neighbours(torch.ones(1, *size), c.reach)[:, 0] > 0, persistent=False)
        centre = c.patch ** 2 // 2
        self.centre = [ch * c.patch ** 2 + centre for ch in range(c.in_channels)]

    @torch.no_grad()
    def set_schedule(self, sqrt_alpha_bar: torch.Tensor, sqrt_one_minus_alpha_bar: torch.Tensor) -> None:
        """Hold the run's schedule (a Schedule's tensors of length T)."""
        self.a.copy_(sqrt_alpha_bar)
        self.s.copy_(sqrt_one_minus_alpha_bar)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator,
                       schedule) -> None:
        """Atom m at every position: the patch there of one example drawn from x [n, C, H, W] (as k-means starts
        from data points), the same classes drawn equally often; a class's row keeps only its own examples' atoms,
        so the mixture starts as the LS machine over those examples. Also the run's schedule."""
        c = self.config
        self.set_schedule(schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar)
        pick = draw_examples(labels if c.num_classes else None, c.atoms, len(x), generator)
        self.mean.copy_(F.unfold(x[pick].float(), c.patch, padding=c.patch // 2).reshape(self.mean.shape))
        if c.num_classes and labels is not None:
            for k in range(c.num_classes):
                self.log_prior[k] = torch.where(labels[pick] == k, 0.0, OTHER_CLASS)[:, None, None]

    def x0_pred(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The mixture's posterior mean of x0 at each cell (module docstring) for x_t [N, C, H, W]."""
        c, (n, _, h, w) = self.config, x_t.shape
        if torch.isnan(self.a[0]):
            raise RuntimeError("this patch mixture holds no schedule yet: init_from_data or load its weights")
        labels = torch.full_like(t, c.num_classes) if labels is None else labels
        prior = labels.float() @ self.log_prior.flatten(1) if labels.is_floating_point() else \
            self.log_prior.flatten(1)[labels]
        prior = neighbours(prior.reshape(n, c.atoms, h, w), c.reach).flatten(2)  # [L, N, K], K = M * R
        mean = neighbours(self.mean, c.reach).permute(0, 1, 3, 2).flatten(1, 2)  # [L, K, D]
        valid = self.valid[:, None].expand(-1, c.atoms, -1).flatten(1)[:, None]  # [L, 1, K]
        p = F.unfold(x_t, c.patch, padding=c.patch // 2).permute(2, 0, 1)  # [L, N, D]
        a, s = self.a[t][None, :, None], self.s[t][None, :, None]  # [1, N, 1]
        var = self.log_var.clamp(*LOG_VAR_RANGE).exp()
        inv_v = (a ** 2 * var + s ** 2).reciprocal()  # 1 / v: [1, N, 1]
        # |p - a mu_j|^2 without the |p|^2 every atom of a cell shares (softmax drops it)
        dist = a * (a * mean.square().sum(-1)[:, None] - 2 * (p @ mean.transpose(1, 2)))  # [L, N, K]
        logits = prior + self.offset.repeat(c.atoms)[None, None] - 0.5 * inv_v * dist
        weights = logits.masked_fill(~valid, -torch.inf).softmax(-1)  # [L, N, K]
        gain = a * var * inv_v  # the shrinkage of each atom's posterior towards x_t: [1, N, 1]
        mu_c, p_c = weights @ mean[..., self.centre], p[..., self.centre]  # sum_j w_j mu_j, p: [L, N, C]
        x0 = mu_c + gain * (p_c - a * mu_c)  # [L, N, C]
        return x0.permute(1, 2, 0).reshape(n, -1, h, w)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """eps = (x_t - a x0_pred) / s, or v = (a x_t - x0_pred) / s (Salimans and Ho 2022, sec. 4, with a^2 + s^2
        = 1), as the run's prediction says."""
        x0 = self.x0_pred(x_t, t, labels)
        a, s = self.a[t][:, None, None, None], self.s[t][:, None, None, None]
        return (x_t - a * x0) / s if self.config.prediction == "eps" else (a * x_t - x0) / s
