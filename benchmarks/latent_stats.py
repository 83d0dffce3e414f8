"""Do a latent model's samples sit where its decoder expects latents? Per-channel means and standard deviations of
sampled latents beside the encoded training sprites' (the last training run's data options), over all cells, the
centre cell and a corner (paper) cell.

    .venv/bin/python -m benchmarks.latent_stats [--checkpoint checkpoints/pokemon_latent] [--num 200] [--seed 0]

Samples at the checkpoint's default settings, labels spread over the colour classes.
"""
from __future__ import annotations

import argparse
import json

import torch

from diffusion_core.data.datasets import Dataset, load_dataset
from diffusion_core.files.checkpoint import load_checkpoint
from diffusion_core.pipeline import Pipeline


def channel_stats(z: torch.Tensor) -> dict:
    """Per-channel mean and std of latents z [n, c, h, w]: over every cell, and at the centre and a corner cell."""
    h, w = z.shape[-2:]
    r = lambda t: [round(v, 3) for v in t.tolist()]  # noqa: E731
    return {"mean": r(z.mean((0, 2, 3))), "std": r(z.std((0, 2, 3))),
            "centre_std": r(z[:, :, h // 2, w // 2].std(0)), "corner_std": r(z[:, :, 0, 0].std(0))}


def latent_run(checkpoint: str) -> tuple[Pipeline, Dataset, dict]:
    """A latent checkpoint's pipeline, the sprites its last training run used (its data options) and that run's
    training config."""
    ckpt = load_checkpoint(checkpoint)
    pipe = Pipeline.from_checkpoint(ckpt)
    if pipe.autoencoder is None:
        raise SystemExit(f"{checkpoint} is not a latent model")
    trained = ckpt.config["training"]["config"]
    data = load_dataset(pipe.info.dataset, max_per_family=trained["max_per_family"],
                        older_drawings=trained["older_drawings"], max_per_drawing=trained["max_per_drawing"])
    return pipe, data, trained


def training_latents(pipe: Pipeline, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents, labels) of the sprites `data` and their mirror images: the examples a latent run trains on."""
    return torch.cat([pipe.encode(data.x), pipe.encode(data.x.flip(-1))]), data.labels.repeat(2)


def draw(n: int, num: int, seed: int) -> torch.Tensor:
    """Indices of `num` of n examples, drawn at random from `seed` (all n, shuffled, when num >= n)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon_latent")
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe, data, _ = latent_run(args.checkpoint)
    pick = draw(len(data.x), args.num, args.seed)
    data_z = pipe.encode(data.x[pick])
    out = None
    for out in pipe.run(args.num, seed=args.seed, label="all"):
        pass
    data_s, sample_s = channel_stats(data_z), channel_stats(out.x_t)
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num, "encoded_sprites": data_s,
                      "samples": sample_s,
                      "largest_gap": {k: round(max(abs(a - b) for a, b in zip(data_s[k], sample_s[k])), 3)
                                      for k in data_s}}, indent=1))


if __name__ == "__main__":
    main()
