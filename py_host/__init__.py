"""Call the tutorial's Rust functions, compiled to one sandboxed WebAssembly
module, from Python::

    import py_host

    rust = py_host.load()
    rust.print_string("Python says hi inside Rust!")
    rust.print_int(2)
    out = rust.start_procedure(py_host.ProcedureInput(
        timeout=10, retries=3, action="reboot", host_list=["server1", "server2"], job_id=1))

Each name is imported at its first use (PEP 562), so ``import py_host``
costs almost nothing, and a program that never uses asyncio does not import
it: ``py_host.load`` brings in wasmtime, pydantic and the synchronous host,
``py_host.load_async`` the asyncio one.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._abi import ABI_VERSION as ABI_VERSION
    from .aio import AsyncRustModule as AsyncRustModule
    from .aio import load_async as load_async
    from .async_executors import AsyncConcurrentExecutor as AsyncConcurrentExecutor
    from .async_executors import AsyncHostAction as AsyncHostAction
    from .errors import AbiViolation as AbiViolation
    from .errors import BufferFreed as BufferFreed
    from .errors import ClosedError as ClosedError
    from .errors import ConfigError as ConfigError
    from .errors import DeadlineExceeded as DeadlineExceeded
    from .errors import Error as Error
    from .errors import ErrorDetail as ErrorDetail
    from .errors import InvalidInput as InvalidInput
    from .errors import LimitExceeded as LimitExceeded
    from .errors import LoadError as LoadError
    from .errors import ModuleError as ModuleError
    from .errors import ModuleTrap as ModuleTrap
    from .errors import ReentrancyError as ReentrancyError
    from .executors import AsyncExecutor as AsyncExecutor
    from .executors import CommandExecutor as CommandExecutor
    from .executors import ConcurrentExecutor as ConcurrentExecutor
    from .executors import Executor as Executor
    from .executors import HostAction as HostAction
    from .executors import Outcome as Outcome
    from .executors import Progress as Progress
    from .executors import Round as Round
    from .executors import SimulatedNetwork as SimulatedNetwork
    from .limits import Limits as Limits
    from .models import HostFailure as HostFailure
    from .models import ProcedureInput as ProcedureInput
    from .models import ProcedureOutput as ProcedureOutput
    from .module import ReplyBuffer as ReplyBuffer
    from .module import RustModule as RustModule
    from .module import load as load

    __version__: str
    """The installed distribution's version (pyproject.toml's), or
    ``"0+unknown"`` when py_host runs from a source tree never installed."""

_DISTRIBUTION = "rust-tutorial-wasm-host"
"""The name py_host is installed under (``pip install``, metadata)."""

# A library's loggers print nothing unless the application configures
# logging: without a handler, Python's last resort prints warnings to stderr.
# Here, not in a submodule: importing any submodule runs this first.
logging.getLogger("py_host").addHandler(logging.NullHandler())

_WHERE = {
    "ABI_VERSION": "_abi",
    **dict.fromkeys(["AsyncRustModule", "load_async"], "aio"),
    **dict.fromkeys(["AsyncConcurrentExecutor", "AsyncHostAction"], "async_executors"),
    **dict.fromkeys(
        [
            "AbiViolation",
            "BufferFreed",
            "ClosedError",
            "ConfigError",
            "DeadlineExceeded",
            "Error",
            "ErrorDetail",
            "InvalidInput",
            "LimitExceeded",
            "LoadError",
            "ModuleError",
            "ModuleTrap",
            "ReentrancyError",
        ],
        "errors",
    ),
    **dict.fromkeys(
        [
            "AsyncExecutor",
            "CommandExecutor",
            "ConcurrentExecutor",
            "Executor",
            "HostAction",
            "Outcome",
            "Progress",
            "Round",
            "SimulatedNetwork",
        ],
        "executors",
    ),
    "Limits": "limits",
    **dict.fromkeys(["HostFailure", "ProcedureInput", "ProcedureOutput"], "models"),
    **dict.fromkeys(["ReplyBuffer", "RustModule", "load"], "module"),
}
"""The submodule each public name lives in."""
_SUBMODULES = frozenset(
    ["_abi", "_cache", "_engine", "_instance", "_pool", "_rounds", "_transport", "_wire"]
) | frozenset(_WHERE.values())
"""The submodules that ``py_host.<name>`` imports when first used, as it did
when they were imported with the package (not dask, whose import needs
distributed)."""

__all__ = [
    "ABI_VERSION",
    "AbiViolation",
    "AsyncConcurrentExecutor",
    "AsyncExecutor",
    "AsyncHostAction",
    "AsyncRustModule",
    "BufferFreed",
    "ClosedError",
    "CommandExecutor",
    "ConcurrentExecutor",
    "ConfigError",
    "DeadlineExceeded",
    "Error",
    "ErrorDetail",
    "Executor",
    "HostAction",
    "HostFailure",
    "InvalidInput",
    "LimitExceeded",
    "Limits",
    "LoadError",
    "ModuleError",
    "ModuleTrap",
    "Outcome",
    "ProcedureInput",
    "ProcedureOutput",
    "Progress",
    "ReentrancyError",
    "ReplyBuffer",
    "Round",
    "RustModule",
    "SimulatedNetwork",
    "load",
    "load_async",
]

if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above: a misspelt
    # name stays an error for them rather than becoming Any.

    def __getattr__(name: str) -> Any:
        if name == "__version__":
            value = _installed_version()
        elif name in _WHERE:
            value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        elif name in _SUBMODULES:
            value = importlib.import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def _installed_version() -> str:
        # From the metadata, as the version is written only in pyproject.toml;
        # at first use, as importing importlib.metadata takes 20 ms.
        metadata = importlib.import_module("importlib.metadata")
        try:
            return str(metadata.version(_DISTRIBUTION))
        except metadata.PackageNotFoundError:
            return "0+unknown"

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
