"""The local denoiser: a receptive field of exactly its patch, position-aware or shift-equivariant, conditioned like
the UNet, and equal to its per-cell definition (an MLP on the unfolded patch)."""
import pytest
import torch
import torch.nn.functional as F

from diffusion_core.models import LocalConfig, build_model, model_config_from_dict, model_config_to_dict
from diffusion_core.models.embeddings import sinusoidal_embedding

SMALL = LocalConfig(in_channels=3, image_size=9, patch=3, channels=16, depth=2, num_classes=4)


def trained_like(config: LocalConfig) -> torch.nn.Module:
    """The model with a non-zero last layer (it starts at zero, so every output would be 0)."""
    torch.manual_seed(0)
    m = build_model(config)
    torch.nn.init.normal_(m.out[-1].weight)
    torch.nn.init.normal_(m.out[-1].bias)
    if m.position is not None:
        torch.nn.init.normal_(m.position)
    return m


def test_output_shape_and_zero_init():
    m = build_model(SMALL)
    x = torch.randn(2, 3, 9, 9)
    out = m(x, torch.tensor([0, 999]), torch.tensor([1, 4]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("patch", [1, 3, 5])
def test_a_cell_moves_only_the_outputs_within_half_a_patch(patch):
    """d out[i, j] / d x_t[k, l] is non-zero exactly where max(|i - k|, |j - l|) <= patch // 2."""
    m = trained_like(LocalConfig(in_channels=2, image_size=9, patch=patch, channels=16, depth=2))
    x = torch.randn(1, 2, 9, 9, requires_grad=True)
    m(x, torch.tensor([500]))[0, :, 4, 4].sum().backward()
    reach = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert (reach - 4).abs().max() == patch // 2
    assert len(reach) == patch * patch


def test_position_embedding_tells_cells_apart_and_without_it_the_map_is_shift_equivariant():
    x, t = torch.randn(1, 3, 9, 9), torch.tensor([300])
    shifted = torch.roll(x, shifts=(1, 2), dims=(2, 3))
    inner = (slice(None), slice(None), slice(3, 6), slice(3, 6))  # cells whose patches stay off the border
    moved = (slice(None), slice(None), slice(4, 7), slice(5, 8))
    plain = trained_like(LocalConfig(**{**SMALL.__dict__, "position": False}))
    torch.testing.assert_close(plain(shifted, t)[moved], plain(x, t)[inner])
    aware = trained_like(SMALL)
    assert not torch.allclose(aware(shifted, t)[moved], aware(x, t)[inner])


def test_each_cell_is_an_mlp_on_its_unfolded_patch():
    """The network equals its definition written per cell: a linear map of the patch (zero-padded), plus the cell's
    position and then residual blocks of LayerNorm, SiLU and linear layers with the embedding added."""
    m = trained_like(SMALL)
    x, t, labels = torch.randn(2, 3, 9, 9), torch.tensor([5, 700]), torch.tensor([0, 3])
    emb = m.time_mlp(sinusoidal_embedding(t, 16)) + m.label_emb(labels)
    patches = F.unfold(x, 3, padding=1).transpose(1, 2)  # [N, cells, C * 9]
    h = patches @ m.read.weight.flatten(1).T + m.read.bias + m.position.flatten(1).T
    for b in m.blocks:
        def dense(conv, v):
            return v @ conv.weight.flatten(1).T + conv.bias
        r = dense(b.conv1, F.silu(F.layer_norm(h, (16,), b.norm1.norm.weight, b.norm1.norm.bias)))
        r = r + b.emb(emb)[:, None]
        h = h + dense(b.conv2, F.silu(F.layer_norm(r, (16,), b.norm2.norm.weight, b.norm2.norm.bias)))
    out = F.silu(F.layer_norm(h, (16,), m.out[0].norm.weight, m.out[0].norm.bias))
    out = out @ m.out[-1].weight.flatten(1).T + m.out[-1].bias
    torch.testing.assert_close(m(x, t, labels), out.transpose(1, 2).reshape(2, 3, 9, 9), rtol=1e-4, atol=1e-4)


def test_labels_and_time_change_the_output_and_none_is_the_null_label():
    m = trained_like(SMALL)
    x, t = torch.randn(2, 3, 9, 9), torch.tensor([10, 10])
    assert not torch.allclose(m(x, t, torch.tensor([0, 0])), m(x, t, torch.tensor([1, 1])))
    assert not torch.allclose(m(x, t), m(x, torch.tensor([900, 900])))
    torch.testing.assert_close(m(x, t), m(x, t, torch.tensor([4, 4])))
    torch.testing.assert_close(m(x, t, F.one_hot(torch.tensor([2, 2]), 5).float()), m(x, t, torch.tensor([2, 2])))


def test_config_round_trip_and_errors():
    assert model_config_from_dict(model_config_to_dict(SMALL)) == SMALL
    with pytest.raises(ValueError, match="patch must be a positive odd"):
        LocalConfig(patch=4)
    with pytest.raises(ValueError, match="unknown local config fields"):
        model_config_from_dict({"type": "local", "pach": 3})
