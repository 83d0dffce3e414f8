"""The pixel-art palette (models/palette.py): a figure drawn in k flat colours is given back in exactly those colours
from a noisy copy, the paper becomes white, the result does not depend on the batch, and the autoencoder draws in
its config's palette only when it has one."""
import numpy as np
import pytest
import torch

from diffusion_core.models.autoencoder import Autoencoder, AutoencoderConfig
from diffusion_core.models.palette import PAPER, snap_to_palette

torch.set_num_threads(1)

COLOURS = torch.tensor([[-1.0, -1.0, -1.0], [0.8, -0.6, -0.6], [-0.5, 0.6, -0.4], [-0.2, -0.3, 0.9]])


def flat_sprite(generator: torch.Generator, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """(a 3 x 16 x 16 figure of four flat colours in blocks on white paper, plus Gaussian noise; its clean copy)."""
    clean = torch.ones(3, 16, 16)
    for i, colour in enumerate(COLOURS):
        clean[:, 2 + 3 * i:5 + 3 * i, 2:14] = colour[:, None, None]
    noisy = clean + noise * torch.randn(clean.shape, generator=generator)
    paper = (clean == 1).all(0)
    noisy[:, paper] = 1 - 0.02 * torch.rand((3, int(paper.sum())), generator=generator)  # pale, not white
    return noisy.clamp(-1, 1), clean


def test_a_noisy_figure_in_k_flat_colours_comes_back_in_those_colours():
    noisy, clean = flat_sprite(torch.Generator().manual_seed(0))
    out = snap_to_palette(noisy[None], k=4)[0]
    assert torch.all(out[:, (clean == 1).all(0)] == 1), "the paper is white again"
    ink = ~(clean == 1).all(0)
    assert len(torch.unique(out[:, ink].T, dim=0)) == 4
    for colour in COLOURS:  # each flat region in one colour: the mean of its noisy pixels (k-means' fixed point)
        region = (clean == colour[:, None, None]).all(0)
        assert torch.allclose(out[:, region], noisy[:, region].mean(1, keepdim=True), atol=1e-5)


def test_without_the_palette_the_noisy_figure_is_not_flat():
    """The check above is not blind: the unsnapped figure is far from its flat colours, and k = 2 merges regions."""
    noisy, clean = flat_sprite(torch.Generator().manual_seed(0))
    ink = ~(clean == 1).all(0)
    assert (noisy[:, ink] - clean[:, ink]).abs().max() > 0.1
    two = snap_to_palette(noisy[None], k=2)[0]
    assert len(torch.unique(two[:, ink].T, dim=0)) == 2


def test_the_palette_is_a_function_of_each_image_alone():
    g = torch.Generator().manual_seed(1)
    batch = torch.stack([flat_sprite(g)[0] for _ in range(3)]) * torch.tensor([1.0, 0.7, 0.9])[:, None, None, None]
    together = snap_to_palette(batch, k=5)
    alone = torch.cat([snap_to_palette(batch[i:i + 1], k=5) for i in range(3)])
    assert torch.equal(together, alone)
    assert torch.equal(together, snap_to_palette(batch, k=5)), "deterministic"
    for image in together:
        assert len(torch.unique(image.flatten(1).T, dim=0)) <= 5 + 1, "k colours and white"


def test_a_blank_page_stays_white_and_k_must_be_positive():
    page = torch.full((2, 3, 8, 8), PAPER + 0.01)
    assert torch.all(snap_to_palette(page, k=3) == 1)
    with pytest.raises(ValueError, match="at least one colour"):
        snap_to_palette(page, k=0)


def test_the_autoencoder_draws_in_its_palette_only_when_its_config_has_one():
    torch.manual_seed(0)
    plain = Autoencoder(AutoencoderConfig(image_size=16, channels=(8, 16), latent_channels=2, groups=4)).eval()
    with_palette = Autoencoder(AutoencoderConfig(image_size=16, channels=(8, 16), latent_channels=2, groups=4,
                                                 palette=3)).eval()
    with_palette.load_state_dict(plain.state_dict())
    z = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw, snapped = plain.decode(z), with_palette.decode(z)
        assert torch.equal(with_palette.decode(z, snap=False), raw)
    assert torch.equal(snapped, snap_to_palette(raw, 3))
    colours = [len(np.unique(im.flatten(1).T.numpy(), axis=0)) for im in snapped]
    assert max(colours) <= 4 < min(len(np.unique(im.flatten(1).T.numpy(), axis=0)) for im in raw)
