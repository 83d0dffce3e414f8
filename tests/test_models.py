"""Models: shapes, conditioning, the null label, config round trips."""
from dataclasses import replace

import pytest
import torch

from diffusion_core.models import (MLPConfig, UNetConfig, build_model, count_parameters, model_config_from_dict,
                                   model_config_to_dict)

SMALL_UNET = UNetConfig(in_channels=3, image_size=16, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=4)


def test_unet_output_shape_and_zero_init():
    m = build_model(SMALL_UNET)
    x = torch.randn(2, 3, 16, 16)
    out = m(x, torch.tensor([0, 999]), torch.tensor([1, 4]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # the last conv starts at zero, as in Ho et al.'s implementation


def test_unet_labels_change_the_output_and_none_is_the_null_label():
    torch.manual_seed(0)
    m = build_model(SMALL_UNET)
    torch.nn.init.normal_(m.out[-1].weight)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 10])
    a, b = m(x, t, torch.tensor([0, 0])), m(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(m(x, t), m(x, t, torch.tensor([4, 4])))


def test_unet_time_changes_the_output():
    torch.manual_seed(0)
    m = build_model(SMALL_UNET)
    torch.nn.init.normal_(m.out[-1].weight)
    x = torch.randn(1, 3, 16, 16)
    assert not torch.allclose(m(x, torch.tensor([1])), m(x, torch.tensor([900])))


def test_patched_unet_is_the_plain_unet_on_unshuffled_pixels():
    """patch_size p: the UNet sees [C*p*p, H/p, W/p] and its output is shuffled back to [C, H, W]."""
    torch.manual_seed(0)
    patched = build_model(UNetConfig(in_channels=3, image_size=16, patch_size=2, base_channels=8, channel_mults=(1, 2),
                                     groups=4, num_classes=4))
    plain = build_model(UNetConfig(in_channels=12, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4,
                                   num_classes=4))
    torch.nn.init.normal_(patched.out[-1].weight)
    plain.load_state_dict(patched.state_dict())  # patching adds no parameters
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), torch.tensor([0, 4])
    out = patched(x, t, y)
    assert out.shape == x.shape
    torch.testing.assert_close(out, torch.nn.functional.pixel_shuffle(plain(torch.nn.functional.pixel_unshuffle(x, 2),
                                                                              t, y), 2))
    with pytest.raises(ValueError, match="patch_size 2"):
        UNetConfig(image_size=12, patch_size=2, channel_mults=(1, 2, 2))


def test_refine_head_starts_as_the_unet_it_is_added_to():
    """A RefineHead's last conv starts at zero: a trained UNet with a head added gives the outputs it gave without
    one; once the head is non-zero, it changes the output."""
    torch.manual_seed(0)
    config = UNetConfig(in_channels=3, image_size=16, patch_size=2, base_channels=8, channel_mults=(1, 2), groups=4,
                        num_classes=4)
    trunk, headed = build_model(config), build_model(replace(config, refine_channels=8))
    torch.nn.init.normal_(trunk.out[-1].weight)
    missing, unexpected = headed.load_state_dict(trunk.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("refine.") for k in missing)
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), torch.tensor([0, 4])
    torch.testing.assert_close(headed(x, t, y), trunk(x, t, y), rtol=0, atol=0)
    torch.nn.init.normal_(headed.refine.out[-1].weight)
    assert not torch.allclose(headed(x, t, y), trunk(x, t, y))


def test_refine_head_sees_x_t_at_full_resolution():
    """With the UNet's last conv at zero (its init) the UNet's output is 0 whatever x_t is, so a pixel of x_t can
    move the output only through the head's own x_t input (16 x 16, where the patched UNet sees 8 x 8): a head fed
    anything else stays put. The nudge moves two pixels of one 2 x 2 patch in opposite directions, which a head fed
    x_t at the patches' resolution (their mean) would not see either."""
    torch.manual_seed(0)
    config = UNetConfig(in_channels=3, image_size=16, patch_size=2, base_channels=8, channel_mults=(1, 2), groups=4,
                        num_classes=4, refine_channels=8)
    headed = build_model(config)
    torch.nn.init.normal_(headed.refine.out[-1].weight)
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), torch.tensor([0, 4])
    nudged = x.clone()
    nudged[:, :, 0, 0] += 1.0
    nudged[:, :, 1, 1] -= 1.0
    change = headed(nudged, t, y) - headed(x, t, y)
    assert change[:, :, :3, :3].abs().min() > 1e-4  # every channel next to the pixel moves
    assert change[:, :, :3, :3].abs().mean() > change[:, :, 8:, 8:].abs().mean()  # and most near it


def test_multi_head_attention_is_torchs_multihead_attention():
    """Attention(heads=h) is x + MultiheadAttention(GroupNorm(x)) over the pixels, with the 1x1 convs' weights as the
    in- and out-projections (the heads split the channels in contiguous blocks in both)."""
    from diffusion_core.models.unet import Attention
    torch.manual_seed(0)
    attention = Attention(16, groups=4, heads=4)
    reference = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    reference.in_proj_weight.data.copy_(attention.qkv.weight[:, :, 0, 0])
    reference.in_proj_bias.data.copy_(attention.qkv.bias)
    reference.out_proj.weight.data.copy_(attention.proj.weight[:, :, 0, 0])
    reference.out_proj.bias.data.copy_(attention.proj.bias)
    x = torch.randn(2, 16, 5, 3)
    tokens = attention.norm(x).flatten(2).transpose(1, 2)  # [n, hw, c]
    expected = x + reference(tokens, tokens, tokens, need_weights=False)[0].transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(attention(x), expected)


def test_attention_levels_attend_at_those_resolutions_only():
    """attention_levels=(0,) puts self-attention after every res block at full resolution (16 x 16 = 256 tokens),
    down and up, besides the middle's at the lowest (8 x 8); without it the model has the weights it always had."""
    from diffusion_core.models.unet import Attention
    torch.manual_seed(0)
    plain = build_model(SMALL_UNET)
    m = build_model(replace(SMALL_UNET, attention_levels=(0,), heads=2))
    tokens = []
    for module in m.modules():
        if isinstance(module, Attention):
            module.register_forward_hook(lambda mod, args, out: tokens.append(args[0].shape[2] * args[0].shape[3]))
    torch.nn.init.normal_(m.out[-1].weight)
    x = torch.randn(2, 3, 16, 16)
    assert m(x, torch.tensor([5, 500]), torch.tensor([0, 4])).shape == x.shape
    assert sorted(tokens) == [64] + [256] * 3  # one block down, two up at level 0; the middle's at level 1
    res_blocks = {k.replace(".block.", ".") for k in m.state_dict() if ".attention." not in k}
    assert res_blocks == set(plain.state_dict())  # the same res blocks, each followed by an attention
    assert not any(".attention." in k for k in plain.state_dict())


def test_mlp_shapes_and_parameters():
    m = build_model(MLPConfig(hidden=32, num_layers=3, time_dim=16))
    assert m(torch.randn(5, 2), torch.arange(5)).shape == (5, 2)
    everything = sum(p.numel() for p in m.parameters())
    frozen = next(m.parameters()).requires_grad_(False)
    assert count_parameters(m) == everything - frozen.numel() < everything


@pytest.mark.parametrize("config", [SMALL_UNET, replace(SMALL_UNET, refine_channels=8), MLPConfig(num_classes=3),
                                    replace(SMALL_UNET, attention_levels=(0, 1), heads=4)])
def test_config_round_trip(config):
    d = model_config_to_dict(config)
    assert model_config_from_dict(d) == config


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown unet config fields"):
        model_config_from_dict({"type": "unet", "widht": 3})
    with pytest.raises(ValueError, match="model type"):
        model_config_from_dict({"type": "transformer"})
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(image_size=30, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"attention_levels \(3,\) not in 0..2"):
        UNetConfig(attention_levels=(3,))
    with pytest.raises(ValueError, match="heads 3"):
        UNetConfig(base_channels=32, heads=3)


COND_UNET = replace(SMALL_UNET, cond_channels=5)


def test_an_image_condition_starts_as_the_unet_it_is_added_to_and_is_required():
    torch.manual_seed(0)
    plain, conditioned = build_model(SMALL_UNET), build_model(COND_UNET)
    torch.nn.init.normal_(plain.out[-1].weight)
    missing, unexpected = conditioned.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["cond_in.bias", "cond_in.weight"] and not unexpected
    x, t, labels = torch.randn(2, 3, 16, 16), torch.tensor([10, 900]), torch.tensor([1, 4])
    cond = torch.randn(2, 5, 16, 16)
    torch.testing.assert_close(conditioned(x, t, labels, cond=cond), plain(x, t, labels))  # zero-initialised
    with pytest.raises(ValueError, match="conditioned on an image"):
        conditioned(x, t, labels)
    with pytest.raises(ValueError, match="takes no image condition"):
        plain(x, t, labels, cond=cond)
    torch.nn.init.normal_(conditioned.cond_in.weight)
    a, b = conditioned(x, t, labels, cond=cond), conditioned(x, t, labels, cond=-cond)
    assert not torch.allclose(a, b)
    # the condition enters as a concatenation with x_t would: one convolution over both
    both = torch.nn.Conv2d(3 + 5, 8, 3, padding=1)
    with torch.no_grad():
        both.weight.copy_(torch.cat([conditioned.conv_in.weight, conditioned.cond_in.weight], dim=1))
        both.bias.copy_(conditioned.conv_in.bias + conditioned.cond_in.bias)
    torch.testing.assert_close(conditioned.conv_in(x) + conditioned.cond_in(cond), both(torch.cat([x, cond], dim=1)))


def test_a_bound_condition_is_repeated_over_guidances_doubled_batch():
    from diffusion_core.guidance import guided_eps_fn
    from diffusion_core.models.unet import Conditioned

    torch.manual_seed(1)
    m = build_model(COND_UNET)
    torch.nn.init.normal_(m.out[-1].weight)
    torch.nn.init.normal_(m.cond_in.weight)
    x, t, labels, cond = torch.randn(2, 3, 16, 16), torch.tensor([300, 300]), torch.tensor([0, 2]), torch.randn(2, 5, 16, 16)
    guided = guided_eps_fn(Conditioned(m, cond), labels, 3.0, 4)(x, t)
    uncond, cond_out = m(x, t, torch.tensor([4, 4]), cond=cond), m(x, t, labels, cond=cond)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond_out - uncond), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="does not repeat"):
        Conditioned(m, cond)(torch.randn(3, 3, 16, 16), torch.tensor([1, 1, 1]))
