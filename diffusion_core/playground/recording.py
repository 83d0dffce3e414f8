"""A run kept for replay and its GIF: the frames of every k-th step, compact (uint8 images, float16 points), and
the budget that bounds what all visitors' recordings keep together. Pure Python/numpy/torch; no gradio."""
from __future__ import annotations

import ctypes
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import to_uint8
from ..samplers import StepOutput
from .checks import check_number

RECORD_BYTES = 24 * 2**20  # replay frames kept per run (every step when they fit, else every k-th)
RECORDINGS_BYTES = 256 * 2**20  # replay frames all runs of all visitors keep together (RecordingBudget)
RELEASED = "this run's replay was released to make room for newer runs: generate again"


def compact(x: torch.Tensor) -> np.ndarray:
    """A step's tensor as kept for replay: images as uint8 [N, H, W, C], points as float16 [N, 2]."""
    return to_uint8(x.cpu()) if x.ndim == 4 else x.detach().float().cpu().numpy().astype(np.float16)


@dataclass
class Recording:
    """A run kept for replay and the GIF: every `stride`-th step and the last, as (t, x_t, x0_pred)."""

    total: int
    stride: int
    per_row: int = 1
    labels: list[int] = field(default_factory=list)
    steps: dict[int, tuple[int, np.ndarray, np.ndarray]] = field(default_factory=dict)
    gif: tuple[int, Path] | None = None  # (number of steps it shows, file), made once per recording
    released: bool = False  # its frames were dropped by the RecordingBudget
    groups: tuple[str, ...] = ()  # points of runs side by side, concatenated in equal parts: their titles

    def add(self, out: StepOutput, budget: RecordingBudget | None = None) -> None:
        """Keep `out` if it falls on the stride (or is the last step), counted against `budget`."""
        if out.index % self.stride == 0 or out.index == self.total - 1:
            self.steps[out.index] = kept = (out.t, compact(out.x_t), compact(out.x0_pred))
            if budget is not None:
                budget.charge(self, kept[1].nbytes + kept[2].nbytes)

    def release(self) -> None:
        """Drop the frames (replaying says so)."""
        self.released = True
        self.steps = {}

    @property
    def finished(self) -> bool:
        """Whether the run reached its last step."""
        return self.total - 1 in self.steps

    def nearest(self, index) -> int:
        """The kept step closest to `index` (ValueError when nothing was recorded yet)."""
        if not self.steps:
            raise ValueError(RELEASED if self.released else "nothing to replay yet: generate first")
        index = check_number("step", index, 0, self.total - 1, integer=True)
        return min(self.steps, key=lambda i: abs(i - index))

    def sample_indices(self, count: int) -> list[int]:
        """Up to `count` kept steps, evenly spread, always including the latest."""
        kept = sorted(self.steps)
        picks = np.linspace(0, len(kept) - 1, min(count, len(kept))).round().astype(int)
        return [kept[i] for i in sorted(set(picks.tolist()))]


class RecordingBudget:
    """The replay frames of all visitors' recordings together, at most `limit` bytes: past it the oldest are
    released, oldest first. Recordings are held weakly: one whose session's state expired leaves on its own, and a
    visitor's own go when they close the page (`leave`)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._held: OrderedDict[int, tuple[weakref.ref, int]] = OrderedDict()  # id -> (recording, bytes)
        self._lock = threading.RLock()  # RLock: a weakref callback may run inside charge
        self._owners: dict[str, dict[int, weakref.ref]] = {}  # visitor (session) -> their recordings

    def charge(self, rec: Recording, nbytes: int) -> None:
        """Count `nbytes` more kept by `rec` (now the newest), then release the oldest others while over."""
        with self._lock:
            ref, held = self._held.pop(id(rec), (None, 0))
            self._held[id(rec)] = (ref or weakref.ref(rec, lambda _, key=id(rec): self._forget(key)), held + nbytes)
            self.used += nbytes
            while self.used > self.limit and len(self._held) > 1:
                key = next(iter(self._held))
                old = self._held[key][0]()
                self._forget(key)
                if old is not None:
                    old.release()

    def own(self, owner: str, rec: Recording) -> None:
        """Note that `rec` belongs to visitor `owner` (their session), so that `leave` can drop it when they go."""
        with self._lock:
            self._owners.setdefault(owner, {})[id(rec)] = weakref.ref(rec)

    def leave(self, owner: str) -> int:
        """Visitor `owner` closed the page: release their recordings now rather than when their state expires (30
        minutes on); the bytes that frees."""
        with self._lock:
            recs = [ref() for ref in self._owners.pop(owner, {}).values()]
            freed = sum(self._held.get(id(rec), (None, 0))[1] for rec in recs if rec is not None)
            for rec in filter(None, recs):
                self._forget(id(rec))
                rec.release()
        return freed

    def _forget(self, key: int) -> None:
        """Stop counting a recording (released, or garbage-collected with its session's state)."""
        with self._lock:
            _, nbytes = self._held.pop(key, (None, 0))
            self.used -= nbytes


RECORDINGS = RecordingBudget(RECORDINGS_BYTES)


def give_back_memory() -> None:
    """Return the memory a finished run freed to the system (glibc's malloc_trim: the arenas of the server's many
    worker threads keep it otherwise, and its resident memory grows with every visitor); elsewhere nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
