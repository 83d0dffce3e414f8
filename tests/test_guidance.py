"""Classifier-free guidance: forward-pass counts and the combination formula; discriminator guidance on Gaussians;
anti-memorisation guidance's move of x0_pred."""
import pytest
import torch

from diffusion_core import guided_eps_fn
from diffusion_core.diffusion import DiffusionConfig
from diffusion_core.diffusion import x0_and_eps
from diffusion_core.guidance import (EDM2_SIGMA, describe_interval, discriminator_eps_fn, interval_from_sigma, push_out,
                                    repel_eps_fn)
from diffusion_core.schedules import make_schedule

NULL = 10


class CountingModel(torch.nn.Module):
    """eps = x * (label + 1) + t / 1000, recording every forward pass and its labels."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, labels=None):
        self.calls.append(None if labels is None else labels.clone())
        scale = (labels.float() + 1).reshape(-1, 1) if labels is not None else 1.0
        return x * scale + t.float().reshape(-1, 1) / 1000


X, T = torch.randn(4, 2), torch.full((4,), 500)
LABELS = torch.tensor([0, 3, 5, 9])


def test_g1_is_one_conditional_pass():
    m = CountingModel()
    out = guided_eps_fn(m, LABELS, 1.0, NULL)(X, T)
    assert len(m.calls) == 1 and torch.equal(m.calls[0], LABELS)
    torch.testing.assert_close(out, m(X, T, LABELS))


def test_g0_is_one_unconditional_pass():
    m = CountingModel()
    out = guided_eps_fn(m, LABELS, 0.0, NULL)(X, T)
    assert len(m.calls) == 1 and torch.equal(m.calls[0], torch.full((4,), NULL))
    torch.testing.assert_close(out, m(X, T, torch.full((4,), NULL)))


@pytest.mark.parametrize("g", [0.5, 2.0, 7.5])
def test_guided_is_one_doubled_pass_and_matches_formula(g):
    m = CountingModel()
    out = guided_eps_fn(m, LABELS, g, NULL)(X, T)
    assert len(m.calls) == 1 and len(m.calls[0]) == 8  # one forward pass of a doubled batch
    eps_uncond, eps_cond = m(X, T, torch.full((4,), NULL)), m(X, T, LABELS)
    torch.testing.assert_close(out, eps_uncond + g * (eps_cond - eps_uncond))


def test_unconditional_model_ignores_guidance():
    m = CountingModel()
    out = guided_eps_fn(m, None, 3.0, None)(X, T)
    assert m.calls == [None]
    torch.testing.assert_close(out, X + 0.5)


def test_negative_guidance_rejected():
    with pytest.raises(ValueError):
        guided_eps_fn(CountingModel(), LABELS, -1.0, NULL)


@pytest.mark.parametrize("t, guided", [(166, False), (167, True), (500, True), (881, True), (882, False), (999, False)])
def test_interval_guides_inside_and_follows_the_label_outside(t, guided):
    m = CountingModel()
    t_batch = torch.full((4,), t)
    out = guided_eps_fn(m, LABELS, 2.0, NULL, interval=(166, 881))(X, t_batch)
    eps_uncond, eps_cond = m(X, t_batch, torch.full((4,), NULL)), m(X, t_batch, LABELS)
    assert len(m.calls[0]) == (8 if guided else 4)  # outside: one conditional pass, no doubled batch
    torch.testing.assert_close(out, eps_uncond + 2.0 * (eps_cond - eps_uncond) if guided else eps_cond)


def test_interval_from_sigma_brackets_exactly_the_steps_in_the_sigma_range():
    schedule = DiffusionConfig(schedule="cosine").make_schedule()
    assert EDM2_SIGMA == (0.28, 5.42)
    t_lo, t_hi = interval_from_sigma(schedule, *EDM2_SIGMA)
    sigma = ((1 - schedule.alpha_bar) / schedule.alpha_bar).sqrt()
    assert sigma[t_lo] <= 0.28 < sigma[t_lo + 1] and sigma[t_hi] <= 5.42 < sigma[t_hi + 1]
    assert (t_lo, t_hi) == (166, 881)  # the EDM2 interval on our cosine schedule, quoted in guidance.py


def test_interval_leaves_g_up_to_1_alone():
    m = CountingModel()
    out = guided_eps_fn(m, LABELS, 0.0, NULL, interval=(166, 881))(X, torch.full((4,), 999))
    torch.testing.assert_close(out, m(X, T.new_full((4,), 999), torch.full((4,), NULL)))  # g = 0 ignores the label


@pytest.mark.parametrize("bad", [(500, 500), (600, 100), (-2, 10)])
def test_bad_interval_rejected(bad):
    with pytest.raises(ValueError):
        guided_eps_fn(CountingModel(), LABELS, 2.0, NULL, interval=bad)
    with pytest.raises(ValueError):
        describe_interval(bad)


def test_interval_described_as_the_steps_it_guides():
    assert describe_interval((-1, 600)) == "t ≤ 600"
    assert describe_interval([166, 881]) == "166 < t ≤ 881"  # JSON gives a list


# Discriminator guidance on Gaussians (Kim et al. 2023, eq. 8): data N(0, I), a model that learnt N(m, I). At time t
# the noised data is N(0, I) and the noised model N(sqrt(abar) m, I), so the exact log density ratio is
# log d / (1 - d) = |x - sqrt(abar) m|^2 / 2 - |x|^2 / 2, and the corrected eps must be the data's exact
# eps = sqrt(1 - abar) x.
M = torch.tensor([1.5, -2.0])
SCHEDULE = make_schedule("cosine")


def _abar(t):
    return SCHEDULE.alpha_bar[t].reshape(-1, 1)


def _model_eps(x, t):  # the wrong model's exact eps: -sqrt(1 - abar) * its score
    return (1 - _abar(t)).sqrt() * (x - _abar(t).sqrt() * M)


def _model_v(x, t):  # the same model as a v predictor: v = (eps - sqrt(1 - abar) x) / sqrt(abar)
    return (_model_eps(x, t) - (1 - _abar(t)).sqrt() * x) / _abar(t).sqrt()


def _log_ratio(x, t):
    return ((x - _abar(t).sqrt() * M) ** 2).sum(1) / 2 - (x ** 2).sum(1) / 2


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("t", [100, 500, 900])
def test_discriminator_guidance_with_the_exact_ratio_gives_the_data_eps(prediction, t):
    x, ts = torch.randn(6, 2, generator=torch.Generator().manual_seed(t)), torch.full((6,), t)
    base = _model_eps if prediction == "eps" else _model_v
    fn = torch.inference_mode()(discriminator_eps_fn(base, _log_ratio, SCHEDULE, 1.0, prediction))
    out = fn(x, ts)  # inside inference mode, as Pipeline.eps_fn runs: the critic's gradient must still be taken
    eps = out if prediction == "eps" else (1 - _abar(ts)).sqrt() * x + _abar(ts).sqrt() * out
    torch.testing.assert_close(eps, (1 - _abar(ts)).sqrt() * x, atol=1e-5, rtol=1e-4)


def test_discriminator_guidance_scales_with_w_and_stops_outside_its_interval():
    x = torch.randn(6, 2)
    fn = discriminator_eps_fn(_model_eps, _log_ratio, SCHEDULE, 2.0, "eps", interval=(200, 600))
    inside, outside = torch.full((6,), 400), torch.full((6,), 700)
    expected = _model_eps(x, inside) + 2.0 * (1 - _abar(inside)).sqrt() * _abar(inside).sqrt() * M
    torch.testing.assert_close(fn(x, inside), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fn(x, outside), _model_eps(x, outside))


def test_discriminator_guidance_needs_an_eps_or_v_model():
    with pytest.raises(ValueError, match="eps or v"):
        discriminator_eps_fn(_model_eps, _log_ratio, SCHEDULE, 1.0, "flow")


# Anti-memorisation guidance (Chen et al. 2024): x0_pred within RMS distance r of a training example moves out to r.
BANK = torch.tensor([[0.0, 0.0, 0.0, 0.0], [4.0, 4.0, 4.0, 4.0]])


def test_push_out_moves_a_near_point_to_the_radius_along_its_line():
    x0 = torch.tensor([[0.1, 0.0, 0.0, 0.0], [3.9, 4.0, 4.2, 4.0], [2.0, 2.0, 2.0, 2.0], [4.0, 4.0, 4.0, 4.0]])
    out = push_out(x0, BANK, radius=0.5)
    torch.testing.assert_close(out[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))  # RMS 0.05 -> 0.5: x10 on its line
    offset = out[1] - BANK[1]
    torch.testing.assert_close(offset.pow(2).mean().sqrt(), torch.tensor(0.5))
    torch.testing.assert_close(offset / offset.norm(), (x0[1] - BANK[1]) / (x0[1] - BANK[1]).norm())
    torch.testing.assert_close(out[2:], x0[2:])  # far from both (RMS 2) stays; equal to an example has no line


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_repel_gives_the_output_whose_x0_pred_was_pushed_out(prediction):
    x_t, t = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([100, 500, 900])
    x0 = torch.tensor([[0.1, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [4.0, 4.1, 4.0, 4.0]])
    eps = (x_t - SCHEDULE.sqrt_alpha_bar[t, None] * x0) / SCHEDULE.sqrt_one_minus_alpha_bar[t, None]
    v = SCHEDULE.sqrt_alpha_bar[t, None] * eps - SCHEDULE.sqrt_one_minus_alpha_bar[t, None] * x0
    model = (lambda x, s: eps) if prediction == "eps" else (lambda x, s: v)
    out = repel_eps_fn(model, BANK, SCHEDULE, 0.5, prediction)(x_t, t)
    got, _ = x0_and_eps(SCHEDULE, x_t, t, out, prediction)
    torch.testing.assert_close(got, push_out(x0, BANK, 0.5), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got[0], x0[0]) and torch.allclose(got[1], x0[1], atol=1e-4)


def test_repel_leaves_a_far_model_untouched_and_checks_its_arguments():
    x_t, t = torch.randn(2, 4, generator=torch.Generator().manual_seed(2)), torch.tensor([300, 700])
    far = torch.full((2, 4), 2.0)  # RMS 2 from both examples
    eps = (x_t - SCHEDULE.sqrt_alpha_bar[t, None] * far) / SCHEDULE.sqrt_one_minus_alpha_bar[t, None]
    assert torch.equal(repel_eps_fn(lambda x, s: eps, BANK, SCHEDULE, 0.5, "eps")(x_t, t), eps)
    with pytest.raises(ValueError, match="eps or v"):
        repel_eps_fn(lambda x, s: x, BANK, SCHEDULE, 0.5, "flow")
    with pytest.raises(ValueError, match="radius"):
        repel_eps_fn(lambda x, s: x, BANK, SCHEDULE, 0.0, "eps")
