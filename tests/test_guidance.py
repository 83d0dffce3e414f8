"""Classifier-free guidance: forward-pass counts and the combination formula."""
import pytest
import torch

from diffusion_core import guided_eps_fn

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
