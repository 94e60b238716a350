"""The shared vectors of tests/vectors.json and the answer each one must get
from every host of the module: py_host (tests/test_vectors.py), the Node host
(tests/test_node_host.py) and the browser build (tests/test_browser.py).

A vector has a ``name``; the ``input``, the JSON text as sent, valid or not;
a ``network``, the arguments of py_host's SimulatedNetwork (wasm/www/network.js
in JavaScript), or null for no executor, a dry run; the ``reply`` docs/ABI.md's
rules give; and the ``rounds`` the executor must be asked for, in order
(``[]`` when none runs). The replies are written from the rules, not taken from the
module, so a bug in the one Rust core behind all three hosts fails them all.

How a reply is compared: an ``ok`` output field by field, except that a dry
run's ``message`` written as ``"dry run: ..."`` only fixes that prefix (the
document gives no more of it); an ``error`` by its ``kind`` and ``path``, the
``message`` being the module's own wording.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent / "vectors.json").read_text()
)

ELLIPSIS = "..."


def vector_params() -> list[Any]:
    """Each vector as a pytest parameter named after it."""
    return [pytest.param(vector, id=vector["name"]) for vector in VECTORS]


def assert_documented_answer(
    vector: dict[str, Any], reply: dict[str, Any], rounds: list[dict[str, Any]]
) -> None:
    """Check a host's ``reply`` document and the ``rounds`` its executor ran
    against what ``vector`` says the rules give."""
    assert rounds == vector["rounds"]
    expected = vector["reply"]
    if "error" in expected:
        assert list(reply) == ["error"], reply
        error = reply["error"]
        assert sorted(error) == ["kind", "message", "path"]
        wanted_error = expected["error"]
        assert (error["kind"], error["path"]) == (wanted_error["kind"], wanted_error["path"])
        assert isinstance(error["message"], str)
        assert error["message"]
        return
    assert list(reply) == ["ok"], reply
    output = dict(reply["ok"])
    wanted = dict(expected["ok"])
    if wanted["message"].endswith(ELLIPSIS):
        assert output.pop("message").startswith(wanted.pop("message").removesuffix(ELLIPSIS))
    assert output == wanted
