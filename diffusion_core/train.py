"""Train a denoiser (Ho et al. 2020, Algorithm 1) on Hugging Face Accelerate and write a checkpoint folder.

    python -m diffusion_core.train --dataset spiral|digits|pokemon [--config FILE] --out checkpoints/NAME

Runs the same under `accelerate launch --num_processes N -m diffusion_core.train ...` on several GPUs
(or CPU processes). Resumes from OUT/train_state when it exists. The shipped weights are the EMA ones.
"""
from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from .card import hardware_description, render_card
from .checkpoint import save_checkpoint
from .device import default_device
from .data import Dataset, load_dataset, random_hflip, to_uint8
from .diffusion import noisy_batch, training_loss
from .models import build_model, count_parameters
from .pipeline import ModelInfo, Pipeline, checkpoint_config
from .train_config import TrainConfig, load_train_config
from .train_state import load_train_state, save_train_state
from .viz import image_grid, points_image, save_png


def model_info(config: TrainConfig, data: Dataset) -> ModelInfo:
    """The ModelInfo a checkpoint trained on `data` carries."""
    return ModelInfo(dataset=config.dataset, data_shape=tuple(data.x.shape[1:]), class_names=data.class_names,
                     diffusion=config.diffusion, sampling=config.sampling)


def batch_indices(n: int, step: int, batch: int, seed: int, rank: int, world: int) -> torch.Tensor:
    """Indices of this process's micro-batch `step`: a fresh permutation per epoch, sharded over processes."""
    per_epoch = n // (batch * world)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[rank::world][k * batch:(k + 1) * batch]


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """theta_ema <- decay theta_ema + (1 - decay) theta."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1 - decay)


def preview(ema: torch.nn.Module, info: ModelInfo, path: Path) -> None:
    """Write a grid of EMA samples (one row per class when conditional) to `path`."""
    pipe = Pipeline(copy.deepcopy(ema), info, device=next(ema.parameters()).device)
    if info.is_image:
        n = 8 * max(info.num_classes, 1) if info.num_classes else 64
        x, _ = pipe.generate(n, seed=0, label="all" if info.num_classes else None, sampler="ddim", steps=20)
        save_png(image_grid(to_uint8(x.cpu()), nrow=8, scale=2), path)
    else:
        x, _ = pipe.generate(2000, seed=0, sampler="ddim", steps=100)
        save_png(points_image(x.cpu().numpy()), path)


def train(config: TrainConfig, out: Path, command: str, max_steps: int | None = None) -> Path:
    """Run (or resume) training; return the checkpoint folder."""
    mp = config.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # cpu=True where there is no accelerator, so that `accelerate launch --multi_gpu` runs CPU processes over gloo
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=config.grad_accum,
                      cpu=default_device().type == "cpu")
    set_seed(config.seed)
    data = load_dataset(config.dataset)
    info = model_info(config, data)
    model = build_model(config.model)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warm = lambda s: min(1.0, (s + 1) / max(config.warmup_steps, 1))  # noqa: E731
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, warm)
    gen = torch.Generator().manual_seed(config.seed * 7919 + acc.process_index)
    state = load_train_state(out)
    start, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        start, elapsed = state["step"], state.get("seconds", 0.0)
        lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, warm, last_epoch=start - 1)
        acc.print(f"resuming {out} from step {start}")
    model, opt = acc.prepare(model, opt)
    ema.to(acc.device)
    schedule = config.diffusion.make_schedule().to(acc.device)
    null = info.num_classes
    total = config.steps if max_steps is None else min(config.steps, max_steps)
    acc.print(f"{config.dataset}: {len(data.x)} examples {tuple(data.x.shape[1:])}, "
              f"{count_parameters(acc.unwrap_model(model)) / 1e6:.3f} M parameters, {acc.num_processes} process(es) on {acc.device}, "
              f"mixed precision {mp}")
    bar = tqdm(range(start, total), initial=start, total=total, disable=not acc.is_main_process, unit="step",
               mininterval=2.0)
    t0, loss_avg = time.time(), None
    for step in bar:
        for micro in range(config.grad_accum):
            idx = batch_indices(len(data.x), step * config.grad_accum + micro, config.batch_size, config.seed,
                                acc.process_index, acc.num_processes)
            x0 = data.x[idx]
            if config.hflip:
                x0 = random_hflip(x0, gen)
            x0 = x0.to(acc.device)
            x_t, t, eps = noisy_batch(schedule, x0, gen)
            labels = None
            if data.labels is not None and null:
                labels = data.labels[idx].clone()
                labels[torch.rand(len(idx), generator=gen) < config.label_dropout] = null
                labels = labels.to(acc.device)
            with acc.accumulate(model), acc.autocast():
                loss = training_loss(model(x_t, t, labels).float(), eps, config.diffusion.loss)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                opt.zero_grad()
        lr_sched.step()
        ema_update(ema, acc.unwrap_model(model), min(config.ema_decay, (1 + step) / (10 + step)))
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        done = step + 1
        rate = (done - start) * config.batch_size * config.grad_accum * acc.num_processes / (time.time() - t0)
        bar.set_postfix(loss=f"{loss_avg:.4f}", img_s=f"{rate:.0f}", refresh=False)
        if acc.is_main_process and (done % config.save_every == 0 or done == total):
            save_train_state(out, done, acc.unwrap_model(model).state_dict(), ema.state_dict(), opt.state_dict(),
                             gen.get_state(), {"seconds": elapsed + time.time() - t0, "loss": loss_avg})
        if acc.is_main_process and (done % config.sample_every == 0 or done == total):
            (out / "samples").mkdir(parents=True, exist_ok=True)
            preview(ema, info, out / "samples" / f"step_{done:06d}.png")
    acc.wait_for_everyone()
    if acc.is_main_process and total == config.steps:
        seconds = elapsed + time.time() - t0
        training = {"command": command, "seconds": round(seconds, 1), "hardware": hardware_description(acc),
                    "steps": config.steps, "final_loss": loss_avg, "config": config.to_dict(),
                    "torch": torch.__version__, "processes": acc.num_processes}
        cfg = checkpoint_config(config.model, info, training)
        save_checkpoint(out, {k: v.cpu() for k, v in ema.state_dict().items()}, cfg, render_card(cfg))
        acc.print(f"wrote {out} ({seconds / 60:.1f} min)")
    acc.end_training()
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m diffusion_core.train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=["spiral", "digits", "pokemon", "fashion"])
    p.add_argument("--config", default=None, help="JSON file overriding fields of the dataset's preset")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder, e.g. checkpoints/digits")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides the preset)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--stop-after", type=int, default=None, help="stop at this step (resume later)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = "digits" if args.dataset == "fashion" else args.dataset
    config = load_train_config(preset, args.config, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    if args.dataset == "fashion":
        config = config.__class__(**{**config.__dict__, "dataset": "fashion"})
    command = "python -m diffusion_core.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    train(config, args.out, command, args.stop_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
