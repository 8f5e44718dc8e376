"""AdamW over stacked parameters, with a learning rate, weight decay, betas and eps per member.

The update is torch.optim.AdamW's (decoupled decay, bias correction as there). Where PyTorch
has its fused kernel for the device (``torch._fused_adamw_``, what ``AdamW(fused=True)`` runs:
CPU since 2.4, CUDA), one call updates every member that shares its (lr, weight decay, beta1,
beta2, eps), each member's slice of each parameter an entry of the kernel's tensor list, in a
single pass over memory. Elsewhere the same formula runs as tensor ops with the (K,) settings
broadcast over each parameter's trailing axes. Every setting a sweep may vary reaches its own
member. Frozen layers (``trainable`` 0 for a member) never move. ``lr_scale`` multiplies a
parameter's lr per member (a torch param group with its own lr: the decoupled decay uses it
too); ``reducers`` (reducers.py) rewrites the gradients before the update and rescales the
weights after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .reducers import Reducers

__all__ = ["PopulationAdamW"]


class PopulationAdamW:
    """Adam moments per parameter, updated in place; frozen members' layers never move."""

    def __init__(self, params: dict[str, torch.Tensor], lr: torch.Tensor,
                 weight_decay: torch.Tensor, trainable: dict[str, torch.Tensor],
                 betas: tuple[float, float] | torch.Tensor = (0.9, 0.999),
                 eps: float | torch.Tensor = 1e-8, fused: bool | None = None,
                 lr_scale: dict[str, torch.Tensor] | None = None,
                 reducers: Reducers | None = None):
        """``betas`` is one pair for all members or a (K, 2) tensor; ``eps`` a number or (K,);
        ``lr_scale`` name → (K,) factors on lr (default 1)."""
        self.params = params
        self.lr_scale = lr_scale if lr_scale is not None else {
            n: torch.ones_like(lr, dtype=torch.float64) for n in params}
        self.reducers = reducers
        self.lr, self.weight_decay, self.trainable = lr, weight_decay, trainable
        k = lr.shape[0]
        pairs = torch.as_tensor(betas, dtype=torch.float64, device=lr.device).expand(k, 2)
        self.beta1, self.beta2 = pairs[:, 0].clone(), pairs[:, 1].clone()
        self.eps = torch.as_tensor(eps, dtype=torch.float64, device=lr.device).expand(k).clone()
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.fused = _fused_available(next(iter(params.values()))) if fused is None else fused
        self._plan: list[tuple[tuple[float, ...], list[tuple[str, int]]]] | None = None
        self._lists: tuple[object, list[list[torch.Tensor]]] | None = None

    def _per_member(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(K,) settings as ``like``'s dtype, shaped to broadcast over its trailing axes."""
        return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor] | None = None) -> None:
        """One update from ``grads`` (name → (K, ...) tensor), or from each ``param.grad``."""
        self.step_count += 1
        if grads is None:
            grads = {n: p.grad for n, p in self.params.items() if p.grad is not None}
        if self.reducers is not None:
            self.reducers.filter_(grads, self.params, self.step_count)
        if self.fused:
            self._fused_step(grads)
        else:
            self._reference_step(grads)
        if self.reducers is not None:
            self.reducers.rescale_(self.params)

    def _groups(self) -> list[tuple[tuple[float, ...], list[tuple[str, int]]]]:
        """Slices sharing (lr × lr_scale, weight decay, beta1, beta2, eps) → their trainable
        (parameter, position) pairs."""
        if self._plan is None:
            lr = self.lr.tolist()
            settings = [t.tolist() for t in (self.weight_decay, self.beta1, self.beta2,
                                             self.eps)]
            flags = {n: t.tolist() for n, t in self.trainable.items()}
            scales = {n: t.tolist() for n, t in self.lr_scale.items()}
            groups: dict[tuple[float, ...], list[tuple[str, int]]] = {}
            for pos, rest in enumerate(zip(*settings, strict=True)):
                for n in self.params:
                    if flags[n][pos] > 0:
                        key = (lr[pos] * scales[n][pos], *rest)
                        groups.setdefault(key, []).append((n, pos))
            self._plan = [(key, slices) for key, slices in groups.items() if slices]
        return self._plan

    def _fused_step(self, grads: dict[str, torch.Tensor]) -> None:
        if self._lists is None or self._lists[0] is not grads:
            lists = []
            for _, slices in self._groups():
                for source in (self.params, grads, self.exp_avg, self.exp_avg_sq):
                    lists.append([source[n][pos] for n, pos in slices])
            self._lists = (grads, lists)
        lists = self._lists[1]
        step = torch.tensor(float(self.step_count), device=self.lr.device)
        for index, ((lr, wd, beta1, beta2, eps), slices) in enumerate(self._groups()):
            params, grad, exp_avg, exp_avg_sq = lists[4 * index: 4 * index + 4]
            # PyTorch's kernel called directly: the public ways to it give bitwise the same
            # weights and moments but cost more per step (benchmarks/adamw_fused.py,
            # docs/performance.md; one thread, K = 1 to 16: 1.9–2.7× the time with
            # torch.optim.AdamW(fused=True), a param group per setting; 1.4–2.2× with the
            # functional torch.optim.adamw.adamw(fused=True), which also wants a step tensor
            # per slice). So a private API, until PyTorch has a public fused AdamW over
            # tensor lists that takes the step as a number and does no regrouping.
            torch._fused_adamw_(params, grad, exp_avg, exp_avg_sq, [], [step] * len(slices),
                                lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd,
                                eps=eps, amsgrad=False, maximize=False)

    def _reference_step(self, grads: dict[str, torch.Tensor]) -> None:
        """torch.optim.AdamW's formula with each member's settings, in float64 until cast."""
        beta1, beta2 = self.beta1, self.beta2
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = (1 - beta2**self.step_count).sqrt()
        for name, param in self.params.items():
            grad = grads.get(name)
            if grad is None:
                continue
            per = self._per_member
            lr = self.lr.double() * self.trainable[name].double() * self.lr_scale[name]
            param.mul_(per(1 - lr * self.weight_decay.double(), param))
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(grad, per(1 - beta1, m))
            v.mul_(per(beta2, v)).addcmul_(grad, grad * per(1 - beta2, grad))
            denom = (v.sqrt() / per(bias2_sqrt, v)).add_(per(self.eps, v))
            param.sub_(per(lr / bias1, param) * m / denom)

    def zero_grad(self) -> None:
        for param in self.params.values():
            param.grad = None

    # what each member has of its own, on the leading axis: settings, then per-parameter dicts
    _SETTINGS = ("lr", "weight_decay", "beta1", "beta2", "eps")
    _PER_PARAMETER = ("trainable", "lr_scale", "exp_avg", "exp_avg_sq")

    def _index_into(self, target: PopulationAdamW, index: torch.Tensor | slice) -> None:
        """Give ``target`` these members' settings and moments (a slice shares the storage)."""
        for name in self._SETTINGS:
            setattr(target, name, getattr(self, name)[index])
        for name in self._PER_PARAMETER:
            setattr(target, name, {n: t[index] for n, t in getattr(self, name).items()})
        target._plan = target._lists = None

    def retire(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep``: their moments, settings and reducers
        (``PerMember``). The weights are the population's: ``params`` is its dict, whose
        tensors ``Population.retire`` replaces."""
        self._index_into(self, torch.tensor(keep, dtype=torch.long, device=self.lr.device))
        if self.reducers is not None:
            self.reducers.retire(keep)

    def shard(self, lo: int, hi: int) -> PopulationAdamW:
        """An optimiser over members lo..hi-1 that shares this one's parameters and moments."""
        part = PopulationAdamW.__new__(PopulationAdamW)
        part.params = {n: p[lo:hi] for n, p in self.params.items()}
        self._index_into(part, slice(lo, hi))
        part.fused, part.step_count = self.fused, self.step_count
        part.reducers = self.reducers.shard(lo, hi) if self.reducers is not None else None
        return part

    def state_dict(self, cpu: bool = False) -> dict[str, object]:
        """Step count and moments (copied to the CPU with ``cpu=True``, for checkpoints)."""
        def own(t: torch.Tensor) -> torch.Tensor:
            return t.detach().cpu().clone() if cpu else t
        state: dict[str, object] = {
            "step": self.step_count,
            "exp_avg": {n: own(t) for n, t in self.exp_avg.items()},
            "exp_avg_sq": {n: own(t) for n, t in self.exp_avg_sq.items()},
            "lr": own(self.lr), "weight_decay": own(self.weight_decay)}
        if self.reducers is not None:
            state["reducers"] = self.reducers.state_dict(cpu)
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the step count and moments of :meth:`state_dict` (same members, same order).

        ``lr``, ``weight_decay``, betas and eps come from the members' specs and are not
        overwritten.
        """
        self.step_count = int(state["step"])  # type: ignore[call-overload]
        for name, moments in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            saved: dict[str, torch.Tensor] = state[name]  # type: ignore[assignment]
            for key, target in moments.items():
                moments[key] = saved[key].to(device=target.device, dtype=target.dtype).clone()
        if self.reducers is not None:
            self.reducers.load_state_dict(state["reducers"])  # type: ignore[arg-type]
        self._plan = self._lists = None  # the fused kernel's lists point at the old moments


def _fused_available(like: torch.Tensor) -> bool:
    """Whether this PyTorch has a fused AdamW kernel for the tensor's device and dtype."""
    if not hasattr(torch, "_fused_adamw_"):
        return False
    probe = [torch.zeros(2, device=like.device, dtype=like.dtype)]
    try:  # the private API _fused_step calls, on two numbers
        torch._fused_adamw_(probe, [probe[0].clone()], [probe[0].clone()], [probe[0].clone()],
                            [], [torch.ones((), device=like.device)], lr=0.1, beta1=0.9,
                            beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                            maximize=False)
    except (RuntimeError, NotImplementedError):
        return False
    return True
