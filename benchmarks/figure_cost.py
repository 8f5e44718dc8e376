"""What drawing one member's figures costs, figure by figure (the fixed cost's largest part).

Runs ``grokexp run`` of the paper's model (specs/baseline.toml, default ``[metrics]``, one
seed, 10 epochs) in this process into a scratch store, keeping each figure job the run hands
to its figure workers (drawn here as well, so the run ends as usual). Then draws every job
again the way a figure worker does (matplotlib's Agg, the imports frozen out of the
collector, its young-collection threshold) and prints each figure's CPU seconds, best of
``--repeats``, with its axes, its tick objects and how many labels went through mathtext.
Last, each Figure is drawn a second time, its tick objects made and its text laid out
already: a bound on what keeping figures between members could save; and a third time at
Pillow's default zlib level (6) instead of grokexp's (``PNG_COMPRESS_LEVEL``), with both
encodings' sizes. Before each repeat
matplotlib's cache of parsed mathtext is emptied: a worker meets each
member's labels (new values) once, and a repeat that found them parsed would hide that cost.

    python benchmarks/figure_cost.py [--repeats 5] [--epochs 10]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import emit  # noqa: E402


def captured_jobs(epochs: int, folder: Path) -> list[tuple[Any, tuple[Any, ...]]]:
    """The figure jobs of one short run, as (job, args)."""
    from grokexp.cli import main
    from grokexp.figures import render

    jobs: list[tuple[Any, tuple[Any, ...]]] = []
    submit = render.FigurePool.submit

    def keep(pool: Any, job: Any, *args: Any) -> Any:
        if job is not render._nothing:
            jobs.append((job, args))
        pool.workers = 0  # drawn in this process: no worker to start
        return submit(pool, job, *args)

    render.FigurePool.submit = keep  # type: ignore[method-assign]
    try:
        main(["run", str(ROOT / "specs" / "baseline.toml"), "--set", f"train.epochs={epochs}",
              "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--quiet"],
             standalone_mode=False)
    finally:
        render.FigurePool.submit = submit  # type: ignore[method-assign]
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grokexp-figure-cost-") as tmp:
        jobs = captured_jobs(args.epochs, Path(tmp))

    import io

    import matplotlib
    import matplotlib.mathtext

    from grokexp.figures.render import DRAWING_RC, PNG_COMPRESS_LEVEL, png_bytes

    matplotlib.use("Agg")
    gc.freeze()  # as a figure worker does after its imports
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    parsed: list[str] = []
    parse = matplotlib.mathtext.MathTextParser.parse

    def counted(self: Any, text: str, *rest: Any, **kw: Any) -> Any:
        parsed.append(text)
        return parse(self, text, *rest, **kw)

    matplotlib.mathtext.MathTextParser.parse = counted  # type: ignore[method-assign]
    best: dict[str, float] = {}
    again: dict[str, float] = {}  # the same Figure drawn a second time
    at_default: dict[str, float] = {}  # and a third, at Pillow's default zlib level
    sizes: dict[str, tuple[int, int]] = {}  # PNG bytes at ours, at the default
    shape: dict[str, tuple[int, int, int]] = {}
    with matplotlib.rc_context(DRAWING_RC):
        for _ in range(args.repeats):
            # private API: matplotlib has no public way to empty this cache
            matplotlib.mathtext.MathTextParser._parse_cached.cache_clear()
            for job, job_args in jobs:
                start = time.process_time()
                figures = job(*job_args)
                made = time.process_time() - start
                share = made / max(1, len(figures))  # the job's set-up, split evenly
                for path, figure in figures.items():
                    parsed.clear()
                    start = time.process_time()
                    png_bytes(figure)
                    seconds = time.process_time() - start + share
                    best[path] = min(best.get(path, seconds), seconds)
                    start = time.process_time()
                    ours = png_bytes(figure)  # its ticks made and its text laid out already
                    seconds = time.process_time() - start
                    again[path] = min(again.get(path, seconds), seconds)
                    buffer = io.BytesIO()
                    start = time.process_time()
                    figure.savefig(buffer, format="png")
                    seconds = time.process_time() - start
                    at_default[path] = min(at_default.get(path, seconds), seconds)
                    sizes[path] = (len(ours), len(buffer.getvalue()))
                    ticks = sum(len(axis.majorTicks) + len(axis.minorTicks)
                                for ax in figure.axes for axis in (ax.xaxis, ax.yaxis))
                    shape[path] = (len(figure.axes), ticks, len(parsed))
    print(f"one member's figures (baseline, {args.epochs} epochs, default [metrics]), CPU "
          f"seconds to make and draw each to PNG, best of {args.repeats}, in one process:")
    for path, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        axes, ticks, maths = shape[path]
        print(f"  {path:42s} {seconds:6.3f} s  axes {axes}  tick objects {ticks:3d}  "
              f"mathtext labels {maths}")
    total = sum(best.values())
    print(f"  all {len(best)} figures: {total:.2f} s", flush=True)
    print(f"  each drawn a second time (what reusing a figure could save at most; best of "
          f"{args.repeats}): {sum(again.values()):.2f} s, "
          f"{sum(again.values()) / total:.0%} of the above", flush=True)
    ours_bytes, default_bytes = (sum(s[i] for s in sizes.values()) for i in (0, 1))
    print(f"  the same second drawing at zlib level 6 (Pillow's default) instead of "
          f"{PNG_COMPRESS_LEVEL}: {sum(at_default.values()):.2f} s; the nine PNGs "
          f"{ours_bytes / 1e3:.0f} kB at level {PNG_COMPRESS_LEVEL}, "
          f"{default_bytes / 1e3:.0f} kB at level 6", flush=True)
    emit({"bench": "figure_cost", "total_s": total, "figures": best,
          "again_s": sum(again.values()), "again_at_level_6_s": sum(at_default.values()),
          "png_bytes": ours_bytes, "png_bytes_at_level_6": default_bytes})


if __name__ == "__main__":
    main()
