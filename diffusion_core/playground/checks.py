"""A visitor's numbers checked before any work: a clear ValueError saying what is allowed (the page shows it)."""
from __future__ import annotations

import math


def check_number(name: str, value, lo: float, hi: float, integer: bool = False) -> float | int:
    """`value` as a float (or int) in [lo, hi], else ValueError saying what is allowed."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value}")
    if integer and x != int(x):
        raise ValueError(f"{name} must be a whole number, got {value}")
    return int(x) if integer else x
