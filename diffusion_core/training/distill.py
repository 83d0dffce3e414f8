"""Progressive distillation of a guided teacher into a few-step student (Salimans & Ho 2022, Algorithm 2), with the
guidance scale distilled into the student as an input (Meng et al. 2023, "On Distillation of Guided Diffusion
Models", sec. 4): the student makes one pass per step at any g in [g_min, g_max].

    python -m diffusion_core.train --dataset digits --stage distill --init-from checkpoints/digits --out OUT

Each stage halves the steps: a student of N steps learns to land, in one DDIM step, where two DDIM steps of its
teacher land (the teacher's 2N-step trailing plan nests the student's N-step one). The first teacher is the
checkpoint itself under classifier-free guidance with its own guidance interval, at a g drawn per example; every
later teacher is the student before it. Every stage writes a checkpoint folder OUT/steps_N (sampler 'distilled',
N steps) and resumes from OUT/steps_N/train_state.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..data.datasets import load_dataset
from ..diffusion import q_sample, x0_and_eps
from ..files.card import hardware_description, render_card
from ..files.checkpoint import load_checkpoint, save_checkpoint
from ..models import build_model, model_config_from_dict
from ..pipeline import SamplingDefaults, checkpoint_config, parse_info
from ..samplers import timestep_plan
from ..schedules import Schedule
from .state import load_train_state, save_train_state


@dataclass(frozen=True)
class DistillConfig:
    """A progressive-distillation run: the teacher's plan, the stages' lengths, the range of g."""

    teacher_steps: int = 16  # the first teacher: DDIM with this many steps (trailing plan), guided
    stage_steps: tuple[int, ...] = (300, 600, 800, 800)  # optimiser steps of each halving: 2N -> N steps
    batch_size: int = 64
    lr: float = 3e-4  # Adam, linear warm-up then cosine to zero within each stage
    warmup_steps: int = 30
    ema_decay: float = 0.995  # each stage's shipped student (and the next teacher) is the EMA
    g_min: float = 0.0  # g ~ U[g_min, g_max] per example (Meng et al. 2023, sec. 4.1)
    g_max: float = 4.0
    default_guidance: float = 2.0  # the students' sampling default
    seed: int = 0
    save_every: int = 100
    bf16: bool = True  # autocast the forward passes to bfloat16 (CPUs with AMX / AVX512-BF16, CUDA)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_steps", tuple(self.stage_steps))
        if self.teacher_steps >> len(self.stage_steps) < 1 or self.teacher_steps % (1 << len(self.stage_steps)):
            raise ValueError(f"{len(self.stage_steps)} halvings of {self.teacher_steps} teacher steps must end on "
                             f"a whole number of steps")

    def student_steps(self) -> list[int]:
        """The step counts of the stages' students: teacher_steps / 2, / 4, ..."""
        return [self.teacher_steps >> (k + 1) for k in range(len(self.stage_steps))]


def _coefficients(s: Schedule, t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) = (sqrt(ab_t), sqrt(1 - ab_t)) per example, with t = -1 the clean end (1, 0)."""
    ab = torch.cat([torch.ones(1, dtype=s.alpha_bar.dtype), s.alpha_bar]).to(t.device)[t + 1]
    shape = (t.shape[0],) + (1,) * (ndim - 1)
    return ab.sqrt().reshape(shape).float(), (1 - ab).sqrt().reshape(shape).float()


def ddim_to(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The DDIM step (eta = 0) from t to t_prev per example: z' = alpha' x0 + (sigma' / sigma)(z - alpha x0)
    (Salimans & Ho 2022, Algorithm 2)."""
    a, sig = _coefficients(s, t, x_t.ndim)
    a_prev, sig_prev = _coefficients(s, t_prev, x_t.ndim)
    return a_prev * x0 + sig_prev / sig * (x_t - a * x0)


def student_target(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
                   x_next: torch.Tensor) -> torch.Tensor:
    """The x0 that takes one DDIM step from x_t to the teacher's x_next: x~ = (z'' - (sigma''/sigma) z) /
    (alpha'' - (sigma''/sigma) alpha) (Salimans & Ho 2022, Algorithm 2); x_next itself when t_next = -1."""
    a, sig = _coefficients(s, t, x_t.ndim)
    a_next, sig_next = _coefficients(s, t_next, x_t.ndim)
    ratio = sig_next / sig
    return (x_next - ratio * x_t) / (a_next - ratio * a)


def teacher_output(model, x_t, t, labels, g, null_label, interval) -> torch.Tensor:
    """The teacher's guided output at a g per example: a guidance-embedding student takes g itself; a plain model
    is guided (eps_u + g (eps_c - eps_u), Ho & Salimans 2022) where its interval says, or where g < 1 (guidance.py)."""
    if getattr(model.config, "guidance_embedding", False):
        return model(x_t, t, labels, g)
    cond = model(x_t, t, labels)
    t_lo, t_hi = interval if interval is not None else (-1, 10**9)
    inside = (((t > t_lo) & (t <= t_hi)) | (g < 1)) & (g != 1)
    if not inside.any():
        return cond
    uncond = model(x_t[inside], t[inside], torch.full_like(labels[inside], null_label))
    gi = g[inside].reshape(-1, *([1] * (x_t.ndim - 1))).to(cond)
    return cond.index_put((inside,), uncond + gi * (cond[inside] - uncond))


@torch.inference_mode()
def teacher_two_steps(teacher, s: Schedule, x_t, t, t_mid, t_next, labels, g, null_label, interval, prediction,
                      clip_x0: bool) -> torch.Tensor:
    """Where two DDIM steps of the guided teacher, t -> t_mid -> t_next, take x_t (x0_pred clipped like sampling)."""
    x = x_t
    for a, b in ((t, t_mid), (t_mid, t_next)):
        out = teacher_output(teacher, x, a, labels, g, null_label, interval).float()
        x0 = x0_and_eps(s, x, a, out, prediction)[0]
        x = ddim_to(s, x, a, b, x0.clamp(-1, 1) if clip_x0 else x0)
    return x


def distill_loss(student, teacher, s: Schedule, x0, labels, generator, plan_student, plan_teacher, cfg: DistillConfig,
                 null_label: int, interval, prediction: str, clip_x0: bool) -> torch.Tensor:
    """Salimans & Ho 2022, Algorithm 2: noise x0 to a student timestep t, target the x~ that one DDIM step would need to
    land where two teacher steps land, loss max(SNR_t, 1) ||x~ - x_theta(z_t)||^2 (their 'truncated SNR' weight)."""
    n, dev = x0.shape[0], x0.device
    i = torch.randint(0, len(plan_student), (n,), generator=generator).to(dev)
    t = torch.tensor([p[0] for p in plan_student], device=dev)[i]
    t_next = torch.tensor([p[1] for p in plan_student], device=dev)[i]
    t_mid = torch.tensor([plan_teacher[2 * k][1] for k in range(len(plan_student))], device=dev)[i]
    eps = torch.randn(x0.shape, generator=generator).to(dev)
    g = (cfg.g_min + (cfg.g_max - cfg.g_min) * torch.rand(n, generator=generator)).to(dev)
    x_t = q_sample(s, x0, t, eps)
    x_next = teacher_two_steps(teacher, s, x_t, t, t_mid, t_next, labels, g, null_label, interval, prediction, clip_x0)
    target = student_target(s, x_t, t, t_next, x_next).clone()
    x0_pred = x0_and_eps(s, x_t, t, student(x_t, t, labels, g).float(), prediction)[0]
    a, sig = _coefficients(s, t, x_t.ndim)
    weight = (a**2 / sig**2).clamp(min=1.0).flatten()
    return (weight * (x0_pred - target).pow(2).flatten(1).mean(1)).mean()


def _lr_factor(cfg: DistillConfig, step: int, total: int) -> float:
    """Linear warm-up, then a half cosine to zero at the stage's last step."""
    import math
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    progress = min(1.0, max(0, step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def student_config(teacher_config: dict, cfg: DistillConfig, steps: int, training: dict) -> dict:
    """config.json of a stage's student: the teacher's network with g as an input, sampled with `steps` distilled
    steps at the default g and no guidance interval (the interval is folded into what g means)."""
    info = parse_info(teacher_config)
    model = replace(model_config_from_dict(teacher_config["model"]), guidance_embedding=True)
    info = replace(info, sampling=SamplingDefaults(sampler="distilled", steps=steps, guidance=cfg.default_guidance))
    return checkpoint_config(model, info, training)


def run_stage(teacher, data, info, cfg: DistillConfig, k: int, folder: Path, record: dict, say=print) -> torch.nn.Module:
    """Stage k (student of N = teacher_steps / 2^(k+1) steps), resumed from folder/train_state; returns its EMA
    student, also written to `folder` as a checkpoint."""
    import copy
    s, n_student = info.diffusion.make_schedule(), cfg.student_steps()[k]
    plan_s, plan_t = timestep_plan("ddim", s.T, n_student), timestep_plan("ddim", s.T, 2 * n_student)
    model_cfg = replace(teacher.config, guidance_embedding=True)
    student = build_model(model_cfg)
    student.load_state_dict(teacher.state_dict(), strict=False)  # a plain teacher lacks only guidance_mlp (zeros)
    ema = copy.deepcopy(student).requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + k)
    total, start, elapsed, loss_avg = cfg.stage_steps[k], 0, 0.0, None
    state = load_train_state(folder)
    if state is not None:
        student.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"]), gen.set_state(state["rng"])
        start, elapsed, loss_avg = state["step"], state["seconds"], state["loss"]
        say(f"resuming stage {n_student} steps at {start}/{total}")
    interval = None if teacher.config.guidance_embedding else info.sampling.guidance_interval
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16)
    t0 = time.time()
    for step in range(start, total):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(cfg, step, total)
        idx = torch.randint(0, len(data.x), (cfg.batch_size,), generator=gen)
        with autocast:
            loss = distill_loss(student, teacher, s, data.x[idx], data.labels[idx], gen, plan_s, plan_t, cfg,
                                info.num_classes, interval, info.diffusion.prediction, info.diffusion.clip_x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), student.parameters()):
                e.lerp_(p, 1 - decay)
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        done = step + 1
        if done % 20 == 0:
            rate = (done - start) * cfg.batch_size / (time.time() - t0)
            say(f"stage {n_student} steps: {done}/{total} loss {loss_avg:.5f} {rate:.0f} img/s")
        if done % cfg.save_every == 0 or done == total:
            save_train_state(folder, done, student.state_dict(), ema.state_dict(), opt.state_dict(),
                             gen.get_state(), {"seconds": elapsed + time.time() - t0, "loss": loss_avg})
    seconds = elapsed + time.time() - t0
    training = record | {"seconds": round(seconds, 1), "steps": total, "final_loss": loss_avg,
                         "stage": {"student_steps": n_student, "teacher_steps": 2 * n_student},
                         "weights_dtype": "float16"}
    config = student_config(record["teacher_config"], cfg, n_student, training)
    del config["training"]["teacher_config"]
    weights = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in ema.state_dict().items()}
    save_checkpoint(folder, weights, config, render_card(config))
    say(f"wrote {folder} ({seconds / 60:.1f} min)")
    return ema.eval()


def distill(init_from: str, out: Path, cfg: DistillConfig, command: str, say=print) -> Path:
    """Run (or resume) every stage; OUT/steps_N holds the N-step student. Returns the last stage's folder."""
    ckpt = load_checkpoint(init_from)
    info = parse_info(ckpt.config)
    if info.num_classes == 0 or info.diffusion.prediction == "flow":
        raise ValueError("distillation here needs a class-conditional eps or v model (guidance is distilled)")
    teacher = build_model(model_config_from_dict(ckpt.config["model"]))
    teacher.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
    data = load_dataset(info.dataset)
    base = {"command": command, "hardware": hardware_description(), "torch": torch.__version__,
            "examples": len(data.x), "config": {"distill": asdict(cfg)}, "teacher_config": ckpt.config,
            "init_from": {"checkpoint": init_from, "training": ckpt.config.get("training", {})}}
    folder = out
    for k, n in enumerate(cfg.student_steps()):
        folder = Path(out) / f"steps_{n}"
        done = (folder / "model.safetensors").exists() and (folder / "config.json").exists()
        if done:
            student = build_model(model_config_from_dict(json.loads((folder / "config.json").read_text())["model"]))
            student.load_state_dict({k2: v.float() for k2, v in load_checkpoint(folder).state_dict.items()})
            say(f"{folder}: done")
        else:
            student = run_stage(teacher.eval().requires_grad_(False), data, info, cfg, k, folder, base, say)
        teacher = student.eval().requires_grad_(False)
    return folder


def load_distill_config(path: str | None, **overrides) -> DistillConfig:
    """The default DistillConfig, then the fields of a JSON file, then non-None overrides."""
    d = json.loads(Path(path).read_text()) if path else {}
    d |= {k: v for k, v in overrides.items() if v is not None}
    return DistillConfig(**d)
