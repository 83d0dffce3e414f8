"""Flow matching, proved on cases with a known answer: data N(mu, std^2) against noise N(0, 1) on straight paths
has the exact velocity field u(x, s) = E[eps - x0 | x_s = x] (below), whose ODE carries eps to mu + std eps. The
objective's regression target, the Euler and Heun steps in the one sampling loop and the train command are checked
against it. The minibatch OT coupling is checked on pairings whose answer is known: a translation, a permutation, the
brute-force optimum of 6 points, and the linear Monge map between two Gaussians."""
import itertools
import json

import pytest
import torch

from diffusion_core import make_schedule, sample_final
from diffusion_core.diffusion import DiffusionConfig, denoising_loss, noisy_batch, x0_and_eps
from diffusion_core.flow import euler_step, flow_sample, flow_target, flow_time, ot_noise_for
from diffusion_core.samplers import sample, timestep_plan

MU, STD, T = 0.7, 0.4, 1000


def exact_velocity(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """u(x, s) for x0 ~ N(MU, STD^2), x_s = (1 - s) x0 + s eps: x_s ~ N((1 - s) MU, (1 - s)^2 STD^2 + s^2) and
    Cov(eps - x0, x_s) = s - (1 - s) STD^2, so E[eps - x0 | x_s] = -MU + Cov / Var (x - (1 - s) MU)."""
    var = (1 - s) ** 2 * STD**2 + s**2
    return -MU + (s - (1 - s) * STD**2) / var * (x - (1 - s) * MU)


def velocity_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact field as a model: eps_fn(x_t, t) returning the velocity, in float64."""
    return exact_velocity(x.double(), flow_time(t, T, x.ndim).double()).to(x.dtype)


def test_the_regression_target_has_the_exact_field_as_its_least_squares_answer():
    """At fixed s the target eps - x0 regressed on x_s (least squares: what the MSE objective learns) has the
    exact field's slope and intercept; 400,000 pairs put both within 0.005."""
    g = torch.Generator().manual_seed(0)
    n, t = 400_000, torch.full((400_000,), 599)
    x0 = MU + STD * torch.randn(n, 1, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 1, generator=g, dtype=torch.float64)
    x_s, target = flow_sample(x0, t, eps, T), flow_target(x0, eps)
    design = torch.cat([x_s, torch.ones_like(x_s)], 1)
    slope, intercept = torch.linalg.lstsq(design, target).solution.flatten().tolist()
    s = torch.tensor(0.6, dtype=torch.float64)
    exact_slope = (exact_velocity(torch.tensor(1.0), s) - exact_velocity(torch.tensor(0.0), s)).item()
    assert slope == pytest.approx(exact_slope, abs=0.005)
    assert intercept == pytest.approx(exact_velocity(torch.tensor(0.0, dtype=torch.float64), s).item(), abs=0.005)


def test_the_loss_of_the_exact_field_is_the_targets_conditional_variance():
    """The exact field scores the irreducible loss E[Var(eps - x0 | x_s)], and any other field scores more."""
    cfg, sched, g = DiffusionConfig(prediction="flow", clip_x0=False), make_schedule("linear", T), None
    g = torch.Generator().manual_seed(1)
    x0 = MU + STD * torch.randn(200_000, 1, generator=g)
    x_t, t, eps = noisy_batch(sched, x0, g, "flow")
    s = flow_time(t, T, 2).double()
    assert torch.allclose(x_t.double(), (1 - s) * x0 + s * eps, atol=1e-6)  # the straight path
    exact = denoising_loss(cfg, sched, velocity_fn(x_t, t), x0, t, eps).item()
    cond_var = ((1 + STD**2) - (s - (1 - s) * STD**2) ** 2 / ((1 - s) ** 2 * STD**2 + s**2)).mean().item()
    assert exact == pytest.approx(cond_var, rel=0.01)
    assert denoising_loss(cfg, sched, 1.05 * velocity_fn(x_t, t), x0, t, eps).item() > exact


def test_x0_pred_and_eps_are_the_ends_of_the_straight_line_and_euler_is_x_plus_ds_v():
    sched, x, v = make_schedule("linear", T), torch.randn(5, 2), torch.randn(5, 2)
    t = torch.full((5,), 749)  # s = 0.75
    x0_pred, eps = x0_and_eps(sched, x, t, v, "flow")
    torch.testing.assert_close(x0_pred, x - 0.75 * v)
    torch.testing.assert_close(eps, x + 0.25 * v)
    torch.testing.assert_close(euler_step(x, 749, 249, v, T), x - 0.5 * v)
    # an Euler step lands on the straight line between the two ends, at s_prev: DDIM's form with (1 - s, s)
    torch.testing.assert_close(euler_step(x, 749, 249, v, T), 0.75 * x0_pred + 0.25 * eps)


def test_flow_plans_are_evenly_spaced_in_flow_time():
    assert [((t + 1) / T, (tp + 1) / T) for t, tp in timestep_plan("euler", T, 4)] == [
        (1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    assert timestep_plan("heun", T, 4) == timestep_plan("ddim", T, 4)


@pytest.mark.parametrize("sampler, steps, tol", [("heun", 50, 3e-3), ("euler", 1000, 4e-3)])
def test_the_exact_field_carries_each_noise_to_mu_plus_std_times_it(sampler, steps, tol):
    """The ODE of the exact field maps eps to x0 = mu + std eps (the Gaussians' optimal transport), through the one
    sampling loop; Heun (second order) within 0.003 in 50 steps, Euler needs 1,000 (100 leave 0.027)."""
    sched, eps = make_schedule("linear", T), torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    x = sample_final(velocity_fn, sched, (4000, 2), generator=torch.Generator().manual_seed(1), sampler=sampler,
                     steps=steps, x_T=eps.double(), prediction="flow")
    assert (x - (MU + STD * eps.double())).abs().max().item() < tol


def test_euler_error_is_first_order_and_heun_second_order():
    """Doubling the steps halves Euler's error and quarters Heun's (within 15 %)."""
    sched, eps = make_schedule("linear", T), torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]

    def error(sampler: str, steps: int) -> float:
        x = sample_final(velocity_fn, sched, (101, 1), generator=torch.Generator(), sampler=sampler, steps=steps,
                         x_T=eps, prediction="flow")
        return (x - (MU + STD * eps)).abs().max().item()

    assert error("euler", 20) / error("euler", 40) == pytest.approx(2, rel=0.15)
    assert error("heun", 20) / error("heun", 40) == pytest.approx(4, rel=0.15)


def test_heun_calls_the_model_twice_a_step_but_the_last_and_steps_match_their_objective():
    calls, sched = [], make_schedule("linear", T)

    def counted(x, t):
        calls.append(int(t[0]))
        return velocity_fn(x, t)

    outs = list(sample(counted, sched, (3, 2), generator=torch.Generator(), sampler="heun", steps=4,
                       prediction="flow"))
    assert [o.t for o in outs] == [749, 499, 249, -1] and calls == [999, 749, 749, 499, 499, 249, 249]
    with pytest.raises(ValueError, match="predicts flow samples with one of euler, heun"):
        next(sample(counted, sched, (3, 2), generator=torch.Generator(), sampler="ddim", prediction="flow"))
    with pytest.raises(ValueError, match="predicts eps samples with one of ddpm, ddim, dpm"):
        next(sample(counted, sched, (3, 2), generator=torch.Generator(), sampler="euler"))


def test_train_objective_flow_writes_a_flow_checkpoint_that_samples_with_euler(tmp_path):
    """The real train command with --objective flow on the two moons: a velocity model whose card says so."""
    from diffusion_core.pipeline import Pipeline
    from diffusion_core.train import main

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"model": {"type": "mlp", "hidden": 32, "num_layers": 2, "time_dim": 16},
                               "batch_size": 256, "warmup_steps": 5, "sample_every": 1000, "save_every": 1000}))
    assert main(["--dataset", "moons", "--objective", "flow", "--coupling", "ot", "--config", str(cfg), "--steps",
                 "60", "--out", str(tmp_path / "m")]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["diffusion"]["prediction"] == "flow" and config["sampling"]["sampler"] == "euler"
    assert "--objective flow --coupling ot" in config["training"]["command"] and config["dataset"] == "moons"
    assert config["training"]["config"]["coupling"] == "ot"
    assert config["training"]["final_loss"] < 2.0  # the target eps - x0 has variance 1 + Var(x0) ~ 1.2 per value
    x, _ = Pipeline.load(str(tmp_path / "m")).generate(50, seed=0)
    assert x.shape == (50, 2) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="flow matching is offered for the 2D models"):
        from diffusion_core.train import config_from_args, parse_args
        config_from_args(parse_args(["--dataset", "digits", "--objective", "flow", "--out", "x"]))


# ---------------------------------------------------------------- minibatch OT coupling (flow.ot_noise_for)
GRID = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(4.0), indexing="ij"), -1).reshape(-1, 2) * 0.5


def test_ot_pairs_a_translated_copy_by_the_translation_and_a_permuted_copy_by_the_permutation():
    """The OT map between a set and its translate is the translation; between a set and a permutation of itself,
    the identity on points: each x0 gets its own copy back."""
    g = torch.Generator().manual_seed(0)
    shift = torch.tensor([3.0, -2.0])
    assert torch.allclose(ot_noise_for(GRID, GRID + shift, g), GRID + shift)
    perm = torch.randperm(len(GRID), generator=g)
    assert torch.equal(ot_noise_for(GRID, GRID[perm], g), GRID)


def pairing_cost(x0: torch.Tensor, eps: torch.Tensor) -> float:
    return float((eps - x0).square().sum())


def test_ot_pairing_costs_less_than_random_and_near_the_brute_force_optimum():
    """6 points against 6 noise samples: the cheapest of all 720 pairings is found (its squared cost to 1e-6), and
    at 1,000 points the OT pairing costs a small fraction of the random one."""
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.rand(6, 2, generator=g) * 2 - 1, torch.randn(6, 2, generator=g)
    best = min(pairing_cost(x0, eps[list(p)]) for p in itertools.permutations(range(6)))
    assert pairing_cost(x0, ot_noise_for(x0, eps, g)) == pytest.approx(best, abs=1e-6)
    assert best < pairing_cost(x0, eps)
    x0, eps = torch.rand(1000, 2, generator=g) * 2 - 1, torch.randn(1000, 2, generator=g)
    assert pairing_cost(x0, ot_noise_for(x0, eps, g)) < 0.2 * pairing_cost(x0, eps)


def test_ot_pairs_two_gaussians_by_the_linear_monge_map():
    """x0 ~ N(m, diag(s)^2) against eps ~ N(0, I): the OT map is eps -> m + s eps (Brenier; Peyre & Cuturi 2019,
    remark 2.31), so the straight paths' displacement x0 - eps is linear in eps. On 1,000 samples of each, with the
    samples' own means and spreads for m and s, the pairs' least-squares fit finds that map within 0.05 and leaves
    a residual a tenth of the random pairing's."""
    g = torch.Generator().manual_seed(2)
    eps = torch.randn(1000, 2, generator=g)
    x0 = torch.tensor([0.5, -0.3]) + torch.tensor([0.4, 1.5]) * torch.randn(1000, 2, generator=g)
    s = x0.std(0) / eps.std(0)
    monge = lambda e: x0.mean(0) + s * (e - eps.mean(0))  # noqa: E731
    paired = ot_noise_for(x0, eps, g)
    for d in range(2):
        design = torch.stack([torch.ones(1000), paired[:, d] - eps[:, d].mean()], 1)
        intercept, slope = torch.linalg.lstsq(design, x0[:, d:d + 1]).solution[:, 0]
        assert float(intercept) == pytest.approx(float(x0[:, d].mean()), abs=0.05)
        assert float(slope) == pytest.approx(float(s[d]), abs=0.05)
    assert pairing_cost(x0, monge(paired)) < 0.1 * pairing_cost(x0, monge(eps))


def test_the_coupling_is_a_training_option_that_old_configs_read_as_independent():
    """A config.json without the field (every checkpoint before it) reads as independent pairing; train
    --coupling ot asks for OT, which only a flow model takes."""
    from diffusion_core.train import config_from_args, parse_args
    from diffusion_core.training.config import PRESETS, TrainConfig

    old = PRESETS["spiral"].to_dict()
    del old["coupling"]
    assert TrainConfig.from_dict(old).coupling == "independent"
    args = ["--dataset", "moons", "--objective", "flow", "--out", "x"]
    assert config_from_args(parse_args(args)).coupling == "independent"
    assert config_from_args(parse_args([*args, "--coupling", "ot"])).coupling == "ot"
    with pytest.raises(ValueError, match="an OT coupling pairs a flow model"):
        config_from_args(parse_args(["--dataset", "moons", "--coupling", "ot", "--out", "x"]))
