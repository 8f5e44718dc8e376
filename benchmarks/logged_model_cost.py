"""What logging a member's network as an MLflow LoggedModel costs (``[tracking] log_model``).

Trains nothing: draws K members of the spec's architecture (the paper's model,
specs/baseline.toml, by default), starts one run each in a fresh sqlite store, and logs each
member's twin through ``MlflowTracker.log_model`` (what the runner's background thread does
when a member ends), timing each call's wall and CPU (this process's, all threads): first as
a population does (one kind, the architecture: exported once, each later member's weights
written into that program), then each member exported anew (no kind). The first call pays
torch.export's imports once per process; the others are the cost per member that the
fixed-cost benchmark (fixed_cost.py, which runs with the default ``log_model = true``)
counts. Then one model is loaded back with ``mlflow.pytorch.load_model``.

    python benchmarks/logged_model_cost.py [--k 8] [--spec specs/baseline.toml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import create_mlflow_store, emit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="members logged")
    parser.add_argument("--spec", default=str(ROOT / "specs" / "baseline.toml"))
    args = parser.parse_args()

    import torch

    from grokexp.engine.data import pair_table
    from grokexp.engine.model import Population
    from grokexp.spec.io import load_spec
    from grokexp.tracking.mlflow_tracker import MlflowTracker

    spec = load_spec(Path(args.spec).read_text(encoding="utf-8"), args.spec)
    population = Population.from_specs([spec] * args.k, torch.device("cpu"))
    example = pair_table(spec.task).pairs[:8]
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        create_mlflow_store(uri)
        tracker = MlflowTracker(uri, "logged-model-cost")
        # as a population logs its members (one kind: exported once), then each anew
        kinds = {"one export": population.arch, "each exported": None}
        timings: dict[str, tuple[list[float], list[float]]] = {way: ([], []) for way in kinds}
        for way, kind in kinds.items():
            walls, cpus = timings[way]
            for k in range(args.k):
                run_id = tracker.start_run(f"member-{k}", {}, {})
                twin = population.arch.twin(population.member_state(k))
                wall0, cpu0 = time.perf_counter(), time.process_time()
                tracker.log_model(run_id, twin, example, step=0, kind=kind)
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
                tracker.end_run(run_id)
        import mlflow.pytorch

        mlflow.set_tracking_uri(uri)
        found = tracker.client.search_logged_models([tracker.experiment_id])
        wall0 = time.perf_counter()
        mlflow.pytorch.load_model(found[0].model_uri)
        load_s = time.perf_counter() - wall0
    rest = slice(1, None)
    walls, cpus = timings["one export"]
    print(f"{spec.name}: {sum(p.numel() for p in twin.parameters())} parameters a member")
    print(f"first log_model (torch.export's imports): wall {walls[0]:.2f} s, CPU {cpus[0]:.2f} s")
    said = {"one export": ("each further member of a population (its network exported once)",
                           "member"),
            "each exported": ("each further member exported anew (no kind)", "exported_anew")}
    out = {"bench": "logged_model", "first_wall_s": walls[0], "first_cpu_s": cpus[0]}
    for way, (walls, cpus) in timings.items():
        text, key = said[way]
        wall = statistics.median(walls[rest]) if args.k > 1 else None
        cpu = statistics.median(cpus[rest]) if args.k > 1 else None
        if args.k > 1:
            print(f"{text}: wall {wall:.3f} s, CPU {cpu:.3f} s (median of {args.k - 1})")
        out.update({f"{key}_wall_s": wall, f"{key}_cpu_s": cpu})
    print(f"load_model, imports already made: {load_s:.2f} s")
    emit({**out, "load_s": load_s})


if __name__ == "__main__":
    main()
