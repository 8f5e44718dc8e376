"""The published ways to shorten grokking, applied per member around PopulationAdamW's step.

Order on every step (docs/reducers.md): the Grokfast gradient filter, then the
⊥Grad projection (both rewrite the step's gradients in place, before AdamW sees them), then
the AdamW step, then the Omnigrok rescale to a fixed total weight norm. Every dot product
and norm is taken per member (and per tensor where the authors take it per tensor), over
the member's own row of a (K, ...) tensor, never across the population; members without an
option get exactly their own gradient and weights back (``where``, or a factor of 1.0).

- Grokfast EMA (ironjr/grokfast ``gradfilter_ema``): at the first step ``ema = g``; then
  ``ema = ema·alpha + g·(1 − alpha)`` and ``g = g + ema·lamb``.
- Grokfast MA (``gradfilter_ma``, ``warmup=True``, mean): the last ``window`` gradients;
  once there are ``window`` of them, ``g = g + lamb·mean``. The sum over the window is kept
  as a running sum (add the newest, subtract the one leaving), summed afresh from the ring
  every ``window`` steps (oldest first, as Python's ``sum`` over the deque does: bitwise the
  authors' sum there) so float32 error never builds up past one window.
- ⊥Grad (LucasPrietoAl/grokking-at-the-edge-of-numerical-stability ``OrthoGrad``): every
  parameter tensor, biases too, ``g − (w·g)/(w·w + 1e-30)·w``, rescaled to ``‖g‖`` (the
  orthogonal part's norm + 1e-30 below).
- Omnigrok (KindXiaoming/Omnigrok): after each step every parameter times
  ``sqrt(L2₀ / L2)``, with L2 the sum of squares of all the member's parameters and L2₀ the
  initial one ("fixed") or the given norm squared.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .sweep import Member

__all__ = ["Reducers", "build_reducers"]

_EPS = 1e-30  # OrthoGrad's


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _per(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) → broadcastable over ``like``'s trailing axes, in its dtype."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _mask(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) booleans → broadcastable over ``like``'s trailing axes."""
    return flags.view(-1, *([1] * (like.dim() - 1)))


class Reducers:
    """Per-member settings and state (EMA, MA ring and running sum, target norm) of K members.

    The state tensors have the members on their leading axis (the ring on its second), so a
    shard is a view and ``retire`` an index, as for the Adam moments.
    """

    _STATE = ("ema", "ring", "window_sum")

    def __init__(self, members: Sequence[Member], params: dict[str, torch.Tensor]):
        device = next(iter(params.values())).device
        trains = [m.spec.train for m in members]
        filters = [t.grad_filter for t in trains]
        kinds = [f.kind if f is not None else "none" for f in filters]

        def flag(values: Sequence[bool]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.bool, device=device)

        def number(values: Sequence[float], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        self.is_ema = flag([k == "ema" for k in kinds])
        self.is_ma = flag([k == "ma" for k in kinds])
        self.alpha = number([f.alpha if f is not None and f.alpha is not None else 0.0
                             for f in filters], torch.float64)
        self.lamb = number([f.lamb if f is not None and f.lamb is not None else 0.0
                            for f in filters], torch.float64)
        self.window = number([f.window if f is not None and f.window is not None else 1
                              for f in filters], torch.int64)
        self.is_ortho = flag([t.orthogonal_grad for t in trains])
        self.is_norm = flag([t.weight_norm is not None for t in trains])
        initial = squared_norm(params)
        given = number([float(t.weight_norm) ** 2 if isinstance(t.weight_norm, float)
                        else 0.0 for t in trains], initial.dtype)
        fixed = flag([t.weight_norm == "fixed" for t in trains])
        self.target_sq = torch.where(fixed, initial, given)  # (K,) Omnigrok's L2₀
        wmax = int(self.window[self.is_ma].max()) if bool(self.is_ma.any()) else 0
        self.ema = ({n: torch.zeros_like(p) for n, p in params.items()}
                    if bool(self.is_ema.any()) else {})
        self.ring = {n: p.new_zeros((wmax, *p.shape)) for n, p in params.items()} if wmax else {}
        self.window_sum = {n: torch.zeros_like(p) for n, p in params.items()} if wmax else {}
        self._cache()

    def _cache(self) -> None:
        """Which stages any of these members uses (a stage nobody uses costs nothing)."""
        self.any_ema, self.any_ma = bool(self.is_ema.any()), bool(self.is_ma.any())
        self.any_ortho, self.any_norm = bool(self.is_ortho.any()), bool(self.is_norm.any())
        self._ma_windows = {k: w for k, (w, ma) in enumerate(zip(
            self.window.tolist(), self.is_ma.tolist(), strict=True)) if ma}  # host: no sync

    @torch.no_grad()
    def filter_(self, grads: dict[str, torch.Tensor], params: dict[str, torch.Tensor],
                step: int) -> None:
        """Rewrite ``grads`` in place: Grokfast filter, then ⊥Grad; ``step`` counts from 1."""
        if self.any_ema:
            self._ema(grads, step)
        if self.any_ma:
            self._ma(grads, step)
        if self.any_ortho:
            self._orthogonal(grads, params)

    def _ema(self, grads: dict[str, torch.Tensor], step: int) -> None:
        for name, g in grads.items():
            ema = self.ema[name]  # (K, ...)
            if step == 1:
                ema.copy_(g)  # gradfilter_ema's first call starts from the gradient
            ema.mul_(_per(self.alpha, ema)).add_(g * _per(1 - self.alpha, g))
            g.copy_(torch.where(_mask(self.is_ema, g), g + ema * _per(self.lamb, g), g))

    def _ma(self, grads: dict[str, torch.Tensor], step: int) -> None:
        members = torch.arange(self.window.shape[0], device=self.window.device)
        slot = (step - 1) % self.window  # (K,) each member's oldest entry, overwritten now
        leaving = step > self.window
        full = step >= self.window
        # members whose ring holds exactly their window now: their sums are summed afresh
        fresh = [k for k, w in self._ma_windows.items() if step % w == 0]
        rows = torch.tensor(fresh, dtype=torch.long, device=self.window.device)
        depth = max((self._ma_windows[k] for k in fresh), default=0)
        for name, g in grads.items():
            ring, total = self.ring[name], self.window_sum[name]  # (W, K, ...), (K, ...)
            old = ring[slot, members]
            total.add_(g).sub_(torch.where(_mask(leaving, old), old, torch.zeros_like(old)))
            ring[slot, members] = g
            if fresh:
                own = ring[:depth, rows]  # (w, k_fresh, ...): only those members' rings
                exact = own[0].clone()  # oldest to newest, one add at a time: Python's sum,
                for entry in own[1:]:  # and the same whatever the population (not sum(0))
                    exact.add_(entry)
                total[rows] = exact
            mean = total / _per(self.window, total)
            g.copy_(torch.where(_mask(self.is_ma & full, g), g + mean * _per(self.lamb, g), g))

    def _orthogonal(self, grads: dict[str, torch.Tensor],
                    params: dict[str, torch.Tensor]) -> None:
        for name, grad in grads.items():
            w, g = _rows(params[name]), _rows(grad)  # (K, n)
            proj = (w * g).sum(1, keepdim=True) / ((w * w).sum(1, keepdim=True) + _EPS)
            orth = g - proj * w
            orth = orth * (g.norm(dim=1, keepdim=True) / (orth.norm(dim=1, keepdim=True) + _EPS))
            g.copy_(torch.where(self.is_ortho[:, None], orth, g))

    @torch.no_grad()
    def rescale_(self, params: dict[str, torch.Tensor]) -> None:
        """After the step: Omnigrok's rescale of every parameter to the target total norm."""
        if not self.any_norm:
            return
        factor = torch.where(self.is_norm, (self.target_sq / squared_norm(params)).sqrt(),
                             torch.ones_like(self.target_sq))
        for p in params.values():
            p.mul_(_per(factor, p))

    def _index(self, target: Reducers, index: torch.Tensor | slice) -> None:
        for name in ("is_ema", "is_ma", "alpha", "lamb", "window", "is_ortho", "is_norm",
                     "target_sq"):
            setattr(target, name, getattr(self, name)[index])
        target.ema = {n: t[index] for n, t in self.ema.items()}
        target.ring = {n: t[:, index] for n, t in self.ring.items()}
        target.window_sum = {n: t[index] for n, t in self.window_sum.items()}
        target._cache()

    def shard(self, lo: int, hi: int) -> Reducers:
        """Members lo..hi-1, sharing this object's state (views)."""
        part = Reducers.__new__(Reducers)
        self._index(part, slice(lo, hi))
        return part

    def retire(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (``PerMember``)."""
        self._index(self, torch.tensor(keep, dtype=torch.long, device=self.target_sq.device))

    def state_dict(self, cpu: bool = False) -> dict[str, object]:
        def own(t: torch.Tensor) -> torch.Tensor:
            return t.detach().cpu().clone() if cpu else t
        state: dict[str, object] = {k: {n: own(t) for n, t in getattr(self, k).items()}
                                    for k in self._STATE}
        state["target_sq"] = own(self.target_sq)
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the filter state and the target norm (the initial one, for "fixed")."""
        for key in self._STATE:
            mine: dict[str, torch.Tensor] = getattr(self, key)
            saved: dict[str, torch.Tensor] = state[key]  # type: ignore[assignment]
            for name, target in mine.items():
                mine[name] = saved[name].to(device=target.device, dtype=target.dtype).clone()
        saved_sq: torch.Tensor = state["target_sq"]  # type: ignore[assignment]
        self.target_sq = saved_sq.to(self.target_sq.device, self.target_sq.dtype).clone()


def squared_norm(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each member's sum of squares over all its parameters, tensor by tensor: (K,)."""
    total = torch.zeros((), dtype=next(iter(params.values())).dtype,
                        device=next(iter(params.values())).device)
    for p in params.values():
        total = total + (_rows(p) ** 2).sum(1)
    return total


def build_reducers(members: Sequence[Member], params: dict[str, torch.Tensor]
                   ) -> Reducers | None:
    """The members' reducers, or None when none of them uses any (no cost, no state)."""
    if not any(t.grad_filter is not None and t.grad_filter.kind != "none"
               or t.orthogonal_grad or t.weight_norm is not None
               for t in (m.spec.train for m in members)):
        return None
    return Reducers(members, params)
