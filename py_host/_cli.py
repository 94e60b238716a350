"""``python -m py_host``: run a procedure and print its ProcedureOutput JSON."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from ._abi import ABI_VERSION
from ._transport import WASMTIME_VERSION
from .errors import Error, InvalidInput
from .executors import CommandExecutor, Executor, SimulatedNetwork
from .module import load

EXIT_SUCCESS = 0
EXIT_HOSTS_FAILED = 1
EXIT_USAGE = 2
EXIT_MODULE = 3

EPILOG = f"""\
The input is a ProcedureInput JSON document from FILE, from standard input
(FILE is -), or built from --host, --action, --job-id, --timeout and
--retries. Without --down, --flaky or --command, the procedure is a dry run.

examples:
  python -m py_host --host server1 --host server2 --action reboot --down server1
  echo '{{"timeout":10,"retries":3,"host_list":["a"],"action":"ping","job_id":1}}' \\
      | python -m py_host - --command 'ping=ping -c 1 -W {{timeout}} {{host}}'

exit status:
  {EXIT_SUCCESS}  the procedure ran and every host succeeded (or it was a dry run)
  {EXIT_HOSTS_FAILED}  the procedure ran and some or all hosts failed
  {EXIT_USAGE}  bad arguments or invalid input: nothing ran
  {EXIT_MODULE}  the module could not be loaded, trapped or broke the ABI
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m py_host",
        description="Run a procedure in the Rust WebAssembly module and print its output as JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        return _print_versions(args.wasm)
    try:
        executor = _executor(args)
        data = _input(args)
    except ValueError as error:
        parser.error(str(error))
    try:
        rust = load(args.wasm, executor=executor)
        with rust:
            output = rust.start_procedure_json(data)
    except InvalidInput as error:
        print(f"invalid input: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Error as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODULE
    parsed = json.loads(output)
    print(json.dumps(parsed, indent=args.indent, ensure_ascii=False))
    return EXIT_SUCCESS if parsed["result"] == "success" else EXIT_HOSTS_FAILED


def _print_versions(wasm: str | None) -> int:
    try:
        ours = importlib.metadata.version("py_host")
    except importlib.metadata.PackageNotFoundError:
        ours = "(not installed)"
    try:
        with load(wasm) as rust:
            module = f"module {rust.crate_version}, ABI version {ABI_VERSION}"
    except Error as error:
        print(f"py_host {ours}\nerror: {error}", file=sys.stderr)
        return EXIT_MODULE
    print(f"py_host {ours}, wasmtime {WASMTIME_VERSION}, {module}")
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


def _input(args: argparse.Namespace) -> bytes:
    if args.file is not None and args.host:
        raise ValueError("give either FILE or --host, not both")
    if args.file == "-":
        return sys.stdin.buffer.read()
    if args.file is not None:
        try:
            with open(args.file, "rb") as file:
                return file.read()
        except OSError as error:
            raise ValueError(f"cannot read {args.file!r}: {error.strerror}") from None
    if not args.host:
        raise ValueError("give a FILE, - for stdin, or at least one --host")
    built: dict[str, Any] = {
        "timeout": args.timeout,
        "retries": args.retries,
        "host_list": args.host,
        "action": args.action,
        "job_id": args.job_id,
    }
    return json.dumps(built).encode()
