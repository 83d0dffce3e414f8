"""Metrics against analytic answers: Fréchet distance, spiral metrics, nearest neighbours, LeNet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_core.data import SPIRAL_T_MAX, SPIRAL_T_MIN, cache_dir, load_dataset, spiral_curve
from diffusion_core.lenet import FEATURE_DIM, STATS, WEIGHTS, LeNet5, load_lenet, load_stats
from diffusion_core.metrics import (
    feature_statistics, fld_report, frechet_distance, ks_uniform, nearest_neighbour_distances,
    nearest_neighbours, spiral_coverage_ks, spiral_distance, train_self_nn_distances,
)


def random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    """A random symmetric positive definite matrix."""
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_of_a_distribution_with_itself_is_zero() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=20), random_cov(rng, 20)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_frechet_diagonal_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)  # standard deviations
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_commuting_covariances_and_symmetry() -> None:
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # shared eigenvectors: (S1 S2)^½ = Q sqrt(D1 D2) Qᵀ
    d1, d2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    s1, s2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    a, b = random_cov(rng, 8), random_cov(rng, 8)
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    assert frechet_distance(m1, a, m2, b) == pytest.approx(frechet_distance(m2, b, m1, a), rel=1e-9)
    assert frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(1 + 1)  # Δμ² + (σ1 − σ2)²


def test_feature_statistics() -> None:
    f = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    mu, sigma = feature_statistics(f)
    assert np.allclose(mu, f.double().mean(0).numpy()) and np.allclose(sigma, np.cov(f.double().numpy().T))


def normals(t: np.ndarray) -> np.ndarray:
    """Unit normals [N, 2] of the spiral at parameters t."""
    tangent = np.stack([np.cos(t) - t * np.sin(t), np.sin(t) + t * np.cos(t)], axis=1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def test_spiral_distance_of_curve_points_and_offsets() -> None:
    t = np.random.default_rng(0).uniform(SPIRAL_T_MIN, SPIRAL_T_MAX, 1000)
    on_curve = spiral_curve(torch.from_numpy(t)).numpy()
    assert spiral_distance(on_curve) < 1e-4
    for offset in (0.01, 0.05):
        assert spiral_distance(on_curve + offset * normals(t)) == pytest.approx(offset, abs=1e-4)


def test_spiral_coverage_ks() -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(SPIRAL_T_MIN, SPIRAL_T_MAX, 2000)
    assert spiral_coverage_ks(spiral_curve(torch.from_numpy(t))) < 0.04
    half = rng.uniform(SPIRAL_T_MIN, (SPIRAL_T_MIN + SPIRAL_T_MAX) / 2, 2000)
    assert spiral_coverage_ks(spiral_curve(torch.from_numpy(half))) == pytest.approx(0.5, abs=0.03)
    real = load_dataset("spiral").x[:2000]
    assert spiral_distance(real) < 1e-4 and spiral_coverage_ks(real) < 0.04
    assert ks_uniform(np.full(10, 0.5)) == pytest.approx(0.5)


def test_nearest_neighbours_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    train, samples = torch.rand(50, 3, 4, 4, generator=g), torch.rand(20, 3, 4, 4, generator=g)
    samples[0] = train[7]
    dist, index = nearest_neighbours(samples, train, chunk=7)
    brute = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
    assert np.allclose(dist, brute.min(1).values.numpy(), atol=1e-6)
    assert index.tolist() == brute.argmin(1).tolist() and index[0] == 7 and dist[0] < 1e-6
    assert np.array_equal(nearest_neighbour_distances(samples, train), dist)


def test_nearest_neighbours_with_mirror_images() -> None:
    train = torch.arange(2 * 1 * 2 * 3, dtype=torch.float64).view(2, 1, 2, 3) ** 2
    mirrored = train[1:].flip(-1)
    assert nearest_neighbour_distances(mirrored, train)[0] > 1
    dist, index = nearest_neighbours(mirrored, train, hflip=True)
    assert dist[0] < 1e-6 and index[0] == 1


def test_train_self_nn_excludes_self_duplicates_and_own_mirror() -> None:
    a = torch.tensor([[[[0.0, 1.0, 3.0]]]])  # [1, 1, 1, 3], asymmetric
    train = torch.cat([a, a, a + 10, a.flip(-1) + 0.5])  # a duplicate, a far one, a near-mirror
    plain = train_self_nn_distances(train, chunk=3)
    assert plain[0] == pytest.approx(plain[1]) and plain[0] > 0  # the duplicate does not count
    assert plain[0] == pytest.approx(np.linalg.norm(np.array([0, 1, 3]) - np.array([3.5, 1.5, 0.5])))
    flipped = train_self_nn_distances(train, hflip=True)
    assert flipped[0] == pytest.approx(math.sqrt(3 * 0.25))  # a vs mirror of train[3], not vs its own mirror
    assert flipped[2] == pytest.approx(10 * math.sqrt(3), rel=0.2) and np.all(flipped <= plain + 1e-12)


def test_lenet_assets_load() -> None:
    assert WEIGHTS.exists() and STATS.exists()
    model = load_lenet()
    assert isinstance(model, LeNet5) and not model.training
    assert 43_000 < sum(p.numel() for p in model.parameters()) < 45_000
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert model.features(x).shape == (3, FEATURE_DIM) and model(x).shape == (3, 10)
    stats = load_stats()
    assert stats["mu"].shape == (FEATURE_DIM,) and stats["sigma"].shape == (FEATURE_DIM, FEATURE_DIM)
    assert 0 < float(stats["real_vs_real"]) < 5 and float(stats["test_accuracy"]) > 0.97


def test_fld_report_on_noise() -> None:
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    report = fld_report(noise)
    assert set(report) == {"fld", "accuracy", "real_vs_real", "n"}
    assert report["accuracy"] is None and report["n"] == 200 and report["fld"] > 50 * report["real_vs_real"]
    with pytest.raises(ValueError):
        fld_report(torch.zeros(4, 3, 28, 28))


@pytest.mark.skipif(not (cache_dir() / "digits.npz").exists(), reason="no cached digits (fetch digits)")
def test_lenet_on_real_digits() -> None:
    ds = load_dataset("digits")
    idx = torch.randperm(len(ds.x), generator=torch.Generator().manual_seed(0))[:500]
    report = fld_report(ds.x[idx], ds.labels[idx])
    assert report["accuracy"] > 0.95 and report["n"] == 500
    assert report["fld"] < 10 * report["real_vs_real"]  # real digits are close to real statistics
