"""The Fréchet distance of two Gaussians fitted to features (Heusel et al. 2017's FID; our FLD uses LeNet-5
features, evaluation/lenet.py)."""
from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def as_float64(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64, unbiased) of features [N, D]."""
    f = as_float64(features)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition, negatives clamped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance of Gaussians: |mu1 − mu2|² + tr(S1 + S2 − 2 (S1 S2)^½) (Dowson & Landau 1982).

    tr (S1 S2)^½ = Σ sqrt(eig(S1^½ S2 S1^½)), a symmetric PSD matrix, so no scipy is needed.
    """
    mu1, mu2 = as_float64(mu1), as_float64(mu2)
    s1, s2 = np.atleast_2d(as_float64(sigma1)), np.atleast_2d(as_float64(sigma2))
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
