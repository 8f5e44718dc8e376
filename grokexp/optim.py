"""AdamW over stacked parameters, with a learning rate and weight decay per member.

The update is torch.optim.AdamW's (decoupled decay, bias correction as there). Where PyTorch
has its fused kernel for the device (``torch._fused_adamw_``, what ``AdamW(fused=True)`` runs:
CPU since 2.4, CUDA), one call updates every member that shares a (lr, weight decay) pair,
each member's slice of each parameter an entry of the kernel's tensor list, in a single pass
over memory. Elsewhere the same formula runs as tensor ops with (K,) lr/wd broadcast over
each parameter's trailing axes. Frozen layers (``trainable`` 0 for a member) never move.
"""

from __future__ import annotations

import torch

__all__ = ["PopulationAdamW"]


class PopulationAdamW:
    """Adam moments per parameter, updated in place; frozen members' layers never move."""

    def __init__(self, params: dict[str, torch.Tensor], lr: torch.Tensor,
                 weight_decay: torch.Tensor, trainable: dict[str, torch.Tensor],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 fused: bool | None = None):
        self.params = params
        self.lr, self.weight_decay, self.trainable = lr, weight_decay, trainable
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.fused = _fused_available(next(iter(params.values()))) if fused is None else fused
        self._plan: list[tuple[float, float, list[tuple[str, int]]]] | None = None
        self._lists: tuple[object, list[list[torch.Tensor]]] | None = None

    def _per_member(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor] | None = None) -> None:
        """One update from ``grads`` (name → (K, ...) tensor), or from each ``param.grad``."""
        self.step_count += 1
        if grads is None:
            grads = {n: p.grad for n, p in self.params.items() if p.grad is not None}
        if self.fused:
            self._fused_step(grads)
        else:
            self._reference_step(grads)

    def _groups(self) -> list[tuple[float, float, list[tuple[str, int]]]]:
        """Members sharing (lr, weight decay) → their trainable (parameter, position) slices."""
        if self._plan is None:
            lrs, wds = self.lr.tolist(), self.weight_decay.tolist()
            flags = {n: t.tolist() for n, t in self.trainable.items()}
            groups: dict[tuple[float, float], list[tuple[str, int]]] = {}
            for pos, key in enumerate(zip(lrs, wds, strict=True)):
                slices = [(n, pos) for n in self.params if flags[n][pos] > 0]
                groups.setdefault(key, []).extend(slices)
            self._plan = [(lr, wd, slices) for (lr, wd), slices in groups.items() if slices]
        return self._plan

    def _fused_step(self, grads: dict[str, torch.Tensor]) -> None:
        if self._lists is None or self._lists[0] is not grads:
            lists = []
            for _, _, slices in self._groups():
                for source in (self.params, grads, self.exp_avg, self.exp_avg_sq):
                    lists.append([source[n][pos] for n, pos in slices])
            self._lists = (grads, lists)
        lists = self._lists[1]
        step = torch.tensor(float(self.step_count), device=self.lr.device)
        beta1, beta2 = self.betas
        for index, (lr, wd, slices) in enumerate(self._groups()):
            params, grad, exp_avg, exp_avg_sq = lists[4 * index: 4 * index + 4]
            torch._fused_adamw_(params, grad, exp_avg, exp_avg_sq, [], [step] * len(slices),
                                lr=lr, beta1=beta1, beta2=beta2, weight_decay=wd,
                                eps=self.eps, amsgrad=False, maximize=False)

    def _reference_step(self, grads: dict[str, torch.Tensor]) -> None:
        beta1, beta2 = self.betas
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = (1 - beta2**self.step_count) ** 0.5
        for name, param in self.params.items():
            grad = grads.get(name)
            if grad is None:
                continue
            lr = self._per_member((self.lr * self.trainable[name]).to(param.dtype), param)
            wd = self._per_member(self.weight_decay.to(param.dtype), param)
            param.mul_(1 - lr * wd)
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            param.sub_(lr / bias1 * m / denom)

    def zero_grad(self) -> None:
        for param in self.params.values():
            param.grad = None

    def select(self, keep: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
        """Follow Population.select: keep those members' moments and settings."""
        self.params = params
        self.lr, self.weight_decay = self.lr[keep], self.weight_decay[keep]
        self.trainable = {n: t[keep] for n, t in self.trainable.items()}
        self.exp_avg = {n: t[keep] for n, t in self.exp_avg.items()}
        self.exp_avg_sq = {n: t[keep] for n, t in self.exp_avg_sq.items()}
        self._plan = self._lists = None

    def shard(self, lo: int, hi: int) -> PopulationAdamW:
        """An optimiser over members lo..hi-1 that shares this one's parameters and moments."""
        part = PopulationAdamW.__new__(PopulationAdamW)
        part.params = {n: p[lo:hi] for n, p in self.params.items()}
        part.lr, part.weight_decay = self.lr[lo:hi], self.weight_decay[lo:hi]
        part.trainable = {n: t[lo:hi] for n, t in self.trainable.items()}
        part.exp_avg = {n: t[lo:hi] for n, t in self.exp_avg.items()}
        part.exp_avg_sq = {n: t[lo:hi] for n, t in self.exp_avg_sq.items()}
        part.betas, part.eps, part.fused = self.betas, self.eps, self.fused
        part.step_count = self.step_count
        part._plan = part._lists = None
        return part

    def state_dict(self, cpu: bool = False) -> dict[str, object]:
        """Step count and moments (copied to the CPU with ``cpu=True``, for checkpoints)."""
        def own(t: torch.Tensor) -> torch.Tensor:
            return t.detach().cpu().clone() if cpu else t
        return {"step": self.step_count,
                "exp_avg": {n: own(t) for n, t in self.exp_avg.items()},
                "exp_avg_sq": {n: own(t) for n, t in self.exp_avg_sq.items()},
                "lr": own(self.lr), "weight_decay": own(self.weight_decay)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the step count and moments of :meth:`state_dict` (same members, same order).

        ``lr`` and ``weight_decay`` come from the members' specs and are not overwritten.
        """
        self.step_count = int(state["step"])  # type: ignore[call-overload]
        for name, moments in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            saved: dict[str, torch.Tensor] = state[name]  # type: ignore[assignment]
            for key, target in moments.items():
                moments[key] = saved[key].to(device=target.device, dtype=target.dtype).clone()
        self._plan = self._lists = None  # the fused kernel's lists point at the old moments


def _fused_available(like: torch.Tensor) -> bool:
    """Whether this PyTorch has a fused AdamW kernel for the tensor's device and dtype."""
    if not hasattr(torch, "_fused_adamw_"):
        return False
    probe = [torch.zeros(2, device=like.device, dtype=like.dtype)]
    try:
        torch._fused_adamw_(probe, [probe[0].clone()], [probe[0].clone()], [probe[0].clone()],
                            [], [torch.ones((), device=like.device)], lr=0.1, beta1=0.9,
                            beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                            maximize=False)
    except (RuntimeError, NotImplementedError):
        return False
    return True
