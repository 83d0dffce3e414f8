"""v-prediction (Salimans & Ho 2022) and Min-SNR-gamma weighting (Hang et al. 2023): the identities they rest on,
sampling with the exact v-predictor, guidance, and training."""
import json

import pytest
import torch

from diffusion_core import make_schedule, sample_final
from diffusion_core.diffusion import DiffusionConfig, denoising_loss, q_sample, v_target, x0_and_eps
from diffusion_core.evaluation.metrics import spiral_distance
from diffusion_core.files.checkpoint import load_checkpoint
from diffusion_core.guidance import guided_eps_fn
from diffusion_core.models import build_model, model_config_from_dict
from diffusion_core.pipeline import Pipeline, parse_info
from diffusion_core.training.config import load_train_config
from diffusion_core.training.loop import train
from tests.analytic import gaussian_v_fn

S = make_schedule("cosine", 1000)
T_ALL = torch.tensor([0, 10, 250, 500, 900, 990, 999])


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((len(T_ALL), 3, 4, 4), generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    return x0, eps, q_sample(S, x0, T_ALL, eps)


def test_true_v_gives_back_x0_and_eps_at_every_t():
    x0, eps, x_t = batch()
    x0_pred, eps_pred = x0_and_eps(S, x_t, T_ALL, v_target(S, x0, T_ALL, eps), "v")
    torch.testing.assert_close(x0_pred, x0, atol=2e-6, rtol=0)
    torch.testing.assert_close(eps_pred, eps, atol=2e-6, rtol=0)


def test_an_output_error_moves_x0_pred_by_b_over_a_under_eps_but_by_b_under_v():
    """Why v: at t = 999 of the cosine schedule a = sqrt(alpha_bar) = 4.9e-5, so an eps error of 0.01 becomes an
    x0 error of ~200, while the same v error stays 0.01."""
    x0, eps, x_t = batch()
    t = torch.full((len(T_ALL),), 999)
    a, b = S.sqrt_alpha_bar[999].item(), S.sqrt_one_minus_alpha_bar[999].item()
    for prediction, expected in (("eps", 0.01 * b / a), ("v", 0.01 * b)):
        out = torch.zeros_like(x_t)
        shift = x0_and_eps(S, x_t, t, out + 0.01, prediction)[0] - x0_and_eps(S, x_t, t, out, prediction)[0]
        assert shift.abs().mean().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_loss_is_min_snr_gamma_times_the_x0_error(prediction, gamma):
    x0, eps, x_t = batch(1)
    out = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(2))
    config = DiffusionConfig(prediction=prediction, snr_gamma=gamma)
    x0_pred, _ = x0_and_eps(S, x_t, T_ALL, out, prediction)
    snr = S.alpha_bar[T_ALL] / (1 - S.alpha_bar[T_ALL])
    expected = (snr.clamp(max=gamma) * ((x0_pred - x0) ** 2).flatten(1).mean(1)).mean()
    torch.testing.assert_close(denoising_loss(config, S, out, x0, T_ALL, eps), expected, rtol=1e-4, atol=0)


def test_unweighted_loss_is_mse_on_the_target():
    x0, eps, x_t = batch(3)
    out = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(4))
    v = v_target(S, x0, T_ALL, eps)
    assert denoising_loss(DiffusionConfig(prediction="v"), S, out, x0, T_ALL, eps) == ((out - v) ** 2).mean()
    assert denoising_loss(DiffusionConfig(), S, out, x0, T_ALL, eps) == ((out - eps) ** 2).mean()


def test_bad_prediction_or_gamma_rejected():
    with pytest.raises(ValueError, match="prediction"):
        DiffusionConfig(prediction="x0")
    with pytest.raises(ValueError, match="snr_gamma"):
        DiffusionConfig(snr_gamma=-1)


@pytest.mark.parametrize("sampler,steps,rel", [("ddim", 50, 0.04), ("dpm++", 20, 0.02), ("ddpm", None, 0.02)])
def test_exact_v_predictor_reproduces_gaussian_data(sampler, steps, rel):
    n, mu, std = 6000, 0.5, 0.5
    x = sample_final(gaussian_v_fn(S, mu, std), S, (n, 2), generator=torch.Generator().manual_seed(0),
                     sampler=sampler, steps=steps, prediction="v")
    assert abs(x.mean().item() - mu) < 5 * std / (2 * n) ** 0.5
    assert x.std().item() == pytest.approx(std, rel=rel)


def test_guided_v_converts_to_the_guided_eps():
    """Guidance combines v outputs exactly as it would combine the eps they convert to."""
    class TwoClasses(torch.nn.Module):
        def forward(self, x, t, labels):
            return torch.tanh(x) * (labels.float() + 1).reshape(-1, 1) + t.float().reshape(-1, 1) / 1000

    x_t, t, labels, g = torch.randn(4, 2), torch.tensor([999, 600, 300, 5]), torch.tensor([0, 1, 0, 1]), 3.0
    model = TwoClasses()
    guided_eps = x0_and_eps(S, x_t, t, guided_eps_fn(model, labels, g, 2)(x_t, t), "v")[1]
    eps_c, eps_u = (x0_and_eps(S, x_t, t, model(x_t, t, lab), "v")[1] for lab in (labels, torch.full_like(labels, 2)))
    torch.testing.assert_close(guided_eps, eps_u + g * (eps_c - eps_u))


def test_v_training_draws_the_spiral(tmp_path):
    cfg = {"model": {"type": "mlp", "hidden": 32, "num_layers": 2, "time_dim": 16}, "steps": 400, "lr": 3e-3,
           "batch_size": 128, "warmup_steps": 5, "sample_every": 1000, "save_every": 1000,
           "diffusion": {"schedule": "linear", "clip_x0": False, "prediction": "v", "snr_gamma": 5.0}}
    (tmp_path / "v.json").write_text(json.dumps(cfg))
    config = load_train_config("spiral", tmp_path / "v.json")
    ckpt = load_checkpoint(train(config, tmp_path / "run", "test"))
    assert ckpt.config["diffusion"]["prediction"] == "v"
    assert "A v-predicting MLP" in (tmp_path / "run" / "README.md").read_text()
    fresh = Pipeline(build_model(model_config_from_dict(ckpt.config["model"])), parse_info(ckpt.config))
    trained = Pipeline.from_checkpoint(ckpt)
    distances = [spiral_distance(p.generate(1000, seed=0, sampler="ddim", steps=50)[0]) for p in (fresh, trained)]
    assert distances[1] < 0.5 * distances[0]  # measured: 0.55 untrained, 0.18 after 400 steps
