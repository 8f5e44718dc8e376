"""The probe process: probes leave the training process by value, come back equal to the
same work done in place, and a worker that dies loses none of them."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from multiprocessing.reduction import ForkingPickler

import pytest
import torch

from grokexp.diagnostics.probe_process import sent
from grokexp.diagnostics.probe_queue import ProbeQueue
from grokexp.diagnostics.probes import ProbeWork, drc_probe, frozen_params, mc_probe
from grokexp.engine.data import make_splits, pair_table
from grokexp.engine.model import Population
from grokexp.engine.sweep import expand_members
from grokexp.engine.train import TrainData
from grokexp.spec.io import validate_spec


def process_id() -> dict[str, torch.Tensor]:
    """Probe work that says where it ran."""
    return {"pid": torch.tensor([os.getpid()])}


def tiny_population(seeds: list[int]):
    spec = validate_spec({"name": "p", "task": {"modulus": 11},
                          "model": {"embedding_dim": 8, "hidden": 16},
                          "train": {"epochs": 10, "batch_size": 8},
                          "metrics": {"mc_samples": 30, "drc_samples": 3},
                          "sweep": {"seeds": seeds}}, "p")
    members = expand_members(spec)
    table = pair_table(spec.task)
    splits = make_splits(spec.task, table, [m.spec.train.split_seed for m in members])
    population = Population.from_specs([m.spec for m in members], torch.device("cpu"))
    return spec, members, TrainData(table, splits), population


def ready(queue: ProbeQueue) -> ProbeQueue:
    """The queue once its probe process is ready: until then a waiting caller would measure
    every probe itself."""
    from conftest import wait_until

    queue.start()
    wait_until(queue.ready, 120, "the probe process to be ready")
    return queue


def probe_pid(queue: ProbeQueue, members) -> int:
    ready(queue)
    queue.submit(0, members, torch.device("cpu"), ProbeWork(process_id))
    (probe,) = queue.finished(wait=True)
    return int(probe.result()["pid"][0])


def test_a_probe_is_copied_when_sent_and_travels_by_value() -> None:
    """Training changes the live weights right after the evaluation hands a probe over;
    and multiprocessing's pickler would move a tensor's storage to shared memory (sending a
    file descriptor): the training's buffers must never be touched that way."""
    spec, members, data, population = tiny_population([0, 1])
    live = {n: t.detach() for n, t in population.params.items()}
    work = mc_probe(live, population.arch, data, spec.metrics, members, 0)
    expected = mc_probe(frozen_params(population), population.arch, data, spec.metrics,
                        members, 0)()
    handed = sent(work)
    wire = ForkingPickler.dumps(handed)
    assert not any(t.is_shared() for t in live.values())
    assert not data.table.left.is_shared() and not data.splits.test_index.is_shared()
    with torch.no_grad():
        for tensor in live.values():  # the next training step
            tensor.add_(0.5)
    for values in (handed(), pickle.loads(wire)()):
        assert values.keys() == expected.keys()
        for name in expected:
            assert torch.equal(values[name], expected[name]), name
    moved = work()  # the work itself reads the weights as they are now
    assert not torch.equal(moved["mc_dropout_acc_mean"], expected["mc_dropout_acc_mean"])


def test_probes_run_in_another_process_with_the_values_of_in_place() -> None:
    spec, members, data, population = tiny_population([0, 1, 2])
    params = frozen_params(population)
    background, in_place = ProbeQueue(), ProbeQueue(background=False)
    assert probe_pid(background, members) != os.getpid()
    for queue in (background, in_place):
        queue.submit(0, members, torch.device("cpu"),
                     mc_probe(params, population.arch, data, spec.metrics, members, 0))
        queue.submit(0, members, torch.device("cpu"),
                     drc_probe(params, population.arch, data, spec.metrics, members, 0))
    got = [[p.result() for p in q.finished(wait=True)] for q in (background, in_place)]
    background.close()
    for there, here in zip(*got, strict=True):
        assert there.keys() == here.keys()
        for name in here:  # the same function of the same inputs, on one thread each
            assert torch.equal(there[name], here[name]), name


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_a_killed_probe_process_loses_no_probe() -> None:
    """A worker killed (out of memory, by hand) with probes queued: they are computed here,
    and the next probe starts a fresh process."""
    spec, members, data, population = tiny_population([0, 1])
    params = frozen_params(population)
    queue = ProbeQueue()
    first = probe_pid(queue, members)
    expected = mc_probe(params, population.arch, data, spec.metrics, members, 0)()
    os.kill(first, signal.SIGKILL)
    queue.submit(0, members, torch.device("cpu"),
                 mc_probe(params, population.arch, data, spec.metrics, members, 0))
    (probe,) = queue.finished(wait=True)
    values = probe.result()
    for name in expected:
        assert torch.equal(values[name], expected[name]), name
    second = probe_pid(queue, members)
    queue.close()
    assert second not in (first, os.getpid())


INTERRUPTS = {"left": 1}  # how many more times the work below is interrupted, here


def wait_for_file(path: str) -> dict[str, torch.Tensor]:
    """Probe work that holds the probe process until the test lets it go (bounded)."""
    for _ in range(6000):
        if os.path.exists(path):
            break
        time.sleep(0.01)
    return {"pid": torch.tensor([os.getpid()])}


def interrupted_once_here(parent: int) -> dict[str, torch.Tensor]:
    """Probe work that meets a Ctrl-C the first time the test's own process runs it."""
    if os.getpid() == parent and INTERRUPTS["left"] > 0:
        INTERRUPTS["left"] -= 1
        raise KeyboardInterrupt
    return {"pid": torch.tensor([os.getpid()])}


def test_a_ctrl_c_while_the_caller_measures_a_probe_leaves_it_for_the_clean_up(
        tmp_path) -> None:
    """The caller runs a queued probe while the process is busy; a Ctrl-C then must not
    leave that probe unfinishable: the clean-up's wait measures it again."""
    _, members, _, _ = tiny_population([0])
    release = str(tmp_path / "release")
    queue = ready(ProbeQueue())
    queue.submit(0, members, torch.device("cpu"), ProbeWork(wait_for_file, release))
    queue.submit(0, members, torch.device("cpu"),
                 ProbeWork(interrupted_once_here, os.getpid()))
    with pytest.raises(KeyboardInterrupt):
        queue.finished(wait=True)  # the caller takes the newest queued probe
    (tmp_path / "release").write_text("go")
    done = queue.finished(wait=True)
    queue.close()
    assert [int(p.result()["pid"][0]) for p in done][1] == os.getpid()
    assert len(done) == 2 and INTERRUPTS["left"] == 0


def test_a_probe_landing_while_the_queue_closes_starts_no_new_process(tmp_path) -> None:
    """A probe in flight when close() is called still lands; the queued one is then not sent
    to a fresh process (that process would outlive the run): the caller measures it here."""
    from conftest import wait_until

    _, members, _, _ = tiny_population([0])
    release = tmp_path / "release"
    queue = ready(ProbeQueue())
    queue.submit(0, members, torch.device("cpu"), ProbeWork(wait_for_file, str(release)))
    queue.submit(0, members, torch.device("cpu"), ProbeWork(process_id))
    closing = threading.Thread(target=queue.close)
    closing.start()
    wait_until(lambda: queue._closed, 30, "close() to begin")  # a state of the queue's own
    release.write_text("go")
    closing.join(timeout=60)
    assert not closing.is_alive()
    first, second = (int(p.result()["pid"][0]) for p in queue.finished(wait=True))
    assert first != os.getpid() and second == os.getpid()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_a_caller_measures_what_a_process_still_importing_would_hold_up() -> None:
    """Nothing goes to a process before its imports are done: a caller that waits measures
    the probe itself (a short run waited seconds for torch to import there), and a process
    closed while importing is killed rather than waited for."""
    import multiprocessing

    _, members, _, _ = tiny_population([0])
    before = set(multiprocessing.active_children())
    queue = ProbeQueue()
    queue.start()
    (child,) = [p for p in multiprocessing.active_children() if p not in before]
    assert not queue.ready()  # importing torch takes seconds; this state holds well before
    queue.submit(0, members, torch.device("cpu"), ProbeWork(process_id))
    (probe,) = queue.finished(wait=True)
    assert int(probe.result()["pid"][0]) == os.getpid()
    queue.close()
    from conftest import wait_until

    # polled, not joined: the executor's thread reaps the child too, and a join that loses
    # that race returns before the exit code is recorded
    wait_until(lambda: child.exitcode is not None, 60, "the killed process to be reaped")
    assert child.exitcode == -signal.SIGKILL


def test_a_process_that_dies_importing_is_replaced_then_given_up_on() -> None:
    """A probe process killed before it is ready is forgotten (the next use starts another);
    after MAX_FAILED_STARTS such deaths none is started and a waiting caller measures every
    probe; nothing hangs on the way (the dying pool's own thread reports the death, and
    must not call that pool)."""
    import multiprocessing

    from conftest import wait_until

    from grokexp.diagnostics.probe_process import MAX_FAILED_STARTS, ProbeProcess

    _, members, _, _ = tiny_population([0])
    process = ProbeProcess()
    for attempt in range(MAX_FAILED_STARTS):
        before = set(multiprocessing.active_children())
        assert process.executor() is not None
        (child,) = [p for p in multiprocessing.active_children() if p not in before]
        child.kill()
        wait_until(lambda n=attempt + 1: process.failed_starts == n, 60,
                   "the dead process to be counted and forgotten")
    assert process.executor() is None and not process.ready()
    queue = ProbeQueue(process=process)
    queue.submit(0, members, torch.device("cpu"), ProbeWork(process_id))
    (probe,) = queue.finished(wait=True)
    assert int(probe.result()["pid"][0]) == os.getpid()
    queue.close()
