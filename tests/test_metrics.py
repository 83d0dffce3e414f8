"""Metrics against analytic answers: Fréchet distance, spiral metrics, nearest neighbours, LeNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_core.data.datasets import SPIRAL_T_MAX, SPIRAL_T_MIN, cache_dir, load_dataset, spiral_curve
from diffusion_core.evaluation.lenet import (FEATURE_DIM, STATS, WEIGHTS, LeNet5, asset_paths, load_lenet, load_stats,
                                  write_section)
from diffusion_core.evaluation.frechet import feature_statistics, frechet_distance
from diffusion_core.evaluation.lenet import fld_report
from diffusion_core.evaluation.metrics import COPY_AGREEMENT, closest_by_colour, closest_by_lines, colour_agreement, ks_uniform, nearest_neighbour_distances, nearest_neighbours, spiral_coverage_ks, spiral_distance


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


def square(colour, top=2, left=2, size=4, canvas=8) -> np.ndarray:
    """A uint8 [1, canvas, canvas, 3] white image with one size x size square of `colour`."""
    image = np.full((1, canvas, canvas, 3), 255, dtype=np.uint8)
    image[0, top:top + size, left:left + size] = colour
    return image


def test_colour_agreement_is_the_share_of_both_figures_drawn_in_the_same_colours() -> None:
    red = square((200, 30, 30))
    spotted = red.copy()
    spotted[0, 2, 2:5] = (30, 30, 200)  # 3 of the 16 pixels blue
    assert colour_agreement(red, red).item() == 1
    assert colour_agreement(red, spotted).item() == pytest.approx(13 / 16)
    assert colour_agreement(red, square((215, 45, 45))).item() == 1  # 15 of 255 apart: within the tolerance
    assert colour_agreement(red, square((216, 30, 30))).item() == 0
    assert colour_agreement(red, square((200, 30, 30), left=4)).item() == pytest.approx(8 / 24)  # half overlaps
    blank = np.full_like(red, 255)
    assert colour_agreement(red, blank).item() == 0 and colour_agreement(blank, blank).item() == 0
    pair = colour_agreement(np.stack([red, spotted])[:, None, 0], np.concatenate([red, spotted])[None])
    assert pair.shape == (2, 2) and pair[0, 1] == pair[1, 0] == pytest.approx(13 / 16)


def test_closest_by_colour_finds_a_mirrored_copy_among_its_l2_candidates() -> None:
    arrow = square((200, 30, 30), left=1)  # off centre: its mirror image is another image
    shifted = np.clip(arrow.astype(int) + 17, 0, 255).astype(np.uint8)  # nearest in L2, agrees nowhere in colour
    spotted = arrow.copy()
    spotted[0, 2:4, 1] = (0, 0, 0)  # two pixels black: farther in L2, agrees on 14 of 16
    train = np.concatenate([shifted, spotted[:, :, ::-1]])  # the copy is stored mirrored
    best, index = closest_by_colour(arrow, train, candidates=4)
    assert index[0] == 1 and best[0] == pytest.approx(14 / 16) and best[0] >= COPY_AGREEMENT
    best, index = closest_by_colour(arrow, train, candidates=1)  # only the L2-nearest image is checked
    assert index[0] == 0 and best[0] == 0
    with_itself = np.concatenate([train, arrow[:, :, ::-1]])  # the sample itself, mirrored
    assert closest_by_colour(arrow, with_itself)[1][0] == 2
    best, index = closest_by_colour(arrow, with_itself, others_only=True)  # itself does not count
    assert index[0] == 1 and best[0] == pytest.approx(14 / 16)


def outlined(fill, left=1) -> np.ndarray:
    """A uint8 [1, 10, 10, 3] white image: a 6 x 6 square with a black 1-pixel outline (20 pixels) around `fill`."""
    image = square((0, 0, 0), top=2, left=left, size=6, canvas=10)
    image[0, 3:7, left + 1:left + 5] = fill
    return image


def test_closest_by_lines_sees_a_recoloured_copy_of_a_drawing_that_colour_agreement_does_not() -> None:
    drawing = outlined((200, 30, 30))
    recoloured = outlined((30, 30, 200))[:, :, ::-1]  # same outline, other colours, stored mirrored
    train = np.concatenate([outlined((200, 30, 30), left=2), recoloured])
    agreement = colour_agreement(drawing, recoloured[:, :, ::-1]).item()
    assert agreement == pytest.approx(20 / 36) and agreement < COPY_AGREEMENT  # the colour rule misses it
    best, index = closest_by_lines(drawing, train)
    assert index[0] == 1 and best[0] == 1
    assert closest_by_lines(drawing, train, skip=np.array([[False, True]]))[0][0] == pytest.approx(1 / 3)
    best, index = closest_by_lines(drawing, train[:1])  # the outline one pixel to the right: 10 shared of 30
    assert index[0] == 0 and best[0] == pytest.approx(1 / 3)


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


def test_fashion_lenet_assets_load_and_an_unknown_dataset_is_refused() -> None:
    weights, stats_file = asset_paths("fashion")
    assert (weights, stats_file) != (WEIGHTS, STATS) and weights.exists() and stats_file.exists()
    model, stats = load_lenet(weights), load_stats(stats_file)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in load_lenet().parameters())
    assert 0 < float(stats["real_vs_real"]) < 5 and float(stats["test_accuracy"]) > 0.85
    with pytest.raises(ValueError, match="no LeNet for dataset 'pokemon'"):
        asset_paths("pokemon")


@pytest.mark.skipif(not all((cache_dir() / f"{name}.npz").exists() for name in ("digits", "fashion")),
                    reason="needs the cached digits and fashion (fetch digits, fetch fashion)")
def test_each_lenet_scores_its_own_real_images_close_and_the_other_datasets_far() -> None:
    g = torch.Generator().manual_seed(0)
    data = {name: load_dataset(name) for name in ("digits", "fashion")}
    picks = {name: torch.randperm(len(ds.x), generator=g)[:1000] for name, ds in data.items()}
    for name, other in (("digits", "fashion"), ("fashion", "digits")):
        own = fld_report(data[name].x[picks[name]], data[name].labels[picks[name]], name)
        assert own["accuracy"] > 0.85 and own["fld"] < 5 * own["real_vs_real"]
        foreign = fld_report(data[other].x[picks[other]], None, name)
        assert foreign["fld"] > 20 * own["fld"]


def test_write_section_replaces_its_own_section_and_keeps_the_others(tmp_path) -> None:
    readme = tmp_path / "README.md"
    write_section(readme, "A", "first")
    write_section(readme, "B", "second")
    write_section(readme, "A", "again")
    text = readme.read_text()
    assert text.count("## A") == 1 and "again" in text and "first" not in text and "second" in text
    assert text.index("## A") < text.index("## B") and text.startswith("# Reference assets")


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


def test_the_coherence_benchmarks_bilateral_floor_smooths_flat_colour_and_keeps_edges() -> None:
    from benchmarks.pokemon_coherence import FILTER, bilateral
    g = torch.Generator().manual_seed(0)
    edge = torch.full((2, 3, 24, 24), -0.6)
    edge[..., 12:] = 0.7  # two flat colours with a sharp edge between them
    assert torch.allclose(bilateral(edge, 0.05, **FILTER), edge, atol=1e-6)  # nothing to average across the edge
    eps = torch.randn(edge.shape, generator=g)
    smoothed = bilateral(edge + 0.05 * eps, 0.05, **FILTER)
    residual = (smoothed - edge).pow(2).mean().sqrt()
    assert residual < 0.05 / 3  # over 7 x 7 neighbours of one colour, most of the noise averages out


def test_the_gaussian_baseline_draws_each_class_from_its_latents_mean_and_covariance() -> None:
    """benchmarks/pokemon_gaussian.py: the per-class Gaussian's samples have the class latents' mean and covariance
    (a rank-deficient one: fewer latents than dimensions), and each sample is drawn from its own label's Gaussian."""
    from benchmarks.pokemon_gaussian import class_gaussians, gaussian_latents
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(2, 3, 12, generator=g)  # each class's latents span 3 of the 12 dimensions
    z = torch.cat([torch.randn(5, 3, generator=g) @ basis[c] + 10 * c for c in range(2)]).reshape(10, 3, 2, 2)
    labels = torch.tensor([0] * 5 + [1] * 5)
    gaussians = class_gaussians(z, labels, 2)
    for c in range(2):
        mu, root = gaussians[c]
        flat = z[labels == c].flatten(1).double()
        torch.testing.assert_close(root @ root.T, torch.cov(flat.T))
        torch.testing.assert_close(mu, flat.mean(0))
    draws = gaussian_latents(gaussians, torch.tensor([1] * 20000), (3, 2, 2), seed=1).flatten(1).double()
    torch.testing.assert_close(draws.mean(0), gaussians[1][0], atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), gaussians[1][1] @ gaussians[1][1].T, atol=0.1, rtol=0.05)


def test_the_two_sample_test_tells_different_sets_apart_and_not_a_set_from_itself() -> None:
    """benchmarks/pokemon_c2st.py: held-out accuracy 1 for images that differ (a bright square against a dark one, in
    noise), about 0.5 for two sets drawn alike (the critic cannot learn what is not there)."""
    from benchmarks.pokemon_c2st import two_sample_accuracy
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    a, b, c = (0.3 * torch.randn(3, 100, 3, 16, 16, generator=g)).unbind()
    a[..., 4:12, 4:12] += 0.8
    b[..., 4:12, 4:12] -= 0.8
    c[..., 4:12, 4:12] += 0.8  # drawn as a is
    assert two_sample_accuracy(a, b, seed=0, epochs=8) == 1.0
    assert 0.3 <= two_sample_accuracy(a, c, seed=0, epochs=8) <= 0.7


def test_the_two_sample_tests_shapes_keep_the_figure_and_its_dark_pixels_only() -> None:
    """--shapes: a red square with a black outline on white becomes the square (channel 0), its outline (1) and its
    inside (2), whatever the fill's colour."""
    from benchmarks.pokemon_c2st import shapes
    x = torch.ones(2, 3, 12, 12)
    x[:, :, 2:10, 2:10] = -1.0  # black outline ...
    x[0, :, 3:9, 3:9] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]  # ... filled red
    x[1, :, 3:9, 3:9] = torch.tensor([-1.0, -1.0, 1.0])[:, None, None]  # ... filled blue
    s = shapes(x)
    square, inside = torch.zeros(12, 12, dtype=torch.bool), torch.zeros(12, 12, dtype=torch.bool)
    square[2:10, 2:10], inside[3:9, 3:9] = True, True
    for channel, mask in enumerate([square, square & ~inside, inside]):
        torch.testing.assert_close(s[:, channel], (mask.float() * 2 - 1).expand(2, 12, 12))


def test_the_family_subsets_keep_families_whole_and_nest() -> None:
    """benchmarks/pokemon_subset.py: a family goes whole (its forms and shiny twins with it), the subset for every 16
    is inside the one for every 4 with the same rest, and a rest outside 0..every - 1 is refused."""
    import zlib

    from benchmarks.pokemon_subset import family_subset
    names = [f"mon{i}{suffix}" for i in range(200) for suffix in ("", "-shiny", "-galar")]
    four, sixteen = set(family_subset(names, 4, 3)), set(family_subset(names, 16, 3))
    assert sixteen < four and 0 < len(sixteen) and len(four) < len(names)
    assert all(zlib.crc32(f"mon{i // 3}".encode()) % 4 == 3 for i in four)
    assert all({i - i % 3, i - i % 3 + 1, i - i % 3 + 2} <= four for i in four)
    with pytest.raises(ValueError, match="rest must be in 0..3"):
        family_subset(names, 4, 4)


def test_the_overlap_rows_are_the_least_the_median_and_the_most_overlapping_samples() -> None:
    """benchmarks/pokemon_by_overlap.py: three rows of `show` indices, by IoU, and a `show` that cannot fill three
    disjoint rows is refused."""
    from benchmarks.pokemon_by_overlap import rows_by_overlap
    iou = np.random.default_rng(0).permutation(np.arange(30) / 30)
    least, middle, most = (sorted(np.round(iou[r] * 30).astype(int).tolist()) for r in rows_by_overlap(iou, 4))
    assert (least, middle, most) == ([0, 1, 2, 3], [13, 14, 15, 16], [26, 27, 28, 29])
    with pytest.raises(ValueError, match="show must be in 1..10"):
        rows_by_overlap(iou, 11)


def test_the_decoder_probes_shift_moves_the_picture_and_fills_in_the_paper() -> None:
    """benchmarks/latent_decoder_probes.py: shifted(x, dx, dy, fill) moves x right by dx and down by dy, and the
    uncovered rows and columns come from fill."""
    from benchmarks.latent_decoder_probes import shifted
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = shifted(x, 1, -2, torch.full((1, 1, 4, 4), -1.0))
    expected = torch.full((1, 1, 4, 4), -1.0)
    expected[..., :2, 1:] = x[..., 2:, :3]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(shifted(x, 0, 0, torch.zeros(1, 1, 4, 4)), x)


def test_the_guidance_critic_learns_to_tell_two_latent_sets_apart_at_low_noise() -> None:
    """benchmarks/pokemon_discriminator_guidance.py: trained on latents of +1 (real) against -1 (sampled), the critic's
    loss falls far below a coin toss's log 2 and it tells them apart at low noise, less well at the noisiest fifth
    (where sqrt(alpha_bar) falls from 0.31 to 0)."""
    from types import SimpleNamespace

    from benchmarks.pokemon_discriminator_guidance import Critic, heldout_accuracy, train_critic
    from diffusion_core.schedules import make_schedule

    torch.manual_seed(0)
    torch.set_num_threads(1)
    pipe = SimpleNamespace(schedule=make_schedule("cosine"))
    real = (torch.ones(64, 4, 8, 8), torch.zeros(64, dtype=torch.long))
    fake = (-torch.ones(64, 4, 8, 8), torch.zeros(64, dtype=torch.long))
    critic = Critic(4, 8, classes=1, width=16)
    losses = train_critic(critic, real, fake, pipe, steps=200, batch=32, seed=0)
    assert losses[-1] < 0.1  # a coin toss scores log 2 = 0.69
    rows = heldout_accuracy(critic.eval(), real, fake, pipe, seed=1)
    assert [r["t"] for r in rows] == [[0, 199], [200, 399], [400, 599], [600, 799], [800, 999]]
    assert rows[0]["accuracy"] > 0.95 and rows[-1]["accuracy"] < rows[0]["accuracy"]


def test_repeats_counts_samples_that_redraw_another_sample_or_its_mirror_image() -> None:
    """benchmarks/pokemon_repel.py: a drawing, its mirror image and an unrelated drawing: the first two redraw each
    other (dark-pixel IoU 1 with a mirror image), the third redraws none; silhouettes are compared the same way."""
    from benchmarks.pokemon_repel import repeats

    images = np.full((3, 16, 16, 3), 255, dtype=np.uint8)
    images[0, 2:12, 1:5] = 0  # an L: a bar and a foot, dark
    images[0, 10:12, 5:9] = 0
    images[1] = images[0, :, ::-1]
    images[2, 3:6, 3:14] = 0  # a bar across, touching the L nowhere
    report = repeats(images)
    assert report["repeats"] == 2
    assert report["repeat_iou_median"] == 1.0 and report["shape_repeat_iou_median"] == 1.0
    assert repeats(images[[0, 2]])["repeats"] == 0


def test_shape_clusters_are_a_fixed_point_of_lloyds_step_numbered_by_size() -> None:
    """benchmarks/pokemon_shape_clusters.py: k-means ends where Lloyd's step leaves it (each point labelled with its
    nearest centre, each centre the mean of its points), numbered largest first; a k outside 1..N is refused; a
    sprite's features are the figure's and the dark pixels' share of each 4 x 4 cell."""
    from benchmarks.pokemon_shape_clusters import kmeans, shape_features
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0)) * torch.tensor([3.0, 2, 1, 1, 0.5])
    for seed in range(3):
        labels, centres = kmeans(x, 6, seed)
        assert torch.equal(labels, torch.cdist(x, centres).argmin(1))
        torch.testing.assert_close(centres, torch.stack([x[labels == k].mean(0) for k in range(6)]))
        sizes = torch.bincount(labels, minlength=6)
        assert (sizes[:-1] >= sizes[1:]).all() and sizes.min() > 0
    with pytest.raises(ValueError, match="k must be in 1..300"):
        kmeans(x, 301, 0)
    image = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    image[0, 0:4, 0:4] = 0  # a black 4 x 4 square in the top-left cell
    image[0, 4:8, 0:4] = (200, 30, 30)  # a red one below it: figure, not dark
    torch.testing.assert_close(shape_features(image), torch.tensor([[1.0, 0, 1, 0, 1.0, 0, 0, 0]]))
