"""Which paper figures a run or a sweep gets, assembled from what was measured.

A member's :class:`~grokexp.series.MemberSnapshots` (its series and chosen-epoch data) comes
from the training loop (the diagnostics hook) or is read back from a tracked run (``grokexp
figures``); ``run_figures`` and ``sweep_figures`` turn them into named Figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..grokking import grok_epoch, grokking_delay, rise_epoch
from ..series import MemberSeries, MemberSnapshots
from . import paper as fp
from .fourier import fourier_figure

if TYPE_CHECKING:  # drawn by a figure worker: importing this needs no matplotlib
    from matplotlib.figure import Figure

__all__ = ["run_figures", "sweep_figures", "seen_embedding", "drc_csv", "parse_drc_csv",
           "short_value"]


def seen_embedding(record: MemberSnapshots, values: np.ndarray) -> np.ndarray:
    """Embedding values as the next layer sees them (after the embedding activation)."""
    return np.maximum(values, 0) if record.embedding_activation == "relu" else values


def _aligned(series: MemberSeries, names: Sequence[str]
             ) -> tuple[list[int], list[list[float]]]:
    """Epochs where every named column has a value, and those values in that order."""
    maps = [series.points(n) for n in names if n in series.columns]
    if len(maps) < len(names):
        return [], [[] for _ in names]
    epochs = sorted(set.intersection(*(set(m) for m in maps)))
    return epochs, [[m[e] for e in epochs] for m in maps]


def _layer_prefixes(series: MemberSeries) -> list[str]:
    return [name[: -len("_std")] for name in series.columns
            if name.endswith("_std") and "bias" not in name]


def run_figures(record: MemberSnapshots, part: int = 0, parts: int = 1) -> dict[str, Figure]:
    """The per-run figures the record has data for, keyed by artifact path; with ``parts``,
    only every ``parts``-th of them from ``part`` on (so that workers can share a run's)."""
    made: list[tuple[str, Callable[[], Figure]]] = []
    series = record.series
    epochs, (train, test) = _aligned(series, ["train_acc", "test_acc"])
    if epochs and "mc_dropout_acc_var" in series.columns:
        mc_epochs, mc_var = series.columns["mc_dropout_acc_var"]
        made.append(("figures/fig1_mc_dropout.png", lambda: fp.fig1_mc_dropout(
            epochs, train, test, mc_epochs, mc_var, record.mc_rate)))
    if record.drc:
        made.append(("figures/fig2_drc.png",
                     lambda: fp.fig2_drc(record.drc_rates, record.drc)))
    if record.cosine:
        made.append(("figures/fig3_cosine.png", lambda: fp.fig3_cosine(record.cosine)))
    if record.final:
        # the token embedding as the embedding metrics see it (else the paper MLP's own)
        token = record.final.get("token_embedding")
        layers = ({"embedding": np.asarray(token)} if token is not None else
                  {"embedding": seen_embedding(record, np.asarray(record.final["embedding"]))}
                  if "embedding" in record.final else {})
        layers.update({k.replace(".", "_").replace("_0_", "_"): v for k, v in
                       record.final.items() if k.endswith("weight")})
        made.append(("figures/fig4_histograms.png", lambda: fp.fig4_final_histograms(
            {k: np.asarray(v, dtype=float) for k, v in layers.items()})))
    prefixes = _layer_prefixes(series)
    if prefixes:
        names = [f"{p}_{s}" for p in prefixes for s in ("mean", "std")]
        stat_epochs, values = _aligned(series, names)
        stats = {p: (values[2 * i], values[2 * i + 1]) for i, p in enumerate(prefixes)}
        made.append(("figures/fig6_mean_std.png",
                     lambda: fp.fig6_mean_std(stat_epochs, stats)))
    if record.embedding_values:
        made.append(("figures/fig7_embedding_histograms.png",
                     lambda: fp.fig7_embedding_histograms(record.embedding_values)))
    _, (zero, dead, train11, test11) = _aligned(
        series, ["zero_activation_frac", "inactive_neurons_pct", "train_acc", "test_acc"])
    if zero:
        made.append(("figures/fig11_inactive.png", lambda: fp.fig11_inactive(
            [100 * z for z in zero], train11, test11, dead)))
    if epochs and "fourier_restricted_loss" in series.columns:
        made.append(("figures/fourier_progress.png",
                     lambda: _fourier(series, epochs, train, test)))
    return {path: draw() for path, draw in made[part::parts]}


def _fourier(series: MemberSeries, epochs: list[int], train: list[float],
             test: list[float]) -> Figure:
    """The Fourier progress measures beside the accuracy (``figures/fourier.py``)."""
    measured, (restricted, excluded) = _aligned(series, ["fourier_restricted_loss",
                                                         "fourier_excluded_loss"])
    gini_epochs, gini = series.columns.get("fourier_gini", ([], []))
    return fourier_figure(epochs, train, test, measured, restricted, excluded,
                          gini_epochs, gini)


def _recipe(table: Mapping[str, Any]) -> str:
    """An init table in a few characters: 'uniform[0.4, 0.8]', 'normal(0.2, 0.1)'."""
    scheme = table.get("scheme", "")
    if scheme == "uniform":
        text = f"uniform[{table.get('low')}, {table.get('high')}]"
    elif scheme == "normal":
        text = f"normal({table.get('mean', 0.0)}, {table.get('std')})"
    elif scheme == "constant":
        text = f"constant {table.get('value')}"
    else:
        text = str(scheme)
    extras = [f"{k}={table[k]}" for k in ("scale", "shift") if k in table]
    return " ".join([text, *extras]).strip()


def short_value(value: Any) -> str:
    """A varied value for a legend: init tables as recipes, '{}' as 'default'."""
    if not isinstance(value, Mapping):
        return str(value)
    if not value:
        return "default"
    if any(k in value for k in ("scheme", "low", "mean", "value")):
        return _recipe(value)
    by_recipe: dict[str, list[str]] = {}
    for layer, table in value.items():
        shown = _recipe(table) if isinstance(table, Mapping) else str(table)
        by_recipe.setdefault(shown, []).append(str(layer))
    return "; ".join(f"{'+'.join(layers)}: {r}" for r, layers in by_recipe.items())


def _group_label(varied: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in varied.items() if k != "train.seed"}
    if len(shown) == 1 and isinstance(next(iter(shown.values())), Mapping):
        return short_value(next(iter(shown.values())))
    return ", ".join(f"{k}={short_value(v)}" for k, v in shown.items()) or "all members"


def sweep_figures(members: Sequence[tuple[Mapping[str, Any], MemberSeries]],
                  threshold: float, title: str) -> dict[str, Figure]:
    """Figures of a sweep's parent run: curves by varied value (Figs. 9, 10), and Fig. 5
    when the init scale α is what varies (its grok epochs at ``threshold``, the sweep's)."""
    out: dict[str, Figure] = {}
    groups: dict[str, list[tuple[list[int], list[float], list[float]]]] = {}
    for varied, series in members:
        epochs, (train, test) = _aligned(series, ["train_acc", "test_acc"])
        groups.setdefault(_group_label(varied), []).append((epochs, train, test))
    out["figures/curves_by_group.png"] = fp.curves_by_group(
        groups, f"{title}: train (solid) and test (dashed) accuracy by member")
    scaled = [(v, r) for v, r in members if "init.scale" in v]
    if scaled:
        alphas = [float(v["init.scale"]) for v, _ in scaled]
        delays = [grokking_delay(grok_epoch(*s.columns["train_acc"], threshold),
                                 grok_epoch(*s.columns["test_acc"], threshold))
                  for _, s in scaled]
        out["figures/fig5_scale.png"] = fp.fig5_scale(
            alphas, [rise_epoch(*s.columns.get("test_acc", ([], []))) for _, s in scaled],
            delays)
    return out


def drc_csv(rates: Sequence[float], curves: Mapping[int, Sequence[float]]) -> str:
    """The DRC as a table: one row per (epoch, rate)."""
    rows = ["epoch,rate,test_acc"]
    rows += [f"{e},{r:g},{a:.6f}" for e, accs in sorted(curves.items())
             for r, a in zip(rates, accs, strict=True)]
    return "\n".join(rows) + "\n"


def parse_drc_csv(text: str) -> tuple[list[float], dict[int, list[float]]]:
    rates: list[float] = []
    curves: dict[int, list[float]] = {}
    for line in text.strip().splitlines()[1:]:
        epoch, rate, acc = line.split(",")
        if float(rate) not in rates:
            rates.append(float(rate))
        curves.setdefault(int(epoch), []).append(float(acc))
    return rates, curves
