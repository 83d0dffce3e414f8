"""diffusion_core: denoising diffusion models (DDPM, DDIM, DPM-Solver++, flow matching, classifier-free guidance)
in PyTorch.

The map, lowest layer first; a module imports only from its own layer and those before it (tests/test_layering.py).
`models/` (the networks, each from a config dataclass), `files/` (checkpoint folders, model cards, the Hub,
pictures on disk) and `data/` (datasets and their cache) stand alone. The engine is the flat files a reader opens
first: `schedules`, `diffusion` (notation glossary), `samplers` (one generator loop, `samplers.sample`, over pure
step functions), `flow`, `guidance`, `local_score` (a denoiser made of the training set's patches), `editing`,
`pipeline` (a loaded checkpoint) and `fast` (its speed options). `evaluation/` measures samples (FLD, distances,
copies); `training/` fits models; `playground/` adapts all of it for the app (never importing gradio). On top, the
three commands: `python -m diffusion_core.train`, `.sample` and `.evaluate`.
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
