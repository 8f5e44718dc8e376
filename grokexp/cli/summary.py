"""What ``grokexp run`` prints when its run is done: where it went, and a row per member."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

__all__ = ["print_summary", "summary_table"]


def print_summary(result: Any, uri: str, undrawn: Sequence[str] = ()) -> None:
    """Where the run went and a row per member; for the ``undrawn`` members' runs (their
    figures not drawn: ``metrics.figures = false``) the command that draws them."""
    from .common import store_label, store_location

    click.echo(f"experiment {result.experiment_id} in {store_label(uri)}")
    if (where := store_location(uri)) is not None:
        click.echo(f"on disk: {where}")
    if result.parent_run_id:
        click.echo(f"parent run {result.parent_run_id}")
    for line in summary_table(result.members):
        click.echo(line)
    if undrawn:
        click.echo(f"figures not drawn for {len(undrawn)} member(s) (metrics.figures = false); "
                   f"draw them with: grokexp figures {' '.join(undrawn)}")


def summary_table(members: Any) -> list[str]:
    """One row per member: the values its sweep varied (one column per key, as members.md
    has them), its grok epochs and final accuracies, status and run id."""
    from ..tracking.redact import redact_text

    def show(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    keys = list(dict.fromkeys(k for m in members for k in m.varied))
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    headers = [leaf if leaves.count(leaf) == 1 else key
               for key, leaf in zip(keys, leaves, strict=True)]
    cells = [["-" if k not in m.varied else redact_text(str(m.varied[k])) for k in keys]
             for m in members]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    varied = "".join(f" {h:>{w}}" for h, w in zip(headers, widths, strict=True))
    lines = [f"{'member':>6}{varied} {'train grok':>10} {'test grok':>9} {'delay':>6} "
             f"{'train acc':>9} {'test acc':>8}  status    run"]
    for m, row in zip(members, cells, strict=True):
        values = "".join(f" {v:>{w}}" for v, w in zip(row, widths, strict=True))
        lines.append(f"{m.index:>6}{values} {show(m.train_grok_epoch):>10} "
                     f"{show(m.test_grok_epoch):>9} {show(m.grokking_delay):>6} "
                     f"{show(m.final_train_acc):>9} {show(m.final_test_acc):>8}  "
                     f"{m.status:<9} {m.run_id}")
    return lines
