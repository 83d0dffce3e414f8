"""Checkpoint folders: `config.json` + `model.safetensors` + optional `README.md` (model card).

Loading never unpickles anything: pickle-based weights (torch.save zips, `pytorch_model.bin`)
are refused, and safetensors headers are checked first so that a truncated or corrupt file
gives an error naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt")


class CheckpointError(Exception):
    """A checkpoint could not be saved, found, downloaded or read safely."""


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a checkpoint folder and where they came from."""

    config: dict  # the parsed config.json
    state_dict: dict[str, torch.Tensor]  # CPU tensors from model.safetensors
    source: str  # human-readable, e.g. "local path checkpoints/digits"
    path: Path  # folder the files were read from


def _pickle_refusal(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickle-based file (torch.save / pickle format); we refuse to unpickle it "
        f"because unpickling can run arbitrary code. Convert it to {WEIGHTS_NAME} with safetensors."
    )


def _looks_pickled(head: bytes) -> bool:
    """torch.save writes a zip (`PK\\x03\\x04`) or a raw pickle (`\\x80` + protocol 2..5)."""
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _check_safetensors(path: Path) -> None:
    """Validate the safetensors layout: u64 header length N, N bytes of JSON, then tensor bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        raw = f.read(n) if 0 <= n <= size - 8 else b""
    if len(raw) != n or not raw.startswith(b"{"):
        if _looks_pickled(head):
            raise _pickle_refusal(path)
        if n < 0:
            raise CheckpointError(f"{path}: file is {size} bytes, too short for a safetensors header")
        if n > size - 8:
            raise CheckpointError(
                f"{path}: truncated or not a safetensors file: header says {n} bytes of JSON header "
                f"but file has only {size - 8} bytes after the 8-byte length prefix"
            )
        raise CheckpointError(f"{path}: not a safetensors file (header does not start with '{{')")
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({type(e).__name__}: {e})") from None
    data_len = size - 8 - n
    if ends and max(ends) > data_len:
        raise CheckpointError(
            f"{path}: truncated: header says {max(ends)} bytes of tensors but file has {data_len}"
        )


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU after checking it is complete and not a pickle."""
    path = Path(path)
    _check_safetensors(path)
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises SafetensorError / RuntimeError / OSError
        raise CheckpointError(f"{path}: cannot read safetensors file ({type(e).__name__}: {e})") from e


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing {CONFIG_NAME} in checkpoint folder {path.parent}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: must hold a JSON object, got {type(config).__name__}")
    return config


def load_checkpoint(folder: str | Path) -> Checkpoint:
    """Load a local checkpoint folder (config.json + model.safetensors) onto the CPU."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist or is not a folder")
    config = _read_config(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        for name in PICKLE_NAMES:
            if (folder / name).is_file():
                raise _pickle_refusal(folder / name)
        raise CheckpointError(f"{weights}: missing {WEIGHTS_NAME} in checkpoint folder {folder}")
    state_dict = read_safetensors(weights)
    return Checkpoint(config=config, state_dict=state_dict, source=f"local path {folder}", path=folder)


def _cpu_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tensors sharing storage (tied weights) are cloned, as safetensors requires."""
    out, seen = {}, set()
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} must map a str to a torch.Tensor")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(ptr)
        out[key] = t
    return out


def _tmp_path(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are meant to be shared
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_checkpoint(
    folder: str | Path, state_dict: dict[str, torch.Tensor], config: dict, card: str | None = None
) -> Path:
    """Write config.json, model.safetensors and README.md atomically (temp files + os.replace)."""
    folder = Path(folder)
    try:
        config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config for {folder} is not JSON-serialisable: {e}") from e
    tensors = _cpu_tensors(state_dict)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {CONFIG_NAME: config_text} | ({CARD_NAME: card} if card is not None else {})
    tmps: dict[str, Path] = {}
    try:
        # 1. write every file under a temporary name; a failure here leaves the old files untouched
        tmps[WEIGHTS_NAME] = _tmp_path(folder, WEIGHTS_NAME)
        safetensors.torch.save_file(tensors, str(tmps[WEIGHTS_NAME]), metadata={"format": "pt"})
        for name, text in texts.items():
            tmps[name] = _tmp_path(folder, name)
            tmps[name].write_text(text, encoding="utf-8")
        for tmp in tmps.values():
            _fsync(tmp)
        # 2. swap them in (weights first, so a config never points at missing weights)
        for name, tmp in tmps.items():
            os.replace(tmp, folder / name)
    except BaseException as e:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and not isinstance(e, CheckpointError):
            raise CheckpointError(f"saving checkpoint to {folder} failed: {type(e).__name__}: {e}") from e
        raise
    return folder
