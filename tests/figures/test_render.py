"""The figure pool: figures drawn in worker processes are the figures drawn in place.

A member's figures leave the training thread as plain data (MemberSnapshots, a MemberSeries) and
come back as PNG bytes from a spawned worker. The bytes must be those ``png_bytes`` writes in
the calling process for the same data (Agg is deterministic), the work must really happen
in another process, and a worker's error must reach the caller.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from figure_cases import EPOCHS, NAMES, build_figures
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from grokexp.figures import paper as fp
from grokexp.figures.render import FigurePool, draw, png_bytes
from grokexp.figures.run import accuracy_figures
from grokexp.figures.sets import run_figures
from grokexp.series import MemberSeries, MemberSnapshots
from grokexp.tracking.mlflow_tracker import MlflowTracker


def _record() -> MemberSnapshots:
    rng = np.random.default_rng(0)
    epochs = list(range(0, 410, 10))
    rise = [min(1.0, max(0.0, (e - 150) / 200)) for e in epochs]
    series = {"train_acc": (epochs, [min(1.0, e / 100) for e in epochs]),
              "test_acc": (epochs, rise),
              "mc_dropout_acc_var": (epochs[::10], [0.01 * r * (1 - r) for r in rise[::10]]),
              "embedding_mean": (epochs, [0.01 * e for e in epochs]),
              "embedding_std": (epochs, [0.3] * len(epochs))}
    return MemberSnapshots(MemberSeries(label="seed 0", columns=series), drc_rates=[0.0, 0.5],
                           drc={0: [0.1, 0.05], 400: [1.0, 0.6]},
                           cosine={0: rng.standard_normal((7, 7))},
                           embedding_values={0: rng.standard_normal(70)},
                           final={"embedding": rng.standard_normal((7, 10)),
                                  "hidden.0.weight": rng.standard_normal((20, 16))})


def _fails_with_pid() -> dict[str, Figure]:
    raise RuntimeError(f"drawn in process {os.getpid()}")


def test_a_worker_draws_the_same_png_bytes_as_the_calling_process() -> None:
    record = _record()
    here = {path: png_bytes(figure) for path, figure in run_figures(record).items()}
    assert len(here) >= 5 and all(b.startswith(b"\x89PNG") for b in here.values())
    pool = FigurePool(workers=2)
    try:
        drawn = pool.submit(run_figures, record).result(timeout=120)
        curves = MemberSeries(epochs=[0, 10], columns={"train_acc": ([0, 10], [0.5, 1.0]),
                                                       "test_acc": ([0, 10], [0.0, 0.2])},
                              train_grok_epoch=10)
        accuracy = pool.submit(accuracy_figures, curves, 0.95, "t").result(timeout=120)
        error = pool.submit(_fails_with_pid).exception(timeout=120)
    finally:
        pool.close()
    assert drawn == here
    assert accuracy == {"figures/accuracy.png":
                        png_bytes(accuracy_figures(curves, 0.95, "t")["figures/accuracy.png"])}
    assert isinstance(error, RuntimeError)
    worker_pid = int(str(error).rsplit(" ", 1)[1])
    assert worker_pid != os.getpid()  # drawn off the calling process


def test_a_runs_figures_split_over_the_workers_are_the_whole_set() -> None:
    """One member's figures go to both workers as parts: together every figure, once."""
    record = _record()
    whole = {path: png_bytes(figure) for path, figure in run_figures(record).items()}
    pool = FigurePool(workers=2)
    try:
        pool.start()  # both workers up before the first job
        assert len(pool._executor._processes) == 2  # type: ignore[union-attr]
        parts = [pool.submit(run_figures, record, part, 2) for part in range(2)]
        drawn = [part.result(timeout=120) for part in parts]
    finally:
        pool.close()
    assert drawn[0] and drawn[1] and not drawn[0].keys() & drawn[1].keys()
    assert {**drawn[0], **drawn[1]} == whole


def test_in_place_pool_reports_errors_at_result() -> None:
    pool = FigurePool(workers=0)
    future = pool.submit(_fails_with_pid)
    with pytest.raises(RuntimeError, match=f"process {os.getpid()}$"):
        future.result()


def test_log_files_writes_a_tree_in_one_call_and_refuses_escaping_names(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "files")
    run_id = tracker.start_run("r", {}, {})
    tracker.log_files(run_id, {"figures/a.png": b"\x89PNG-a", "diagnostics/t.csv": b"x,y\n",
                               "top.txt": b"top"})
    tracker.end_run(run_id)
    client = MlflowClient(tracking_uri=uri)
    found = {a.path for folder in ("", "figures", "diagnostics")
             for a in client.list_artifacts(run_id, folder or None) if not a.is_dir}
    assert found == {"figures/a.png", "diagnostics/t.csv", "top.txt"}
    local = client.download_artifacts(run_id, "figures/a.png", str(tmp_path))
    assert open(local, "rb").read() == b"\x89PNG-a"
    with pytest.raises(Exception, match="leave the run"):
        tracker.log_files(run_id, {"../escape.png": b"x"})


SCRIPT = """
from grokexp.engine.sweep import expand_members
from grokexp.run.runner import run_experiment
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker

# no `if __name__ == "__main__":` guard, as in many users' scripts
spec = load_spec('''
name = "unguarded"
[task]
modulus = 7
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 20
[metrics]
mc_samples = 4
drc_samples = 1
checkpoints = 0
[sweep]
seeds = [0, 1]
''', "spec.toml")
result = run_experiment(spec, expand_members(spec), MlflowTracker(URI, spec.name))
print("RUNS", " ".join(m.run_id for m in result.members))
"""


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path) -> None:
    """Spawned workers would re-import the caller's main module: an unguarded script would
    start its experiment again in each of them (and the pool would break)."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "experiment.py"
    script.write_text(f"URI = {uri!r}\n" + SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("RUNS") == 1  # the experiment ran once
    run_ids = done.stdout.split("RUNS", 1)[1].split()
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_runs([client.get_experiment_by_name("unguarded").experiment_id])) \
        == 3  # the parent and two members, nothing from a second start
    for run_id in run_ids:
        names = {a.path for a in client.list_artifacts(run_id, "figures")}
        assert {"figures/accuracy.png", "figures/fig1_mc_dropout.png"} <= names


def _every_kind_and_offset_texts() -> dict[str, Figure]:
    """test_margins' figure of each kind, and two whose y axes get an offset text (1e−6)
    in the corner beside the title: a variance and a mean of a few millionths."""
    tiny = [1e-6 * e / 3000 for e in EPOCHS]
    return {**build_figures(),
            "fig1 1e-6": fp.fig1_mc_dropout(EPOCHS, [1.0] * len(EPOCHS), [0.5] * len(EPOCHS),
                                           EPOCHS[::10], [1e-7, 2e-6, 3e-7, 1e-8], 0.3),
            "fig6 1e-6": fp.fig6_mean_std(EPOCHS, {"embedding": ([-4e-7] * len(EPOCHS), tiny)})}


def test_the_workers_drawing_settings_leave_every_kind_of_figure_as_it_was() -> None:
    """``draw`` builds the axes with titles at a fixed height, which skips matplotlib's
    search for the space above each axes; every kind of figure must come out byte for byte
    as with matplotlib's defaults (a title that the search would have moved, say above an
    offset text, would differ here)."""
    defaults = {name: png_bytes(figure) for name, figure in _every_kind_and_offset_texts().items()}
    drawn = draw(_every_kind_and_offset_texts)
    assert set(drawn) == {*NAMES, "fig1 1e-6", "fig6 1e-6"}
    for name, png in defaults.items():
        assert drawn[name] == png, name


def _idat(png: bytes) -> bytes:
    """The PNG's compressed image stream (its IDAT chunks, joined), read from the format."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    stream, at = b"", 8
    while at < len(png):
        length = int.from_bytes(png[at:at + 4], "big")
        if png[at + 4:at + 8] == b"IDAT":
            stream += png[at + 8:at + 8 + length]
        at += 12 + length
    return stream


def test_the_pngs_are_savefigs_pixels_encoded_at_zlibs_fastest_level() -> None:
    """Cheaper to encode, the same picture: the pixels of matplotlib's own ``savefig`` (at
    Pillow's default level), and a zlib stream whose header says level 1 (FLEVEL 0: 0x78 0x01;
    the default's is 0x78 0x9C)."""
    import io

    from PIL import Image

    for name, figure in _every_kind_and_offset_texts().items():
        ours = png_bytes(figure)
        default = io.BytesIO()
        figure.savefig(default, format="png")
        assert _idat(ours)[:2] == b"\x78\x01", name
        assert _idat(default.getvalue())[:2] == b"\x78\x9c", name
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(ours))),
                              np.asarray(Image.open(default))), name


_TITLE_PLACEMENT: list[bool | None] = []  # what each axes made by _title_placement had


def _title_placement() -> dict[str, Figure]:
    figure = Figure()
    _TITLE_PLACEMENT.append(figure.subplots()._autotitlepos)
    return {}


def test_the_workers_axes_are_made_without_automatic_title_placement() -> None:
    """What makes the drawing cheaper: axes made inside a job place no title at draw time
    (matplotlib marks that with ``_autotitlepos``; outside a job, the default places it)."""
    _TITLE_PLACEMENT.clear()
    draw(_title_placement)
    _title_placement()
    assert _TITLE_PLACEMENT == [False, True]


def test_the_pool_module_imports_no_matplotlib_until_something_is_drawn() -> None:
    """The probe process takes its process helpers from render.py and never draws: it must
    not pay for importing matplotlib (about 0.6 s of CPU at every start)."""
    import subprocess
    import sys

    code = ("import sys, grokexp.figures.render as r; "
            "assert 'matplotlib' not in sys.modules, 'imported'; "
            "r.draw(lambda: {}); assert 'matplotlib' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _collector_state() -> dict[str, Figure]:
    import gc

    raise RuntimeError(f"frozen {gc.get_freeze_count()} threshold {gc.get_threshold()[0]}")


def test_a_worker_keeps_its_imports_out_of_the_collectors_scans() -> None:
    """A worker freezes what its imports made (its exit then skips collecting them), and
    collects its young objects less often than Python's default of 700."""
    pool = FigurePool(workers=1)
    try:
        error = pool.submit(_collector_state).exception(timeout=120)
    finally:
        pool.close()
    _, frozen, _, threshold = str(error).split()
    assert int(frozen) > 10_000 and int(threshold) > 700
