"""print_string and print_int: what reaches sys.stdout, and when. Their
refusals of bad input are in test_bad_input.py."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

import py_host


@pytest.mark.parametrize(
    "text",
    [
        "Python says hi inside Rust!",
        "",
        "ünïcödé, 中文, emoji 🦀",
        "embedded\0NUL is kept, not truncated as the tutorial's CStr would",
        "two\nlines",
    ],
)
def test_print_string_reaches_sys_stdout(rust: py_host.RustModule, capsys: Any, text: str) -> None:
    rust.print_string(text)
    assert capsys.readouterr().out == text + "\n"


def test_print_string_takes_utf8_bytes(rust: py_host.RustModule, capsys: Any) -> None:
    rust.print_string("über".encode())
    assert capsys.readouterr().out == "über\n"


def test_print_string_prints_a_megabyte(rust: py_host.RustModule, capsys: Any) -> None:
    text = "x" * 1_000_000
    rust.print_string(text)
    assert capsys.readouterr().out == text + "\n"
    assert rust.live_allocations() == 0


def test_output_is_interleaved_with_pythons_own_in_call_order(
    rust: py_host.RustModule, capsys: Any
) -> None:
    print("python 1")
    rust.print_string("rust 2")
    print("python 3")
    rust.print_int(4)
    assert capsys.readouterr().out == "python 1\nrust 2\npython 3\nPython gave us number 4\n"


def test_output_follows_a_redirected_sys_stdout(rust: py_host.RustModule) -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rust.print_string("into the buffer")
    assert buffer.getvalue() == "into the buffer\n"


@pytest.mark.parametrize("value", [2, 0, -1, 2**31 - 1, -(2**31)])
def test_print_int(rust: py_host.RustModule, capsys: Any, value: int) -> None:
    rust.print_int(value)
    assert capsys.readouterr().out == f"Python gave us number {value}\n"


class Tee(io.StringIO):
    """A sys.stdout that calls back into the module, or is interrupted."""

    def __init__(self, action: Any) -> None:
        super().__init__()
        self.action = action

    def write(self, text: str) -> int:
        self.action()
        return super().write(text)


def test_a_stdout_that_calls_back_into_the_module_fails_the_print(rust: py_host.RustModule) -> None:
    with (
        contextlib.redirect_stdout(Tee(lambda: rust.print_int(1))),
        pytest.raises(py_host.ModuleError) as raised,
    ):
        rust.print_string("hello")
    assert raised.value.kind == "io"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rust.print_string("and then")
    assert buffer.getvalue() == "and then\n"


def test_ctrl_c_while_the_module_prints_propagates_and_the_module_recovers(
    rust: py_host.RustModule,
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with contextlib.redirect_stdout(Tee(interrupt)), pytest.raises(KeyboardInterrupt):
        rust.print_string("hello")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rust.print_string("after the interrupt")
    assert buffer.getvalue() == "after the interrupt\n"
    assert rust.live_allocations() == 0


def test_an_input_larger_than_an_i32_length_is_refused(
    rust: py_host.RustModule, monkeypatch: Any
) -> None:
    monkeypatch.setattr(py_host.module, "MAX_INPUT", 10)
    with pytest.raises(py_host.InvalidInput, match="more than an input can hold"):
        rust.print_string("x" * 11)
