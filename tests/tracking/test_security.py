"""Security: spec content is data, artifacts stay in their run, secrets stay masked."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.errors import GrokexpError
from grokexp.spec.io import load_spec
from grokexp.tracking.mlflow_tracker import MlflowTracker
from grokexp.tracking.recovery import Journal, relog
from grokexp.tracking.redact import redact_params, redact_text, redact_uri
from grokexp.tracking.tracker import NullTracker, safe_artifact_path

PACKAGE = Path(__file__).resolve().parents[2] / "grokexp"


def test_package_never_evaluates_or_unpickles():
    """No eval/exec/compile, no pickle-family imports, every torch.load is weights_only."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if isinstance(func, ast.Name) and name in {"eval", "exec", "compile"}:
                    problems.append(f"{path.name}:{node.lineno} {name}()")
                if name == "load" and isinstance(func, ast.Attribute) and getattr(
                        func.value, "id", "") == "torch":
                    safe = any(k.arg == "weights_only" and getattr(k.value, "value", None)
                               is True for k in node.keywords)
                    if not safe:
                        problems.append(f"{path.name}:{node.lineno} torch.load without "
                                        "weights_only=True")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(n.split(".")[0] in {"pickle", "marshal", "shelve", "dill", "cloudpickle"}
                       for n in names):
                    problems.append(f"{path.name}:{node.lineno} imports a pickle module")
    assert problems == []


def test_set_values_are_data_not_code(tmp_path):
    marker = tmp_path / "ran"
    code = f'__import__("os").system("touch {marker}")'
    spec = load_spec('name = "x"\n', "x.toml", [f"description={code}"])
    assert spec.description == code and not marker.exists()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil", "a\\b.txt",
                                  "", "a//b", "./a", "x\x00.txt", "C:/x.txt", "a/\nb"])
def test_artifact_names_cannot_leave_the_run(name):
    with pytest.raises(GrokexpError, match="would leave the run"):
        safe_artifact_path(name)
    with pytest.raises(GrokexpError):
        NullTracker().log_text("any", "x", name)


def test_real_tracker_refuses_escaping_artifacts(tracking_uri, tmp_path):
    tracker = MlflowTracker(tracking_uri, "sec")
    run_id = tracker.start_run("r", {}, {})
    with pytest.raises(GrokexpError):
        tracker.log_text(run_id, "pwned", "../../../../escaped.txt")
    assert not list(tmp_path.rglob("escaped.txt"))
    tracker.log_text(run_id, "fine", "notes/ok.txt")
    assert safe_artifact_path("figures/accuracy.png") == ("figures", "accuracy.png")
    assert [a.path for a in MlflowClient(tracking_uri=tracking_uri).list_artifacts(
        run_id, "notes")] == ["notes/ok.txt"]


def test_relog_refuses_journal_files_outside_its_folder(tracking_uri, tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    (tmp_path / "secret.txt").write_text("not yours")
    (folder / "journal.jsonl").write_text(json.dumps(
        {"op": "artifact", "run_id": "r", "file": "../secret.txt", "artifact_dir": None}) + "\n")
    with pytest.raises(GrokexpError, match="outside the folder"):
        relog(folder, tracking_uri)
    journal = Journal(folder)
    assert journal.folder == folder


def test_redaction_masks_passwords_and_tokens():
    assert redact_uri("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact_uri("postgresql://bob:p@ss@db/x") == "postgresql://bob:***@db/x"
    assert redact_uri("http://h:5000/?token=abc&x=1") == "http://h:5000/?token=***&x=1"
    assert redact_uri("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"
    assert redact_uri("postgresql://bob@db/x") == "postgresql://bob@db/x"
    text = "failed: mysql+pymysql://root:pw@127.0.0.1/db and https://a:b@c/d"
    assert "pw" not in redact_text(text).replace("pymysql", "") and ":b@" not in redact_text(
        text)
    assert redact_params({"a": "postgresql://u:p@h/d", "b": 3}) == {
        "a": "postgresql://u:***@h/d", "b": 3}


def test_passwords_in_a_spec_never_reach_mlflow_or_the_terminal(write_spec, tracking_uri,
                                                                tmp_path):
    from conftest import TINY

    secret = "Sup3rSecret"
    spec = write_spec(TINY + f'[tracking]\ntracking_uri = "postgresql://bob:{secret}@db/x"\n'
                      '[sweep]\nseeds = [0, 1]\n')
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=tracking_uri)
    for run_id in [out["parent_run_id"], *out["run_ids"]]:
        run = client.get_run(run_id)
        blob = json.dumps([run.data.params, run.data.tags])
        assert secret not in blob
        assert run.data.params["tracking.tracking_uri"] == "postgresql://bob:***@db/x"
        local = client.download_artifacts(run_id, "spec.resolved.toml", str(tmp_path / run_id))
        assert secret not in Path(local).read_text()
    failing = CliRunner().invoke(main, ["run", spec, "--tracking-uri",
                                        f"postgresql://bob:{secret}@127.0.0.1:1/x"])
    assert failing.exit_code == 1 and secret not in failing.output
    assert "bob:***@" in failing.output
