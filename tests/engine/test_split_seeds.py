"""`[sweep] split_seeds`: paired with `seeds` (member i of every grid point gets seeds[i] as
its init seed and split_seeds[i] as its split seed), so a sweep samples data splits as well as
initialisations; a missing or mismatched list is one line naming sweep.split_seeds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from grokexp.cli import main
from grokexp.engine.sweep import expand_members
from grokexp.errors import SpecError
from grokexp.spec.io import load_spec


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(text, "x.toml")
    return info.value.problems


def test_split_seeds_pair_with_seeds_at_every_grid_point() -> None:
    spec = load_spec('name = "s"\n[sweep]\nseeds = [3, 4, 5]\nsplit_seeds = [0, 1, 7]\n'
                     '"init.scale" = [1.0, 2.0]\n', "s.toml")
    members = expand_members(spec, "s.toml")
    pairs = [(m.varied["init.scale"], m.varied["train.seed"], m.varied["train.split_seed"])
             for m in members]
    assert pairs == [(1.0, 3, 0), (1.0, 4, 1), (1.0, 5, 7), (2.0, 3, 0), (2.0, 4, 1),
                     (2.0, 5, 7)]
    assert [(m.spec.train.seed, m.spec.train.split_seed) for m in members] == \
        [(s, p) for _, s, p in pairs]
    assert all(m.spec.sweep is None for m in members)
    # without split_seeds every member keeps the spec's one split, as before
    plain = expand_members(load_spec('name = "s"\n[train]\nsplit_seed = 4\n[sweep]\n'
                                     'seeds = [0, 1]\n', "s.toml"))
    assert [m.spec.train.split_seed for m in plain] == [4, 4]
    assert all("train.split_seed" not in m.varied for m in plain)


def test_split_seeds_without_seeds_or_of_another_length_is_one_line() -> None:
    assert _problems('name = "s"\n[sweep]\nsplit_seeds = [0, 1]\n') == [
        "x.toml: sweep.split_seeds: 2 value(s) for 0 sweep.seeds: each pairs with the seed "
        "at its position, so give as many"]
    assert _problems('name = "s"\n[sweep]\nseeds = [0, 1, 2]\nsplit_seeds = [0, 1]\n') == [
        "x.toml: sweep.split_seeds: 2 value(s) for 3 sweep.seeds: each pairs with the seed "
        "at its position, so give as many"]
    (line,) = _problems('name = "s"\n[sweep]\nseeds = [0]\nsplit_seeds = [-1]\n')
    assert line.startswith("x.toml: sweep") and "'split_seeds' must be a list of " \
        "non-negative integers" in line
    (line,) = _problems('name = "s"\n[sweep]\nseeds = [0]\nsplit_seeds = []\n')
    assert line.startswith("x.toml: sweep") and "split_seeds" in line


def test_members_of_a_run_log_their_paired_split(tmp_path, tracking_uri) -> None:
    """A real run: each member's run holds its own seed and split seed, and members with
    different split seeds trained on different pairs (their split digests differ)."""
    path = tmp_path / "pairs.toml"
    path.write_text('name = "pairs"\n[task]\nmodulus = 7\n[model]\nembedding_dim = 4\n'
                    'hidden = 8\n[train]\nepochs = 2\nbatch_size = 8\n[metrics]\nevery = 1\n'
                    'mc_dropout = false\ndrc = false\n[sweep]\nseeds = [0, 1, 2]\n'
                    'split_seeds = [5, 5, 6]\n')
    result = CliRunner().invoke(main, ["run", str(path), "--tracking-uri", tracking_uri],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("pairs")
    children = [r for r in client.search_runs([experiment.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
    logged = sorted((int(r.data.params["train.seed"]), int(r.data.params["train.split_seed"]),
                     r.data.tags["grokexp.split_digest"]) for r in children)
    assert [(s, p) for s, p, _ in logged] == [(0, 5), (1, 5), (2, 6)]
    assert logged[0][2] == logged[1][2] != logged[2][2]  # one split seed, one split
    assert all(r.data.params["varied.train.split_seed"] in ("5", "6") for r in children)


def test_split_seeds_beside_a_split_seed_sweep_is_one_line() -> None:
    """Both would set each member's split: the members would silently repeat."""
    expected = ["x.toml: sweep.split_seeds: given beside a sweep of train.split_seed: each "
                "member would take both; keep one"]
    assert _problems('name = "s"\n[sweep]\nseeds = [0, 1]\nsplit_seeds = [5, 6]\n'
                     '"train.split_seed" = [0, 1]\n') == expected
    assert _problems('name = "s"\n[sweep]\nseeds = [0, 1]\nsplit_seeds = [5, 6]\n'
                     'variants = [{"train.split_seed" = 3}]\n') == expected
