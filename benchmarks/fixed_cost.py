"""What one more member costs beyond its training epochs, in a population of 16.

Times ``grokexp run`` of the paper's model (specs/baseline.toml, default ``[metrics]``, every
member to the end of its epochs) with 1 seed and with 16 seeds as one population, each into a
fresh MLflow store whose schema is made untimed beforehand, and the engine alone (no hooks,
no store) training the same 16 members for the same epochs. Then

    fixed cost per member = (wall(16 seeds) − wall(1 seed)) / 15 − engine seconds per member

the seconds each extra member adds that are not its training: its run and params in the
store, its metrics, epoch-0 probes, checkpoints, figures and tables. Process start-up and
the store's opening are in both runs and cancel. It is measured with the default
``[metrics]``, without the dropout probes, without them and the logged models, and without
them and the member figures (``metrics.figures = false``): the last two rows price the
models and the figures. Each row also gives the CPU seconds of all the command's processes
per extra member (the kernel's accounting, best of the repeats). The figures' CPU (the second
row's less the last's) is set against the CPU a member may take while the K-member run keeps
every core busy (the target times the cores; the run's CPU over its wall shows how busy).

Last, the floor the default ``[metrics]`` set: the epoch-0 dropout probes' matmuls at the
two-core matmul limit, plus the random words of their masks drawn with torch's generator
(timed alone, two members at a time), plus the fixed cost measured without the probes.

Where the time goes: one profiled run with 1 seed and one with 16, without the probes
(``_profile.py``: cProfile of the main thread, the kernel's CPU accounting of every process),
give each extra member's CPU in the main process by package and in the processes it
started (the figure workers, the probe process).

Last, a short command: ``grokexp run specs/baseline.toml --set train.epochs=1``, as typed, in
a scratch folder whose default store (``mlruns/``) an untimed first run made; its wall time
against the 6 s target (and without the logged model, and without member figures, in turn
with it, so that all three see the same machine), then one profiled run: the imports by
package, the main thread's call tree, the CPU of the other processes, and the seconds from
the command's return to the process's end.

    python benchmarks/fixed_cost.py [--epochs 10] [--repeats 2] [--parts fixed,short]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    EMBED,
    HIDDEN,
    N_TRAIN,
    P,
    create_mlflow_store,
    emit,
    forward_flops_per_pair,
)
from _profile import Profiled, print_profile, profile_command, run_timed  # noqa: E402

K = 16
TARGET_S = 0.3  # the bound on the fixed cost per member at K = 16
SHORT_TARGET_S = 6.0  # the bound on the short command's wall time, 2 cores
SHORT = ["run", "specs/baseline.toml", "--set", "train.epochs=1"]


# the [metrics] compared: the defaults, and the same without the two dropout probes (MC
# dropout and the DRC both measure at epoch 0: S stochastic passes over the test set per
# member, which in a 10-epoch run is most of the work beyond training)
WITHOUT_PROBES = "without the dropout probes"
METRICS = {"default [metrics]": "", WITHOUT_PROBES: "mc_dropout = false\ndrc = false\n",
           # the row above less this one: each member's network logged as an MLflow model
           "without the probes and the logged models":
           "mc_dropout = false\ndrc = false\n[tracking]\nlog_model = false\n",
           # the second row less this one: each member's figures (metrics.figures)
           "without the probes and the member figures":
           "mc_dropout = false\ndrc = false\nfigures = false\n"}
WITHOUT_FIGURES = "without the probes and the member figures"


def spec_text(seeds: int, epochs: int, metrics: str = "") -> str:
    """The baseline with the default [metrics] (plus ``metrics`` lines) and the given seeds
    and epochs."""
    text = (ROOT / "specs" / "baseline.toml").read_text(encoding="utf-8")
    head = text.split("[metrics]")[0].replace("stop_after_generalized = 1000", "")
    head = head.replace("epochs = 3000", f"epochs = {epochs}")
    return (head + f"[metrics]\nevery = 10\n{metrics}\n[sweep]\n"
            f"seeds = {list(range(seeds))}\n")


def _fresh_run(seeds: int, epochs: int, tmp: Path, metrics: str) -> tuple[Path, list[str]]:
    """A folder with the spec and an untimed store, and the ``grokexp run`` words for it."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    spec = folder / "spec.toml"
    spec.write_text(spec_text(seeds, epochs, metrics), encoding="utf-8")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    create_mlflow_store(uri)
    return folder, ["run", str(spec), "--tracking-uri", uri, "--quiet"]


def run_wall(seeds: int, epochs: int, tmp: Path, metrics: str) -> tuple[float, float]:
    """Wall seconds of one ``grokexp run`` in a fresh process and store, and the CPU seconds
    of all its processes."""
    folder, words = _fresh_run(seeds, epochs, tmp, metrics)
    return run_timed([sys.executable, "-m", "grokexp", *words], folder)


def run_profiled(seeds: int, epochs: int, tmp: Path, metrics: str) -> Profiled:
    """One profiled ``grokexp run`` in a fresh process and store."""
    folder, words = _fresh_run(seeds, epochs, tmp, metrics)
    return profile_command(words, folder, "do_run")


def print_per_member(one: Profiled, many: Profiled) -> None:
    """What each member beyond the first adds, from a profiled run of 1 and one of K."""
    per = K - 1
    print(f"  per extra member: {(many.cpu_main_s - one.cpu_main_s) / per:.2f} s of CPU in "
          f"the main process, {(many.cpu_children_s - one.cpu_children_s) / per:.2f} s in "
          "the processes it started (figure workers, probe process)")
    kinds = {kind: (many.self_by_kind.get(kind, 0.0) - one.self_by_kind.get(kind, 0.0)) / per
             for kind in many.self_by_kind}
    shown = [f"{kind} {s:.3f}" for kind, s in sorted(kinds.items(), key=lambda kv: -kv[1])
             if s >= 0.005]
    print(f"  the main thread's own seconds per extra member by package (cProfile, wall): "
          f"{', '.join(shown)}", flush=True)


def short_command(repeats: int, tmp: Path) -> None:
    """The short command's wall time against its target, then where its time goes."""
    folder = tmp / "short"
    shutil.copytree(ROOT / "specs", folder / "specs")
    command = [sys.executable, "-m", "grokexp", *SHORT]
    without_model = [*command, "--set", "tracking.log_model=false"]
    run_timed(command, folder)  # makes the default store, mlruns/ (untimed)
    without_figures = [*command, "--set", "metrics.figures=false"]
    runs, bare, figureless = [], [], []
    for _ in range(repeats):  # alternating, so that all see the same machine
        runs.append(run_timed(command, folder))
        bare.append(run_timed(without_model, folder))
        figureless.append(run_timed(without_figures, folder))
    wall, cpu = min(runs)
    print(f"the short command: grokexp {' '.join(SHORT)} (default [metrics], an existing "
          f"default store), best of {repeats}: {wall:.1f} s wall (target <= "
          f"{SHORT_TARGET_S:g} s: {wall / SHORT_TARGET_S:.2f}x the target), {cpu:.1f} s of "
          "CPU in all its processes", flush=True)
    bare_wall, bare_cpu = min(bare)
    print(f"  the same without the logged model (--set tracking.log_model=false; its export "
          f"imports torch.export once, about 3 s of CPU): {bare_wall:.1f} s wall "
          f"({bare_wall / SHORT_TARGET_S:.2f}x the target), {bare_cpu:.1f} s of CPU",
          flush=True)
    figureless_wall, figureless_cpu = min(figureless)
    print(f"  the same without member figures (--set metrics.figures=false; no figure worker "
          f"starts): {figureless_wall:.1f} s wall ({figureless_wall / SHORT_TARGET_S:.2f}x "
          f"the target), {figureless_cpu:.1f} s of CPU", flush=True)
    emit({"bench": "short_command", "wall_s": wall, "cpu_s": cpu, "runs": runs,
          "without_model_wall_s": bare_wall, "without_model_runs": bare,
          "without_figures_wall_s": figureless_wall, "without_figures_runs": figureless})
    start = run_timed([sys.executable, "-c", "import grokexp.cli"], folder)[0]
    print(f"  where it goes: starting the interpreter and importing the CLI {start:.2f} s; "
          "then")
    profiled = profile_command(SHORT, folder, "do_run")
    print_profile(profiled)
    emit({"bench": "short_command_profile", "command_s": profiled.command_s,
          "exit_s": profiled.exit_s, "dump_s": profiled.dump_s,
          "cpu_main_s": profiled.cpu_main_s,
          "cpu_children_s": profiled.cpu_children_s,
          "imports_by_package": profiled.imports_by_package})


ENGINE = """
import json, sys, time, torch
from grokexp.engine.sweep import expand_members
from grokexp.run.runner import train_group
from grokexp.spec.io import load_spec
spec = load_spec(open(sys.argv[1]).read(), "spec.toml")
members = expand_members(spec)
train_group(members[:1], torch.device("cpu"), [])  # warm-up
start = time.perf_counter()
train_group(members, torch.device("cpu"), [])
print(json.dumps(time.perf_counter() - start))
"""


def engine_seconds(epochs: int, tmp: Path) -> float:
    """Seconds the engine alone takes to train the 16 members (evaluations included)."""
    spec = Path(tempfile.mkdtemp(dir=tmp)) / "spec.toml"
    spec.write_text(spec_text(K, epochs), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", ENGINE, str(spec)], capture_output=True,
                          text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def probe_passes() -> int:
    """Stochastic passes over the test set per member at epoch 0 (MC dropout and the DRC)."""
    from grokexp.spec.schema import MetricsSpec

    cfg = MetricsSpec()
    return cfg.mc_samples + len(cfg.drc_rates) * cfg.drc_samples


def probe_flops(k: int) -> float:
    """Matmul FLOPs of the two dropout probes at epoch 0 for k members, with the default
    [metrics]: every pass drops units of the concatenated embedding, so each recomputes the
    first layer as well as the output layer over the member's test pairs."""
    return float(k * probe_passes() * (P * P - N_TRAIN) * forward_flops_per_pair())


MATMUL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from matmul import matmul_flops
from _common import median
print(json.dumps(median(matmul_flops(2048, 9))))
"""


def matmul_limit() -> float:
    """FLOP/s of a 2048² float32 matmul on all cores, now (benchmarks/matmul.py)."""
    done = subprocess.run([sys.executable, "-c", MATMUL, str(HERE)], capture_output=True,
                          text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


DRAWS = """
import json, sys, time, torch
torch.set_num_threads(1)
calls, per_site = int(sys.argv[1]), [int(n) for n in sys.argv[2:]]
generator = torch.Generator().manual_seed(0)
words = torch.empty(max(per_site), dtype=torch.int64)
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    for _ in range(calls):
        for n in per_site:
            torch.randint(-(2**63), 2**63 - 1, (n,), dtype=torch.int64, generator=generator,
                          out=words[:n])
    best = min(best, time.perf_counter() - start)
print(json.dumps(best))
"""


def mask_draw_seconds() -> float:
    """One thread's seconds to draw the random words of one member's epoch-0 dropout masks,
    as the probes draw them (16 bits per unit, four units per 64-bit word, one call per
    pass and site, as diagnostics/metrics/dropout.py's ``keep_mask``): with the default
    sites, the concatenated embedding (2d units) and the hidden layer (H units) of each of
    the member's test pairs, in every pass."""
    from grokexp.spec.schema import MetricsSpec

    test_pairs = P * P - N_TRAIN
    sites = MetricsSpec().mc_sites
    assert set(sites) == {"embedding", "hidden"}, sites  # the defaults this counts
    per_site = [-(-test_pairs * width // 4) for width in (2 * EMBED, HIDDEN)]
    done = subprocess.run([sys.executable, "-c", DRAWS, str(probe_passes()),
                           *map(str, per_site)], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs each")
    parser.add_argument("--parts", default="fixed,short",
                        help="fixed (the fixed cost per member), short (the short command)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if "fixed" in parts:
            fixed_cost(args.epochs, args.repeats, tmp)
        if "short" in parts:
            short_command(max(args.repeats, 3), tmp)


def fixed_cost(epochs: int, repeats: int, tmp: Path) -> None:
    """The fixed cost per member with and without the dropout probes, where it goes, and
    the probes' floor."""
    engine = min(engine_seconds(epochs, tmp) for _ in range(repeats))
    fixed_by_metrics: dict[str, float] = {}
    cpu_by_metrics: dict[str, float] = {}
    busy_by_metrics: dict[str, tuple[float, float]] = {}
    for label, metrics in METRICS.items():
        ones = [run_wall(1, epochs, tmp, metrics) for _ in range(repeats)]
        manys = [run_wall(K, epochs, tmp, metrics) for _ in range(repeats)]
        one, many = min(w for w, _ in ones), min(w for w, _ in manys)
        each = (many - one) / (K - 1)
        fixed = each - engine / K
        cpu = (min(c for _, c in manys) - min(c for _, c in ones)) / (K - 1)
        fixed_by_metrics[label], cpu_by_metrics[label] = fixed, cpu
        busy_by_metrics[label] = min(manys)  # the K-member run's (wall, CPU), fastest
        print(f"fixed cost per member (K = {K}, {epochs} epochs, {label}): grokexp run with "
              f"1 seed {one:.1f} s, with {K} seeds {many:.1f} s, so (wall({K}) - wall(1)) / "
              f"{K - 1} = {each:.2f} s; the engine alone trains the {K} in {engine:.2f} s; so "
              f"{fixed:.2f} s per member beyond its training (target <= {TARGET_S} s: "
              f"{fixed / TARGET_S:.2f}x the target); CPU of all its processes per extra "
              f"member {cpu:.2f} s", flush=True)
        emit({"bench": "fixed_cost", "metrics": label, "k": K, "epochs": epochs,
              "wall_1": one, "wall_k": many, "engine_k": engine, "each_s": each,
              "fixed_s_per_member": fixed, "cpu_s_per_extra_member": cpu,
              "runs_1": ones, "runs_k": manys})
    figures = fixed_by_metrics[WITHOUT_PROBES] - fixed_by_metrics[WITHOUT_FIGURES]
    print(f"the member figures' share: {fixed_by_metrics[WITHOUT_PROBES]:.2f} s per member "
          f"{WITHOUT_PROBES}, {fixed_by_metrics[WITHOUT_FIGURES]:.2f} s without their figures "
          f"too, so drawing a member's figures adds {figures:.2f} s", flush=True)
    figures_cpu = cpu_by_metrics[WITHOUT_PROBES] - cpu_by_metrics[WITHOUT_FIGURES]
    cores = len(os.sched_getaffinity(0))
    budget = TARGET_S * cores  # CPU seconds a member may take while every core is busy
    wall, cpu = busy_by_metrics[WITHOUT_PROBES]
    print(f"the member figures' CPU: {figures_cpu:.2f} s per member (the two rows' CPU per "
          f"extra member, subtracted). While the {K}-member run keeps this machine's {cores} "
          f"cores busy (its CPU over its wall {WITHOUT_PROBES}: {cpu:.1f} s / {wall:.1f} s = "
          f"{cpu / wall:.2f}), a fixed cost of {TARGET_S} s per member is a budget of "
          f"{budget:.1f} s of CPU per member; the figures alone take {figures_cpu / budget:.2f}x "
          "that budget", flush=True)
    emit({"bench": "fixed_cost_figures_share", "figures_s_per_member": figures,
          "figures_cpu_s_per_member": figures_cpu, "cores": cores,
          "cpu_budget_s_per_member": budget, "busy_cpu_s": cpu, "busy_wall_s": wall})
    print(f"where it goes ({WITHOUT_PROBES}; one profiled run with 1 seed, one with {K}):")
    print_per_member(run_profiled(1, epochs, tmp, METRICS[WITHOUT_PROBES]),
                     run_profiled(K, epochs, tmp, METRICS[WITHOUT_PROBES]))
    limit, flops = matmul_limit(), probe_flops(1)
    draws = mask_draw_seconds()
    # both cores: the matmuls at the two-thread limit, the draws of two members at once
    floor = flops / limit + draws / 2
    without = fixed_by_metrics[WITHOUT_PROBES]
    print(f"the dropout probes' floor: at epoch 0 they execute {flops / 1e9:.1f} GFLOP of "
          f"matmuls per member, {flops / limit:.2f} s at the matmul limit ({limit / 1e9:.1f} "
          f"GFLOP/s now), and draw the random words of its masks, {draws:.2f} s on one "
          f"thread ({draws / 2:.2f} s on two); so with them the fixed cost cannot go below "
          f"{floor:.2f} + {without:.2f} (without them) = {floor + without:.2f} s per member "
          f"(target <= {TARGET_S} s)", flush=True)
    emit({"bench": "fixed_cost_floor", "probe_flops_per_member": flops,
          "matmul_flops": limit, "mask_draw_s_per_member": draws,
          "floor_s_per_member": floor, "floor_with_the_rest_s": floor + without})


if __name__ == "__main__":
    main()
