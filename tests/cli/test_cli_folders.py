"""`--out` and `--recovery-dir` are checked before anything is created or trained: one line,
exit 2; never a silent fallback to another folder."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import TINY
from optimize_helpers import OPT_TINY

from grokexp.cli import main


def _nothing_made(tmp_path) -> None:
    assert not (tmp_path / "store").exists() and not (tmp_path / "study.log").exists()


def test_an_unwritable_out_is_refused_before_the_study(write_spec, tmp_path):
    (tmp_path / "plain").write_text("")  # a file where --out needs a folder
    spec = write_spec(OPT_TINY, "opt.toml")
    result = CliRunner().invoke(main, [
        "optimize", spec, "--quiet", "--tracking-uri", f"sqlite:///{tmp_path}/store/mlflow.db",
        "--storage", str(tmp_path / "study.log"), "--n-trials", "1", "--batch", "1",
        "--set", "train.epochs=10", "--out", str(tmp_path / "plain" / "best")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"--out {tmp_path / 'plain' / 'best'}: ")
    assert "not a directory" in lines[0]
    _nothing_made(tmp_path)


@pytest.mark.parametrize("command", ["run", "optimize"])
def test_an_unusable_recovery_dir_is_refused_without_a_fallback(command, write_spec,
                                                                tmp_path):
    (tmp_path / "plain").write_text("")
    spec = write_spec(OPT_TINY if command == "optimize" else TINY, "spec.toml")
    extra = (["--storage", str(tmp_path / "study.log"), "--n-trials", "1", "--batch", "1",
              "--out", str(tmp_path)] if command == "optimize" else [])
    result = CliRunner().invoke(main, [
        command, spec, "--tracking-uri", f"sqlite:///{tmp_path}/store/mlflow.db", *extra,
        "--set", "train.epochs=10", "--recovery-dir", str(tmp_path / "plain" / "rec")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"--recovery-dir {tmp_path}/plain/rec: ")
    _nothing_made(tmp_path)
