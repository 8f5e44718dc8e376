"""One training step of a whole population, written out by hand: forward, loss gradient, backward.

Autograd over a dozen small ops costs more than the arithmetic at small K, and it allocates
every intermediate anew each step. Here the intermediates live in buffers allocated once per
population, the gradients land in preallocated tensors shaped like the parameters, and a step
is about twenty ATen calls whatever K is. The arithmetic is ``arch/mlp.py``'s, and
``tests/engine/test_step.py`` checks these gradients against autograd through its ``logits``:

- the first layer goes through the per-token tables ``T = emb @ W1`` (K, 2, P, H): one bmm over
  2K (left halves, right halves), the bias added to the left table, then two ``index_select``
  into a preallocated buffer gather the two rows of every pair and one add sums them; the
  backward scatters into the tables with ``index_add_`` and two bmms give the gradients of W1
  and of the embedding;
- the loss is each member's mean cross-entropy; its gradient ``(softmax - onehot) / b`` is made
  in place; the objective is the sum over members, so members never mix.

With dropout the first layer builds the concatenated embedding instead, as the model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .arch import DropoutMasks
from .arch.mlp import MlpArch, activate_

__all__ = ["Batch", "TrainStep"]

_aten = torch.ops.aten


@dataclass(frozen=True)
class Batch:
    """Index tensors of one minibatch for all K members, made once per epoch."""

    size: int  # b, pairs per member
    left: torch.Tensor  # (K*b,) rows k*2P + i of the flat (K*2P, H) tables
    right: torch.Tensor  # (K*b,) rows k*2P + P + j
    target: torch.Tensor  # (K*b,) positions (k*b + n)*P + label in the flat (K, b, P) logits


class TrainStep:
    """Buffers for K members at batch size B, and one step's arithmetic over them.

    ``step(params, batch)`` writes into ``self.grads`` (shapes of the parameters) the gradient
    of the sum over members of each member's mean cross-entropy on its minibatch.
    """

    def __init__(self, arch: MlpArch, params: dict[str, torch.Tensor], batch_size: int):
        self.arch = arch
        emb = params["embedding"]
        k, p, d = emb.shape
        self.k, self.p, self.d, self.batch_size = k, p, d, batch_size

        def empty(*shape: int) -> torch.Tensor:
            return torch.empty(shape, dtype=emb.dtype, device=emb.device)

        self.grads = {n: empty(*t.shape) for n, t in params.items()}
        h0 = arch.hidden[0]
        self._emb2 = empty(k, 2, p, d)  # (K, 2, P, d) emb, once per table half
        self._demb2 = empty(k, 2, p, d)
        self._tables = empty(k, 2, p, h0)  # (K, 2, P, H0)
        self._dtables = empty(k, 2, p, h0)
        self._offsets = torch.arange(k, device=emb.device)[:, None] * (2 * p)  # (K, 1)
        # flat, so that a short last batch (b < B) views a contiguous prefix
        self._pre = [empty(k * batch_size * h) for h in arch.hidden]
        self._act = [empty(k * batch_size * h) for h in arch.hidden]
        self._dh = [empty(k * batch_size * h) for h in arch.hidden]
        self._logits = empty(k * batch_size * p)
        self._minus_one = empty(k * batch_size).fill_(-1.0)

    def plan(self, left: torch.Tensor, right: torch.Tensor, labels: torch.Tensor) -> list[Batch]:
        """An epoch's minibatches from its shuffled operands and labels, each (K, N_train)."""
        batches = []
        for s in range(0, left.shape[1], self.batch_size):
            end = s + self.batch_size
            k, b = left[:, s:end].shape
            li = (left[:, s:end] + self._offsets).reshape(-1)
            ri = (right[:, s:end] + self._offsets + self.p).reshape(-1)
            rows = torch.arange(k * b, device=left.device).view(k, b)
            target = (rows * self.p + labels[:, s:end]).reshape(-1)
            batches.append(Batch(b, li, ri, target))
        return batches

    def _buffer(self, flat: torch.Tensor, b: int, width: int) -> torch.Tensor:
        return flat[: self.k * b * width].view(self.k, b, width)

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], batch: Batch,
             masks: DropoutMasks | None = None) -> None:
        arch, grads, k, p, d, b = self.arch, self.grads, self.k, self.p, self.d, batch.size
        w0, h0 = params["hidden.0.weight"], arch.hidden[0]  # (K, 2d, H0)
        emb2 = self._emb2
        if arch.embedding_activation == "relu":
            torch.clamp_min(params["embedding"], 0.0, out=emb2[:, 0])
            emb2[:, 1].copy_(emb2[:, 0])
        else:
            emb2.copy_(params["embedding"][:, None].expand(k, 2, p, d))
        # ---- forward
        x_emb = emb_keep = None
        if masks is None:
            tables = self._tables
            torch.bmm(emb2.view(2 * k, p, d), w0.view(2 * k, d, h0), out=tables.view(2 * k, p, h0))
            tables[:, 0].add_(params["hidden.0.bias"][:, None, :])
            flat, pre = tables.view(-1, h0), self._buffer(self._pre[0], b, h0)
            right = self._buffer(self._dh[0], b, h0)  # free until the backward
            torch.index_select(flat, 0, batch.left, out=pre.view(-1, h0))
            torch.index_select(flat, 0, batch.right, out=right.view(-1, h0))
            pre.add_(right)
        else:
            rows = emb2.view(-1, d)  # (K*2P, d) in the tables' row order
            x_emb = torch.cat([rows[batch.left], rows[batch.right]], 1).view(k, b, 2 * d)
            emb_keep = masks("embedding", tuple(x_emb.shape))
            x_emb = x_emb * emb_keep
            pre = torch.baddbmm(params["hidden.0.bias"][:, None, :], x_emb, w0)
        pres, acts, inputs, keeps = [], [], [], []
        h = pre
        for layer, width in enumerate(arch.hidden):
            if layer > 0:
                pre = torch.baddbmm(params[f"hidden.{layer}.bias"][:, None, :], h,
                                    params[f"hidden.{layer}.weight"],
                                    out=self._buffer(self._pre[layer], b, width))
            act = self._activate(pre, self._buffer(self._act[layer], b, width))
            keep = masks("hidden", tuple(act.shape)) if masks is not None else None
            h = act * keep if keep is not None else act
            pres.append(pre)
            acts.append(act)
            keeps.append(keep)
            inputs.append(h)
        logits = self._buffer(self._logits, b, p)  # (K, b, P)
        torch.baddbmm(params["output.bias"][:, None, :], h, params["output.weight"], out=logits)
        # ---- loss gradient, in place: (softmax - onehot(label)) / b
        g = torch.softmax(logits, -1, out=logits)
        g.view(-1).index_add_(0, batch.target, self._minus_one[: k * b])
        g.mul_(1.0 / b)
        # ---- backward
        torch.bmm(h.transpose(1, 2), g, out=grads["output.weight"])
        torch.sum(g, 1, out=grads["output.bias"])
        upstream, weight = g, params["output.weight"]
        for layer in reversed(range(len(arch.hidden))):
            dh = self._buffer(self._dh[layer], b, arch.hidden[layer])
            torch.bmm(upstream, weight.transpose(1, 2), out=dh)
            keep = keeps[layer]
            if keep is not None:
                dh.mul_(keep)
            self._activation_backward(dh, pres[layer], acts[layer])  # dh is now d pre
            if layer == 0:
                break
            torch.bmm(inputs[layer - 1].transpose(1, 2), dh, out=grads[f"hidden.{layer}.weight"])
            torch.sum(dh, 1, out=grads[f"hidden.{layer}.bias"])
            upstream, weight = dh, params[f"hidden.{layer}.weight"]
        demb2 = self._demb2
        if x_emb is None:
            dtables = self._dtables
            flat = dtables.view(-1, h0).zero_()
            flat.index_add_(0, batch.left, dh.view(-1, h0))
            flat.index_add_(0, batch.right, dh.view(-1, h0))
            torch.sum(dtables[:, 0], 1, out=grads["hidden.0.bias"])
            dt = dtables.view(2 * k, p, h0)
            torch.bmm(emb2.view(2 * k, p, d).transpose(1, 2), dt, out=grads["hidden.0.weight"]
                      .view(2 * k, d, h0))
            torch.bmm(dt, w0.view(2 * k, d, h0).transpose(1, 2), out=demb2.view(2 * k, p, d))
        else:
            assert emb_keep is not None
            torch.bmm(x_emb.transpose(1, 2), dh, out=grads["hidden.0.weight"])
            torch.sum(dh, 1, out=grads["hidden.0.bias"])
            dx = torch.bmm(dh, w0.transpose(1, 2)).mul_(emb_keep)  # (K, b, 2d)
            rows = demb2.view(-1, d).zero_()
            rows.index_add_(0, batch.left, dx[..., :d].reshape(-1, d))
            rows.index_add_(0, batch.right, dx[..., d:].reshape(-1, d))
        gemb = torch.add(demb2[:, 0], demb2[:, 1], out=grads["embedding"])
        if arch.embedding_activation == "relu":
            _aten.threshold_backward.grad_input(gemb, params["embedding"], 0.0, grad_input=gemb)

    def _activate(self, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The activation; in place where its backward needs only the output."""
        return activate_(self.arch.activation, pre, out)

    def _activation_backward(self, dh: torch.Tensor, pre: torch.Tensor,
                             act: torch.Tensor) -> None:
        """d act → d pre, in place in ``dh``."""
        name = self.arch.activation
        if name == "relu":
            _aten.threshold_backward.grad_input(dh, act, 0.0, grad_input=dh)
        elif name == "tanh":
            _aten.tanh_backward.grad_input(dh, act, grad_input=dh)
        else:
            _aten.gelu_backward.grad_input(dh, pre, approximate="none", grad_input=dh)
