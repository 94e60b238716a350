"""A procedure, driven step by step: the rounds the module asks for, the
policy that admits only the rounds the caller's own input allows, the
executor that runs them between two steps, and its answers (docs/ABI.md,
"Procedures, step by step")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._abi import ROUND_PREFIX, Exports
from ._instance import Instance
from ._transport import Context
from .errors import AbiViolation, ModuleError
from .executors import Executor, Outcome, Round, Status
from .models import ActionName, HostName, ProcedureInput

ROUND_ROOM = 256
"""What a round may need beyond the input's length: it names a subset of
the input's hosts, and a few fields."""
_STATUSES = frozenset(get_args(Status))


_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class _RoundRequest(BaseModel):
    # Checked here again, not trusted to the module: a command executor puts
    # these names on command lines.
    model_config = _STRICT
    action: ActionName
    timeout: Annotated[int, Field(ge=1, le=255)]
    attempt: Annotated[int, Field(ge=1, le=256)]
    hosts: Annotated[list[HostName], Field(min_length=1)]


class _RoundReply(BaseModel):
    model_config = _STRICT
    round: _RoundRequest


class RoundPolicy:
    """What the module may ask of the executor during one procedure: the
    input's action and timeout, on the input's hosts, each at most
    ``1 + retries`` times. A module asking for anything else, a host the
    caller never named or one attempt too many, breaks the ABI: the executor
    only ever does what the caller asked for."""

    def __init__(
        self, action: str, timeout: int, retries: int, hosts: Iterable[str], input_bytes: int
    ) -> None:
        self._action = action
        self._timeout = timeout
        self._attempts_left = dict.fromkeys(hosts, 1 + retries)
        self._next_attempt = 1
        # A request names a subset of the input's hosts: never longer than it.
        self._max_request_bytes = input_bytes + ROUND_ROOM

    @classmethod
    def for_input(cls, procedure: ProcedureInput, input_bytes: int) -> RoundPolicy:
        return cls(
            procedure.action,
            procedure.timeout,
            procedure.retries,
            procedure.host_list,
            input_bytes,
        )

    @classmethod
    def for_json(cls, data: bytes) -> RoundPolicy | None:
        """The policy for raw input, or ``None`` when it is not an input the
        module could accept (it will refuse it before any round)."""
        try:
            fields: Any = json.loads(data)
            return cls(
                str(fields["action"]),
                int(fields["timeout"]),
                int(fields["retries"]),
                (str(host) for host in fields["host_list"]),
                len(data),
            )
        except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError):
            return None

    def admit(self, request: bytes) -> Round:
        """The round the step reply ``request`` asks for, if this procedure allows it."""
        if len(request) > self._max_request_bytes:
            raise AbiViolation(f"the module asked for a round in {len(request)} bytes")
        try:
            fields = _RoundReply.model_validate_json(request).round
        except ValidationError as error:
            raise AbiViolation(f"the module sent an invalid request for a round: {error}") from None
        if (fields.action, fields.timeout) != (self._action, self._timeout):
            raise AbiViolation(
                f"the module asked to run {fields.action!r} with timeout {fields.timeout}; "
                f"the input says {self._action!r} with {self._timeout}"
            )
        if len(set(fields.hosts)) != len(fields.hosts):
            raise AbiViolation("the module named a host twice in one round")
        for host in fields.hosts:
            left = self._attempts_left.get(host)
            if not left:
                raise AbiViolation(
                    f"the module asked for an attempt on {host!r} that the input does not allow"
                )
            self._attempts_left[host] = left - 1
        if fields.attempt != self._next_attempt:
            raise AbiViolation(
                f"the module asked for attempt {fields.attempt}; this is round {self._next_attempt}"
            )
        self._next_attempt += 1
        return Round(fields.action, fields.timeout, fields.attempt, tuple(fields.hosts))


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    """The answer to a round: one outcome object per host, in order."""
    return _COMPACT_JSON.encode(
        [
            {"status": "ok"} if o.status == "ok" else {"status": o.status, "reason": o.reason}
            for o in outcomes
        ]
    ).encode()


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""Made once: json.dumps makes an encoder on every call for any option."""


def procedure(
    instance: Instance,
    data: bytes,
    policy: RoundPolicy | None,
    executor: Executor | None,
) -> bytes:
    """Run the procedure whose input is ``data`` to its final reply: each
    round it asks for is run with ``executor`` between two steps, while no
    WebAssembly runs. Each step's reply comes in the instance's kept buffer."""
    try:
        reply = instance.call(
            lambda exports, ctx: exports.start_procedure(ctx, data, ROUND_ROOM), prints=True
        )
        while reply.startswith(ROUND_PREFIX):
            answer = _answer(reply, policy, executor)
            reply = instance.call(partial(Exports.resume_procedure, answer=answer), prints=True)
    except ModuleError:
        _cancel(instance)
        raise
    return reply


def procedure_unread(
    instance: Instance,
    data: bytes,
    policy: RoundPolicy | None,
    executor: Executor | None,
) -> tuple[int, int]:
    """Run the procedure whose input is ``data`` as :func:`procedure` does,
    but leave its final reply in memory, unread: ``(ptr, length)``. Each
    step's reply comes in a buffer of its own; those asking for a round are
    read and freed."""
    try:
        reply = _unread_step(
            instance, lambda exports, ctx: exports.start_procedure_unread(ctx, data)
        )
        while request := instance.call(partial(Exports.round_or_kept, reply=reply)):
            answer = _answer(request, policy, executor)
            reply = _unread_step(instance, partial(Exports.resume_procedure_unread, answer=answer))
    except ModuleError:
        _cancel(instance)
        raise
    return reply


def _unread_step(
    instance: Instance, step: Callable[[Exports, Context], tuple[int, int]]
) -> tuple[int, int]:
    """One step whose reply stays in memory: ``(ptr, length)``. The instance
    stays when its output cannot be written (a ModuleError): the reply must
    not stay with it."""
    reply = instance.call(step)
    try:
        instance.print_output()
    except ModuleError:
        instance.call(partial(Exports.free_mem, ptr=reply[0]))
        raise
    return reply


def _answer(request: bytes, policy: RoundPolicy | None, executor: Executor | None) -> bytes:
    """The executor's answer to the round ``request`` asks for, if the policy admits it."""
    if policy is None or executor is None:
        raise AbiViolation("the module asked for a round, but no executor was granted")
    return encode_outcomes(_outcomes(executor, policy.admit(request)))


def _cancel(instance: Instance) -> None:
    # The instance stays (the module refused a step in its own words, or
    # writing a step's output failed): it must not keep the procedure.
    instance.call(lambda exports, ctx: exports.cancel_procedure(ctx))


def _outcomes(executor: Executor, round: Round) -> list[Outcome]:
    """What the executor says of ``round``, as outcomes the module can take;
    whatever goes wrong in the executor fails the round with the reason."""
    try:
        outcomes = list(executor.run_round(round))
    except Exception as error:
        reason = f"the executor raised {type(error).__name__}: {error}"
        return [Outcome.failed(_utf8_safe(reason))] * len(round.hosts)
    for outcome in outcomes:
        if not isinstance(outcome, Outcome):
            reason = f"the executor returned {type(outcome).__name__}, expected Outcome"
            return [Outcome.failed(reason)] * len(round.hosts)
        if outcome.status not in _STATUSES or not isinstance(outcome.reason, str):
            reason = f"the executor returned an invalid {outcome!r}"
            return [Outcome.failed(_utf8_safe(reason))] * len(round.hosts)
    return [o if o.reason.isascii() else Outcome(o.status, _utf8_safe(o.reason)) for o in outcomes]


def _utf8_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")
