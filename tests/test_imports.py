"""`import py_host` imports each part at its first use (PEP 562): the public
names are all there, and what a program does not use is never imported."""

from __future__ import annotations

import json

import pytest
from conftest import run_python

import py_host

HEAVY = ["wasmtime", "pydantic", "asyncio", "py_host.module", "py_host.aio"]


def imported_after(source: str) -> list[str]:
    """Which of :data:`HEAVY` a new process has imported after ``source``."""
    done = run_python(
        source
        + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert done.returncode == 0, done.stderr
    imported: list[str] = json.loads(done.stdout.splitlines()[-1])
    return imported


def test_importing_the_package_imports_nothing_heavy() -> None:
    assert imported_after("import py_host") == []


def test_a_synchronous_program_never_imports_asyncio() -> None:
    imported = imported_after(
        """
import py_host
with py_host.load(executor=py_host.SimulatedNetwork(down={"h"})) as rust:
    rust.start_procedure(dict(timeout=1, retries=1, action="a", host_list=["h"], job_id=1))
"""
    )
    assert imported == ["wasmtime", "pydantic", "py_host.module"]


def test_load_async_brings_in_asyncio() -> None:
    assert "asyncio" in imported_after("import py_host\npy_host.load_async")


def test_each_public_name_imports_from_the_package() -> None:
    # In a new process, each name first reached through `from py_host import`.
    done = run_python(
        "import py_host\n"
        "for name in py_host.__all__:\n"
        "    exec(f'from py_host import {name} as value', {})\n"
        "print(len(py_host.__all__))"
    )
    assert (done.returncode, done.stdout) == (0, f"{len(py_host.__all__)}\n"), done.stderr


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from py_host import *", namespace)
    assert set(py_host.__all__) <= set(namespace)
    assert set(py_host.__all__) <= set(dir(py_host))


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="module 'py_host' has no attribute 'lod'"):
        py_host.lod  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'lod'"):
        exec("from py_host import lod", {})


def test_the_submodules_imported_with_the_package_before_still_are_on_first_use() -> None:
    done = run_python("import py_host\nprint(py_host.aio.load_async is py_host.load_async)")
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr
