"""start_procedure: results, the dry run, and every refusal of bad input, by
the pydantic models and by the module itself."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import pytest
from conftest import tutorial_input

import py_host


def test_the_tutorial_scene_with_server1_down() -> None:
    with py_host.load(executor=py_host.SimulatedNetwork(down={"server1"})) as rust:
        output = rust.start_procedure(py_host.ProcedureInput(**tutorial_input()))
    assert output == py_host.ProcedureOutput(
        job_id=1,
        result="partial",
        message="1 host failed",
        failed_hosts=["server1"],
        failures=[py_host.HostFailure(host="server1", attempts=4, reason="host is down")],
        dry_run=False,
    )


def test_the_modules_requests_for_rounds_are_admitted_without_decoding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The module asks for every host left, in compact JSON (docs/ABI.md):
    # py_host admits such a request by comparing bytes. Any other spelling
    # would be decoded, and here fail.
    def decoded(request: bytes) -> None:
        raise AssertionError(f"decoded {request!r}")

    monkeypatch.setattr("py_host._rounds._round_fields", decoded)
    hosts = ["server1", "server2", "server3"]
    network = py_host.SimulatedNetwork(down={"server1"}, flaky={"server3": 2})
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(host_list=hosts))
    assert output.failed_hosts == ["server1"]
    assert output.failures[0].attempts == 4


def test_without_an_executor_nothing_runs(rust: py_host.RustModule) -> None:
    output = rust.start_procedure(tutorial_input())
    assert output.dry_run
    assert output.result == "success"
    assert output.failed_hosts == []
    assert output.message == 'dry run: no executor granted, "reboot" not run on 2 hosts'


NETWORK_CASES = [
    # network, hosts, retries -> result, failed hosts, message
    (py_host.SimulatedNetwork(), ["a", "b"], 3, "success", [], "0 hosts failed"),
    (py_host.SimulatedNetwork(down={"a", "b"}), ["a", "b"], 1, "failure", ["a", "b"], "2 hosts failed"),
    (py_host.SimulatedNetwork(flaky={"a": 2}), ["a", "b"], 2, "success", [], "0 hosts failed"),
    (py_host.SimulatedNetwork(flaky={"a": 2}), ["a", "b"], 1, "partial", ["a"], "1 host failed"),
    (py_host.SimulatedNetwork(down={"B"}), ["c", "b", "a"], 0, "partial", ["b"], "1 host failed"),
    (py_host.SimulatedNetwork(down={"c", "a"}), ["c", "b", "a"], 0, "partial", ["c", "a"], "2 hosts failed"),
]  # fmt: skip


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_results_on_a_simulated_network(case: tuple[Any, ...]) -> None:
    network, hosts, retries, result, failed, message = case
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(host_list=hosts, retries=retries))
    assert (output.result, output.failed_hosts, output.message) == (result, failed, message)
    assert [f.host for f in output.failures] == failed
    assert all(f.attempts == retries + 1 for f in output.failures)


def test_a_slow_host_times_out_on_every_attempt() -> None:
    network = py_host.SimulatedNetwork(slow={"server2": 30})
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(timeout=10, retries=1))
    assert output.failures == [
        py_host.HostFailure(host="server2", attempts=2, reason="timed out after 10 s")
    ]


def test_the_json_entry_point_gives_the_same_output() -> None:
    with py_host.load(executor=py_host.SimulatedNetwork(down={"server1"})) as rust:
        typed = rust.start_procedure(tutorial_input())
        raw = rust.start_procedure_json(json.dumps(tutorial_input()).encode())
    assert py_host.ProcedureOutput.model_validate_json(raw) == typed


def test_each_round_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    network = py_host.SimulatedNetwork(down={"server1"})
    with py_host.load(executor=network) as rust, caplog.at_level(logging.DEBUG, "py_host"):
        rust.start_procedure(tutorial_input(retries=1, job_id=7))
    rounds = [
        re.sub(r"took \d+\.\d{3} s", "took T s", record.getMessage())
        for record in caplog.records
        if record.name == "py_host.rounds"
    ]
    assert rounds == [
        "job 7: round 1 of 'reboot' on 2 hosts took T s: 1 failed, 1 ok; 1 of 2 hosts done",
        "job 7: round 2 of 'reboot' on 1 host took T s: 1 failed; 2 of 2 hosts done",
    ]


def test_nothing_is_logged_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    with py_host.load(executor=py_host.SimulatedNetwork()) as rust, caplog.at_level(logging.INFO):
        rust.start_procedure(tutorial_input())
    assert [record for record in caplog.records if record.name.startswith("py_host")] == []


def test_a_progress_callback_sees_each_round_of_every_entry() -> None:
    # Round 1: server2 ok, server1 failed with a retry left; round 2:
    # server1 failed for good. A dry run has no round, so no call.
    network = py_host.SimulatedNetwork(down={"server1"})
    expected = [
        py_host.Progress(job_id=1, rounds=1, hosts=2, hosts_done=1, hosts_failed=0),
        py_host.Progress(job_id=1, rounds=2, hosts=2, hosts_done=2, hosts_failed=1),
    ]
    data = json.dumps(tutorial_input(retries=1))
    with py_host.load(executor=network) as rust:
        for run in (
            lambda progress: rust.start_procedure(tutorial_input(retries=1), progress=progress),
            lambda progress: rust.start_procedure_json(data, progress=progress),
            lambda progress: rust.start_procedure_buffer(data, progress=progress).free(),
        ):
            seen: list[py_host.Progress] = []
            run(seen.append)
            assert seen == expected
    with py_host.load() as dry:
        seen = []
        dry.start_procedure(tutorial_input(), progress=seen.append)
        assert seen == []


def test_what_a_progress_callback_raises_ends_the_procedure() -> None:
    def progress(step: py_host.Progress) -> None:
        raise RuntimeError("the bar broke")

    with py_host.load(executor=py_host.SimulatedNetwork(), max_instances=1) as rust:
        [first] = rust._pool.live()
        with pytest.raises(RuntimeError, match="the bar broke"):
            rust.start_procedure(tutorial_input(), progress=progress)
        # The procedure's state is unknown: its instance went.
        assert rust._pool.live() != [first]
        assert rust.live_allocations() == 0
        assert rust.start_procedure(tutorial_input()).result == "success"


def test_the_pool_is_sized_for_io_when_an_executor_is_granted() -> None:
    # README, "Limits": 64 instances by default with an executor, the CPUs
    # (at most 8) without one; made only as calls need them.
    with py_host.load(executor=py_host.SimulatedNetwork()) as rust:
        assert rust._pool._size == 64
        assert len(rust._pool.live()) == 1
    with py_host.load() as rust:
        assert rust._pool._size == min(os.cpu_count() or 1, 8)
