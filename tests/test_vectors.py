"""py_host against the shared vectors: each gets the reply and the rounds that
docs/ABI.md's rules give (tests/vectors.py says how they are compared)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from vectors import assert_documented_answer, vector_params

import py_host


class RecordingNetwork:
    """py_host's simulated network, keeping each round it is asked to run."""

    def __init__(self, network: dict[str, Any]) -> None:
        self.network = py_host.SimulatedNetwork(**network)
        self.rounds: list[dict[str, Any]] = []

    def run_round(self, round: py_host.Round) -> list[py_host.Outcome]:
        self.rounds.append({**dataclasses.asdict(round), "hosts": list(round.hosts)})
        return self.network.run_round(round)


@pytest.mark.parametrize("vector", vector_params())
def test_py_host_gives_the_documented_answer(vector: dict[str, Any]) -> None:
    network = None if vector["network"] is None else RecordingNetwork(vector["network"])
    with py_host.load(executor=network) as module:
        try:
            reply = {"ok": json.loads(module.start_procedure_json(vector["input"]))}
        except py_host.InvalidInput as error:
            reply = {
                "error": {"kind": error.kind, "message": error.message, "path": list(error.path)}
            }
    assert_documented_answer(vector, reply, [] if network is None else network.rounds)
