"""A network as an MLflow model folder (``pt2``), exported once per kind of network.

``mlflow.pytorch.save_model`` traces the network with ``torch.export`` every time: about 0.1 s
of CPU a member (``benchmarks/logged_model_cost.py``), the largest part of logging a model.
A population's members are one network with different weights, so :class:`ModelFolders`
saves the first of each kind with MLflow and keeps its folder and exported program; each later
one is that folder with its own weights written into the program (``torch.export.save``) and
its ``MLmodel`` given its own uuid, time and size. A kind is the caller's promise that its
networks differ in their weights alone (for grokexp's twins, the population's architecture
object: the same class, hyperparameters and graph). What can be checked cheaply is checked
too: a network whose parameters' names, shapes or dtypes, tensors outside the weights
(buffers the program keeps as constants) or input example differ from its kind's first is
saved by MLflow in full, as is one saved without a kind, and one whose shortcut fails.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

__all__ = ["ModelFolders", "save_model_folder", "requirements"]

MLMODEL = "MLmodel"  # MLflow's description of a model folder (mlflow.models.Model)


def requirements() -> list[str]:
    """What loading the model needs besides MLflow (which MLflow adds itself): this torch."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}"]


def save_model_folder(module: nn.Module, folder: str, example: np.ndarray) -> None:
    """MLflow's own save: ``torch.export`` of ``module`` on ``example``, its signature
    inferred from it, the requirements given (MLflow's inference of them costs about 11 s)."""
    import mlflow.pytorch

    mlflow.pytorch.save_model(module.eval(), folder, serialization_format="pt2",
                              input_example=example, pip_requirements=requirements())


def _layout(module: nn.Module, example: np.ndarray) -> tuple[Any, ...]:
    """What must match for two networks of a kind to share an exported program."""
    state = module.state_dict()
    return (type(module), example.shape, str(example.dtype), example.tobytes(),
            tuple((name, tuple(value.shape), str(value.dtype)) for name, value in state.items()))


def _other_buffers(module: nn.Module) -> dict[str, Any]:
    """Buffers outside the state dict (the exported program's constants)."""
    state = module.state_dict()
    return {name: b for name, b in module.named_buffers() if name not in state}


@dataclass
class _First:
    """The first network of a kind: its folder (a copy), exported program and layout."""

    kind: object  # compared by identity
    layout: tuple[Any, ...]
    folder: Path
    program_file: Path  # the .pt2, relative to folder
    program: Any  # torch.export.ExportedProgram
    buffers: dict[str, Any]
    size_bytes: int | None  # the MLmodel's model_size_bytes

    def matches(self, kind: object, module: nn.Module, example: np.ndarray) -> bool:
        import torch

        if kind is not self.kind or _layout(module, example) != self.layout:
            return False
        buffers = _other_buffers(module)
        return buffers.keys() == self.buffers.keys() and all(
            torch.equal(b, self.buffers[name]) for name, b in buffers.items())

    def write(self, module: nn.Module, folder: Path) -> None:
        """``module`` as this folder with its weights: the same graph, signature and files."""
        import torch
        from mlflow.models import Model

        shutil.copytree(self.folder, folder, ignore=lambda where, names: [
            n for n in names if Path(where, n) in (self.folder / MLMODEL,
                                                   self.folder / self.program_file)])
        with torch.no_grad():
            for name, value in module.state_dict().items():
                self.program.state_dict[name].copy_(value)
        program = folder / self.program_file
        torch.export.save(self.program, str(program))
        model = Model.load(str(self.folder / MLMODEL))
        model.model_uuid = uuid.uuid4().hex
        now = datetime.datetime.now(datetime.timezone.utc)
        model.utc_time_created = str(now.replace(tzinfo=None))  # as MLflow writes it
        if self.size_bytes is not None:
            old = (self.folder / self.program_file).stat().st_size
            model.model_size_bytes = self.size_bytes - old + program.stat().st_size
        model.save(str(folder / MLMODEL))


class ModelFolders:
    """Saves networks as MLflow model folders, exporting each kind once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._first: _First | None = None  # the last kind's (populations train one by one)
        self._given_up: object | None = None  # a kind whose first could not be kept or used

    def save(self, module: nn.Module, folder: str, example: np.ndarray,
             kind: object | None = None) -> None:
        """Write ``module`` as an MLflow model folder at ``folder`` (which must not exist);
        networks of one ``kind`` (see the module's docstring) are exported once."""
        if kind is None:
            save_model_folder(module, folder, example)
            return
        with self._lock:
            first = self._first
            if first is not None and first.matches(kind, module, example):
                try:
                    first.write(module.eval(), Path(folder))
                    return
                except Exception:  # e.g. the kept copy is gone: export this one in full
                    shutil.rmtree(folder, ignore_errors=True)
                    self._given_up = kind
            save_model_folder(module, folder, example)
            self._drop()  # the last network kept is not this one's like
            if kind is not self._given_up:
                self._first = self._keep(kind, module, Path(folder), example)
                self._given_up = None if self._first is not None else kind

    def _drop(self) -> None:
        first, self._first = self._first, None
        if first is not None:
            shutil.rmtree(first.folder, ignore_errors=True)

    def _keep(self, kind: object, module: nn.Module, folder: Path,
              example: np.ndarray) -> _First | None:
        """A copy of the folder MLflow just wrote, and its program loaded back; None when its
        program's weights are not the network's state dict or its constants not the tensors
        outside it, or when it cannot be kept (then the kind's networks are saved in full)."""
        import torch
        from mlflow.models import Model

        programs = [p.relative_to(folder) for p in folder.rglob("*.pt2")]
        if len(programs) != 1:
            return None
        copy: Path | None = None
        try:
            program = torch.export.load(str(folder / programs[0]))
            buffers = _other_buffers(module)
            if (set(program.state_dict) != set(module.state_dict())
                    or set(program.constants) != set(buffers)):
                return None
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="grokexp-models-")
            copy = Path(self._scratch.name) / uuid.uuid4().hex
            shutil.copytree(folder, copy)
            return _First(kind, _layout(module, example), copy, programs[0], program,
                          {name: b.clone() for name, b in buffers.items()},
                          Model.load(str(copy / MLMODEL)).model_size_bytes)
        except Exception:  # a full disk, say: this model is saved; the next ones in full too
            if copy is not None:
                shutil.rmtree(copy, ignore_errors=True)
            return None
