"""The local score machine (Kamb and Ganguli 2024): analytic limits, locality, and the training targets it gives."""
import pytest
import torch

from diffusion_core.diffusion import DiffusionConfig, q_sample
from diffusion_core.local_score import PatchBank, local_eps_fn, local_targets, patch_size
from diffusion_core.samplers import sample


def exact_x0(x_t, a, s, bank):
    """The exact denoiser of the examples bank (Karras et al. 2022 eq. 57): the posterior mean over whole images."""
    logits = -torch.cdist(x_t.flatten(1), a * bank.flatten(1)).pow(2) / (2 * s * s)
    return (logits.softmax(1) @ bank.flatten(1)).view_as(x_t)


def box_x0(x_t, a, s, bank, patch):
    """The same machine written the slow way: per-cell squared distances, summed over each cell's window."""
    d = ((x_t[:, None] - a * bank[None]) ** 2).sum(2)  # [b, n, h, w]
    r, (h, w) = patch // 2, d.shape[-2:]
    padded = torch.nn.functional.pad(d, (r, r, r, r))
    sums = sum(padded[..., i:i + h, j:j + w] for i in range(patch) for j in range(patch))
    weights = (-sums / (2 * s * s)).softmax(1)  # [b, n, h, w]
    return (weights[:, :, None] * bank[None]).sum(1)


@pytest.fixture
def bank():
    return torch.randn(12, 2, 5, 5, generator=torch.Generator().manual_seed(0))


def test_a_patch_that_covers_the_image_is_the_exact_denoiser(bank):
    x_t = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    a, s = torch.full((3,), 0.8), torch.full((3,), 0.6)
    torch.testing.assert_close(PatchBank(bank).x0(x_t, a, s, 9), exact_x0(x_t, 0.8, 0.6, bank))


@pytest.mark.parametrize("patch", [1, 3])
def test_each_cell_weighs_the_examples_by_its_own_window_only(bank, patch):
    x_t = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(2))
    a, s = torch.tensor([0.9, 0.5]), torch.tensor([0.436, 0.866])
    x0 = PatchBank(bank).x0(x_t, a, s, patch)
    torch.testing.assert_close(x0, box_x0(x_t, a.view(-1, 1, 1, 1, 1), s.view(-1, 1, 1, 1), bank, patch))
    far = x_t.clone()
    far[:, :, 4, 4] += 5.0  # outside the windows of cell (0, 0)
    torch.testing.assert_close(PatchBank(bank).x0(far, a, s, patch)[..., 0, 0], x0[..., 0, 0])


def test_one_example_is_its_own_posterior_mean_and_a_clean_example_is_found(bank):
    x_t = torch.randn(2, 2, 5, 5)
    one = PatchBank(bank[:1]).x0(x_t, torch.ones(2), torch.ones(2), 3)
    torch.testing.assert_close(one, bank[:1].expand(2, -1, -1, -1))
    tiny_noise = PatchBank(bank).x0(bank[4:6], torch.ones(2), torch.full((2,), 1e-3), 3)
    torch.testing.assert_close(tiny_noise, bank[4:6])


def test_training_targets_follow_the_label_and_the_spec(bank):
    schedule = DiffusionConfig(T=100, schedule="cosine").make_schedule()
    labels_of_bank = torch.arange(12) % 3
    pb = PatchBank(bank, labels_of_bank)
    gen = torch.Generator().manual_seed(3)
    x0 = bank[[0, 1, 2, 3]]
    t, eps = torch.tensor([90, 90, 10, 10]), torch.randn(x0.shape, generator=gen)
    x_t = q_sample(schedule, x0, t, eps)
    labels = torch.tensor([0, 3, 1, 3])  # 3: the null label, every example
    target_x0, target_eps = local_targets(schedule, x_t, t, labels, pb, "5@50:1", null_label=3)
    a, s = schedule.sqrt_alpha_bar[t], schedule.sqrt_one_minus_alpha_bar[t]
    own_class = PatchBank(bank[labels_of_bank == 0]).x0(x_t[:1], a[:1], s[:1], 5)
    torch.testing.assert_close(target_x0[:1], own_class)
    torch.testing.assert_close(target_x0[1:2], pb.x0(x_t[1:2], a[1:2], s[1:2], 5))
    torch.testing.assert_close(target_x0[3:], pb.x0(x_t[3:], a[3:], s[3:], 1))
    torch.testing.assert_close(q_sample(schedule, target_x0, t, target_eps), x_t)  # x_t = a x0 + s eps


def test_patch_specs_and_their_errors():
    assert [patch_size("5@400:3", t) for t in (999, 401, 400, 0)] == [5, 5, 3, 3]
    assert patch_size("7", 0) == 7
    for bad in ("4", "5@400:2", "0"):
        with pytest.raises(ValueError, match="odd and positive"):
            patch_size(bad, 0)


def test_sampling_with_a_tiny_patch_bank_lands_near_its_examples(bank):
    """DDIM to t = 0 with the exact machine ends on an example (the posterior collapses as s -> 0)."""
    schedule = DiffusionConfig(T=100, schedule="cosine").make_schedule()
    out = None
    for out in sample(local_eps_fn(schedule, PatchBank(bank), "9"), schedule, (2, 2, 5, 5),
                      generator=torch.Generator().manual_seed(4), sampler="ddim", steps=10):
        pass
    gaps = torch.cdist(out.x_t.flatten(1), bank.flatten(1)).min(1).values
    assert gaps.max() < 1e-2 * bank.flatten(1).norm(dim=1).mean()
