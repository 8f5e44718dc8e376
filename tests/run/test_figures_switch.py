"""``metrics.figures = false``: the members draw no figures (their parent still does), and
everything the figures are drawn from is logged all the same, so ``grokexp figures ID ...``
draws them afterwards: the set a drawing run logs, from the same measurements."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.spec.io import load_spec, masked_spec_toml, spec_to_dict
from grokexp.spec.schema import Spec


def _spec(sweep: str = "seeds = [0, 1, 2]") -> str:
    """The tiny model with every diagnostic, as a population (``sweep``: its lines)."""
    from conftest import TINY_DIAGNOSED

    return TINY_DIAGNOSED.replace('name = "tiny"', 'name = "switch"') + f"[sweep]\n{sweep}\n"


def _run(spec: str, uri: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", uri, "--json", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _paths(client: MlflowClient, run_id: str, folder: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, folder)}


def _files(client: MlflowClient, run_id: str, folder: str, tmp: Path) -> dict[str, bytes]:
    root = Path(client.download_artifacts(run_id, folder, str(tmp / run_id)))
    return {path.name: path.read_bytes() for path in sorted(root.iterdir())}


def _histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
            for key in run.data.metrics}


def test_members_without_figures_draw_them_later(tmp_path: Path, migrated_store: Path) -> None:
    spec = tmp_path / "switch.toml"
    spec.write_text(_spec())
    uris = {}
    for name in ("drawn", "later"):
        (tmp_path / name).mkdir()
        shutil.copy(migrated_store, tmp_path / name / "mlflow.db")
        uris[name] = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
    drawn = _run(str(spec), uris["drawn"])
    later = _run(str(spec), uris["later"], "--set", "metrics.figures=false")
    on, off = MlflowClient(uris["drawn"]), MlflowClient(uris["later"])

    # the parent's figures are drawn either way; the members' only when asked
    assert "figures/accuracy_overlay.png" in _paths(off, later["parent_run_id"], "figures")
    for drawing, quiet in zip(drawn["run_ids"], later["run_ids"], strict=True):
        assert len(_paths(on, drawing, "figures")) >= 8
        assert _paths(off, quiet, "figures") == set()
        # nothing the figures are drawn from is missing: tables, checkpoints, weights, and
        # every metric, equal step for step (the same seeds; drawing changes no measurement)
        for folder in ("checkpoints", "weights"):
            assert _paths(off, quiet, folder) == _paths(on, drawing, folder), folder
        assert (_files(off, quiet, "diagnostics", tmp_path / "off")
                == _files(on, drawing, "diagnostics", tmp_path / "on"))  # drc.csv, cosine.csv
        assert _histories(off, quiet) == _histories(on, drawing)
        assert off.get_run(quiet).data.params["metrics.figures"] == "False"
        assert "metrics.figures" not in on.get_run(drawing).data.params  # at its default

    # a mistyped id among good ones: one clear line, and no run gets a figure
    typo = CliRunner().invoke(main, ["figures", later["run_ids"][0], "0" * 32,
                                     "--tracking-uri", uris["later"]])
    assert typo.exit_code == 2 and "no run" in typo.output, typo.output
    assert _paths(off, later["run_ids"][0], "figures") == set()
    # a damaged checkpoint in the last run named: found before the first run's are logged
    root = Path(unquote(urlsplit(off.get_run(later["run_ids"][2]).info.artifact_uri).path))
    first = sorted((root / "checkpoints").glob("epoch_*.pt"))[0]
    first.write_bytes(first.read_bytes()[:100])
    damaged = CliRunner().invoke(main, ["figures", later["run_ids"][0], later["run_ids"][2],
                                        "--tracking-uri", uris["later"]])
    assert damaged.exit_code == 2 and "not a saved network" in damaged.output, damaged.output
    assert _paths(off, later["run_ids"][0], "figures") == set()

    result = CliRunner().invoke(main, ["figures", *later["run_ids"][:2],
                                       "--tracking-uri", uris["later"]])
    assert result.exit_code == 0, result.output
    for drawing, quiet in zip(drawn["run_ids"][:2], later["run_ids"][:2], strict=True):
        assert _paths(off, quiet, "figures") == _paths(on, drawing, "figures")
        assert f"{quiet}: figures/accuracy.png" in result.output


def test_one_member_without_figures_draws_nothing(write_spec, tracking_uri) -> None:
    """A one-member run without figures logs none and keeps what they are drawn from; its
    process never imports matplotlib (it has nothing to draw, so no figure worker, and
    nothing drawn in its place); its summary names the command that draws them."""
    spec = write_spec(_spec("seeds = [0]"))
    code = ("import sys\nfrom grokexp.cli import main\n"
            f"main(['run', {spec!r}, '--tracking-uri', {tracking_uri!r}, '--set', "
            "'metrics.figures=false'], standalone_mode=False)\n"
            "assert 'matplotlib' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("switch").experiment_id])
    assert f"draw them with: grokexp figures {run.info.run_id}\n" in done.stdout
    assert _paths(client, run.info.run_id, "figures") == set()
    assert "diagnostics/drc.csv" in _paths(client, run.info.run_id, "diagnostics")


def test_a_sweep_of_the_switch(write_spec, tracking_uri) -> None:
    """Members that draw and members that do not, in one run: each as its spec says, and
    the summary names only the runs without figures."""
    spec = write_spec(_spec('"metrics.figures" = [true, false]')
                      .replace("checkpoints = 3", "checkpoints = 0"))
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # without checkpoints, figures left for later could never be drawn: said before the run
    assert ("metrics.figures: false with metrics.checkpoints = 0: no member's figures can "
            "be drawn later") in result.stderr
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("switch").experiment_id])
    members = {r.data.params["varied.metrics.figures"]: r.info.run_id for r in runs
               if "varied.metrics.figures" in r.data.params}
    assert "figures/accuracy.png" in _paths(client, members["True"], "figures")
    assert _paths(client, members["False"], "figures") == set()
    hint = [line for line in result.stdout.splitlines() if "draw them with" in line]
    assert hint == ["figures not drawn for 1 member(s) (metrics.figures = false); draw them "
                    f"with: grokexp figures {members['False']}"]


def test_the_switch_leaves_older_specs_as_they_were() -> None:
    """Added after specs were hashed (a run's resume and a study find theirs by the hash):
    at its default the key is not dumped, so an older spec's dump is unchanged; set, it
    survives the spec a checkpoint keeps for its resume."""
    plain = Spec.model_validate({"name": "plain"})
    assert plain.metrics.figures
    assert "figures" not in spec_to_dict(plain)["metrics"]
    off = Spec.model_validate({"name": "off", "metrics": {"figures": False}})
    assert spec_to_dict(off)["metrics"]["figures"] is False
    resumed = load_spec(masked_spec_toml(off), "checkpoint")
    assert resumed.metrics.figures is False and resumed == off
