"""The training loop (Ho et al. 2020, Algorithm 1) on Hugging Face Accelerate: set a run up, fit it, write the
checkpoint folder. The command line is `diffusion_core.train`. Resumes from OUT/train_state when it exists; the
shipped weights are the EMA ones, in float16. `init_from` starts a new run (fresh optimiser and learning-rate
schedule) from a checkpoint's weights; its card then lists every command of the lineage, in order.
"""
from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from ..data.datasets import Dataset, load_dataset, random_hflip, to_uint8
from ..device import cpu_has_fast_bf16, default_device
from ..diffusion import denoising_loss, noisy_batch
from ..files.card import hardware_description, render_card
from ..files.checkpoint import save_checkpoint
from ..files.pictures import image_grid, points_image, save_png
from ..local_score import PatchBank, local_targets
from ..models import AutoencoderConfig, build_model, count_parameters, model_config_to_dict
from ..pipeline import ModelInfo, Pipeline, checkpoint_config
from ..schedules import Schedule
from . import autoencoder_stage as ae_stage
from .adversarial import Adversary
from .config import TrainConfig
from .state import STATE_DIR, check_resumable, load_init, load_init_weights, load_train_state, save_train_state


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


def freeze_except(model: torch.nn.Module, prefix: str) -> torch.nn.Module:
    """Freeze every parameter whose name does not start with `prefix` ('' trains them all); `model`."""
    if prefix:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(prefix))
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"train_only {prefix!r} names no parameter of this model")
    return model


def preview_conditions(data: Dataset, labels: torch.Tensor | None, n: int) -> torch.Tensor:
    """Image conditions for a preview of n samples asked for `labels`: a label's k-th sample gets the condition of
    that label's k-th training example (any examples when unlabelled)."""
    if labels is None:
        return data.cond[:n]
    picks, taken = [], Counter()
    for label in labels.tolist():
        hits = (data.labels == label).nonzero().flatten()
        picks.append(int(hits[taken[label] % len(hits)]) if len(hits) else 0)
        taken[label] += 1
    return data.cond[picks]


def preview(run: Run, path: Path) -> None:
    """Write a grid of EMA samples (one row per class when conditional) to `path`; for an autoencoder, held-out
    sprites over their reconstructions."""
    ema, info = run.ema, run.info
    if run.heldout is not None:
        return ae_stage.preview_reconstructions(ema, run.heldout, path)
    # ema is frozen already: nothing to copy
    pipe = Pipeline(ema, info, device=next(ema.parameters()).device, autoencoder=run.autoencoder)
    if info.is_image:
        n = 8 * max(info.num_classes, 1) if info.num_classes else 64
        label = "all" if info.num_classes else None
        cond = None if run.data.cond is None else preview_conditions(run.data, pipe.labels_for(n, label), n)
        x, _ = pipe.generate(n, seed=0, label=label, sampler="ddim", steps=20, cond=cond)
        save_png(image_grid(to_uint8(x.cpu()), nrow=8, scale=2), path)
    else:
        sampler = "euler" if info.diffusion.prediction == "flow" else "ddim"
        x, _ = pipe.generate(2000, seed=0, sampler=sampler, steps=100)
        save_png(points_image(x.cpu().numpy()), path)


@dataclass
class Run:
    """The live objects of one training process."""

    acc: Accelerator
    model: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    lr_sched: torch.optim.lr_scheduler.LambdaLR
    gen: torch.Generator  # noise, timesteps, label dropout and flips of this process
    schedule: Schedule
    data: Dataset
    info: ModelInfo
    start: int = 0  # step to start from (resumed runs)
    elapsed: float = 0.0  # seconds spent in earlier sessions of this run
    loss: float | None = None  # running loss when the run was saved
    init_from: str | None = None  # checkpoint whose EMA weights this run started from
    parent: dict | None = None  # that checkpoint's training record
    heldout: Dataset | None = None  # an autoencoder's held-out sprites (autoencoder_stage.split_heldout)
    autoencoder: torch.nn.Module | None = None  # a latent denoiser's frozen autoencoder
    adversary: Adversary | None = None  # an autoencoder's patch discriminator (config.disc_weight > 0)
    local_bank: PatchBank | None = None  # the training latents whose LS machine gives the targets (local_target)


def clear_step_grids(out: Path, say: Callable[[str], None]) -> None:
    """A fresh run's sample grids replace the last run's (a parent's stay in git history): samples/ never mixes
    two runs' step_NNNNNN.png."""
    old = sorted((Path(out) / "samples").glob("step_*.png"))
    for f in old:
        f.unlink()
    if old:
        say(f"removed {len(old)} sample grids of the previous run from {Path(out) / 'samples'}")


def make_accelerator(config: TrainConfig) -> Accelerator:
    """The Accelerator for a run: mixed precision "auto" is bf16 on a GPU that has it, else none."""
    mp = config.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Accelerate keeps one process-wide state and refuses a second Accelerator with other settings: a run after
    # another in the same process (a notebook) starts it afresh; the process group (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    # cpu=True where there is no accelerator, so that `accelerate launch --multi_gpu` runs CPU processes over gloo
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=config.grad_accum,
                      cpu=default_device().type == "cpu")
    if mp == "bf16" and acc.device.type == "cpu" and cpu_has_fast_bf16() is False:
        acc.print("warning: this CPU has no AVX512-BF16 or AMX, so bf16 autocast is emulated and slower than fp32: "
                  'set "mixed_precision": "no" in the config for speed (the results differ a little)')
    return acc


def setup(config: TrainConfig, out: Path, init_from: str | None = None) -> Run:
    """Build model, EMA, optimiser and data; restore OUT/train_state if present, else start from the weights of
    checkpoint `init_from` if given; prepare with Accelerate."""
    # first: a dataset not fetched yet fails before anything starts
    data = load_dataset(config.dataset, max_per_family=config.max_per_family, older_drawings=config.older_drawings,
                        max_per_drawing=config.max_per_drawing)
    heldout, autoencoder = None, None
    if config.autoencoder:  # latent diffusion: the frozen encoder's latents, computed once
        autoencoder, ae_record = ae_stage.load_autoencoder(config.autoencoder)
        autoencoder.training_record = ae_record  # written into the latent checkpoint beside its own record
        data = ae_stage.encode_dataset(autoencoder, data, mirrored=config.hflip, condition=config.condition)
    given, takes = 0 if data.cond is None else data.cond.shape[1], getattr(config.model, "cond_channels", 0)
    if takes != given:
        raise ValueError(f"the model takes {takes} condition channels and the data gives {given} "
                         f"(condition {config.condition!r}): set the model's cond_channels to {given}")
    if isinstance(config.model, AutoencoderConfig):
        if config.holdout_every < 2:
            raise ValueError("an autoencoder is measured on held-out sprites: set holdout_every >= 2")
        data, heldout = ae_stage.split_heldout(data, config.holdout_every)
    acc = make_accelerator(config)
    set_seed(config.seed)
    model = freeze_except(build_model(config.model), config.train_only)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                            weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed * 7919 + acc.process_index)
    start, elapsed, loss, parent = 0, 0.0, None, None
    state = check_resumable(load_train_state(out), out, init_from, config.to_dict(), acc.print)
    if state is None:  # a fresh run: from scratch, or from checkpoint init_from's weights
        if init_from is not None:
            latents = None if autoencoder is None else model_config_to_dict(autoencoder.config)
            weights, parent = load_init(init_from, model_config_to_dict(config.model), latents)
            load_init_weights(model, weights)
            load_init_weights(ema, weights)
        elif hasattr(model, "init_from_data"):  # a mixture starts at data points, as k-means does
            draws = torch.Generator().manual_seed(config.seed)  # its own: the run's `gen` stays as every run's
            model.init_from_data(data.x, data.labels, draws, config.diffusion.make_schedule())
            ema.load_state_dict(model.state_dict())
        if acc.is_main_process:  # after load_init: a bad --init-from leaves the folder as it was
            clear_step_grids(out, acc.print)
    else:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        start, elapsed, loss, parent = state["step"], state.get("seconds", 0.0), state.get("loss"), state.get("parent")
        acc.print(f"resuming {out} from step {start}")
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, config.lr_factor, last_epoch=start - 1)
    adversary = Adversary(config, acc.device) if heldout is not None and config.disc_weight > 0 else None
    if adversary is not None and state is not None and not adversary.load(Path(out) / STATE_DIR) and start > 0:
        acc.print(f"no discriminator state in {Path(out) / STATE_DIR}: the discriminator restarts")
    model, opt = acc.prepare(model, opt)
    acc.print(f"{config.dataset}: {len(data.x)} examples {tuple(data.x.shape[1:])}, "
              f"{count_parameters(acc.unwrap_model(model)) / 1e6:.3f} M parameters, "
              f"{acc.num_processes} process(es) on {acc.device}, mixed precision {acc.mixed_precision}")
    return Run(acc, model, ema.to(acc.device), opt, lr_sched, gen, config.diffusion.make_schedule().to(acc.device),
               data, model_info(config, data), start, elapsed, loss, init_from, parent, heldout, autoencoder,
               adversary, PatchBank(data.x.to(acc.device), data.labels) if config.local_target else None)


def micro_batch(run: Run, config: TrainConfig, micro_step: int):
    """(idx, x0) of this process's micro-batch, mirrored at random when the config says so."""
    acc, data = run.acc, run.data
    idx = batch_indices(len(data.x), micro_step, config.batch_size, config.seed, acc.process_index, acc.num_processes)
    flip = config.hflip and run.autoencoder is None  # latents: the mirror images are examples of their own
    return idx, (random_hflip(data.x[idx], run.gen) if flip else data.x[idx]).to(acc.device)


def noisy_micro_batch(run: Run, config: TrainConfig, micro_step: int):
    """(x0, x_t, t, eps, labels, cond) of this process's micro-batch, labels dropped to the null label at random;
    cond the examples' image conditions (None for an unconditioned denoiser)."""
    acc, data = run.acc, run.data
    idx, x0 = micro_batch(run, config, micro_step)
    x_t, t, eps = noisy_batch(run.schedule, x0, run.gen, config.diffusion.prediction, config.coupling)
    labels = None
    if data.labels is not None and run.info.num_classes:
        labels = data.labels[idx].clone()
        labels[torch.rand(len(idx), generator=run.gen) < config.label_dropout] = run.info.num_classes
        labels = labels.to(acc.device)
    cond = None if data.cond is None else data.cond[idx].to(acc.device)
    return x0, x_t, t, eps, labels, cond


def batch_loss(run: Run, config: TrainConfig, micro_step: int) -> torch.Tensor:
    """The loss of a micro-batch: the denoising loss, or an autoencoder's reconstruction loss."""
    if run.heldout is not None:
        return ae_stage.autoencoder_loss(run.model, micro_batch(run, config, micro_step)[1], run.gen, config,
                                         run.adversary, micro_step // config.grad_accum)
    x0, x_t, t, eps, labels, cond = noisy_micro_batch(run, config, micro_step)
    if config.local_target:
        x0, eps = local_targets(run.schedule, x_t, t, labels, run.local_bank, config.local_target,
                                run.info.num_classes)
    output = run.model(x_t, t, labels) if cond is None else run.model(x_t, t, labels, cond=cond)
    return denoising_loss(config.diffusion, run.schedule, output.float(), x0, t, eps)


def train_step(run: Run, config: TrainConfig, step: int) -> float:
    """One optimiser step (grad_accum micro-batches), then the learning-rate and EMA updates; the last loss."""
    acc = run.acc
    for micro in range(config.grad_accum):
        with acc.accumulate(run.model), acc.autocast():
            loss = batch_loss(run, config, step * config.grad_accum + micro)
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(run.model.parameters(), config.grad_clip)
            run.opt.step()
            run.opt.zero_grad()
    if run.adversary is not None:  # then the discriminator, on the last micro-batch's real and reconstructed sprites
        with acc.autocast():
            run.adversary.discriminator_step(step)
    run.lr_sched.step()
    ema_update(run.ema, acc.unwrap_model(run.model), min(config.ema_decay, (1 + step) / (10 + step)))
    return loss.item()


WEIGHTS_DTYPE = torch.float16  # what checkpoints store: half the file of float32


def shipped_weights(ema: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The EMA weights as the checkpoint stores them: WEIGHTS_DTYPE on the CPU. Loading casts them back into the
    float32 model; float16 rounds each weight by at most 2^-11 of itself above 6e-5 (tested on the outputs)."""
    return {k: (v.to(WEIGHTS_DTYPE) if v.is_floating_point() else v).cpu() for k, v in ema.state_dict().items()}


def finish(run: Run, config: TrainConfig, out: Path, command: str, seconds: float, loss: float | None) -> None:
    """Write the checkpoint folder: EMA weights, config.json with the training record, model card."""
    training = {"command": command, "seconds": round(seconds, 1), "hardware": hardware_description(run.acc),
                "steps": config.steps, "examples": len(run.data.x), "final_loss": loss, "config": config.to_dict(),
                "torch": torch.__version__, "processes": run.acc.num_processes,
                "weights_dtype": str(WEIGHTS_DTYPE).removeprefix("torch.")}
    if run.init_from is not None:
        training["init_from"] = {"checkpoint": run.init_from, "training": run.parent}
    model_config = config.model
    if run.heldout is not None:  # the latents' scale, and the held-out sprites' reconstructions, as measured
        model_config, fitted = ae_stage.finish_autoencoder(run.ema, run.data)
        training |= fitted | {"heldout": ae_stage.reconstruction_report(run.ema, run.heldout.x)}
    cfg, weights = checkpoint_config(model_config, run.info, training), shipped_weights(run.ema)
    if run.autoencoder is not None:  # one folder: both parts, both described
        cfg["autoencoder"] = model_config_to_dict(run.autoencoder.config)
        cfg["autoencoder_training"] = run.autoencoder.training_record
        weights = ae_stage.joined_weights(weights, run.autoencoder)
    save_checkpoint(out, weights, cfg, render_card(cfg))
    run.acc.print(f"wrote {out} ({seconds / 60:.1f} min)")


def train(config: TrainConfig, out: Path, command: str, max_steps: int | None = None,
          init_from: str | None = None) -> Path:
    """Run (or resume) training, from scratch or from checkpoint `init_from`'s weights; return the folder."""
    return fit(setup(config, out, init_from), config, out, command, max_steps)


def fit(run: Run, config: TrainConfig, out: Path, command: str, max_steps: int | None = None) -> Path:
    """The training loop of a set-up run, up to `max_steps` (all of them when None); then the checkpoint."""
    acc, total = run.acc, config.steps if max_steps is None else min(config.steps, max_steps)
    per_step = config.batch_size * config.grad_accum * acc.num_processes
    bar = tqdm(range(run.start, total), initial=run.start, total=total, disable=not acc.is_main_process,
               unit="step", mininterval=2.0)
    t0, loss_avg = time.time(), run.loss
    for step in bar:
        loss = train_step(run, config, step)
        loss_avg = loss if loss_avg is None else 0.98 * loss_avg + 0.02 * loss
        done = step + 1
        bar.set_postfix(loss=f"{loss_avg:.4f}", img_s=f"{(done - run.start) * per_step / (time.time() - t0):.0f}",
                        refresh=False, **{k: f"{v:.3g}" for k, v in getattr(run.adversary, "last", {}).items()})
        if acc.is_main_process and (done % config.save_every == 0 or done == total):
            save_train_state(out, done, acc.unwrap_model(run.model).state_dict(), run.ema.state_dict(),
                             run.opt.state_dict(), run.gen.get_state(),
                             {"seconds": run.elapsed + time.time() - t0, "loss": loss_avg,
                              "init_from": run.init_from, "parent": run.parent, "config": config.to_dict()})
            if run.adversary is not None:
                run.adversary.save(out / STATE_DIR)
        if acc.is_main_process and (done % config.sample_every == 0 or done == total):
            (out / "samples").mkdir(parents=True, exist_ok=True)
            preview(run, out / "samples" / f"step_{done:06d}.png")
    if acc.is_main_process and total == config.steps:
        finish(run, config, out, command, run.elapsed + time.time() - t0, loss_avg)
    acc.wait_for_everyone()  # after finish: a rank that tore the process group down early could abort (gloo)
    acc.end_training()
    return out
