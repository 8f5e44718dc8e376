"""What a newcomer meets at the command line: the run table names each member's varied
values, short budgets are warned about, a missing run or store is bad input (exit 2) and
creates nothing, and the store is shown where it is on disk."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from conftest import working_in
from mlflow.tracking import MlflowClient

from grokexp.cli import main

SWEEP = """
name = "help"
[task]
modulus = 7
[model]
embedding_dim = 4
hidden = 8
[train]
epochs = 4
batch_size = 64
[metrics]
every = 2
mc_dropout = false
drc = false
checkpoints = 0
[sweep]
seeds = [0, 1]
"train.weight_decay" = [0.25, 2.0]
"""


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_table_has_a_column_per_varied_key(write_spec, tracking_uri):
    result = cli("run", write_spec(SWEEP), "--tracking-uri", tracking_uri, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("member"))
    assert header.split()[:3] == ["member", "weight_decay", "seed"]
    rows = [line.split() for line in lines[lines.index(header) + 1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("0", "0.25", "0"), ("1", "0.25", "1"), ("2", "2.0", "0"), ("3", "2.0", "1")]
    # each row's run id is the member run that MLflow holds with those values
    client = MlflowClient(tracking_uri=tracking_uri)
    for row in rows:
        params = client.get_run(row[-1]).data.params
        assert (params["train.weight_decay"], params["train.seed"]) == (row[1], row[2])


def test_the_store_is_shown_as_an_absolute_path(write_spec, tmp_path, migrated_store):
    work = tmp_path / "elsewhere"
    (work / "mlruns").mkdir(parents=True)
    (work / "mlruns" / "mlflow.db").write_bytes(migrated_store.read_bytes())
    with working_in(work):
        result = cli("run", write_spec(SWEEP.replace("seeds = [0, 1]", "seeds = [0]")),
                     "--quiet")
    assert result.exit_code == 0, result.output
    db = work / "mlruns" / "mlflow.db"
    assert f"in sqlite:///{db}" in result.stdout
    assert f"on disk: database {db}, artifacts under {db.parent / 'artifacts'}" in result.stdout
    assert (db.parent / "artifacts").is_dir()


def test_diagnostics_past_the_budget_are_warned_once_each(write_spec):
    spec = write_spec(SWEEP.replace("drc = false", "drc = true\ndrc_epochs = [0, 3, 50]")
                      .replace("mc_dropout = false", "mc_dropout_every = 3")
                      .replace("checkpoints = 0", "checkpoints = 0\nfourier_frequencies = 2"))
    result = cli("validate", spec)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {spec}: metrics.mc_dropout_every: 3 with train.epochs = 4: MC dropout is "
        "measured at 2 epoch(s) only (Fig. 1); lower it",
        f"warning: {spec}: metrics.drc_epochs: 50 past train.epochs = 4: not measured",
        f"warning: {spec}: metrics.heatmap_epochs: 300, 450, 1200 past train.epochs = 4: "
        "not measured",
        f"warning: {spec}: metrics.histogram_epochs: 150, 600, 1650 past train.epochs = 4: "
        "not measured"]
    # a budget that holds them all says nothing
    quiet = cli("validate", spec, "--set", "train.epochs=2000", "--set",
                "metrics.mc_dropout_every=100")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_fourier_measures_that_keep_every_frequency_are_warned(write_spec):
    """Z_7 has ⌊7/2⌋ = 3 frequencies besides the constant: keeping the default 5 makes them
    all key (restricted loss = test loss, nothing excluded); 2 leave one out. 'div' has no
    Fourier measures (its grid is not the whole of Z_P × Z_P), nor has a model without a ReLU
    layer (whose activations give the key frequencies), so nothing to warn."""
    spec = write_spec(SWEEP.replace("epochs = 4", "epochs = 2000")
                      .replace("every = 2", "every = 2\nmc_dropout_every = 100"))
    line = (f"warning: {spec}: metrics.fourier_frequencies: 5 with task.modulus = 7: all 3 "
            "frequencies of Z_P are key, so the restricted loss is the test loss and the "
            "excluded loss has nothing left to exclude; lower it")
    assert cli("validate", spec).stderr.splitlines() == [line]
    for fine in (["metrics.fourier_frequencies=2"], ["metrics.fourier=false"],
                 ["task.modulus=13"], ['task.operation="div"'], ['model.activation="gelu"']):
        result = cli("validate", spec, "--set", *fine)
        assert result.exit_code == 0 and "warning" not in result.stderr, fine


def test_a_missing_run_is_bad_input(tracking_uri):
    for args in (["figures", "0123456789abcdef"], ["run", "--resume", "0123456789abcdef"],
                 ["forecast", "--runs", "0123456789abcdef"]):
        result = cli(*args, "--tracking-uri", tracking_uri)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "0123456789abcdef" in result.output


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path):
    with working_in(tmp_path):
        results = [cli("figures", "0123456789abcdef"),
                   cli("forecast", "--runs", "0123456789abcdef")]
    for result in results:
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"error: no tracking store at "
                                         f"{tmp_path / 'mlruns' / 'mlflow.db'}: run grokexp "
                                         "from the folder that holds mlruns/, or give "
                                         "--tracking-uri")
    assert list(Path(tmp_path).iterdir()) == []


def test_figures_says_where_the_drawings_are_on_disk(write_spec, tracking_uri):
    made = cli("run", write_spec(SWEEP.replace("seeds = [0, 1]", "seeds = [0]")
                                 .replace('"train.weight_decay" = [0.25, 2.0]', "")
                                 .replace("checkpoints = 0", "checkpoints = 2")),
               "--tracking-uri", tracking_uri, "--json")
    assert made.exit_code == 0, made.output
    import json

    run_id = json.loads(made.stdout.strip().splitlines()[-1])["run_ids"][0]
    result = cli("figures", run_id, "--tracking-uri", tracking_uri)
    assert result.exit_code == 0, result.output
    where = Path(result.stdout.strip().splitlines()[-1].removeprefix("on disk under "))
    assert where.is_absolute()
    drawn = [line.split(": ", 1)[1] for line in result.stdout.splitlines()[:-1]]
    assert drawn and all((where / path).is_file() for path in drawn)
