"""``py-host`` and ``python -m py_host``: run a procedure and print its
ProcedureOutput JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, NoReturn

from . import __version__
from ._abi import ABI_VERSION, MAX_INPUT
from ._transport import WASMTIME_VERSION
from .errors import Error, InvalidInput
from .executors import CommandExecutor, Executor, SimulatedNetwork
from .limits import Limits
from .module import load

EXIT_SUCCESS = 0
EXIT_HOSTS_FAILED = 1
EXIT_USAGE = 2
EXIT_MODULE = 3
EXIT_OUTPUT = 4

MAX_INPUT_BYTES = min(MAX_INPUT, Limits().max_memory_bytes)
"""The most input the command line reads: an input is copied into the
module's memory, which the default limits cap below what the ABI allows."""
_CHUNK = 1024 * 1024

EPILOG = f"""\
The input is a ProcedureInput JSON document from FILE, from standard input
(FILE is -), or built from --host, --action, --job-id, --timeout and
--retries. Without --down, --flaky or --command, the procedure is a dry run.

examples:
  %(prog)s --host server1 --host server2 --action reboot --down server1
  echo '{{"timeout":10,"retries":3,"host_list":["a"],"action":"ping","job_id":1}}' \\
      | %(prog)s - --command 'ping=ping -c 1 -W {{timeout}} {{host}}'

exit status:
  {EXIT_SUCCESS}  the procedure ran and every host succeeded (or it was a dry run)
  {EXIT_HOSTS_FAILED}  the procedure ran and some or all hosts failed
  {EXIT_USAGE}  bad arguments or invalid input: nothing ran
  {EXIT_MODULE}  the module could not be loaded, trapped or broke the ABI
  {EXIT_OUTPUT}  the output could not be written (standard output closed or full, or
     a pipe closed early); the procedure may have run
"""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a procedure in the Rust WebAssembly module and print its output as JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # argparse ignores a failure to write the help
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("file", nargs="?", help="ProcedureInput JSON file, or - for stdin")
    built = parser.add_argument_group("building the input instead of reading it")
    built.add_argument("--host", action="append", default=[], help="a host (repeatable)")
    built.add_argument("--action", default="reboot", help="the action (default: reboot)")
    built.add_argument("--job-id", type=int, default=1, help="the job id (default: 1)")
    built.add_argument("--timeout", type=int, default=10, help="seconds per attempt (default: 10)")
    built.add_argument("--retries", type=int, default=3, help="retries per host (default: 3)")
    executors = parser.add_argument_group("executor (default: none, a dry run)")
    executors.add_argument(
        "--down", action="append", default=[], metavar="HOST", help="simulate HOST down"
    )
    executors.add_argument(
        "--flaky",
        action="append",
        default=[],
        metavar="HOST[:N]",
        help="simulate HOST failing its first N attempts (default 1)",
    )
    executors.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="ACTION=COMMAND",
        help="permit ACTION, run as COMMAND with {host}, {action}, {timeout} replaced",
    )
    parser.add_argument(
        "--wasm", metavar="PATH", help="the module to load (default: the built one)"
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (default: 2)")
    parser.add_argument(
        "--version", action="store_true", help="print the versions of py_host and the module"
    )
    return parser


class _Exit(Exception):
    """Ends the command line with a one-line message and an exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None, prog: str = "python -m py_host") -> int:
    """Run the command line; returns the exit status. ``prog`` is how the
    help and the usage errors name the command."""
    try:
        return _run(argv, prog)
    except _Exit as refusal:
        if sys.stderr is not None:
            with contextlib.suppress(OSError):
                print(refusal, file=sys.stderr, flush=True)
        return refusal.status


def command() -> int:
    """The ``py-host`` console command."""
    return main(prog="py-host")


def _run(argv: Sequence[str] | None, prog: str) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.help:
        _write(parser.format_help())
        return EXIT_SUCCESS
    if args.version:
        return _print_versions(args.wasm)
    try:
        executor = _executor(args)
    except ValueError as error:
        parser.error(str(error))
    data = _input(args, parser)
    try:
        rust = load(args.wasm, executor=executor)
        with rust:
            output = rust.start_procedure_json(data)
    except InvalidInput as error:
        raise _Exit(EXIT_USAGE, f"invalid input: {error}") from None
    except Error as error:
        raise _Exit(EXIT_MODULE, f"error: {error}") from None
    parsed = json.loads(output)
    _write(json.dumps(parsed, indent=args.indent, ensure_ascii=False) + "\n")
    return EXIT_SUCCESS if parsed["result"] == "success" else EXIT_HOSTS_FAILED


def _write(text: str) -> None:
    """Write ``text`` to standard output now, so a failure is known here."""
    if sys.stdout is None:
        raise _Exit(EXIT_OUTPUT, "cannot write the output: standard output is closed")
    try:
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:
            sys.stdout.write(text)
        else:
            # Unbuffered (PYTHONUNBUFFERED, -u), the text layer drops what a
            # short write left, as when a pipe closes: write until all is out.
            left = memoryview(text.encode("utf-8"))
            while left:
                left = left[binary.write(left) or 0 :]
        sys.stdout.flush()
    except OSError as error:
        _lost_output(error)


def _lost_output(error: OSError) -> NoReturn:
    # What could not be written stays in stdout's buffer, and Python would
    # try again at exit and fail with a traceback: let it go to /dev/null.
    if sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    reason = error.strerror or str(error)
    raise _Exit(EXIT_OUTPUT, f"cannot write the output: {reason}") from None


def _print_versions(wasm: str | None) -> int:
    try:
        with load(wasm) as rust:
            module = f"module {rust.crate_version}, ABI version {ABI_VERSION}"
    except Error as error:
        raise _Exit(EXIT_MODULE, f"py_host {__version__}: error: {error}") from None
    _write(f"py_host {__version__}, wasmtime {WASMTIME_VERSION}, {module}\n")
    return EXIT_SUCCESS


def _executor(args: argparse.Namespace) -> Executor | None:
    if args.command and (args.down or args.flaky):
        raise ValueError("--command cannot be combined with --down or --flaky")
    if args.command:
        commands: dict[str, list[str]] = {}
        for item in args.command:
            action, sep, command = item.partition("=")
            if not sep or not action or not command.strip():
                raise ValueError(f"--command wants ACTION=COMMAND, got {item!r}")
            commands[action] = shlex.split(command)
        return CommandExecutor(commands)
    if args.down or args.flaky:
        flaky: dict[str, int] = {}
        for item in args.flaky:
            host, _, count = item.partition(":")
            if count and not count.isdigit():
                raise ValueError(f"--flaky wants HOST[:N], got {item!r}")
            flaky[host] = int(count or 1)
        return SimulatedNetwork(down=args.down, flaky=flaky)
    return None


def _input(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bytes:
    if args.file is not None and args.host:
        parser.error("give either FILE or --host, not both")
    if args.file == "-":
        if sys.stdin is None:
            raise _Exit(EXIT_USAGE, "cannot read standard input: it is closed")
        return _read(sys.stdin.buffer, "standard input")
    if args.file is not None:
        try:
            with open(args.file, "rb") as file:
                return _read(file, repr(args.file))
        except OSError as error:
            raise _Exit(EXIT_USAGE, f"cannot read {args.file!r}: {error.strerror}") from None
    if not args.host:
        parser.error("give a FILE, - for stdin, or at least one --host")
    built: dict[str, Any] = {
        "timeout": args.timeout,
        "retries": args.retries,
        "host_list": args.host,
        "action": args.action,
        "job_id": args.job_id,
    }
    return json.dumps(built).encode()


def _read(stream: BinaryIO, name: str) -> bytes:
    """All of ``stream``, refused as soon as it is longer than an input can
    be: a stream without end (/dev/zero) is never read whole."""
    data = bytearray()
    try:
        while chunk := stream.read(min(_CHUNK, MAX_INPUT_BYTES + 1 - len(data))):
            data += chunk
            if len(data) > MAX_INPUT_BYTES:
                raise _Exit(
                    EXIT_USAGE,
                    f"invalid input: {name} is longer than {MAX_INPUT_BYTES} bytes, "
                    f"the most an input can be",
                )
    except OSError as error:
        raise _Exit(EXIT_USAGE, f"cannot read {name}: {error.strerror or error}") from None
    return bytes(data)
