"""diffusion_core: denoising diffusion models (DDPM, DDIM, DPM-Solver++, classifier-free guidance) in PyTorch.

The sampler generator is `diffusion_core.samplers.sample` (`diffusion_core.sample` is the command line).
"""
from .diffusion import DiffusionConfig, predict_eps, predict_x0, q_posterior, q_sample, training_loss
from .guidance import guided_eps_fn
from .pipeline import Pipeline
from .samplers import SAMPLERS, StepOutput, sample_final, timestep_plan
from .schedules import Schedule, make_schedule

__all__ = [
    "DiffusionConfig", "Schedule", "make_schedule", "q_sample", "predict_x0", "predict_eps", "q_posterior",
    "training_loss", "guided_eps_fn", "Pipeline", "SAMPLERS", "StepOutput", "sample_final", "timestep_plan",
]
