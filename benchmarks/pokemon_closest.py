"""Near copies: the Pokémon samples whose drawing (dark pixels: outline, lines, black areas) overlaps one sprite's
most, drawn beside that sprite, their colour agreement, and both measures on the sprites themselves.

    .venv/bin/python -m benchmarks.pokemon_closest [--checkpoint checkpoints/pokemon] [--num 500] [--show 8]
                                                   [--out docs/pokemon_closest.png]

The samples are the evaluation's (`evaluate --suite`: `num` at the default settings, one row per class, seed 1234);
against all 2,705 gen8 sprites, the 790 older gen7x drawings and their mirror images: `metrics.closest_by_lines`
(IoU of dark pixels, a copy at >= LINE_COPY_IOU) and `metrics.closest_by_colour` (share of both figures in the same
colours, >= COPY_AGREEMENT).
Prints JSON; the picture shows the `show` samples with the highest line IoU on top, their sprites below. The
sprites' own baseline: how many agree in colour with another form, and the best line IoU with another family.
Sampling takes most of its time: about 5 minutes on 2 Xeon cores, 13–18 on 2 AMD EPYC cores.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import torch
from PIL import Image

from diffusion_core.data.datasets import load_dataset, to_uint8
from diffusion_core.data.sprites import family
from diffusion_core.evaluate import EVAL_SEED, pokemon_samples, suite
from diffusion_core.evaluation.metrics import COPY_AGREEMENT, LINE_COPY_IOU, closest_by_colour, closest_by_lines
from diffusion_core.files.hub import resolve_checkpoint
from diffusion_core.files.pictures import image_grid
from diffusion_core.pipeline import Pipeline


def self_agreement(images: np.ndarray, names: tuple[str, ...]) -> dict:
    """How many sprites agree >= COPY_AGREEMENT in colour with another (not identical) sprite, by family; and the
    best dark-pixel IoU of each sprite with one of ANOTHER family (what a drawing copy must beat)."""
    best, _ = closest_by_colour(images, images, others_only=True)
    copies = [family(n) for n, b in zip(names, best) if b >= COPY_AGREEMENT]
    families = np.array([family(n) for n in names])
    lines, index = closest_by_lines(images, images, skip=families[:, None] == families[None])
    twins = sorted({f"{names[i]} ~ {names[index[i]]}" for i in np.nonzero(lines >= LINE_COPY_IOU)[0]})
    return {"n": len(images), "colour_near_copy_of_another": len(copies),
            "families": dict(Counter(copies).most_common(10)),
            "other_family_line_iou_percentiles_50_90_99": np.percentile(lines, [50, 90, 99]).round(3).tolist(),
            "other_family_line_copies": twins}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="checkpoints/pokemon")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--show", type=int, default=8)
    p.add_argument("--out", default="docs/pokemon_closest.png")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = resolve_checkpoint(args.checkpoint)  # loaded once: the weights for sampling, the config for the data
    pipe = Pipeline.from_checkpoint(ckpt)
    x, _ = pokemon_samples(pipe, args.num, EVAL_SEED, **suite(pipe)["ddim-50 default guidance"])  # the card's
    sprites = load_dataset("pokemon", older_drawings=True)
    recorded = ckpt.config["training"]["config"]
    choices = {k: recorded.get(k, 0) for k in ("max_per_family", "older_drawings", "max_per_drawing")}
    trained = load_dataset("pokemon", **choices)
    images, train = to_uint8(x), to_uint8(sprites.x)
    agreement, _ = closest_by_colour(images, train)
    lines, index = closest_by_lines(images, train)
    order = np.argsort(-lines, kind="stable")[:args.show]
    rows = [{"sample": int(i), "line_iou": round(float(lines[i]), 3), "sprite": sprites.item_names[index[i]],
             "trained_on": sprites.item_names[index[i]] in trained.item_names,
             "colour_agreement": round(float(agreement[i]), 3)} for i in order]
    Image.fromarray(image_grid(np.concatenate([images[order], train[index[order]]]), nrow=len(order), scale=3)
                    ).save(args.out)
    print(json.dumps({"checkpoint": args.checkpoint, "num": args.num,
                      "colour_copies": int((agreement >= COPY_AGREEMENT).sum()), "copy_agreement": COPY_AGREEMENT,
                      "colour_agreement_max": round(float(agreement.max()), 3),
                      "line_copies": int((lines >= LINE_COPY_IOU).sum()), "line_copy_iou": LINE_COPY_IOU,
                      "line_iou_percentiles_50_90_99": np.percentile(lines, [50, 90, 99]).round(3).tolist(),
                      "closest_drawings": rows, "picture": args.out,
                      "all_sprites": self_agreement(train, sprites.item_names),
                      f"training_set ({', '.join(f'{k} {v}' for k, v in choices.items())})":
                          self_agreement(to_uint8(trained.x), trained.item_names)},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
