"""The learnt patch mixture: its denoiser is the LS machine when its atoms are the training patches and sharp, the
exact Gaussian denoiser for one wide atom, and it starts at real patches."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffusion_core.diffusion import x0_and_eps
from diffusion_core.local_score import PatchBank
from diffusion_core.models import PatchMixtureConfig, build_model, model_config_from_dict, model_config_to_dict
from diffusion_core.schedules import make_schedule
from diffusion_core.training.config import load_train_config


def bank_as_atoms(x: torch.Tensor, patch: int, **fields) -> torch.nn.Module:
    """A mixture whose atoms at each position are the patches there of the examples x [n, C, H, W], sigma -> 0."""
    n, c, h, _ = x.shape
    m = build_model(PatchMixtureConfig(in_channels=c, image_size=h, patch=patch, atoms=n, reach=0, **fields))
    schedule = make_schedule("cosine", 1000)
    m.set_schedule(schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar)
    with torch.no_grad():
        m.mean.copy_(F.unfold(x, patch, padding=patch // 2).reshape(m.mean.shape))
        m.log_var.fill_(-30.0)  # clamped to e^-20: sharp atoms, as the machine's examples
    return m


@pytest.mark.parametrize("patch", [1, 3])
def test_sharp_atoms_at_the_training_patches_are_the_local_score_machine(patch):
    torch.manual_seed(0)
    x, schedule = torch.randn(6, 2, 5, 5), make_schedule("cosine", 1000)
    x_t, t = torch.randn(3, 2, 5, 5), torch.tensor([200, 500, 900])
    a, s = schedule.sqrt_alpha_bar[t], schedule.sqrt_one_minus_alpha_bar[t]
    machine = PatchBank(x).x0(x_t, a, s, patch)
    torch.testing.assert_close(bank_as_atoms(x, patch).x0_pred(x_t, t), machine, rtol=1e-4, atol=1e-4)


def test_a_class_row_that_keeps_only_its_examples_is_the_conditional_machine():
    torch.manual_seed(1)
    x, labels, schedule = torch.randn(8, 2, 5, 5), torch.tensor([0, 1] * 4), make_schedule("cosine", 1000)
    m = bank_as_atoms(x, 3, num_classes=2)
    with torch.no_grad():
        for k in range(2):
            m.log_prior[k] = torch.where(labels == k, 0.0, -1e4)[:, None, None]
    x_t, t, want = torch.randn(4, 2, 5, 5), torch.full((4,), 600), torch.tensor([0, 1, 1, 0])
    a, s = schedule.sqrt_alpha_bar[t], schedule.sqrt_one_minus_alpha_bar[t]
    machine = PatchBank(x).x0(x_t, a, s, 3, allowed=want[:, None] == labels[None])
    torch.testing.assert_close(m.x0_pred(x_t, t, want), machine, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.x0_pred(x_t, t, F.one_hot(want, 3).float()), machine, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_one_gaussian_atom_gives_the_exact_gaussian_denoiser(prediction):
    """x0 ~ N(mu, sigma^2 I) per cell: E[x0 | x_t] = mu + a sigma^2 / (a^2 sigma^2 + s^2) (x_t - a mu) (Bishop 2006,
    eq. 2.116), given as the run's eps or v."""
    config = PatchMixtureConfig(in_channels=1, image_size=4, patch=1, atoms=1, reach=0, prediction=prediction)
    m, schedule = build_model(config), make_schedule("cosine", 1000)
    m.set_schedule(schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar)
    mu, var = torch.randn(1, 1, 4, 4), 0.5
    with torch.no_grad():
        m.mean.copy_(mu.reshape(m.mean.shape))
        m.log_var.fill_(math.log(var))
    x_t, t = torch.randn(3, 1, 4, 4), torch.tensor([10, 400, 990])
    a, s = schedule.sqrt_alpha_bar[t].view(-1, 1, 1, 1), schedule.sqrt_one_minus_alpha_bar[t].view(-1, 1, 1, 1)
    exact = mu + a * var / (a * a * var + s * s) * (x_t - a * mu)
    x0, _ = x0_and_eps(schedule, x_t, t, m(x_t, t), prediction)
    torch.testing.assert_close(x0, exact, rtol=1e-4, atol=1e-4)


def test_a_cell_weighs_its_neighbours_atoms_within_reach_only():
    """One sharp atom, at the centre position only (the others far away): a cell within reach of it is pulled to its
    centre value, a cell beyond reach is not."""
    config = PatchMixtureConfig(in_channels=1, image_size=5, patch=1, atoms=1, reach=1)
    m = build_model(config)
    with pytest.raises(RuntimeError, match="holds no schedule yet"):
        m(torch.zeros(1, 1, 5, 5), torch.tensor([100]))
    schedule = make_schedule("cosine", 1000)
    m.set_schedule(schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar)
    with torch.no_grad():
        m.mean.fill_(100.0)
        m.mean[0, 0, 2, 2] = 1.0
        m.log_var.fill_(-30.0)
    x0 = m.x0_pred(torch.ones(1, 1, 5, 5) * 0.9, torch.tensor([100]))[0, 0]
    assert torch.allclose(x0[1:4, 1:4], torch.ones(3, 3), atol=1e-3)
    assert (x0[0] > 50).all() and (x0[:, 4] > 50).all()


def test_it_starts_as_the_machine_over_examples_drawn_class_by_class():
    x, labels = torch.randn(20, 2, 4, 4), torch.tensor([0] * 10 + [1] * 6 + [2] * 4)
    m = build_model(PatchMixtureConfig(in_channels=2, image_size=4, patch=3, atoms=12, num_classes=3))
    m.init_from_data(x, labels, torch.Generator().manual_seed(0), make_schedule("linear", 1000))
    torch.testing.assert_close(m.a ** 2, make_schedule("linear", 1000).alpha_bar.float())
    patches = F.unfold(x, 3, padding=1)  # [n, D, 16]: atom m is one example's patches at every position
    drawn = [int(((patches - m.mean[atom].flatten(1)).abs().sum((1, 2)) == 0).nonzero()[0, 0]) for atom in range(12)]
    assert len(set(drawn)) == 12 and sorted(labels[drawn].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    for k in range(3):
        assert (m.log_prior[k, labels[drawn] == k] == 0).all() and (m.log_prior[k, labels[drawn] != k] < -20).all()
    assert (m.log_prior[-1] == 0).all()  # the null label: every atom alike


def test_config_round_trip_and_errors():
    config = PatchMixtureConfig(atoms=4, num_classes=2)
    assert model_config_from_dict(model_config_to_dict(config)) == config
    with pytest.raises(ValueError, match="positive odd"):
        PatchMixtureConfig(patch=2)
    with pytest.raises(ValueError, match="'eps' or 'v'"):
        PatchMixtureConfig(prediction="flow")
    model = {"type": "patch_mixture", "atoms": 4, "num_classes": 10, "prediction": "eps"}
    with pytest.raises(ValueError, match="must be the run's diffusion settings"):
        load_train_config("pokemon_latent", None, model=model_config_from_dict(model))
