"""How much memory a population will need, checked before anything is allocated.

The estimate follows what the engine holds at its peak: the members' parameters with their
gradients and AdamW moments, the pair table and splits, and the larger of one training
batch and one full evaluation over every pair (logits, loss, the first layer's one-hot rows
and every hidden layer, for all members at once), plus the MC-dropout probe's chunk where
the spec turns it on. It is an estimate ("~"), deliberately on the generous side.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..engine.sweep import MAX_MEMBERS, Member, group_by_shape
from ..errors import GrokexpError
from ..spec.schema import Spec

__all__ = ["estimate_bytes", "check_memory", "check_population", "MAX_MEMBERS", "GIB"]

GIB = 1024**3
FLOAT = 4
INDEX = 8


def _pairs(spec: Spec) -> int:
    p = spec.task.modulus
    return p * (p - 1) if spec.task.operation == "div" else p * p


def estimate_bytes(spec: Spec, members: int) -> int:
    """Peak bytes for a population of ``members`` copies of ``spec``'s network."""
    k, p, d = members, spec.task.modulus, spec.model.embedding_dim
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
        err = GrokexpError(
            f"population of {members} member(s) (task.modulus={spec.task.modulus}, "
            f"model.embedding_dim={spec.model.embedding_dim}, "
            f"model.hidden={list(spec.model.hidden_sizes)}) needs ~{need / GIB:.1f} GiB, "
            f"limit {limit_bytes / GIB:.1f} GiB ({limit_source}); make the task, the "
            "widths or the sweep smaller, or raise --memory-limit")
        err.exit_code = 2
        raise err
