"""The exceptions py_host raises: one base class, one subclass per cause."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PathSegment = str | int
"""One step of a field path: an object key or a list index."""


class Error(Exception):
    """Base class of every error py_host raises.

    Every one pickles with its attributes, so it crosses a process boundary
    (a process pool, multiprocessing, Dask, Ray) as itself."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickles the arguments given to Exception, which are
        # not those of a subclass's constructor: unpickling would fail.
        return (_restore, (type(self), str(self), self.__dict__))


def _restore(cls: type[Error], text: str, state: dict[str, Any]) -> Error:
    """An error as it was pickled, without calling its constructor again."""
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    error.__dict__.update(state)
    return error


class LoadError(Error):
    """The module could not be loaded: missing, not WebAssembly, or not our ABI."""


class ClosedError(Error):
    """The module was closed; load it again to go on."""


class ConfigError(Error, ValueError, TypeError):
    """An argument that sets py_host up was wrong: a :class:`~py_host.Limits`
    field, an argument of :func:`~py_host.load`, an executor. Also a
    ValueError and a TypeError, what Python raises for an argument of the
    wrong value or type (as numpy's AxisError is a ValueError and an
    IndexError)."""


class ModuleError(Error):
    """The module refused a call and said why.

    ``kind`` is a stable machine-readable name (the README's "Errors"
    lists them; docs/ABI.md in the source distribution defines them), ``path``
    the field it concerns (empty for the whole input).
    """

    def __init__(self, kind: str, message: str, path: Sequence[PathSegment] = ()) -> None:
        self.kind = kind
        self.message = message
        self.path: tuple[PathSegment, ...] = tuple(path)
        # A message about an input names its field itself.
        super().__init__(f"{message} ({kind})")


@dataclass(frozen=True)
class ErrorDetail:
    """One problem of a refused input: its ``kind`` (one of
    :class:`ModuleError`'s kinds), the ``path`` of the field and a
    ``message`` for people."""

    kind: str
    path: tuple[PathSegment, ...]
    message: str


MAX_LISTED = 10
"""The most problems an :class:`InvalidInput`'s text lists; ``.errors`` has all."""


class InvalidInput(ModuleError, ValueError):
    """The input was refused, by the pydantic models or by the module itself.

    ``errors`` holds every problem found, in the order the module meets
    them; ``kind``, ``path`` and ``message`` are the first's. The module
    reports one problem, the models every one.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        path: Sequence[PathSegment] = (),
        *,
        errors: Sequence[ErrorDetail] = (),
    ) -> None:
        super().__init__(kind, message, path)
        self.errors: tuple[ErrorDetail, ...] = tuple(errors) or (
            ErrorDetail(kind, self.path, message),
        )
        others = self.errors[1:]
        if others:
            lines = [f"{error.message} ({error.kind})" for error in others[: MAX_LISTED - 1]]
            if len(others) >= MAX_LISTED:
                lines.append(f"and {len(others) - MAX_LISTED + 1} more")
            Exception.__init__(self, "\n".join([str(self), *lines]))


class ModuleTrap(Error):
    """The module trapped: it panicked, hit ``unreachable``, or exited.

    The instance is discarded; the next call runs on a fresh one.
    ``panic_message`` holds the Rust panic message when there was one.
    """

    def __init__(self, message: str, *, panic_message: str | None = None) -> None:
        self.panic_message = panic_message
        super().__init__(message)


class LimitExceeded(ModuleTrap):
    """The module was stopped at one of its :class:`~py_host.Limits`;
    ``limit`` names which: ``"memory"``, ``"deadline"``, ``"fuel"``,
    ``"reply"`` or ``"output"``. The instance is discarded."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


class DeadlineExceeded(LimitExceeded, TimeoutError):
    """A call ran out of time. ``limit`` says which budget: ``"deadline"``,
    the module's own running time (``Limits.deadline_seconds``), or
    ``"procedure"``, the whole call's, executor included
    (``Limits.procedure_seconds``)."""

    def __init__(self, message: str, limit: str = "deadline") -> None:
        super().__init__(limit, message)


class AbiViolation(Error):
    """The module broke the ABI: a reply out of bounds, not UTF-8, not the
    documented JSON. Nothing it returned is used; the instance is discarded."""


class ReentrancyError(Error):
    """A call into the module from inside one of its own calls (from an
    executor, or from ``sys.stdout`` while the module's output is written),
    which would wait for the very instance it is running on."""


class BufferFreed(Error):
    """A reply buffer was used after it was freed: the tutorial's double free,
    refused instead of corrupting memory."""
