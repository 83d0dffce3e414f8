"""A UNet for images (Ronneberger et al. 2015 as used by Ho et al. 2020): residual blocks with GroupNorm, the time
embedding in every block, self-attention at the lowest resolution (and optionally at higher ones, as the latent
UNets of Rombach et al. 2022, sec. 3.3), optional class embedding with a null class, and
optional patching (pixel-unshuffle in, pixel-shuffle out: Hoogeboom et al. 2023, "simple diffusion", sec. 3) and an
optional full-resolution head that refines a patched UNet's output from x_t's own pixels, and an optional image
condition added to the first layer's features (concatenation with x_t, as SR3 and the LDM's spatial conditioning do:
Saharia et al. 2021, Rombach et al. 2022, sec. 3.3; a zero-initialised convolution of its own is the same as widening
the first one, and leaves a trained model unchanged until it has learnt)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import sinusoidal_embedding, time_class_embedding

GUIDANCE_SCALE = 100.0  # g enters the sinusoidal embedding as 100 g: g in [0, 10] spans timesteps' range


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a UNet."""

    in_channels: int = 1  # 1 for digits, 3 for RGB sprites
    image_size: int = 28  # height = width; must be divisible by 2^(len(channel_mults) - 1)
    base_channels: int = 32  # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per resolution level
    num_res_blocks: int = 1  # residual blocks per level on the way down (one more on the way up)
    attention: bool = True  # self-attention at the lowest resolution
    attention_levels: tuple[int, ...] = ()  # levels (0 = full res.) whose res blocks are each followed by attention
    heads: int = 1  # attention heads (each of channels / heads dimensions)
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0
    num_classes: int = 0  # 0: unconditional; else labels 0..num_classes-1 plus the null label num_classes
    patch_size: int = 1  # p > 1: the UNet runs on [C*p*p, H/p, W/p] (lossless reshape; ~p*p times cheaper convs)
    refine_channels: int = 0  # > 0: a full-resolution head of this width adds a correction (RefineHead); 0 = none
    guidance_embedding: bool = False  # True: g is an input (a guidance-distilled student, Meng et al. 2023, sec. 4.1)
    cond_channels: int = 0  # > 0: an image condition [N, cond_channels, H/p, W/p] is an input (UNet.forward); 0 = none

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))
        if any(not 0 <= level < len(self.channel_mults) for level in self.attention_levels):
            raise ValueError(f"attention_levels {self.attention_levels} not in 0..{len(self.channel_mults) - 1}")
        if any(self.base_channels * m % self.heads for m in self.channel_mults):
            raise ValueError(f"heads {self.heads} do not divide every level's channels")
        factor = self.patch_size * 2 ** (len(self.channel_mults) - 1)
        if self.patch_size < 1 or self.image_size % factor:
            raise ValueError(f"image_size {self.image_size} not divisible by patch_size {self.patch_size} "
                             f"x 2^{len(self.channel_mults) - 1}")


class CellNorm(nn.Module):
    """LayerNorm over the channels of each pixel of [N, C, H, W] (GroupNorm pools over all pixels, this does not)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def norm(groups: int, channels: int) -> nn.Module:
    """GroupNorm with `groups` groups, or CellNorm for groups 0."""
    return nn.GroupNorm(groups, channels) if groups else CellNorm(channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv (kernel x kernel), plus the time(+class) embedding (none when emb_dim is 0), twice, with
    a residual connection. groups 0: each pixel normalised on its own (CellNorm), so 1 x 1 blocks stay local."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float = 0.0, kernel: int = 3):
        super().__init__()
        pad = kernel // 2
        self.norm1, self.conv1 = norm(groups, c_in), nn.Conv2d(c_in, c_out, kernel, padding=pad)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2, self.conv2 = norm(groups, c_out), nn.Conv2d(c_out, c_out, kernel, padding=pad)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (Vaswani et al. 2017, eq. 1 per head), with a residual
    connection."""

    def __init__(self, channels: int, groups: int, heads: int = 1):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(3, 4)
        out = F.scaled_dot_product_attention(*qkv.unbind(1))  # [n, heads, hw, c / heads]
        return x + self.proj(out.transpose(2, 3).reshape(n, c, h, w))


class AttentionBlock(nn.Module):
    """A ResBlock followed by self-attention at its resolution."""

    def __init__(self, block: ResBlock, channels: int, groups: int, heads: int):
        super().__init__()
        self.block, self.attention = block, Attention(channels, groups, heads)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attention(self.block(x, emb))


class RefineHead(nn.Module):
    """A residual correction at full resolution, from x_t and the UNet's output: conv -> ResBlock -> conv. The last
    conv starts at zero, so a head added to a trained UNet leaves its outputs unchanged until the head has learnt."""

    def __init__(self, in_channels: int, width: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.conv_in = nn.Conv2d(2 * in_channels, width, 3, padding=1)
        self.block = ResBlock(width, width, emb_dim, groups, dropout)
        self.out = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x_t: torch.Tensor, output: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return output + self.out(self.block(self.conv_in(torch.cat([x_t, output], dim=1)), emb))


class UNet(nn.Module):
    """eps_theta(x_t, t[, label]) for images [N, C, H, W] in [-1, 1]."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        self.guidance_mlp = None  # g's embedding, added to the time embedding; zero at the start (the teacher's outputs)
        if c.guidance_embedding:
            self.guidance_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            nn.init.zeros_(self.guidance_mlp[-1].weight)
            nn.init.zeros_(self.guidance_mlp[-1].bias)
        self.unpatch, self.patch = nn.PixelUnshuffle(c.patch_size), nn.PixelShuffle(c.patch_size)
        patch_channels = c.in_channels * c.patch_size ** 2
        self.conv_in = nn.Conv2d(patch_channels, c.base_channels, 3, padding=1)
        self.cond_in = nn.Conv2d(c.cond_channels, c.base_channels, 3, padding=1) if c.cond_channels else None
        if self.cond_in is not None:
            nn.init.zeros_(self.cond_in.weight)
            nn.init.zeros_(self.cond_in.bias)
        def block(a: int, b: int, level: int | None = None) -> nn.Module:
            res = ResBlock(a, b, emb_dim, c.groups, c.dropout)
            return AttentionBlock(res, b, c.groups, c.heads) if level in c.attention_levels else res

        widths = [c.base_channels * m for m in c.channel_mults]
        self.down, skips, ch = nn.ModuleList(), [c.base_channels], c.base_channels
        for level, width in enumerate(widths):
            for _ in range(c.num_res_blocks):
                self.down.append(block(ch, width, level))
                ch = width
                skips.append(ch)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        attention = Attention(ch, c.groups, c.heads) if c.attention else nn.Identity()
        self.mid = nn.ModuleList([block(ch, ch), attention, block(ch, ch)])
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(block(ch + skips.pop(), width, level))
                ch = width
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)))
        self.out = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, patch_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.refine = RefineHead(c.in_channels, c.refine_channels, emb_dim, c.groups, c.dropout) \
            if c.refine_channels else None

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Time embedding plus the class embedding (the null class when labels is None); float labels [N, classes + 1]
        are weights that mix the class embeddings (one-hot rows give exactly the integer labels' embedding)."""
        return time_class_embedding(self.time_mlp, self.label_emb, t, labels, self.config.base_channels)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                g: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output (eps, or v for a v-trained model) for x_t at integer timesteps t [N]; a guidance-embedding
        model also takes the guidance scale g [N] (default 1: the conditional prediction), a conditioned one its image
        condition `cond` (required)."""
        emb = self.embed(t, labels)
        if self.guidance_mlp is not None:
            g = torch.ones_like(t, dtype=torch.float32) if g is None else g.float()
            emb = emb + self.guidance_mlp(sinusoidal_embedding(g * GUIDANCE_SCALE, self.config.base_channels))
        h = self.conv_in(self.unpatch(x_t))
        if (cond is None) != (self.cond_in is None):
            raise ValueError("this UNet takes no image condition" if cond is not None else
                             f"this UNet is conditioned on an image: pass cond of batch size {x_t.shape[0]}")
        if cond is not None:
            h = h + self.cond_in(cond)
        hs = [h]
        takes_emb = (ResBlock, AttentionBlock)
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, takes_emb) else layer(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], dim=1), emb) if isinstance(layer, takes_emb) else layer(h)
        output = self.patch(self.out(h))
        return output if self.refine is None else self.refine(x_t, output, emb)


class Conditioned(nn.Module):
    """A conditioned UNet with its image condition bound, called as the samplers and guidance call a model:
    model(x_t, t, labels, g). A batch k times the condition's (guidance's doubled batch) gets the condition k times."""

    def __init__(self, model: UNet, cond: torch.Tensor):
        super().__init__()
        self.model, self.cond, self.config = model, cond, model.config

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                g: torch.Tensor | None = None) -> torch.Tensor:
        repeats, rest = divmod(x_t.shape[0], self.cond.shape[0])
        if rest or not repeats:
            raise ValueError(f"a batch of {x_t.shape[0]} does not repeat the {self.cond.shape[0]} conditions")
        return self.model(x_t, t, labels, g, cond=self.cond.repeat(repeats, 1, 1, 1))
