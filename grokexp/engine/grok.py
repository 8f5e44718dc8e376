"""The grok epoch of a series: plain Python, so that figure workers need no torch."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["first_epoch_at_or_above"]


def first_epoch_at_or_above(epochs: Sequence[int], values: Sequence[float],
                            threshold: float) -> int | None:
    """The first evaluated epoch whose value reaches the threshold (the grok epoch), or None."""
    return next((e for e, v in zip(epochs, values, strict=True) if v >= threshold), None)
