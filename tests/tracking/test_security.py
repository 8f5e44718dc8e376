"""Security: spec content is data, artifacts stay in their run, secrets stay masked."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import working_in
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


# --- every form of password, masked in every channel (issue 27) --------------------------

# Passwords that SQLAlchemy and PostgreSQL accept as they are written: a slash, a space, a
# quote, an '@'. Each is masked up to the last '@' of its line.
SECRET_FORMS = [
    ("slash", "postgresql://postgres:S3cret/PW@127.0.0.1:5432/studies", "S3cret/PW"),
    ("space", "http://alice:pa ss-W0rd@127.0.0.1:5000", "pa ss-W0rd"),
    ("double quote", 'postgresql://bob:qu"0te-PW@db/x', 'qu"0te-PW'),
    ("single quote", "mysql+pymysql://bob:it's-PW@db/x", "it's-PW"),
    ("at", "postgresql://bob:p@ss-PW@db:5432/x", "p@ss-PW"),
    ("plain", "https://alice:S3cretPW@mlflow.lab.org", "S3cretPW"),
]
FORM_IDS = [form[0] for form in SECRET_FORMS]


def _fragments(secret: str) -> list[str]:
    """Pieces of a password that must not show either (what follows a '/', ' ', quote)."""
    import re

    return [secret, *(p for p in re.split(r"[/ \"'@]", secret) if len(p) >= 3)]


def assert_no_secret(text: str, secret: str, where: str) -> None:
    for piece in _fragments(secret):
        assert piece not in text, f"{piece!r} of the password in {where}:\n{text}"


@pytest.mark.parametrize(("form", "url", "secret"), SECRET_FORMS, ids=FORM_IDS)
def test_every_password_form_is_masked_in_every_text_form(form, url, secret):
    import tomli_w
    import tomllib

    masked = redact_uri(url)
    assert_no_secret(masked, secret, "the URL")
    host = url.rsplit("@", 1)[1]
    assert masked == url.split("://")[0] + "://" + url.split("://")[1].split(":")[0] + \
        ":***@" + host
    texts = {
        "sentence": f"error: tracking store {url}: connection refused (retry later)",
        "repr": f"OperationalError({url!r})",
        "toml": tomli_w.dumps({"tracking": {"tracking_uri": url}, "name": "x"}),
        "json": json.dumps({"uri": url}),
        "two lines": f"first {url}\nsecond line x@y",
    }
    for kind, text in texts.items():
        out = redact_text(text)
        assert_no_secret(out, secret, kind)
        assert "***@" + host.split("/")[0] in out, (kind, out)
    # the masked TOML still reads, with the masked URL in its place
    assert tomllib.loads(redact_text(texts["toml"]))["tracking"]["tracking_uri"] == masked
    assert redact_params({"tracking.tracking_uri": url}) == {"tracking.tracking_uri": masked}


def test_spec_hash_is_taken_over_the_masked_spec():
    from grokexp.spec.io import spec_hash, spec_to_toml

    def spec(password: str):
        return load_spec(f'name = "h"\n[tracking]\ntracking_uri = '
                         f'"postgresql://bob:{password}@db:5432/x"\n', "h.toml")

    guesses = [spec(p) for p in ("S3cret/PW", "hunter2", "pa ss", "x")]
    assert len({spec_hash(s) for s in guesses}) == 1
    # the hash of what spec.resolved.toml holds, so it tells nothing the artifact does not
    masked = load_spec(redact_text(spec_to_toml(guesses[0])), "masked.toml")
    assert spec_hash(masked) == spec_hash(guesses[0])
    other = load_spec('name = "h"\n[tracking]\ntracking_uri = "postgresql://bob:x@db2/x"\n',
                      "h.toml")
    assert spec_hash(other) != spec_hash(guesses[0])  # the rest of the URL still counts


@pytest.mark.parametrize(("form", "url", "secret"), SECRET_FORMS, ids=FORM_IDS)
def test_validate_prints_the_resolved_spec_masked(form, url, secret, write_spec):
    from conftest import TINY

    spec = write_spec(TINY + f"[tracking]\ntracking_uri = {json.dumps(url)}\n")
    result = CliRunner().invoke(main, ["validate", spec])
    assert result.exit_code == 0, result.output
    assert_no_secret(result.output, secret, "validate's output")
    assert ":***@" in result.stdout


def _url_at(url: str, port: int) -> str:
    """The same form of URL, pointed at 127.0.0.1:port."""
    scheme, rest = url.split("://", 1)
    userinfo = rest.rsplit("@", 1)[0]
    path = "/x" if scheme.startswith(("postgres", "mysql")) else ""
    return f"{scheme}://{userinfo}@127.0.0.1:{port}{path}"


@pytest.mark.parametrize(("form", "url", "secret"), SECRET_FORMS, ids=FORM_IDS)
def test_an_unreachable_store_is_one_masked_line(form, url, secret, write_spec, tmp_path):
    from conftest import free_port

    spec = write_spec()
    store = _url_at(url, free_port())
    with working_in(tmp_path / "cwd"):
        result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", store])
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: tracking store ") and ":***@127.0.0.1" in \
        result.stderr
    assert_no_secret(result.output, secret, "run's error")


@pytest.mark.parametrize(("form", "url", "secret"), SECRET_FORMS, ids=FORM_IDS)
def test_a_storage_url_is_one_masked_line(form, url, secret, write_spec, tmp_path):
    from conftest import free_port
    from optimize_helpers import OPT_TINY

    spec = write_spec(OPT_TINY, "opt.toml")
    storage = _url_at(url, free_port())
    if storage.startswith("http"):  # as a database URL
        storage = "postgresql" + storage.removeprefix("https").removeprefix("http")
    with working_in(tmp_path / "cwd"):
        result = CliRunner().invoke(main, ["optimize", spec, "--storage", storage,
                                           "--tracking-uri", f"sqlite:///{tmp_path}/m/db"])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert_no_secret(result.output, secret, "optimize's error")


def test_passwords_in_a_spec_of_every_form_never_reach_mlflow(write_spec, tracking_uri,
                                                               tmp_path):
    """One run whose spec holds every form (its tracking_uri and its description): params,
    tags, artifacts, stdout and stderr hold none of them."""
    from conftest import TINY

    (_, first, _), *rest = SECRET_FORMS
    description = " and ".join(url for _, url, _ in rest)
    spec = write_spec(TINY.replace('name = "tiny"', f'name = "tiny"\ndescription = '
                                   f'{json.dumps(description)}')
                      + f"[tracking]\ntracking_uri = {json.dumps(first)}\n")
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = out["run_ids"][0]
    run = client.get_run(run_id)
    local = client.download_artifacts(run_id, "spec.resolved.toml", str(tmp_path / "a"))
    channels = {"stdout": result.stdout, "stderr": result.stderr,
                "params": json.dumps(run.data.params), "tags": json.dumps(run.data.tags),
                "spec.resolved.toml": Path(local).read_text()}
    for _, _, secret in SECRET_FORMS:
        for where, text in channels.items():
            assert_no_secret(text, secret, where)
    assert run.data.params["tracking.tracking_uri"] == redact_uri(first)


def test_masking_leaves_ordinary_text_alone():
    """A port and an e-mail address later on the line are not a password."""
    for text in ["MLflow at http://mlflow.lab:5000, contact alice@lab.org",
                 "see https://host:8443/docs and mail a@b.c", "git@github.com:org/repo",
                 "Baseline.\nTracking: http://mlflow.lab:5000\nOwner: alice@lab.org"]:
        assert redact_text(text) == text
    assert redact_text("http://alice:pw@host, contact bob@lab.org") == (
        "http://alice:***@host, contact bob@lab.org")


def test_a_description_with_a_url_and_an_address_is_logged_whole(write_spec, tracking_uri,
                                                                   tmp_path):
    """Spec values are masked one by one before they become TOML: the logged spec reads back
    as the same spec, with the same hash."""
    from conftest import TINY

    from grokexp.spec.io import spec_hash

    description = "Baseline.\nTracking: http://mlflow.lab:5000\nOwner: alice@lab.org"
    spec = write_spec(TINY.replace('name = "tiny"', f'name = "tiny"\ndescription = '
                                   f'{json.dumps(description)}'))
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri, "--json"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = json.loads(result.stdout)["run_ids"][0]
    logged = Path(client.download_artifacts(run_id, "spec.resolved.toml", str(tmp_path)))
    back = load_spec(logged.read_text(), "logged")
    assert back.description == description
    assert spec_hash(back) == client.get_run(run_id).data.tags["grokexp.spec_hash"]


def test_passwords_in_swept_values_are_masked_everywhere(write_spec, tracking_uri, tmp_path):
    """A sweep's value lists are params (JSON lists), table cells and members.md rows."""
    from conftest import TINY

    secret_url = "postgresql://u:hunter2secret@h1/db"
    spec = write_spec(TINY + f"[sweep]\ndescription = [{json.dumps(secret_url)}, \"plain\"]\n")
    result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("grokexp.role") == "sweep")
    members = Path(client.download_artifacts(parent.info.run_id, "members.md", str(tmp_path)))
    channels = {"stdout": result.stdout, "stderr": result.stderr,
                "members.md": members.read_text(),
                **{f"params of {r.info.run_id}": json.dumps(r.data.params) for r in runs}}
    for where, text in channels.items():
        assert "hunter2secret" not in text, where
    assert "postgresql://u:***@h1/db" in result.stdout
    assert redact_params({"sweep.x": [secret_url, 1]}) == {
        "sweep.x": ["postgresql://u:***@h1/db", 1]}


def test_a_long_set_item_is_masked_before_it_is_cut(write_spec):
    item = ("tracking.tracking_uri=[postgresql://service_account_01:Sup3rS3cretPassw0rdXYZ123"
            "@db.lab/x" + ",x" * 600)
    result = CliRunner().invoke(main, ["validate", write_spec(), "--set", item])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "Sup3r" not in result.output and "service_account_01:***" in result.output


# --- against a real MLflow server: MLflow's own "View run ... at: <URI>" line ------------

@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 over a sqlite store: its plain URL."""
    import subprocess
    import sys

    from conftest import free_port, healthy, stop_group, wait_until

    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", "--backend-store-uri",
             f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
             str(folder / "artifacts")], cwd=folder, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url), 120, "the MLflow server answering /health", proc,
                   log=log)
        yield url
    finally:
        stop_group(proc)


def _with_password(url: str, password: str) -> str:
    return url.replace("http://", f"http://alice:{password}@", 1)


def test_run_json_on_an_http_store_is_pure_json_without_the_password(
        mlflow_server, write_spec, tmp_path, monkeypatch):
    from conftest import TINY

    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    secret = "S3cretPW-http"
    spec = write_spec(TINY + "[sweep]\nseeds = [0, 1]\n")
    uri = _with_password(mlflow_server, secret)
    with working_in(tmp_path / "cwd"):
        result = CliRunner().invoke(main, ["run", spec, "--tracking-uri", uri, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # the whole of stdout: MLflow printed nothing into it
    assert "View run" not in result.output
    assert_no_secret(result.output, secret, "run's output")
    client = MlflowClient(tracking_uri=mlflow_server)
    for run_id in [out["parent_run_id"], *out["run_ids"]]:
        run = client.get_run(run_id)
        assert_no_secret(json.dumps([run.data.params, run.data.tags]), secret, "the run")


def test_reproduce_reuse_names_the_store_masked(mlflow_server, tmp_path):
    secret = "S3cret PW/zq9X"
    uri = _with_password(mlflow_server, secret.replace(" ", "%20").replace("/", "%2F"))
    with working_in(tmp_path / "cwd"):
        result = CliRunner().invoke(main, ["reproduce", "--reuse", "--only", "baseline",
                                           "--tracking-uri", uri, "--out", "g"])
    assert result.exit_code == 0, result.output
    assert "baseline: no runs in http://alice:***@127.0.0.1:" in result.stderr, result.output
    for piece in ("S3cret", "zq9X", "%20PW"):
        assert piece not in result.output


@pytest.fixture(scope="module")
def postgres_url():
    from conftest import start_postgres, stop_postgres

    url, directory = start_postgres()
    yield url
    stop_postgres(directory)


def test_optimize_masks_its_storage_and_tracking_passwords(postgres_url, mlflow_server,
                                                          write_spec, tmp_path):
    """--storage with a password holding '/' (the cluster trusts any password) and an HTTP
    tracking store with one: stderr, stdout and the study run's tags hold neither."""
    from optimize_helpers import OPT_TINY

    storage_secret, tracking_secret = "S3cret/PW-st", "S3cretPW-tr"
    storage = postgres_url.replace("postgres@", f"postgres:{storage_secret}@", 1)
    spec = write_spec(OPT_TINY, "opt.toml")
    with working_in(tmp_path / "cwd"):
        result = CliRunner().invoke(main, [
            "optimize", spec, "--storage", storage, "--study", "masked",
            "--tracking-uri", _with_password(mlflow_server, tracking_secret),
            "--n-trials", "1", "--batch", "1", "--set", "optimize.seeds=1",
            "--set", "train.epochs=20", "--quiet"])
    assert result.exit_code == 0, result.output
    for secret in (storage_secret, tracking_secret):
        assert_no_secret(result.output, secret, "optimize's output")
    assert "postgres:***@127.0.0.1" in result.stderr, result.stderr
    assert "in http://alice:***@127.0.0.1" in result.stdout, result.stdout
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("opt").experiment_id],
                              "tags.`grokexp.role` = 'study'")
    assert len(runs) == 1
    tag = runs[0].data.tags["grokexp.storage"]
    assert tag.startswith("postgresql+psycopg://postgres:***@127.0.0.1:"), tag
    for secret in (storage_secret, tracking_secret):
        assert_no_secret(json.dumps([runs[0].data.tags, runs[0].data.params]), secret,
                         "the study run")
