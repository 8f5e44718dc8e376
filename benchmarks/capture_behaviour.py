"""Capture what grokexp does, from the outside, so that a refactor can be held byte for byte.

    python benchmarks/capture_behaviour.py OUT_DIR [--repo CHECKOUT]

runs the commands a user types (every ``--help``, ``schema``, ``validate`` of every spec,
bad-input cases, a tiny ``run --json``, a sweep, ``figures``, a 2-trial ``optimize`` and
``forecast --runs``) in a scratch folder, and dumps each MLflow store it wrote (params, tags,
metrics, datasets, artifact sha256). Run ids, times and the scratch path are replaced by
stable names, so two captures of the same behaviour are the same files:
``diff -r before after`` is empty when nothing changed. ``--repo`` captures another
checkout (e.g. a ``git worktree`` of the commit before a change) with this interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = """name = "tiny"
[task]
modulus = 31
train_fraction = 0.6
[model]
embedding_dim = 32
hidden = 64
[train]
epochs = 400
lr = 3e-3
weight_decay = 1.0
batch_size = 64
stop_after_generalized = 20
[metrics]
every = 10
mc_dropout_every = 100
mc_samples = 4
drc_epochs = [0, 300]
drc_samples = 2
heatmap_epochs = [0, 300]
histogram_epochs = [0, 300]
checkpoints = 4
"""
SWEEP = TINY.replace('name = "tiny"', 'name = "sweep"') + "[sweep]\nseeds = [0, 1, 2]\n"
OPTIMIZE = TINY.replace('name = "tiny"', 'name = "study"') + """[optimize]
n_trials = 2
seeds = [0, 1]
[optimize.space]
"train.weight_decay" = { low = 0.1, high = 3.0, log = true }
[[optimize.enqueue]]  # the sampler's seed is mixed with a per-worker id: enqueue both trials
"train.weight_decay" = 1.0
[[optimize.enqueue]]
"train.weight_decay" = 2.0
"""
BAD = {
    "unknown_key": TINY.replace("hidden = 64", "hiden = 64"),
    "bad_type": TINY.replace("lr = 3e-3", 'lr = "fast"'),
    "bad_toml": TINY.replace("[train]", "[train"),
    "negative": TINY.replace("epochs = 400", "epochs = -1"),
}
assert all(text != TINY for text in BAD.values())
HEX = re.compile(r"\b[0-9a-f]{32}\b")


def grokexp(repo: Path, work: Path, *args: str) -> str:
    """One command's exit code, stdout and stderr, as text."""
    env = {**os.environ, "PYTHONPATH": str(repo), "NO_COLOR": "1", "COLUMNS": "100"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "grokexp", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    return (f"$ grokexp {' '.join(args)}\nexit {done.returncode}\n--- stdout\n{done.stdout}"
            f"--- stderr\n{done.stderr}")


def run_ids(text: str) -> list[str]:
    return list(dict.fromkeys(HEX.findall(text)))


def dump_store(uri: str) -> str:
    """Every experiment's runs: params, tags, metric histories, datasets, artifact sha256."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    lines: list[str] = []
    for exp in sorted(client.search_experiments(), key=lambda e: e.name):
        lines.append(f"experiment {exp.name} tags={sorted(exp.tags.items())}")
        runs = client.search_runs([exp.experiment_id], max_results=10000)
        for run in sorted(runs, key=lambda r: (r.info.run_name or "", r.data.tags.get(
                "mlflow.parentRunId", ""), sorted(r.data.params.items()))):
            lines.append(f"  run {run.info.run_name} status={run.info.status} "
                         f"id={run.info.run_id}")
            lines += [f"    param {k}={v}" for k, v in sorted(run.data.params.items())]
            lines += [f"    tag {k}={v}" for k, v in sorted(run.data.tags.items())]
            for key in sorted(run.data.metrics):
                history = client.get_metric_history(run.info.run_id, key)
                points = [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)]
                lines.append(f"    metric {key} {points}")
            for ds in run.inputs.dataset_inputs if run.inputs else []:
                d = ds.dataset
                lines.append(f"    dataset {d.name} digest={d.digest} source={d.source_type} "
                             f"tags={sorted((t.key, t.value) for t in ds.tags)}")
            lines += [f"    artifact {p}" for p in artifact_digests(client, run.info.run_id)]
    return "\n".join(lines) + "\n"


def artifact_digests(client, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out += artifact_digests(client, run_id, item.path)
            continue
        with tempfile.TemporaryDirectory() as scratch:
            data = Path(client.download_artifacts(run_id, item.path, scratch)).read_bytes()
        if item.path.endswith((".json", ".md", ".toml", ".csv")):  # run ids differ per run
            data = re.sub(rb"\b[0-9a-f]{32}\b", b"<id>", data)
        digest = hashlib.sha256(data).hexdigest()[:16]
        out.append(f"{item.path} {digest}")
    return out


def normalise(text: str, work: Path, names: dict[str, str]) -> str:
    text = re.sub(r"(?m)^epoch +\d+/\d+ \|.*\n", "", text)  # progress: printed on a clock
    text = text.replace(str(work.resolve()), "<work>").replace(str(work), "<work>")
    for rid in HEX.findall(text):
        names.setdefault(rid, f"<run{len(names)}>")
    text = HEX.sub(lambda m: names[m.group(0)], text)
    text = re.sub(r"\b\d+(\.\d+)? ?(s|ms|min)\b", "<time>", text)
    text = re.sub(r"worker[ =][0-9a-f]{12}\b", "worker <id>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?", "<date>", text)
    return re.sub(r"\b1[6-9]\d{11}\b", "<ms>", text)  # epoch milliseconds


def capture(repo: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="capture-"))
    try:
        shutil.copytree(repo / "specs", work / "specs")
        for name, text in {"tiny.toml": TINY, "sweep.toml": SWEEP, "study.toml": OPTIMIZE,
                           **{f"bad_{k}.toml": v for k, v in BAD.items()}}.items():
            (work / name).write_text(text)
        names: dict[str, str] = {}
        parts: dict[str, list[str]] = {"help": [], "validate": [], "bad": [], "commands": []}
        parts["help"].append(grokexp(repo, work, "--help"))
        for cmd in ("run", "validate", "schema", "figures", "reproduce", "ui", "optimize",
                    "forecast", "relog"):
            parts["help"].append(grokexp(repo, work, cmd, "--help"))
        parts["help"].append(grokexp(repo, work, "schema"))
        for spec in sorted((work / "specs").glob("*.toml")):
            parts["validate"].append(grokexp(repo, work, "validate", f"specs/{spec.name}"))
        for name in BAD:
            parts["bad"].append(grokexp(repo, work, "validate", f"bad_{name}.toml"))
            parts["bad"].append(grokexp(repo, work, "run", f"bad_{name}.toml"))
        parts["bad"].append(grokexp(repo, work, "run", "tiny.toml", "--set", "train.lr=true"))
        parts["bad"].append(grokexp(repo, work, "figures", "0" * 32))
        parts["bad"].append(grokexp(repo, work, "run", "missing.toml"))
        uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
        store = ("--tracking-uri", uri)
        tiny = grokexp(repo, work, "run", "tiny.toml", "--json", "--quiet", *store)
        sweep = grokexp(repo, work, "run", "sweep.toml", "--quiet", *store)
        parts["commands"] += [tiny, sweep]
        parent = run_ids(tiny)[0] if run_ids(tiny) else "none"
        parts["commands"].append(grokexp(repo, work, "figures", parent, *store))
        parts["commands"].append(grokexp(
            repo, work, "optimize", "study.toml", "--quiet", "--storage",
            f"sqlite:///{work / 'study.db'}", "--out", str(work / "study"), *store))
        members = run_ids(sweep)[1:4]
        parts["commands"].append(grokexp(repo, work, "forecast", "--runs", *members, *store))
        for name, texts in parts.items():
            (out / f"{name}.txt").write_text(normalise("\n".join(texts), work, names))
        (out / "store.txt").write_text(normalise(dump_store(uri), work, names))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    capture(args.repo.resolve(), args.out)
    print(f"captured into {args.out}: " + ", ".join(sorted(p.name for p in args.out.iterdir())))


if __name__ == "__main__":
    main()
