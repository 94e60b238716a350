"""python -m py_host: input from flags, a file or stdin; output and exit status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, tutorial_input

from py_host._cli import MAX_INPUT_BYTES


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "py_host", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_help_documents_the_exit_statuses() -> None:
    done = cli("--help")
    assert done.returncode == 0
    assert "exit status:" in done.stdout
    for status in "01234":
        assert f"  {status}  " in done.stdout


def test_version_names_py_host_the_module_and_the_abi() -> None:
    done = cli("--version")
    assert done.returncode == 0, done.stderr
    crate = re.search(r'^version = "(.+)"$', (ROOT / "Cargo.toml").read_text(), re.MULTILINE)
    assert crate is not None
    assert done.stdout.startswith("py_host 0.1.0, wasmtime 50.")
    assert done.stdout.endswith(f"module {crate[1]}, ABI version 3\n")


def test_flags_on_a_simulated_network_with_server1_down() -> None:
    done = cli("--host", "server1", "--host", "server2", "--down", "server1")
    assert done.returncode == 1, done.stderr
    output = json.loads(done.stdout)
    assert (output["result"], output["failed_hosts"]) == ("partial", ["server1"])


def test_a_file_without_an_executor_is_a_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(tutorial_input()))
    done = cli(str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True


def test_stdin_with_a_command_executor() -> None:
    done = cli(
        "-",
        "--command",
        f"ping={sys.executable} -c pass",
        stdin=json.dumps(tutorial_input(action="ping")),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "success"


def test_flaky_hosts_recover() -> None:
    done = cli("--host", "a", "--flaky", "a:2", "--retries", "2")
    assert done.returncode == 0, done.stderr


def test_invalid_input_exits_2_naming_the_field() -> None:
    done = cli("-", stdin=json.dumps(tutorial_input(timeout=0)))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(
        "invalid input: timeout must be a whole number from 1 to 255; got 0"
    )


def test_bad_arguments_exit_2() -> None:
    for args in [
        (),
        ("--host", "a", "--down", "a", "--command", "x=true"),
        ("--host", "a", "--flaky", "a:x"),
        ("--command", "x"),
    ]:
        assert cli(*args).returncode == 2, args


def test_a_module_that_cannot_load_exits_3(tmp_path: Path) -> None:
    done = cli("--host", "a", "--wasm", str(tmp_path / "missing.wasm"))
    assert done.returncode == 3
    assert "missing.wasm" in done.stderr


# The edges of input and output: each a one-line message and its documented
# exit status, never a traceback.


def shell(command: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """``command`` run by sh with ``$0`` the Python that runs py_host."""
    return subprocess.run(
        ["sh", "-c", command, sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
        **options,
    )


def assert_one_line(stderr: str, starts: str) -> None:
    assert stderr.startswith(starts), stderr
    assert stderr.endswith("\n"), stderr
    assert stderr.count("\n") == 1, stderr


def test_a_closed_stdin_exits_2() -> None:
    done = shell('exec "$0" -m py_host - <&-')
    assert (done.returncode, done.stdout) == (2, "")
    assert_one_line(done.stderr, "cannot read standard input: it is closed")


def test_an_endless_file_is_refused_not_read_whole() -> None:
    done = cli("/dev/zero")
    assert (done.returncode, done.stdout) == (2, "")
    assert_one_line(
        done.stderr, f"invalid input: '/dev/zero' is longer than {MAX_INPUT_BYTES} bytes"
    )


def test_more_than_an_input_can_hold_on_stdin_is_invalid_input(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as file:
        file.truncate(100_000_000)  # sparse: no disk space
    with big.open("rb") as stdin:
        done = shell('exec "$0" -m py_host -', stdin=stdin)
    assert (done.returncode, done.stdout) == (2, "")
    assert_one_line(
        done.stderr, f"invalid input: standard input is longer than {MAX_INPUT_BYTES} bytes"
    )


def test_an_input_of_many_chunks_is_read_whole() -> None:
    padded = json.dumps(tutorial_input()) + " " * 3_000_000
    done = cli("-", stdin=padded)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True


def test_a_directory_as_file_exits_2(tmp_path: Path) -> None:
    done = cli(str(tmp_path))
    assert (done.returncode, done.stdout) == (2, "")
    assert_one_line(done.stderr, f"cannot read {str(tmp_path)!r}: Is a directory")


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["--host", "a"], ["--version"], ["--help"]])
def test_a_full_stdout_exits_4(args: list[str], unbuffered: str) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "py_host", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
            check=False,
        )
    assert done.returncode == 4
    assert_one_line(done.stderr, "cannot write the output: No space left on device")


def test_a_closed_stdout_exits_4() -> None:
    done = shell('exec "$0" -m py_host --host a >&-')
    assert done.returncode == 4
    assert_one_line(done.stderr, "cannot write the output: standard output is closed")


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_a_pipe_closed_early_exits_4(unbuffered: str) -> None:
    # More output than a pipe holds, so the write must meet the closed end;
    # unbuffered, Python's text layer would drop the rest without an error.
    hosts = [f"h{i}" for i in range(2000)]
    down = [arg for host in hosts for arg in ("--down", host)]
    process = subprocess.Popen(
        [sys.executable, "-m", "py_host", "-", *down],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.write(json.dumps(tutorial_input(host_list=hosts, retries=0)).encode())
    process.stdin.close()
    assert process.stdout.read(1) == b"{"
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 4
    assert_one_line(stderr, "cannot write the output: Broken pipe")
