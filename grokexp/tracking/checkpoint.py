"""Checkpoints: what an interrupted ``grokexp run`` needs to go on, as plain tensors and data.

A checkpoint holds the resolved spec (TOML text), the MLflow run ids, which population was
training, the members that had already finished (their histories) and the loop's state
(weights, AdamW moments, every generator's state as a uint8 tensor, the epoch). It is saved
with ``torch.save`` of nothing but dicts, lists, strings, numbers and tensors, so it loads
with ``torch.load(weights_only=True)``: a checkpoint from someone else cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..engine.arch import architecture_of
from ..engine.state import LoopState
from ..errors import GrokexpError
from ..series import MemberSeries
from ..spec.schema import Spec

__all__ = ["Checkpoint", "CHECKPOINT_ARTIFACT", "DamagedState", "load_checkpoint",
           "load_member_state", "save_checkpoint"]

CHECKPOINT_ARTIFACT = "checkpoint/checkpoint.pt"
FORMAT = 1


@dataclass
class Checkpoint:
    """An interrupted experiment: spec, runs, finished members, and the live population."""

    spec_toml: str
    spec_hash: str
    parent_run_id: str | None
    run_ids: dict[int, str]
    group: int  # position of the interrupted population in group_by_shape(members)
    state: LoopState
    done: list[MemberSeries] = field(default_factory=list)  # members of earlier populations

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def root_run_id(self) -> str:
        return self.parent_run_id or next(iter(self.run_ids.values()))

    def to_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "format": FORMAT, "spec_toml": self.spec_toml, "spec_hash": self.spec_hash,
            "parent_run_id": self.parent_run_id or "",
            "run_ids": {str(k): v for k, v in self.run_ids.items()}, "group": self.group,
            "done": [_history_to_dict(h) for h in self.done],
            "state": {"epoch": s.epoch, "active": list(s.active), "params": dict(s.params),
                      "optimizer": s.optimizer, "order_states": list(s.order_states),
                      "dropout_states": list(s.dropout_states),
                      "histories": [_history_to_dict(h) for h in s.histories]},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Checkpoint:
        if raw.get("format") != FORMAT:
            raise GrokexpError(f"checkpoint format {raw.get('format')!r} is not {FORMAT}")
        s = raw["state"]
        state = LoopState(epoch=int(s["epoch"]), active=[int(i) for i in s["active"]],
                          params=dict(s["params"]), optimizer=dict(s["optimizer"]),
                          order_states=list(s["order_states"]),
                          dropout_states=list(s["dropout_states"]),
                          histories=[_history_from_dict(h) for h in s["histories"]])
        return cls(spec_toml=str(raw["spec_toml"]), spec_hash=str(raw["spec_hash"]),
                   parent_run_id=raw["parent_run_id"] or None,
                   run_ids={int(k): str(v) for k, v in raw["run_ids"].items()},
                   group=int(raw["group"]), state=state,
                   done=[_history_from_dict(h) for h in raw["done"]])


def _history_to_dict(h: MemberSeries) -> dict[str, Any]:
    return {"index": h.index, "epochs": list(h.epochs),
            "metrics": {k: list(v) for k, v in h.metrics.items()},
            "train_grok_epoch": h.train_grok_epoch, "test_grok_epoch": h.test_grok_epoch,
            "status": h.status, "reason": h.reason, "last_epoch": h.last_epoch}


def _history_from_dict(raw: dict[str, Any]) -> MemberSeries:
    epochs = [int(e) for e in raw["epochs"]]
    return MemberSeries(index=int(raw["index"]), epochs=epochs,
                        columns={str(k): (list(epochs), [float(x) for x in v])
                                 for k, v in raw["metrics"].items()},
                        train_grok_epoch=raw["train_grok_epoch"],
                        test_grok_epoch=raw["test_grok_epoch"], status=str(raw["status"]),
                        reason=str(raw["reason"]), last_epoch=int(raw["last_epoch"]))


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    torch.save(checkpoint.to_dict(), path)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` (no pickled code is ever run)."""
    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises several types for a bad or hostile file
        raise GrokexpError(f"{path}: not a grokexp checkpoint ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(raw, dict):
        raise GrokexpError(f"{path}: not a grokexp checkpoint")
    try:
        return Checkpoint.from_dict(raw)
    except (KeyError, TypeError, ValueError) as err:
        raise GrokexpError(f"{path}: damaged checkpoint ({err})") from None


class DamagedState(GrokexpError):
    """A member's saved weights (``checkpoints/epoch_*.pt``, ``weights/final.pt``) that do not
    load, or load as something other than its network's parameters: bad input (exit 2)."""

    exit_code = 2


def load_member_state(path: Path, spec: Spec, shown: str) -> dict[str, torch.Tensor]:
    """One member's parameters as saved during training, checked against ``spec``'s network:
    every parameter there, none other, each a floating tensor of its shape. ``shown`` names
    the file in the one-line :class:`DamagedState` that refuses anything else."""
    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises several types for a bad or hostile file
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise DamagedState(f"{shown}: not a saved network ({type(err).__name__}"
                           f"{': ' + first if first else ''})") from None
    if not isinstance(raw, dict):
        raise DamagedState(f"{shown}: not a saved network (holds a {type(raw).__name__})")
    shapes = {p.name: p.shape for p in architecture_of(spec).layout()}
    unknown = sorted(str(k) for k in raw if k not in shapes)
    if unknown:
        raise DamagedState(f"{shown}: unknown parameter {unknown[0]!r} (the network has "
                           f"{', '.join(shapes)})")
    missing = [name for name in shapes if name not in raw]
    if missing:
        raise DamagedState(f"{shown}: parameter {missing[0]!r} missing")
    for name, shape in shapes.items():
        value = raw[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise DamagedState(f"{shown}: parameter {name!r} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise DamagedState(f"{shown}: parameter {name!r} has shape {tuple(value.shape)}, "
                               f"the spec's network {shape}")
    return {name: raw[name] for name in shapes}
