"""The fast forward path (fast.py) against the float32 one: channels-last changes nothing but the layout, bf16
autocast moves samples by no more than bf16 precision allows, and the wrapped model keeps the model's interface."""
import torch

from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.fast import FastModel, FastOptions, fast_model
from diffusion_core.models import UNet, UNetConfig
from diffusion_core.pipeline import ModelInfo, Pipeline, SamplingDefaults

CONFIG = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), groups=4, num_classes=3)


def _pipe(**unet) -> Pipeline:
    torch.manual_seed(0)
    model = UNet(UNetConfig(**{**CONFIG.__dict__, **unet}))
    with torch.no_grad():
        for p in model.out[-1].parameters():
            p.normal_(0, 0.2)
    info = ModelInfo("digits", (1, 8, 8), ("a", "b", "c"), DiffusionConfig(prediction="v"),
                     SamplingDefaults(sampler="ddim", steps=8, guidance=2.0))
    return Pipeline(model, info, device=torch.device("cpu"))


def test_no_option_is_the_model_itself():
    pipe = _pipe()
    assert fast_model(pipe.model, FastOptions()) is pipe.model
    assert pipe.with_options(None).model is pipe.model


def test_channels_last_gives_the_float32_samples():
    pipe = _pipe()
    ref, _ = pipe.generate(6, seed=3, label="all")
    fast, _ = pipe.with_options(FastOptions(channels_last=True)).generate(6, seed=3, label="all")
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_bf16_samples_match_the_float32_ones_within_bf16_precision():
    pipe = _pipe()
    ref, _ = pipe.generate(6, seed=3, label="all")
    fast_pipe = pipe.with_options(FastOptions(bf16=True, channels_last=True))
    fast, _ = fast_pipe.generate(6, seed=3, label="all")
    assert fast.dtype == torch.float32 and pipe.model is not fast_pipe.model
    err = (fast - ref).abs()
    assert err.max() < 0.1 and err.mean() < 0.02, (err.max(), err.mean())
    assert not torch.equal(fast, ref)  # bf16 did run


def test_a_guidance_embedding_student_keeps_its_one_pass_through_the_wrapper():
    pipe = _pipe(guidance_embedding=True)
    fast = pipe.with_options(FastOptions(bf16=True))
    assert isinstance(fast.model, FastModel) and fast.model.config.guidance_embedding
    a, _ = pipe.generate(3, seed=1, label="all", guidance=3.0, sampler="distilled", steps=2)
    b, _ = fast.generate(3, seed=1, label="all", guidance=3.0, sampler="distilled", steps=2)
    assert (a - b).abs().max() < 0.1


def test_compile_gives_the_float32_samples():
    """torch.compile (sample --compile, FastOptions(compile=True)) is the same network: the same samples."""
    torch.set_num_threads(1)
    pipe = _pipe()
    ref, _ = pipe.generate(4, seed=5, label="all", guidance=0.0, steps=3)
    compiled = pipe.with_options(FastOptions(compile=True))
    assert isinstance(compiled.model, FastModel) and compiled.model.run is not compiled.model.inner
    fast, _ = compiled.generate(4, seed=5, label="all", guidance=0.0, steps=3)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
