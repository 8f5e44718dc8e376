"""A decoder-only transformer on the sequence ``a b =`` (Nanda et al.'s progress-measures model;
``n_layers = 2, layer_norm = true`` is Power et al.'s decoder), logits read at ``=``.

Tokens 0..P-1 are the operands and P is ``=`` (a vocabulary of P+1); a token embedding
``embedding`` (P+1, d) plus a learned ``positional`` (3, d) feed ``n_layers`` residual blocks of
causal multi-head attention (no biases, as Nanda's) and an MLP (``b_in``, ``b_out``), then
``unembed.weight`` (d, P) without bias. With ``layer_norm`` every block is pre-LN and a final
LayerNorm precedes the unembedding; LayerNorm weights start at 1 and biases at 0 whatever the
init tables say (``Param.constant``), in the group of the sublayer they feed (``unembed`` for
the final one). Matmul weights are stored (in, out), so a batch is ``x @ W``: ``w_q``, ``w_k``,
``w_v`` are (d, n_heads·d_head) with head h in columns ``h·d_head:(h+1)·d_head`` and ``w_o`` is
(n_heads·d_head, d), as ``nn.MultiheadAttention``'s projections transposed.

Every matmul is a ``bmm`` over the K members (members never mix; see :func:`batched`).
Attention over 3 positions is products and sums over the three keys, not tiny matmuls. In
the last layer only the ``=`` position reaches the logits, so unless a site is recorded the
query, ``W_O`` and the MLP run there alone (its keep-masks are still drawn at all three
positions).

Dropout sites: ``embedding`` after token + positional embeddings (N, 3, d), ``attention`` on
each layer's attention output after ``W_O`` (N, 3, d), ``mlp`` on each layer's hidden
activations (N, 3, d_mlp).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import Architecture, DropoutMasks, Forward, Param

__all__ = ["TransformerArch", "TransformerTwin", "from_spec"]

SEQ = 3  # a, b, =
MIN_WIDTH = 16  # narrowest matmul output computed as is (see ``batched``)
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "gelu": F.gelu}
_DEFAULTS: dict[str, Any] = {"d_model": 128, "n_heads": 4, "d_mlp": 512, "n_layers": 1,
                             "layer_norm": False, "activation": "relu"}


class TransformerArch(Architecture):
    """The transformer at fixed sizes: P operand tokens (and P classes), d_model, heads, d_mlp,
    layers, pre-LN or none, relu or gelu (exact, ``F.gelu``)."""

    name: ClassVar[str] = "transformer"
    groups: ClassVar[tuple[str, ...]] = ("embedding", "positional", "attention", "mlp",
                                         "unembed")
    sites: ClassVar[tuple[str, ...]] = ("embedding", "attention", "mlp")

    def __init__(self, n_tokens: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512,
                 n_layers: int = 1, layer_norm: bool = False, activation: str = "relu"):
        if min(n_tokens, d_model, n_heads, d_mlp, n_layers) < 1 or d_model % n_heads:
            raise ValueError(f"transformer sizes must be positive with n_heads dividing d_model:"
                             f" d_model {d_model}, n_heads {n_heads}, d_mlp {d_mlp}, "
                             f"n_layers {n_layers}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (one of "
                             f"{', '.join(_ACTIVATIONS)})")
        self.n_tokens = self.n_classes = int(n_tokens)
        self.d_model, self.n_heads, self.d_mlp = int(d_model), int(n_heads), int(d_mlp)
        self.d_head = self.d_model // self.n_heads
        self.n_layers, self.layer_norm = int(n_layers), bool(layer_norm)
        self.activation = activation

    @classmethod
    def from_spec(cls, spec: Any) -> TransformerArch:
        return from_spec(spec)

    def layout(self) -> list[Param]:
        p, d, m = self.n_tokens, self.d_model, self.d_mlp
        out = [Param("embedding", (p + 1, d), d, p + 1, "embedding"),
               Param("positional", (SEQ, d), d, SEQ, "positional")]
        for layer in range(self.n_layers):
            pre = f"blocks.{layer}."
            out += self._norm(pre + "ln1", "attention")
            out += [Param(pre + f"attn.{w}", (d, d), d, d, "attention")
                    for w in ("w_q", "w_k", "w_v", "w_o")]
            out += self._norm(pre + "ln2", "mlp")
            out += [Param(pre + "mlp.w_in", (d, m), d, m, "mlp"),
                    Param(pre + "mlp.b_in", (m,), d, m, "mlp", is_bias=True),
                    Param(pre + "mlp.w_out", (m, d), m, d, "mlp"),
                    Param(pre + "mlp.b_out", (d,), m, d, "mlp", is_bias=True)]
        out += self._norm("ln_final", "unembed")
        out.append(Param("unembed.weight", (d, p), d, p, "unembed"))
        return out

    def _norm(self, name: str, group: str) -> list[Param]:
        if not self.layer_norm:
            return []
        d = self.d_model
        return [Param(name + ".weight", (d,), d, d, group, constant=1.0),
                Param(name + ".bias", (d,), d, d, group, is_bias=True, constant=0.0)]

    def mask_shapes(self, n: int) -> list[tuple[str, tuple[int, ...]]]:
        per_layer = [("attention", (n, SEQ, self.d_model)), ("mlp", (n, SEQ, self.d_mlp))]
        return [("embedding", (n, SEQ, self.d_model)), *(per_layer * self.n_layers)]

    @property
    def relu_sites(self) -> tuple[str, ...]:
        return ("mlp",) if self.activation == "relu" else ()

    def token_embedding(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        return params["embedding"][:, :self.n_tokens]  # the "=" row is no operand

    @property
    def embedding_params(self) -> tuple[str, ...]:
        return ("embedding",)

    def forward(self, params: Mapping[str, torch.Tensor], pairs: torch.Tensor,
                masks: DropoutMasks | None = None,
                record: Collection[str] = ()) -> Forward:
        k, n, _ = pairs.shape
        d, rows = self.d_model, self.n_tokens + 1
        tokens = torch.cat([pairs, pairs.new_full((k, n, 1), self.n_tokens)], dim=2)
        offsets = torch.arange(k, device=pairs.device).view(k, 1, 1) * rows
        # each member gathers from its own rows of the flattened (K·(P+1), d) table
        x = F.embedding(tokens + offsets, params["embedding"].reshape(k * rows, d))
        x = x + params["positional"][:, None]  # (K, N, 3, d)
        if unknown := set(record) - set(self.sites):
            raise ValueError(f"the transformer has no site {sorted(unknown)}")
        acts: dict[str, list[torch.Tensor]] = {site: [] for site in record}
        if "embedding" in acts:
            acts["embedding"].append(x)
        if masks is not None:
            x = x * masks("embedding", (k, n, SEQ, d))
        for layer in range(self.n_layers):
            pre = f"blocks.{layer}."
            # the last layer feeds the logits from "=" alone unless its sites are recorded
            last_only = layer == self.n_layers - 1 and not {"attention", "mlp"} & set(acts)
            y = self._norm_of(params, pre + "ln1", x)
            out = self._attention(params, pre + "attn.", y, last_only)
            if "attention" in acts:
                acts["attention"].append(out)
            if masks is not None:
                out = out * masks("attention", (k, n, SEQ, d))[:, :, -out.shape[2]:]
            x = (x[:, :, -1:] if last_only else x) + out
            hidden = self._mlp_hidden(params, pre + "mlp.", self._norm_of(params, pre + "ln2", x))
            if "mlp" in acts:
                acts["mlp"].append(hidden)
            if masks is not None:
                hidden = hidden * masks("mlp", (k, n, SEQ, self.d_mlp))[:, :, -x.shape[2]:]
            x = x + batched(hidden.flatten(1, 2), params[pre + "mlp.w_out"],
                            params[pre + "mlp.b_out"]).view(x.shape)
        final = self._norm_of(params, "ln_final", x[:, :, -1])  # (K, N, d) at "="
        return Forward(batched(final, params["unembed.weight"]), acts)

    def _norm_of(self, params: Mapping[str, torch.Tensor], name: str,
                 x: torch.Tensor) -> torch.Tensor:
        """LayerNorm over d with each member's weight and bias (identity without layer_norm)."""
        if not self.layer_norm:
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (self.d_model,)
        return torch.addcmul(params[name + ".bias"].view(shape), F.layer_norm(x, (self.d_model,)),
                             params[name + ".weight"].view(shape))

    def _attention(self, params: Mapping[str, torch.Tensor], pre: str, y: torch.Tensor,
                   last_only: bool) -> torch.Tensor:
        """Causal multi-head attention's output after ``W_O``: (K, N, Q, d) for the Q query
        positions (all three, or "=" alone)."""
        k, n, _, d = y.shape
        h, e = self.n_heads, self.d_head
        flat = y.reshape(k, n * SEQ, d)
        kv = batched(flat, torch.cat([params[pre + "w_k"], params[pre + "w_v"]], dim=2))
        keys, values = kv.view(k, n, SEQ, 2, h, e).unbind(3)  # (K, N, 3, H, e) each
        query_in = y[:, :, -1] if last_only else flat  # (K, N·Q, d)
        q = batched(query_in, params[pre + "w_q"] * (1.0 / math.sqrt(e)))
        q = q.view(k, n, -1, h, e)
        positions = q.shape[2]
        scores = torch.stack([(q * keys[:, :, j:j + 1]).sum(-1) for j in range(SEQ)], dim=-1)
        if positions == SEQ:  # query i sees keys j <= i
            future = torch.ones(SEQ, SEQ, dtype=torch.bool, device=y.device).triu(1)
            scores = scores.masked_fill(future.view(SEQ, 1, SEQ), float("-inf"))
        weights = scores.softmax(-1)  # (K, N, Q, H, 3)
        z = weights[..., 0, None] * values[:, :, 0:1]
        for j in range(1, SEQ):
            z = z + weights[..., j, None] * values[:, :, j:j + 1]
        out = batched(z.reshape(k, n * positions, d), params[pre + "w_o"])
        return out.view(k, n, positions, d)

    def _mlp_hidden(self, params: Mapping[str, torch.Tensor], pre: str,
                    y: torch.Tensor) -> torch.Tensor:
        """The MLP's hidden activations after the nonlinearity: (K, N, Q, d_mlp)."""
        k, n, positions, _ = y.shape
        pre_act = batched(y.reshape(k, n * positions, -1), params[pre + "w_in"],
                          params[pre + "b_in"])
        return _ACTIVATIONS[self.activation](pre_act).view(k, n, positions, self.d_mlp)

    def twin(self, params: Mapping[str, torch.Tensor]) -> nn.Module:
        return TransformerTwin(self, params)


def batched(x: torch.Tensor, weight: torch.Tensor,
            bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight (+ bias)`` per member: (K, M, n_in) @ (K, n_in, n_out) → (K, M, n_out).

    On the CPU, MKL's batched sgemm (K ≥ 2) and its single sgemm (K = 1) round differently
    for outputs narrower than 12 columns (seen at P = 7 and 11), so a member's logits would
    change with K; narrower weights are zero-padded to ``MIN_WIDTH`` columns and cut back."""
    width = weight.shape[-1]
    if width < MIN_WIDTH:
        weight = F.pad(weight, (0, MIN_WIDTH - width))
        bias = None if bias is None else F.pad(bias, (0, MIN_WIDTH - width))
    out = torch.bmm(x, weight) if bias is None else torch.baddbmm(bias[:, None], x, weight)
    return out if width >= MIN_WIDTH else out[..., :width].contiguous()


class _Block(nn.Module):
    """One residual block: (pre-LN) causal multi-head attention, then (pre-LN) MLP."""

    def __init__(self, arch: TransformerArch):
        super().__init__()
        d, m = arch.d_model, arch.d_mlp
        self.n_heads, self.d_head = arch.n_heads, arch.d_head
        self.ln1 = nn.LayerNorm(d) if arch.layer_norm else nn.Identity()
        self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ln2 = nn.LayerNorm(d) if arch.layer_norm else nn.Identity()
        self.mlp_in, self.mlp_out = nn.Linear(d, m), nn.Linear(m, d)
        self.act = nn.ReLU() if arch.activation == "relu" else nn.GELU()
        self.future: torch.Tensor
        self.register_buffer("future", torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1))

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], SEQ, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln1(x)
        q, k, v = self.heads(self.w_q(y)), self.heads(self.w_k(y)), self.heads(self.w_v(y))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_head)  # (N, H, 3, 3)
        weights = F.softmax(scores.masked_fill(self.future, float("-inf")), dim=-1)
        z = (weights @ v).transpose(1, 2).reshape(x.shape)
        x = x + self.w_o(z)
        return x + self.mlp_out(self.act(self.mlp_in(self.ln2(x))))


class TransformerTwin(nn.Module):
    """One member as a plain module: (N, 2) int64 operand pairs → (N, P) logits."""

    def __init__(self, arch: TransformerArch, params: Mapping[str, torch.Tensor]):
        super().__init__()
        d, p = arch.d_model, arch.n_tokens
        self.equals = p
        self.embedding = nn.Embedding(p + 1, d)
        self.positional = nn.Parameter(torch.zeros(SEQ, d))
        self.blocks = nn.ModuleList(_Block(arch) for _ in range(arch.n_layers))
        self.ln_final = nn.LayerNorm(d) if arch.layer_norm else nn.Identity()
        self.unembed = nn.Linear(d, p, bias=False)
        # grokexp stores (in, out); nn.Linear holds (out, in)
        names = {"embedding": "embedding.weight", "positional": "positional",
                 "unembed.weight": "unembed.weight", "ln_final.weight": "ln_final.weight",
                 "ln_final.bias": "ln_final.bias"}
        for layer in range(arch.n_layers):
            pre = f"blocks.{layer}."
            names.update({pre + f"attn.{w}": pre + f"{w}.weight"
                          for w in ("w_q", "w_k", "w_v", "w_o")})
            names.update({pre + "mlp.w_in": pre + "mlp_in.weight",
                          pre + "mlp.b_in": pre + "mlp_in.bias",
                          pre + "mlp.w_out": pre + "mlp_out.weight",
                          pre + "mlp.b_out": pre + "mlp_out.bias"})
            names.update({pre + f"{ln}.{part}": pre + f"{ln}.{part}"
                          for ln in ("ln1", "ln2") for part in ("weight", "bias")})
        tables = ("embedding", "positional")  # stored as nn.Embedding / nn.Parameter hold them
        state = {names[key]: (value if value.dim() == 1 or key in tables else value.T).detach()
                 .clone() for key, value in params.items()}
        self.load_state_dict(state, strict=False)
        missing = set(self.state_dict()) - set(state) - {
            f"blocks.{i}.future" for i in range(arch.n_layers)}
        if missing:
            raise KeyError(f"member parameters lack {sorted(missing)}")

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([pairs, torch.full_like(pairs[:, :1], self.equals)], dim=1)
        x = self.embedding(tokens) + self.positional  # (N, 3, d)
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_final(x[:, -1]))


def from_spec(spec: Any) -> TransformerArch:
    """The transformer of a spec: ``model.d_model, n_heads, d_mlp, n_layers, layer_norm,
    activation`` (their defaults where the spec lacks a key), ``task.tokens`` tokens and
    classes (P; 120 for s5)."""
    sizes = {key: getattr(spec.model, key, default) for key, default in _DEFAULTS.items()}
    return TransformerArch(spec.task.tokens, **sizes)
