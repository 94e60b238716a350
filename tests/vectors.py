"""The shared vectors of tests/vectors.json and the answer each one must get
from every host of the module: py_host (tests/test_vectors.py), the Node host
(tests/test_node_host.py) and the browser build (tests/test_browser.py).

A vector has a ``name``; the ``input``, the JSON text as sent, valid or not;
a ``network``, the arguments of py_host's SimulatedNetwork (wasm/www/network.js
in JavaScript), or null for no executor, a dry run; the ``reply`` docs/ABI.md's
rules give; and the ``rounds`` the executor must be asked for, in order
(``[]`` when none runs). The replies are written from the rules, not taken from the
module, so a bug in the one Rust core behind all three hosts fails them all.

How a reply is compared: an ``ok`` output field by field, and an ``error``
by its ``kind``, ``message`` and ``path``, the message as docs/ABI.md's
"Messages" words it; except that a ``message`` written ending in ``...``
only fixes what comes before (a dry run's, and the parser's words for text
that is not JSON: the document gives no more of them).
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
        assert_same(dict(error), dict(expected["error"]))
        return
    assert list(reply) == ["ok"], reply
    assert_same(dict(reply["ok"]), dict(expected["ok"]))


def assert_same(got: dict[str, Any], wanted: dict[str, Any]) -> None:
    """``got`` is ``wanted``, a ``message`` ending in ``...`` fixing only its start."""
    if wanted["message"].endswith(ELLIPSIS):
        message = got.pop("message")
        assert isinstance(message, str)
        assert message.startswith(wanted.pop("message").removesuffix(ELLIPSIS)), message
    assert got == wanted
