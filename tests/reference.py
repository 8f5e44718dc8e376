"""An independent reference for every diagnostic, written from the paper, not from grokexp.

The model is the paper's Section 2 network as a plain ``nn.Module``: two tokens → a shared
``nn.Embedding`` → concatenated → ``nn.Linear`` + ReLU (one or more hidden layers) →
``nn.Linear`` to P classes. Dropout is ``F.dropout`` at the concatenated embedding and after
each hidden ReLU. The metrics are numpy, each from its definition: Eq. (2) for the cosine
matrix, Sarle's coefficient for bimodality, a histogram for the peaks, the share of hidden
units that are zero on every training input for sparsity.

Only the weights come from grokexp (one member's state dict, loaded into this module); the
labels are recomputed here as (i + j) mod P.

The helpers every plain reference shares live here too: loading an MLP member's linear layers
(:func:`load_linears`), a member's slice of stacked weights, every pair, and the textbook
training loop (:func:`reference_training`) that the paper's MLP, the one-hot MLP and the
transformer references (tests/arch/) are trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PaperMLP(nn.Module):
    """Embedding → concat → [Linear → ReLU]* → Linear, with optional MC dropout."""

    def __init__(self, modulus: int, embedding_dim: int, hidden: list[int],
                 embedding_relu: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(modulus, embedding_dim)
        widths = [2 * embedding_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(widths[i], widths[i + 1])
                                    for i in range(len(hidden)))
        self.output = nn.Linear(widths[-1], modulus)
        self.embedding_relu = embedding_relu

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], embedding_relu: bool = False
                   ) -> PaperMLP:
        """Load one grokexp member (see :func:`load_linears`)."""
        emb = state["embedding"]
        model = cls(int(emb.shape[0]), int(emb.shape[1]), hidden_widths(state), embedding_relu)
        with torch.no_grad():
            model.embedding.weight.copy_(emb)
        load_linears(model, state)
        return model

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embedding(tokens)
        return F.relu(e) if self.embedding_relu else e

    def activations(self, i: torch.Tensor, j: torch.Tensor, p: float = 0.0,
                    sites: tuple[str, ...] = ()) -> list[torch.Tensor]:
        """Each hidden layer's output after ReLU (and dropout), then the logits last."""
        x = torch.cat([self.embed(i), self.embed(j)], dim=1)
        if "embedding" in sites:
            x = F.dropout(x, p, training=True)
        out = []
        for layer in self.hidden:
            x = F.relu(layer(x))
            if "hidden" in sites:
                x = F.dropout(x, p, training=True)
            out.append(x)
        out.append(self.output(x))
        return out

    def forward(self, i: torch.Tensor, j: torch.Tensor, p: float = 0.0,
                sites: tuple[str, ...] = ()) -> torch.Tensor:
        return self.activations(i, j, p, sites)[-1]


def hidden_widths(state: Mapping[str, torch.Tensor]) -> list[int]:
    """The widths of an MLP member's hidden layers (its ``hidden.{l}.bias``), in order."""
    layers = sorted({int(k.split(".")[1]) for k in state if k.startswith("hidden.")})
    return [int(state[f"hidden.{i}.bias"].shape[0]) for i in layers]


@torch.no_grad()
def load_linears(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """An MLP member's ``hidden.{l}`` and ``output`` layers into ``model.hidden[l]`` and
    ``model.output``: grokexp stores a linear weight (in, out), ``nn.Linear`` keeps (out, in)."""
    layers = [*(f"hidden.{i}" for i in range(len(model.hidden))), "output"]
    modules = [*model.hidden, model.output]  # type: ignore[union-attr]
    for name, layer in zip(layers, modules, strict=True):
        layer.weight.copy_(state[f"{name}.weight"].T)
        layer.bias.copy_(state[f"{name}.bias"])


def member(params: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member ``k``'s weights out of a population's stacked ones."""
    return {name: value[k] for name, value in params.items()}


def pair_grid(modulus: int) -> torch.Tensor:
    """Every pair (i, j), row i·P + j: (P², 2)."""
    i, j = torch.meshgrid(torch.arange(modulus), torch.arange(modulus), indexing="ij")
    return torch.stack([i.reshape(-1), j.reshape(-1)], 1)


def labels(i: torch.Tensor, j: torch.Tensor, modulus: int) -> torch.Tensor:
    return (i + j) % modulus


@torch.no_grad()
def accuracy(model: PaperMLP, i: torch.Tensor, j: torch.Tensor) -> float:
    modulus = model.output.out_features
    return float((model(i, j).argmax(1) == labels(i, j, modulus)).float().mean())


@torch.no_grad()
def mc_dropout_passes(model: PaperMLP, i: torch.Tensor, j: torch.Tensor, p: float,
                      passes: int, sites: tuple[str, ...], seed: int) -> np.ndarray:
    """Test accuracy of each of ``passes`` stochastic forward passes (paper Fig. 1): (S,)."""
    torch.manual_seed(seed)
    modulus = model.output.out_features
    y = labels(i, j, modulus)
    return np.array([float((model(i, j, p, sites).argmax(1) == y).float().mean())
                     for _ in range(passes)])


def cosine_matrix(embedding: np.ndarray) -> np.ndarray:
    """Paper Eq. (2) for every pair of token embeddings: (P, d) → (P, P)."""
    e = embedding.astype(np.float64)
    norms = np.sqrt((e * e).sum(1))
    return (e @ e.T) / np.outer(norms, norms)


def codiagonal_share(cos: np.ndarray) -> float:
    """Between-codiagonal share of the off-diagonal variance (η² over groups i − j mod P)."""
    p = cos.shape[0]
    cells = [(i, j) for i in range(p) for j in range(p) if i != j]
    groups: dict[int, list[float]] = {}
    for i, j in cells:
        groups.setdefault((i - j) % p, []).append(cos[i, j])
    values = np.array([cos[i, j] for i, j in cells])
    fitted = np.array([np.mean(groups[(i - j) % p]) for i, j in cells])
    return 1.0 - ((values - fitted) ** 2).sum() / ((values - values.mean()) ** 2).sum()


def sarle_bimodality(values: np.ndarray) -> float:
    """(g² + 1) / (κ + 3(n−1)²/((n−2)(n−3))) with moment skewness g and excess kurtosis κ."""
    x = values.astype(np.float64)
    n = x.size
    c = x - x.mean()
    m2, m3, m4 = (c**2).mean(), (c**3).mean(), (c**4).mean()
    g, kappa = m3 / m2**1.5, m4 / m2**2 - 3.0
    return (g * g + 1.0) / (kappa + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def histogram_peaks(values: np.ndarray, bins: int = 64) -> tuple[float, float, float]:
    """Tallest smoothed-histogram bin centre below and above the median, and the bin width.

    The rule grokexp documents: ``bins`` bins over the values' range, smoothed by
    [1, 2, 3, 2, 1], split at the median.
    """
    x = values.astype(np.float64)
    counts, edges = np.histogram(x, bins=bins, range=(x.min(), x.max()))
    smooth = np.convolve(counts, [1, 2, 3, 2, 1], mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    below = centres <= np.median(x)
    below[0], below[-1] = True, False  # each side keeps a bin (after a ReLU the median is 0)
    low = centres[below][np.argmax(smooth[below])]
    high = centres[~below][np.argmax(smooth[~below])]
    return float(low), float(high), float(edges[1] - edges[0])


@torch.no_grad()
def sparsity(model: PaperMLP, i: torch.Tensor, j: torch.Tensor) -> tuple[float, float]:
    """Percentage of hidden units that are zero on every input, and the share of zeros."""
    hidden = [h.numpy() for h in model.activations(i, j)[:-1]]  # [(N, H_l)]
    units = sum(h.shape[1] for h in hidden)
    dead = sum(int((h == 0).all(axis=0).sum()) for h in hidden)
    zeros = sum(int((h == 0).sum()) for h in hidden)
    return 100.0 * dead / units, zeros / (units * i.shape[0])


HISTORY_METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")


def plain_training(spec, param_groups=None, after_backward=None, after_step=None):
    """One member of ``spec`` trained the textbook way on this module's network (see
    :func:`reference_training`). Returns the history and the trained network."""
    from grokexp.engine.init import init_member

    net = PaperMLP.from_state(init_member(spec))
    out = reference_training(spec, net, lambda pairs: net(pairs[:, 0], pairs[:, 1]),
                             param_groups, after_backward, after_step)
    return out, net


def reference_training(spec, net: nn.Module,
                       forward: Callable[[torch.Tensor], torch.Tensor],
                       param_groups=None, after_backward=None, after_step=None
                       ) -> dict[str, list[float]]:
    """``net`` (a plain reference module holding one member's initial weights) trained the
    textbook way: ``torch.optim.AdamW``, a Python loop over minibatches; grokexp gives only
    the split and the batch order. ``forward(pairs)`` maps (N, 2) pairs to ``net``'s logits.
    ``param_groups(net)`` replaces the one group of all parameters; ``after_backward(net)``
    may rewrite the gradients before each step and ``after_step(net)`` the weights after it
    (as the reducers' authors apply theirs). Returns the history (epoch 0 and every
    ``metrics.every``)."""
    from grokexp.engine.data import make_splits, pair_table
    from grokexp.engine.seeding import generator_for

    p, t = spec.task.modulus, spec.train
    pairs = pair_grid(p)
    answers = labels(pairs[:, 0], pairs[:, 1], p)
    train_rows = make_splits(spec.task, pair_table(spec.task), [t.split_seed]).train_index[0]
    is_train = torch.zeros(p * p, dtype=torch.bool)
    is_train[train_rows] = True
    groups = param_groups(net) if param_groups is not None else net.parameters()
    opt = torch.optim.AdamW(groups, lr=t.lr, betas=t.betas, eps=t.eps,
                            weight_decay=t.weight_decay, foreach=False)
    order = generator_for(t.seed, "order")
    out: dict[str, list[float]] = {"epochs": [], **{name: [] for name in HISTORY_METRICS}}

    def record(epoch: int) -> None:
        with torch.no_grad():
            scores = forward(pairs)
            right_answer = (scores.argmax(1) == answers).float()
            loss = F.cross_entropy(scores, answers, reduction="none")
        out["epochs"].append(epoch)
        for part, rows in (("train", is_train), ("test", ~is_train)):
            out[f"{part}_acc"].append(float(right_answer[rows].mean()))
            out[f"{part}_loss"].append(float(loss[rows].mean()))

    record(0)
    for epoch in range(1, t.epochs + 1):
        rows = train_rows[torch.randperm(len(train_rows), generator=order)]
        for s in range(0, len(rows), t.batch_size):
            batch = rows[s:s + t.batch_size]
            loss = F.cross_entropy(forward(pairs[batch]), answers[batch])
            opt.zero_grad()
            loss.backward()
            if after_backward is not None:
                after_backward(net)
            opt.step()
            if after_step is not None:
                after_step(net)
        if epoch % spec.metrics.every == 0 or epoch == t.epochs:
            record(epoch)
    return out
