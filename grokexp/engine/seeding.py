"""Owned randomness: one independent generator per (seed, purpose), never the global RNG."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["generator_for", "derived_seed"]


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose ('split', 'init', 'order', …) derived from a user seed.

    Hashing keeps the streams independent: changing the batch order never moves the init.
    """
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator_for(seed: int, purpose: str,
                  device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for that purpose, on the CPU unless ``device`` says otherwise (training
    draws on the CPU and moves the draws; the probes draw where their weights are)."""
    return torch.Generator(device).manual_seed(derived_seed(seed, purpose))
