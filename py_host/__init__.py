"""Call the tutorial's Rust functions, compiled to one sandboxed WebAssembly
module, from Python::

    import py_host

    rust = py_host.load()
    rust.print_string("Python says hi inside Rust!")
    rust.print_int(2)
    out = rust.start_procedure(py_host.ProcedureInput(
        timeout=10, retries=3, action="reboot", host_list=["server1", "server2"], job_id=1))
"""

import logging

from ._abi import ABI_VERSION
from .aio import AsyncRustModule, load_async
from .async_executors import AsyncConcurrentExecutor, AsyncHostAction
from .errors import (
    AbiViolation,
    BufferFreed,
    ClosedError,
    ConfigError,
    DeadlineExceeded,
    Error,
    InvalidInput,
    LimitExceeded,
    LoadError,
    ModuleError,
    ModuleTrap,
    ReentrancyError,
)
from .executors import (
    AsyncExecutor,
    CommandExecutor,
    ConcurrentExecutor,
    Executor,
    HostAction,
    Outcome,
    Progress,
    Round,
    SimulatedNetwork,
)
from .limits import Limits
from .models import HostFailure, ProcedureInput, ProcedureOutput
from .module import ReplyBuffer, RustModule, load

# A library's loggers print nothing unless the application configures
# logging: without a handler, Python's last resort prints warnings to stderr.
logging.getLogger("py_host").addHandler(logging.NullHandler())

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
