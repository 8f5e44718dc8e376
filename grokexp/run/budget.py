"""How much memory a population will need, checked before anything is allocated.

The estimate follows what the engine holds at its peak: the members' parameters with their
gradients and AdamW moments, the pair table and splits, and the larger of one training
batch and one full evaluation over every pair (logits, loss, the first layer's one-hot rows
and every hidden layer, for all members at once), plus the MC-dropout probe's chunk where
the spec turns it on. It is an estimate ("~"), deliberately on the generous side.

The paper's MLP has its formula written out (:func:`_mlp_bytes`). Any other architecture is
estimated from its layout and its forward (:func:`_generic_bytes`):

    state  = 4 · 4 B · K · n_params           (weights, gradients, two AdamW moments)
    pass(r) = K · (fixed + r · per_pair)       (one member's forward + loss over r pairs)
    peak   = max(3 · pass(batch), pass(N))     (training keeps activations for gradients)
    probe  = 2 · max(CHUNK_FLOATS · 4 B, pass(N))   (the MC-dropout chunk, when on)

where ``fixed`` and ``per_pair`` are the bytes the forward and loss of one member keep for the
backward (autograd's saved tensors) plus its logits, measured by running it on the ``meta``
device (no memory, no arithmetic) at 1 and 2 pairs: per_pair = bytes(2) - bytes(1), fixed =
bytes(1) - per_pair. Where the forward cannot run on ``meta``, per_pair = 4 B · (4 · the
floats of one pair's dropout masks + 5 · C) and fixed = 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..engine.arch import Architecture, architecture_name, architecture_of
from ..engine.sweep import MAX_MEMBERS, Member, group_by_shape
from ..errors import GrokexpError
from ..spec.schema import Spec

__all__ = ["estimate_bytes", "check_memory", "check_population", "MAX_MEMBERS", "GIB"]

GIB = 1024**3
FLOAT = 4
INDEX = 8


def _pairs(spec: Spec) -> int:
    p = spec.task.tokens
    return p * (p - 1) if spec.task.operation == "div" else p * p


def estimate_bytes(spec: Spec, members: int) -> int:
    """Peak bytes for a population of ``members`` copies of ``spec``'s network."""
    if architecture_name(spec) == "mlp":
        return _mlp_bytes(spec, members)
    return _generic_bytes(spec, members)


def _mlp_bytes(spec: Spec, members: int) -> int:
    """The paper's MLP, written out: see the module docstring."""
    k, p, d = members, spec.task.tokens, spec.model.embedding_dim
    hidden = spec.model.hidden_sizes
    widths = [2 * d, *hidden]
    n_params = p * d + sum(a * b + b for a, b in zip(widths, hidden, strict=False)) + \
        hidden[-1] * p + p
    state = 4 * FLOAT * k * n_params  # parameters, gradients, two AdamW moments
    n = _pairs(spec)
    data = 3 * INDEX * n + k * n * (INDEX + 1)  # pair table; per-member split indices, mask
    tables = FLOAT * k * 2 * p * hidden[0]  # per-token first-layer tables (K, 2P, H)

    def pass_bytes(rows: int) -> int:  # one forward (+ loss) over `rows` pairs per member
        return FLOAT * k * rows * (3 * p + 2 * p + 2 * sum(hidden))

    batch = min(spec.train.batch_size, n)
    peak = max(3 * pass_bytes(batch), pass_bytes(n))  # training keeps activations for grads
    metrics = spec.metrics
    if getattr(metrics, "mc_dropout", False) and getattr(metrics, "mc_samples", 0):
        widest = max(2 * d, *hidden, p)
        from ..diagnostics.metrics.dropout import CHUNK_FLOATS

        # one probe chunk's buffers, each at most the widest activation: the masks (one
        # per site), the masked input, each hidden layer, the scores, the scaled input and
        # the gathered one (diagnostics/metrics/dropout.py)
        units = 5 + 2 * len(hidden)
        peak = max(peak, units * FLOAT * max(CHUNK_FLOATS, k * n * widest))
    return int(state + data + tables + peak)


def _generic_bytes(spec: Spec, members: int) -> int:
    """Any architecture, from its layout and its forward: see the module docstring."""
    arch = architecture_of(spec)
    k, n = members, _pairs(spec)
    n_params = sum(math.prod(p.shape) for p in arch.layout())
    state = 4 * FLOAT * k * n_params
    data = 3 * INDEX * n + k * n * (INDEX + 1)  # pair table; per-member split indices, mask
    fixed, per_pair = _forward_bytes(arch)

    def pass_bytes(rows: int) -> int:
        return k * (fixed + rows * per_pair)

    batch = min(spec.train.batch_size, n)
    peak = max(3 * pass_bytes(batch), pass_bytes(n))
    metrics = spec.metrics
    if getattr(metrics, "mc_dropout", False) and getattr(metrics, "mc_samples", 0):
        from ..diagnostics.metrics.dropout import CHUNK_FLOATS

        peak = max(peak, 2 * max(CHUNK_FLOATS * FLOAT, pass_bytes(n)))
    return int(state + data + peak)


def _forward_bytes(arch: Architecture) -> tuple[int, int]:
    """(fixed, per pair) bytes one member's forward and loss keep: see the module docstring."""
    try:
        one, two = _saved_bytes(arch, 1), _saved_bytes(arch, 2)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel
        masks = sum(math.prod(shape) for _, shape in arch.mask_shapes(1))
        return 0, FLOAT * (4 * masks + 5 * arch.n_classes)
    per_pair = max(two - one, 0)
    return max(one - per_pair, 0), per_pair


def _saved_bytes(arch: Architecture, n: int) -> int:
    """Bytes autograd saves for the backward of one member's loss over n pairs, plus the
    logits, on the ``meta`` device."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    meta = torch.device("meta")
    params = {p.name: torch.zeros((1, *p.shape), device=meta, requires_grad=True)
              for p in arch.layout()}
    pairs = torch.zeros((1, n, 2), dtype=torch.long, device=meta)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = arch.forward(params, pairs).logits
        F.cross_entropy(out.reshape(n, -1), torch.zeros(n, dtype=torch.long, device=meta))
    return total + out.numel() * out.element_size()


def check_memory(members: Sequence[Member], limit_bytes: int, limit_source: str) -> None:
    """Refuse (exit 2) a spec whose largest population would not fit in ``limit_bytes``."""
    if len(members) > MAX_MEMBERS:
        raise GrokexpError(f"sweep: {len(members)} members, more than {MAX_MEMBERS}")
    for group in group_by_shape(members):
        check_population(group[0].spec, len(group), limit_bytes, limit_source)


def check_population(spec: Spec, members: int, limit_bytes: int, limit_source: str) -> None:
    """Refuse (exit 2) a population of ``members`` copies of ``spec``'s network that would
    not fit in ``limit_bytes`` (``grokexp optimize`` checks its largest batch this way)."""
    need = estimate_bytes(spec, members)
    if need > limit_bytes:
        task = (f"task.modulus={spec.task.modulus}" if spec.task.modulus is not None
                else f"task.operation={spec.task.operation}")
        sizes = (f"model.embedding_dim={spec.model.embedding_dim}, "
                 f"model.hidden={list(spec.model.hidden_sizes)}"
                 if architecture_name(spec) == "mlp" else
                 f"model.architecture={architecture_name(spec)}")
        err = GrokexpError(
            f"population of {members} member(s) ({task}, "
            f"{sizes}) needs ~{need / GIB:.1f} GiB, "
            f"limit {limit_bytes / GIB:.1f} GiB ({limit_source}); make the task, the "
            "widths or the sweep smaller, or raise --memory-limit")
        err.exit_code = 2
        raise err
