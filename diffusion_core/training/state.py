"""Resumable training state without pickle (tensors in safetensors, the rest in JSON), and the checkpoint weights an
`--init-from` run starts from."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..files.checkpoint import load_checkpoint
from ..models import model_config_from_dict, model_config_to_dict
from ..pipeline import split_weights

STATE_DIR = "train_state"


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, state in opt_state["state"].items():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_train_state(out: Path, step: int, model: dict, ema: dict, optimizer: dict, rng: torch.Tensor,
                     extra: dict) -> None:
    """Write OUT/train_state/{state.safetensors, state.json} atomically."""
    folder = Path(out) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()}
    tensors |= opt_tensors | {"rng": rng}
    save_file(tensors, str(folder / "state.safetensors.tmp"))
    (folder / "state.json.tmp").write_text(json.dumps({"step": step, "optimizer": opt_meta, **extra}))
    os.replace(folder / "state.safetensors.tmp", folder / "state.safetensors")
    os.replace(folder / "state.json.tmp", folder / "state.json")


def load_train_state(out: Path) -> dict | None:
    """The saved state (step, model, ema, optimizer, rng, extra JSON) or None when there is none."""
    folder = Path(out) / STATE_DIR
    if not (folder / "state.json").exists():
        return None
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "state.safetensors"))
    pick = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    return {**meta, "model": pick("model."), "ema": pick("ema."), "rng": tensors["rng"],
            "optimizer": _unflatten_optimizer(tensors, meta["optimizer"])}


WEIGHTLESS = ("dropout", "scale_factor")  # model settings that change no weight: a fine-tuning run may set them afresh
# settings that add zero-initialised weights (their names' prefix) to a model: a fine-tuning run may switch them on
# where the checkpoint had them off (0), which leaves its outputs unchanged
GROWN = {"refine_channels": "refine.", "guidance_embedding": "guidance_mlp.", "cond_channels": "cond_in."}


def _weight_shaping(model_config: dict | None) -> dict | None:
    """The settings that shape the weights, read through the config dataclass, so that a field added since a
    checkpoint was written reads as its default."""
    if model_config is None:
        return None
    d = model_config_to_dict(model_config_from_dict(model_config))
    return {k: v for k, v in d.items() if k not in WEIGHTLESS}


def load_init(path: str | Path, model_config: dict, autoencoder: dict | None = None
              ) -> tuple[dict[str, torch.Tensor], dict]:
    """The EMA weights and training record of checkpoint `path`, for a run that starts from them (fine-tuning). The
    run's model must be the checkpoint's, up to the settings in WEIGHTLESS (dropout) and those in GROWN the checkpoint
    has off (their weights are then missing: `load_init_weights` leaves them at their zero-initialised start). A
    latent checkpoint gives its denoiser's weights alone, and only to a run on the same autoencoder's latents (its
    config `autoencoder`, up to the decode-time palette)."""
    ckpt = load_checkpoint(path)
    check_same_latents(path, ckpt.config.get("autoencoder"), autoencoder)
    theirs, ours = _weight_shaping(ckpt.config.get("model")), _weight_shaping(model_config)
    if theirs is not None:
        theirs = {k: ours.get(k, v) if k in GROWN and not v else v for k, v in theirs.items()}
    if theirs != ours:
        raise ValueError(f"--init-from {path}: its model {json.dumps(ckpt.config.get('model'))} differs from this "
                         f"run's {json.dumps(model_config)}")
    return split_weights(ckpt.state_dict)[0], ckpt.config.get("training", {})


def check_same_latents(path: str | Path, theirs: dict | None, ours: dict | None) -> None:
    """An error when checkpoint `path`'s denoiser learned on other latents than this run's (pixels or another
    autoencoder's: a retrained one, or a re-fitted scale factor)."""
    def shaping(config: dict | None) -> dict | None:
        return None if config is None else {k: v for k, v in config.items() if k != "palette"}

    if shaping(theirs) != shaping(ours):
        raise ValueError(f"--init-from {path}: its denoiser learned on the latents of {json.dumps(theirs)}, this run "
                         f"works on {json.dumps(ours)}")


def load_init_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load `load_init`'s weights into `model`; only the parts GROWN adds may be missing (they keep their start)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    grown = tuple(GROWN.values())
    if unexpected or any(not k.startswith(grown) for k in missing):
        raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")


def check_resumable(state: dict | None, out: Path, init_from: str | None, config: dict,
                    say: Callable[[str], None] = print) -> dict | None:
    """`state` when it is this run's to resume: the same --init-from and, for a fine-tuning run, the same training
    config (fine-tuning a checkpoint into its own folder a second time is a new run, not the first one resumed).
    None when it is a finished run's state that this --init-from run replaces. An error when resuming would misuse
    it (a plain run on a fine-tuning state, a state past --steps) or starting afresh would, or might, lose an
    unfinished run (a state too old to record its config)."""
    if state is None:
        return None
    folder, config = Path(out) / STATE_DIR, json.loads(json.dumps(config))
    if state.get("init_from") == init_from and (init_from is None or state.get("config") == config):
        if state["step"] > config["steps"]:
            raise ValueError(f"{folder} is at step {state['step']}, past this run's {config['steps']} steps")
        return state
    if init_from is None:
        raise ValueError(f"{folder} continues a run started from {state['init_from']}: "
                         f"pass --init-from {state['init_from']} to resume it")
    if "config" not in state:  # written before states recorded their config: finished or not is unknown
        raise ValueError(f"{folder} holds a run (step {state['step']}) from before train states recorded their "
                         f"config, so it cannot be told finished or resumed safely: delete {folder} to start afresh")
    planned = state["config"]["steps"]
    if state["step"] < planned:
        raise ValueError(f"{folder} holds an unfinished run with another config (step {state['step']} of "
                         f"{planned}): rerun its command to finish it, or delete {folder} to discard it")
    say(f"{folder} (step {state['step']}) is another run's: starting afresh from {init_from}")
    return None
