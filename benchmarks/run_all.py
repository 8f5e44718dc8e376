"""`make bench`: every benchmark in one run, one fresh process per configuration, one table.

    python benchmarks/run_all.py                      # everything (about two hours on 2 cores)
    python benchmarks/run_all.py --parts peer,grokexp --ks 1,16
    python benchmarks/run_all.py --parts cli          # start-up latency of the CLI only
    python benchmarks/run_all.py --parts compile      # torch.compile of the step, tried
    python benchmarks/run_all.py --parts gpu          # K = 1 … 1024 against vmap on the GPU
    python benchmarks/run_all.py --parts overhead,sweep,optimize   # the whole-command ones
    python benchmarks/run_all.py --parts fixed,reproduce,peer-study   # the issue's targets
    python benchmarks/run_all.py --parts transformer  # transformer population vs loop, vmap

Everything (``make bench``) takes about two hours on 2 cores: the full ``grokexp reproduce``
(``reproduce``, ~25 min) and the 32-trial study against the hand-written one
(``peer-study``, over an hour, most of it the hand-written side) dominate.

Columns: seconds per model-epoch (median of repeats; a model-epoch is one model trained
for one epoch), speed-up over the faster thread setting of the plain peer, the share of the
machine's limit (model-epoch FLOPs as the peer computes them ÷ the large-matmul FLOP/s
measured in the same run ÷ seconds per model-epoch), the same share counting the matmul FLOPs
grokexp actually executes (its per-token tables do less work than the peer's layer), the CPU
time of all the process's threads per model-epoch (less disturbed than wall time when other
processes share the cores; on an idle machine wall ≈ CPU ÷ busy threads), and the peak RSS of
the configuration's process. The peers run at each of --peer-threads.

Then the whole-command benchmarks, each printing its own table: the default diagnostics'
overhead on the baseline (``metrics_overhead.py``), ``grokexp run specs/scale_sweep.toml``
against the peer training the same members one by one (``scale_sweep.py``), and a 32-trial
study with ``--batch 8`` against ``--batch 1`` (``optimize_batch.py``), the fixed cost of one
more member at K = 16 (``fixed_cost.py``), one member's figures figure by figure
(``figure_cost.py``), the whole ``grokexp reproduce``, quick and full,
with the time of each spec (``reproduce_time.py``), and ``grokexp optimize`` against Optuna's
``study.optimize`` over the hand-written loop on the same 32 trials (``optimize_vs_peer.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import engine_epoch_flops, model_epoch_flops  # noqa: E402

PARTS = ("matmul", "peer", "vmap", "grokexp", "compile", "gpu", "cli", "overhead", "fixed",
         "figures", "sweep", "optimize", "reproduce", "peer-study", "quickstart", "transformer")
# whole-command benchmarks that print their own table: part → (script, its arguments)
TABLES = {
    "compile": ("compiled_step.py", []),
    "overhead": ("metrics_overhead.py", ["--repeats", "3"]),
    "fixed": ("fixed_cost.py", []),
    "figures": ("figure_cost.py", []),
    "sweep": ("scale_sweep.py", []),
    "optimize": ("optimize_batch.py", []),
    "reproduce": ("reproduce_time.py", []),
    "peer-study": ("optimize_vs_peer.py", []),
    "quickstart": ("quickstart.py", []),
    "transformer": ("transformer_population.py", []),
}
# the engine's targets (issue: best K against the hand-written loop, or the matmul limit)
ENGINE_TARGETS = {"one-thread loop": 5.0, "two-thread loop": 4.0, "matmul share": 0.60}


def run_script(script: str, *args: str, threads: int = 0) -> list[dict[str, Any]]:
    """Run one benchmark script in a fresh interpreter; its BENCH rows."""
    cmd = [sys.executable, str(HERE / script), *args]
    if threads and script != "cli_latency.py":
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {script} {' '.join(args)} failed:\n{done.stderr.strip()}", file=sys.stderr)
        return []
    return [json.loads(line[6:]) for line in done.stdout.splitlines() if line.startswith("BENCH ")]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return (f"{model}, {os.cpu_count()} CPUs (nproc), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads by default, Python {platform.python_version()}")


def load() -> str:
    try:
        return "load average (1, 5, 15 min) " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def table(rows: list[dict[str, Any]], matmul: float | None) -> str:
    """Speed-ups are over the faster of the plain peer's thread settings."""
    flops = model_epoch_flops()
    plain = [r["s_per_model_epoch"] for r in rows if r["system"] == "plain"]
    peer = min(plain) if plain else None
    lines = ["| system | K | threads | s per model-epoch (median) | × peer | share of matmul limit"
             " | same, executed FLOPs | CPU s per model-epoch | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["s_per_model_epoch"]
        speed = f"{peer / s:.2f}×" if peer else "n/a"
        share = f"{flops / s / matmul:.0%}" if matmul else "n/a"
        executed = engine_epoch_flops() if r["system"] == "grokexp" else flops
        share_exec = f"{executed / s / matmul:.0%}" if matmul else "n/a"
        name = {"plain": "peer: plain loop", "vmap": "peer: vmap ensemble"}.get(r["system"],
                                                                             r["system"])
        threads = r["threads"]
        if r["system"] == "grokexp":  # shards on one-thread workers
            threads = f"{min(threads, r['k'])} workers × 1"
        cpu = r.get("cpu_s_per_model_epoch", float("nan"))
        lines.append(f"| {name} | {r['k']} | {threads} | {s * 1e3:.2f} ms | {speed} | "
                     f"{share} | {share_exec} | {cpu * 1e3:.2f} ms | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def engine_summary(rows: list[dict[str, Any]], matmul: float | None) -> str:
    """The engine's best K against each target: the one- and two-thread hand-written loops,
    and the share of the matmul limit on the FLOPs grokexp executes."""
    ours = [r for r in rows if r["system"] == "grokexp"]
    if not ours:
        return "engine: no grokexp rows"
    best = min(ours, key=lambda r: r["s_per_model_epoch"])
    s = best["s_per_model_epoch"]
    parts = [f"engine, best K = {best['k']} at {s * 1e3:.2f} ms per model-epoch:"]
    for threads, name in ((1, "one-thread loop"), (2, "two-thread loop")):
        peer = [r["s_per_model_epoch"] for r in rows
                if r["system"] == "plain" and r["threads"] == threads]
        if peer:
            parts.append(f"{min(peer) / s:.2f}x the {name} ({min(peer) * 1e3:.2f} ms; "
                         f"target {ENGINE_TARGETS[name]:g}x)")
    if matmul:
        share = engine_epoch_flops() / s / matmul
        parts.append(f"{share:.0%} of the matmul limit on the executed FLOPs "
                     f"(target {ENGINE_TARGETS['matmul share']:.0%})")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])


def gpu_summary(rows: list[dict[str, Any]]) -> str:
    """grokexp against the vmap ensemble on the same GPU, K by K, and where the population
    starts to pay: the first K at which a model-epoch costs at most half of training alone."""
    ours = {r["k"]: r["s_per_model_epoch"] for r in rows if r["system"] == "grokexp"}
    vmap = {r["k"]: r["s_per_model_epoch"] for r in rows if r["system"] == "vmap"}
    lines = ["| K | grokexp, s per model-epoch | vmap ensemble | grokexp × vmap |",
             "|---:|---:|---:|---:|"]
    for k in sorted(set(ours) | set(vmap)):
        mine, theirs = ours.get(k), vmap.get(k)
        cells = [f"{t * 1e3:.3f} ms" if t else "failed" for t in (mine, theirs)]
        ratio = f"{theirs / mine:.2f}×" if mine and theirs else "n/a"
        lines.append(f"| {k} | {cells[0]} | {cells[1]} | {ratio} |")
    alone = ours.get(1)
    pays = [k for k in sorted(ours) if alone and k > 1 and ours[k] <= alone / 2]
    beats = [k for k in sorted(ours) if k in vmap and ours[k] < vmap[k]]
    lines.append("")
    lines.append("GPU: the population pays from K = "
                 + (f"{pays[0]} (a model-epoch at most half of K = 1's {alone * 1e3:.3f} ms)"
                    if pays else "none measured")
                 + "; grokexp is faster than the vmap ensemble at K = "
                 + (", ".join(map(str, beats)) if beats else "none measured"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--ks", default="1,4,16,64", help="population sizes for grokexp")
    parser.add_argument("--vmap-ks", default=None, help="ensemble sizes for vmap (default --ks)")
    parser.add_argument("--gpu-ks", default="1,4,16,64,256,1024",
                        help="population and ensemble sizes on the GPU (part gpu)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for grokexp and the matmul (0: PyTorch's default)")
    parser.add_argument("--peer-threads", default="0,1",
                        help="thread settings to time each peer with (0: PyTorch's default)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    ks = [int(k) for k in args.ks.split(",")]
    vmap_ks = [int(k) for k in (args.vmap_ks or args.ks).split(",")]
    reps = ["--repeats", str(args.repeats)]
    peer_threads = [int(t) for t in args.peer_threads.split(",")]
    print(f"machine: {machine()}", flush=True)
    print(f"before: {load()}", flush=True)
    matmul = None
    rows: list[dict[str, Any]] = []
    if "matmul" in parts:
        found = run_script("matmul.py", threads=args.threads)
        if found:
            matmul = found[0]["flops"]
            print(f"large float32 matmul (n={found[0]['n']}): {matmul / 1e9:.1f} GFLOP/s; "
                  f"one model-epoch is {model_epoch_flops() / 1e6:.1f} MFLOP "
                  f"(limit {model_epoch_flops() / matmul * 1e3:.2f} ms); grokexp executes "
                  f"{engine_epoch_flops() / 1e6:.1f} MFLOP of matmuls per model-epoch",
                  flush=True)
    if "peer" in parts:
        for threads in peer_threads:
            rows += run_script("peers.py", "plain", *reps, threads=threads)
    if "vmap" in parts:
        for k in vmap_ks:
            for threads in peer_threads:
                rows += run_script("peers.py", "vmap", "--k", str(k), *reps, threads=threads)
    if "grokexp" in parts:
        for k in ks:
            rows += run_script("population.py", "--k", str(k), *reps, threads=args.threads)
    if rows:
        print(f"after: {load()}")
        print()
        print(table(rows, matmul))
        print()
        print(engine_summary(rows, matmul))
    if "gpu" in parts:
        print()
        import torch

        if not torch.cuda.is_available():
            print("GPU: none on this machine (torch.cuda.is_available() is False), so no GPU "
                  "rows; nothing else here needs one", flush=True)
        else:
            print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
            gpu_rows: list[dict[str, Any]] = []
            for k in [int(k) for k in args.gpu_ks.split(",")]:
                gpu_rows += run_script("peers.py", "vmap", "--k", str(k), "--device", "cuda",
                                       *reps)
                gpu_rows += run_script("population.py", "--k", str(k), "--device", "cuda",
                                       *reps)
            print(gpu_summary(gpu_rows), flush=True)
    if "cli" in parts:
        print()
        for r in run_script("cli_latency.py"):
            print(f"`{r['command']}`: {r['seconds'] * 1e3:.0f} ms median "
                  f"(target {r['target'] * 1e3:.0f} ms); imports torch: {r['torch']}, "
                  f"mlflow: {r['mlflow']}")
    for part, (script, script_args) in TABLES.items():
        if part in parts:
            print(flush=True)
            done = subprocess.run([sys.executable, str(HERE / script), *script_args],
                                  cwd=HERE.parent, text=True, check=False)
            if done.returncode != 0:
                print(f"  {script} failed (exit {done.returncode})", file=sys.stderr)


if __name__ == "__main__":
    main()
