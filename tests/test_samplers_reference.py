"""Our samplers against diffusers' schedulers (the reference), on the same schedule, plan and eps function."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from diffusion_core import make_schedule, timestep_plan
from diffusion_core.diffusion import predict_x0
from diffusion_core.samplers import sample
from diffusion_core.samplers import ddim_step, ddpm_step
from tests.analytic import gaussian_eps_fn

T = 1000
SHAPE = (4, 2, 3, 3)


def make_eps_fn(s):
    """A deterministic stand-in for a trained network: the exact denoiser of N(0.3, 0.5^2) data, bent by a tanh."""
    exact = gaussian_eps_fn(s, 0.3, 0.5)
    return lambda x, t: exact(x, t) + 0.05 * torch.tanh(3 * x)


def scheduler_kwargs(s):
    return dict(num_train_timesteps=T, trained_betas=s.beta.double().numpy())


def adopt(ref, s):
    """Give a diffusers scheduler our exact float32 coefficients (it recomputes alpha_bar by a float32
    cumprod, which drifts ~1e-5 from ours), so that what is compared is the step maths alone."""
    ref.betas, ref.alphas, ref.alphas_cumprod = s.beta.clone(), s.alpha.clone(), s.alpha_bar.clone()
    if hasattr(ref, "lambda_t"):
        ref.alpha_t, ref.sigma_t = s.sqrt_alpha_bar.clone(), s.sqrt_one_minus_alpha_bar.clone()
        ref.lambda_t = ref.alpha_t.log() - ref.sigma_t.log()
    return ref


def make_v_fn(s):
    """A stand-in for a v-predicting network: the exact eps denoiser above turned into v, bent by a tanh."""
    exact = gaussian_eps_fn(s, 0.3, 0.5)
    return lambda x, t: 0.7 * exact(x, t) - 0.4 * torch.tanh(2 * x) + t.float().reshape(-1, 1, 1, 1) / 2000


def ours(s, sampler, steps=None, eta=0.0, seed=0, prediction="eps"):
    g = torch.Generator().manual_seed(seed)
    fn = make_eps_fn(s) if prediction == "eps" else make_v_fn(s)
    return [o.x_t for o in sample(fn, s, SHAPE, generator=g, sampler=sampler, steps=steps, eta=eta,
                                  prediction=prediction)]


DIFFUSERS_SCHEDULES = {"linear": dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
                       "cosine": dict(beta_schedule="squaredcos_cap_v2")}  # Ho et al.'s; Nichol & Dhariwal's


@pytest.mark.parametrize("kind, steps", [("linear", 1000), ("cosine", 1000), ("cosine", 250)])
def test_schedules_equal_diffusers(kind, steps):
    """make_schedule's beta_t and alpha_bar_t against DDPMScheduler's own betas and alphas_cumprod (diffusers takes
    a float32 cumprod, which drifts up to 1.3e-5 relative at the noisy end from our float64 one)."""
    s = make_schedule(kind, steps)
    ref = DDPMScheduler(num_train_timesteps=steps, **DIFFUSERS_SCHEDULES[kind])
    torch.testing.assert_close(s.beta, ref.betas, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.alpha_bar, ref.alphas_cumprod, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddpm_step_by_step_equals_diffusers(kind):
    """diffusers' DDPM step forms beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, which cancels catastrophically in
    float32 for small beta; so the reference runs in float64 and our float32 step must agree with it to 1e-5."""
    s = make_schedule(kind, T)
    ref = DDPMScheduler(**scheduler_kwargs(s), clip_sample=False, variance_type="fixed_small")
    ref.alphas_cumprod = s.alpha_bar.double()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps_fn = make_eps_fn(s)
    for t in range(T - 1, -1, -1):
        tb = torch.full((SHAPE[0],), t)
        eps = eps_fn(x, tb)
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(t), dtype=torch.float64) if t > 0 else None
        xf, ef = x.float(), eps.float()
        mine = ddpm_step(s, xf, t, t - 1, predict_x0(s, xf, tb, ef), ef, None if noise is None else noise.float(), 1.0)
        theirs = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        torch.testing.assert_close(mine, theirs.float(), atol=1e-5, rtol=1e-5)
        x = theirs


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_step_by_step_equals_diffusers(eta, steps):
    s = make_schedule("cosine", T)
    ref = adopt(DDIMScheduler(**scheduler_kwargs(s), clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"), s)
    ref.set_timesteps(steps)
    plan = timestep_plan("ddim", T, steps)
    assert ref.timesteps.tolist() == [t for t, _ in plan]
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    eps_fn = make_eps_fn(s)
    for t, t_prev in plan:
        tb = torch.full((SHAPE[0],), t)
        eps = eps_fn(x, tb)
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(t))
        mine = ddim_step(s, x, t, t_prev, predict_x0(s, x, tb, eps), eps, noise if t_prev >= 0 else None, eta)
        theirs = ref.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
        x = theirs


def _reference_run(ref, s, steps, seed=0, eta=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPE, generator=g)
    eps_fn = make_eps_fn(s) if ref.config.prediction_type == "epsilon" else make_v_fn(s)
    ref.set_timesteps(steps)
    out = []
    for t in ref.timesteps:
        eps = eps_fn(x, torch.full((SHAPE[0],), int(t)))
        kw = {} if eta is None else dict(eta=eta, variance_noise=torch.randn(SHAPE, generator=g) if eta else None)
        x = ref.step(eps, t, x, **kw).prev_sample
        out.append(x)
    return out


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 20, 25])
def test_dpmpp_2m_whole_run_equals_diffusers(steps):
    s = make_schedule("cosine", T)
    ref = DPMSolverMultistepScheduler(**scheduler_kwargs(s), timestep_spacing="trailing",
                                      algorithm_type="dpmsolver++", solver_order=2)
    adopt(ref, s)
    for mine, theirs in zip(ours(s, "dpm++", steps), _reference_run(ref, s, steps), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
@pytest.mark.parametrize("steps", [1, 10, 50])
def test_v_prediction_whole_run_equals_diffusers(sampler, steps):
    """A v-predicting model (Salimans & Ho 2022) against diffusers' prediction_type='v_prediction'."""
    s = make_schedule("cosine", T)
    kw = dict(**scheduler_kwargs(s), timestep_spacing="trailing", prediction_type="v_prediction")
    ref = (DDIMScheduler(**kw, clip_sample=False, set_alpha_to_one=True) if sampler == "ddim" else
           DPMSolverMultistepScheduler(**kw, algorithm_type="dpmsolver++", solver_order=2))
    adopt(ref, s)
    mine_run = ours(s, sampler, steps, prediction="v")
    for mine, theirs in zip(mine_run, _reference_run(ref, s, steps, eta=0.0 if sampler == "ddim" else None), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_ddim_whole_run_equals_diffusers():
    s = make_schedule("linear", T)
    ref = adopt(DDIMScheduler(**scheduler_kwargs(s), clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"), s)
    for mine, theirs in zip(ours(s, "ddim", 50, eta=0.0), _reference_run(ref, s, 50, eta=0.0), strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_ddim_plan_element_by_element():
    assert timestep_plan("ddim", 1000, 5) == [(999, 799), (799, 599), (599, 399), (399, 199), (199, -1)]
    assert timestep_plan("ddim", 1000, 1) == [(999, -1)]
    assert timestep_plan("ddim", 10, 3) == [(9, 6), (6, 2), (2, -1)]  # round(10, 6.67, 3.33) - 1
    assert timestep_plan("ddpm", 4) == [(3, 2), (2, 1), (1, 0), (0, -1)]
    assert timestep_plan("ddim", 1000, 4, t_start=399) == [(399, 299), (299, 199), (199, 99), (99, -1)]
    plan = timestep_plan("dpm++", 1000, 1000)
    assert [t for t, _ in plan] == list(range(999, -1, -1))


@pytest.mark.parametrize("t_start, steps", [(200, 50), (999, 61), (13, 7), (14, 13)])
def test_plan_has_as_many_levels_as_steps(t_start, steps):
    """A float stride's last step can overshoot 0 (201 / 50 levels gave 51, the last at t = -1 and NaNs)."""
    plan = timestep_plan("ddim", 1000, steps, t_start)
    ts = [t for t, _ in plan]
    assert len(plan) == steps and ts[0] == t_start and min(ts) >= 0 and plan[-1][1] == -1
    assert all(a > b for a, b in zip(ts, ts[1:]))


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=1001), dict(t_start=1000), dict(t_start=-1)])
def test_plan_rejects_out_of_range(bad):
    with pytest.raises(ValueError):
        timestep_plan("ddim", 1000, **bad)


def test_ddim_eta_one_all_steps_is_ddpm():
    s = make_schedule("cosine", T)
    # two different formulas for the same update: equal up to float32 rounding accumulated over 1000 steps
    for a, b in zip(ours(s, "ddpm", seed=7), ours(s, "ddim", T, eta=1.0, seed=7), strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)
