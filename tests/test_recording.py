"""The replay frames all visitors' runs keep together stay within a budget: past it the oldest runs are released
(replaying one says so), a run whose session's state is dropped stops counting, and a visitor who leaves takes
their runs with them."""
from __future__ import annotations

import gc

import pytest
import torch

from diffusion_core.playground.recording import RELEASED, Recording, RecordingBudget
from diffusion_core.samplers import StepOutput


def recorded(budget: RecordingBudget, steps: int = 4) -> Recording:
    """A run of `steps` steps of 2 images [1, 8, 8] recorded against `budget`: 2 x 2 x 64 bytes a step."""
    rec = Recording(total=steps, stride=1)
    for i in range(steps):
        x = torch.zeros(2, 1, 8, 8)
        rec.add(StepOutput(index=i, t=steps - i, x_t=x, x0_pred=x), budget)
    return rec


def test_the_oldest_runs_are_released_when_all_runs_pass_the_budget():
    budget = RecordingBudget(limit=3 * 4 * 256)  # three runs of 4 steps
    runs = [recorded(budget) for _ in range(4)]
    assert budget.used == 3 * 4 * 256
    assert runs[0].released and not runs[0].steps and not any(r.released for r in runs[1:])
    with pytest.raises(ValueError, match=RELEASED):
        runs[0].nearest(2)
    assert runs[3].nearest(2) == 2


def test_a_run_nobody_holds_any_more_stops_counting():
    budget = RecordingBudget(limit=10**6)
    kept, dropped = recorded(budget), recorded(budget)
    del dropped
    gc.collect()
    assert budget.used == 4 * 256 and not kept.released


def test_a_visitor_who_leaves_takes_their_runs_and_only_theirs():
    budget = RecordingBudget(limit=10 * 4 * 256)
    mine, theirs = [recorded(budget) for _ in range(2)], recorded(budget)
    for rec in mine:
        budget.own("me", rec)
    budget.own("them", theirs)
    assert budget.leave("me") == 2 * 4 * 256 and budget.used == 4 * 256
    assert all(r.released and not r.steps for r in mine) and not theirs.released and theirs.nearest(3) == 3
    assert budget.leave("me") == 0 and budget.leave("nobody") == 0 and budget.used == 4 * 256
