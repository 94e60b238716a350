"""The rounds a module may ask its executor for: the ``execute_round``
request and answer (docs/ABI.md), and the policy that admits only the rounds
the caller's own input allows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import AbiViolation
from .executors import Outcome, Round
from .models import ActionName, HostName, ProcedureInput


class _RoundRequest(BaseModel):
    # Checked here again, not trusted to the module: a command executor puts
    # these names on command lines.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    action: ActionName
    timeout: Annotated[int, Field(ge=1, le=255)]
    attempt: Annotated[int, Field(ge=1, le=256)]
    hosts: list[HostName]


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
        # A request names a subset of the input's hosts: never longer than it.
        self._max_request_bytes = input_bytes + 256

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
        """The round ``request`` asks for, if this procedure allows it."""
        if len(request) > self._max_request_bytes:
            raise AbiViolation(f"execute_round was sent a request of {len(request)} bytes")
        try:
            fields = _RoundRequest.model_validate_json(request)
        except ValidationError as error:
            raise AbiViolation(f"execute_round was sent an invalid request: {error}") from None
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
        return Round(fields.action, fields.timeout, fields.attempt, tuple(fields.hosts))


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    """The answer to a round: one outcome object per host, in order."""
    return json.dumps(
        [
            {"status": "ok"} if o.status == "ok" else {"status": o.status, "reason": o.reason}
            for o in outcomes
        ],
        separators=(",", ":"),
    ).encode()
