"""`grokexp reproduce` on tiny stand-ins of the paper specs, and the claim checks."""

from __future__ import annotations

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.claims import evaluate_claims
from grokexp.cli import main
from grokexp.figure_sets import RunRecord

TINY = """
name = "{name}"
description = "tiny {name}"
[task]
modulus = 7
[model]
embedding_dim = 8
hidden = 16
[train]
epochs = 20
lr = 1e-2
batch_size = 8
[metrics]
every = 5
mc_samples = 3
drc_rates = [0.0, 0.2]
drc_samples = 1
"""


def test_reproduce_quick_writes_gallery_and_reuse_rebuilds_it(tmp_path, tracking_uri) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("baseline", "constant_rest"):
        (specs / f"{name}.toml").write_text(TINY.format(name=name))
    out = tmp_path / "gallery"
    args = ["reproduce", "--quick", "--only", "baseline", "--only", "constant_rest",
            "--specs-dir", str(specs), "--out", str(out), "--tracking-uri", tracking_uri]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text()
    assert "Fig. 1" in index and "constant_rest" in index
    images = list(out.rglob("*.png"))
    assert any(p.name == "fig1_mc_dropout.png" for p in images)
    for src in index.split("<img src='")[1:]:
        assert (out / src.split("'")[0]).exists()
    claims = (out / "claims.md").read_text()
    assert "Constant other layers" in claims and "Grokking delay grows" in claims
    client = MlflowClient(tracking_uri=tracking_uri)
    count = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    again = CliRunner().invoke(main, [*args[:-4], "--out", str(tmp_path / "g2"), "--reuse",
                                      "--specs-dir", str(specs), "--tracking-uri", tracking_uri])
    assert again.exit_code == 0, again.output
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) \
        == count  # nothing trained
    assert (tmp_path / "g2" / "claims.md").read_text() == claims
    bad = CliRunner().invoke(main, ["reproduce", "--only", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "not a paper spec" in bad.output


def _record(**series: tuple[list[int], list[float]]) -> RunRecord:
    return RunRecord(series=dict(series))


def test_claims_on_synthetic_records() -> None:
    epochs = list(range(0, 1000, 100))
    def acc(at: int) -> tuple[list[int], list[float]]:
        return epochs, [1.0 if e >= at else 0.0 for e in epochs]

    scale = [({"init.scale": a}, _record(train_acc=acc(100), test_acc=acc(100 + 200 * a)))
             for a in (1.0, 2.0, 3.0)]
    falls_rises = (epochs, [0.30, 0.10, 0.05, 0.04, 0.06, 0.09, 0.12, 0.14, 0.15, 0.15])
    flat = (epochs, [0.05] * 10)
    claims = {c.key: c for c in evaluate_claims({
        "scale_sweep": scale,
        "baseline": [({}, _record(train_acc=acc(100), test_acc=acc(500),
                                  zero_activation_frac=falls_rises))],
        "constant_rest": [({}, _record(train_acc=acc(0)))],
    })}
    assert claims["scale_delay"].verdict == "held" and "slope 200" in claims["scale_delay"].measured
    assert claims["inactive"].verdict == "held"
    assert claims["const_rest"].verdict == "not held"  # it learned: the claim fails
    assert claims["frozen"].verdict == "not measured"
    flat_claims = {c.key: c for c in evaluate_claims({
        "baseline": [({}, _record(train_acc=acc(100), test_acc=acc(500),
                                  zero_activation_frac=flat))]})}
    assert flat_claims["inactive"].verdict == "not held"
