"""A procedure, driven step by step: the rounds the module asks for, the
policy that admits only the rounds the caller's own input allows, the
executor that runs them between two steps, its answers, and the check of
the output against all of it (docs/ABI.md, "Procedures, step by step" and
"What a host checks")."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from operator import is_
from typing import Any, NamedTuple, get_args

from ._abi import ROUND_PREFIX, Exports
from ._instance import Instance
from ._transport import Context
from ._wire import OK_PREFIX, parse_procedure_reply, strict_json
from .errors import AbiViolation, ModuleError
from .executors import AsyncExecutor, Executor, Outcome, Progress, Round, Status
from .models import I32_MAX, I32_MIN, MAX_HOSTS, ProcedureInput, ProcedureOutput

ROUND_ROOM = 256
"""What a round may need beyond the input's length: it names a subset of
the input's hosts, and a few fields."""

_STATUSES = frozenset(get_args(Status))
_RETRIED = frozenset({"failed", "timeout"})
_INPUT_FIELDS = frozenset({"timeout", "retries", "host_list", "action", "job_id"})
_ROUND_FIELDS = frozenset({"action", "timeout", "attempt", "hosts"})

# docs/ABI.md, "ProcedureInput and ProcedureOutput": the module's rules, which
# the policy is built by. Names and actions are ASCII, so characters are bytes.
_MAX_NAME = 253
_MAX_LABEL = 63
_MAX_ACTION = 64
_ACTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LETTERS_AND_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _shapes(hyphen: bytes) -> bytes:
    """A table for ``bytes.translate`` that maps a letter or digit to ``a``,
    a dot and a newline to ``.``, a hyphen to ``hyphen``, and any other
    byte to ``!``."""
    table = bytearray(b"!" * 256)
    for byte in _LETTERS_AND_DIGITS:
        table[byte] = ord("a")
    table[ord(".")] = table[ord("\n")] = ord(".")
    table[ord("-")] = ord(hyphen)
    return bytes(table)


_ROUGH_SHAPES = _shapes(b".")
_SHAPES = _shapes(b"-")
_LABEL_SHAPES = _shapes(b"a")
_NAME_SHAPES = bytes(ord("\n") if byte == ord("\n") else ord("a") for byte in range(256))
"""A ``bytes.translate`` table that maps a newline to itself and any other byte to ``a``."""
_LONG_LABEL = b"a" * (_MAX_LABEL + 1)
_LONG_NAME = b"a" * (_MAX_NAME + 1)


_LOG = logging.getLogger("py_host.rounds")
"""Each round an executor runs, at DEBUG: a long procedure's progress."""

NO_EXECUTOR = "no executor was granted"
INVALID_INPUT = "the input is not one the module may accept"


def _is_int(value: object, low: int, high: int) -> bool:
    # Exactly an int: a bool is one in Python, never in JSON.
    return type(value) is int and low <= value <= high


def _is_action(value: object) -> bool:
    return type(value) is str and len(value) <= _MAX_ACTION and _ACTION.fullmatch(value) is not None


def _attempts_by_host(hosts: tuple[str, ...]) -> tuple[dict[str, int], bytes] | None:
    """``{host: 0}`` for each name of ``hosts``, and the names joined by
    newlines, when it is a host_list the module accepts: 1 to 100,000 RFC
    1123 names, unique ignoring ASCII case; otherwise None.

    Checked on all the names at once, joined by newlines, in a few passes of
    C rather than a regular expression per name: this is on the path of
    every procedure with an executor, 10,000 names and more. (A subclass of
    str is taken as its text, which is what JSON writes of it.)"""
    if not 1 <= len(hosts) <= MAX_HOSTS:
        return None
    try:
        joined = "\n".join(hosts)
    except TypeError:
        return None
    if not joined.isascii():
        return None
    encoded = joined.encode()
    if encoded.count(b"\n") != len(hosts) - 1:
        return None
    # In shapes, two separators in a row are an empty name or label, or a
    # label that starts or ends with a hyphen, and the first and last byte
    # must be a letter or digit; but a hyphen may follow a hyphen, so a rough
    # look that finds no two saves the exact one.
    rough = encoded.translate(_ROUGH_SHAPES)
    if b"!" in rough or rough[:1] != b"a" or rough[-1:] != b"a":
        return None
    if b".." in rough:
        exact = encoded.translate(_SHAPES)
        if b".." in exact or b".-" in exact or b"-." in exact:
            return None
    if _LONG_LABEL in encoded.translate(_LABEL_SHAPES):
        return None
    if _LONG_NAME in encoded.translate(_NAME_SHAPES):
        return None
    attempts = dict.fromkeys(hosts, 0)
    if len(attempts) != len(hosts):
        return None
    lowered = joined.lower()
    if lowered != joined and len(set(lowered.split("\n"))) != len(hosts):
        return None
    return attempts, encoded


def _policy(fields: object, input_bytes: int) -> RoundPolicy | None:
    """The policy for the input ``fields`` (decoded JSON, or a model's
    values), or None unless they are exactly an input the module accepts."""
    if not isinstance(fields, Mapping) or fields.keys() != _INPUT_FIELDS:
        return None
    timeout, retries, job_id = fields["timeout"], fields["retries"], fields["job_id"]
    action, hosts = fields["action"], fields["host_list"]
    if not (
        _is_int(timeout, 1, 255)
        and _is_int(retries, 0, 255)
        and _is_int(job_id, I32_MIN, I32_MAX)
        and _is_action(action)
    ):
        return None
    if type(hosts) is not list:
        return None
    # What is checked is what rounds may name, whatever later befalls the list.
    hosts = tuple(hosts)
    checked = _attempts_by_host(hosts)
    if checked is None:
        return None
    attempts, names = checked
    return RoundPolicy(
        action=action,
        timeout=timeout,
        retries=retries,
        job_id=job_id,
        hosts=hosts,
        names=names,
        attempts=attempts,
        input_bytes=input_bytes,
    )


class RoundPolicy:
    """What the module may ask of the executor during one procedure, and
    what its output must then say (docs/ABI.md, "What a host checks"): the
    input's action and timeout, on the input's hosts, each at most
    ``1 + retries`` times and never again once it succeeded or was refused,
    rounds numbered from 1; and an output that reports exactly what those
    rounds came to. A module asking for anything else, or reporting anything
    else, breaks the ABI: the executor only ever does what the caller asked
    for, and the caller only hears what it did.

    Made by :func:`policy_for_input` and :func:`policy_for_json` from exactly
    the input the module is given, by the module's own rules."""

    def __init__(
        self,
        *,
        action: str,
        timeout: int,
        retries: int,
        job_id: int,
        hosts: tuple[str, ...],
        names: bytes,
        attempts: dict[str, int],
        input_bytes: int,
    ) -> None:
        self._action = action
        self._timeout = timeout
        self._max_attempts = 1 + retries
        self._job_id = job_id
        self._hosts = hosts
        self._every_name = names.replace(b"\n", b'","')
        """The hosts' names as a round that names them all writes them."""
        self._to_try = attempts
        """Attempts made so far on each host the module may still try: the
        input's hosts in their order, less those done, so every host while
        it is as long as they are."""
        self._failed: dict[str, tuple[int, str]] = {}
        """Attempts made on each host that is done and failed, and the reason of its last."""
        self._rounds = 0
        # A request names a subset of the input's hosts: never longer than it.
        self._max_request_bytes = input_bytes + ROUND_ROOM

    def admit(self, request: bytes) -> Round:
        """The round the step reply ``request`` asks for, if this procedure allows it."""
        if len(request) > self._max_request_bytes:
            raise AbiViolation(f"the module asked for a round in {len(request)} bytes")
        if self._to_try and request == self._request_for_every_host_left():
            self._rounds += 1
            left = self._hosts if len(self._to_try) == len(self._hosts) else tuple(self._to_try)
            return Round(self._action, self._timeout, self._rounds, left)
        action, timeout, attempt, hosts = _round_fields(request)
        if type(action) is not str or type(timeout) is not int:
            raise AbiViolation(
                f"the module sent an invalid request for a round: action {action!r}, "
                f"timeout {timeout!r}"
            )
        if (action, timeout) != (self._action, self._timeout):
            raise AbiViolation(
                f"the module asked to run {action!r} with timeout {timeout}; "
                f"the input says {self._action!r} with {self._timeout}"
            )
        if type(attempt) is not int or attempt != self._rounds + 1:
            raise AbiViolation(
                f"the module asked for attempt {attempt!r}; this is round {self._rounds + 1}"
            )
        if type(hosts) is not list:
            raise AbiViolation(f"the module sent an invalid request for a round: hosts {hosts!r}")
        if not hosts:
            raise AbiViolation("the module asked for a round with no hosts")
        try:
            names = set(hosts)
        except TypeError:
            raise AbiViolation(
                f"the module sent an invalid request for a round: hosts {hosts!r}"
            ) from None
        if len(names) != len(hosts):
            raise AbiViolation("the module named a host twice in one round")
        if not self._to_try.keys() >= names:
            host = next(host for host in hosts if host not in self._to_try)
            raise AbiViolation(
                f"the module asked for an attempt on {host!r} that the input does not allow: "
                f"{self._why_not(host)}"
            )
        self._rounds += 1
        return Round(action, timeout, attempt, tuple(hosts))

    def _request_for_every_host_left(self) -> bytes:
        """The next round's request, as the module writes it (docs/ABI.md),
        when it asks for every host left, in the input's order: what it
        does. Compared as bytes, so the usual request costs no JSON decode:
        the names it holds are ``_to_try``'s, which hold no quote or
        backslash, so only this very document can be equal to it."""
        if len(self._to_try) == len(self._hosts):
            names = self._every_name
        else:
            names = '","'.join(self._to_try).encode()
        return _REQUEST % (self._action.encode(), self._timeout, self._rounds + 1, names)

    def record(self, round: Round, answered: Answered) -> None:
        """Count the attempts of the admitted ``round``, which ended as
        ``answered``."""
        to_try, failed, most = self._to_try, self._failed, self._max_attempts
        if answered.every is not None and answered.every.status == "ok":
            # Admitted hosts are distinct hosts of to_try: as many are all of them.
            if len(round.hosts) == len(to_try):
                to_try.clear()
            else:
                deque(map(to_try.__delitem__, round.hosts), maxlen=0)
            return
        for host, outcome in zip(round.hosts, answered.outcomes, strict=True):
            status = outcome.status
            if status == "ok":
                del to_try[host]
                continue
            made = to_try[host] + 1
            if status in _RETRIED and made < most:
                to_try[host] = made
            else:
                del to_try[host]
                failed[host] = (made, outcome.reason)

    def progress(self) -> Progress:
        """Where the procedure stands after the rounds recorded so far."""
        hosts = len(self._hosts)
        return Progress(
            self._job_id, self._rounds, hosts, hosts - len(self._to_try), len(self._failed)
        )

    def check_output(self, output: ProcedureOutput) -> None:
        """Raise :class:`AbiViolation` unless ``output`` reports what the
        rounds this policy admitted came to, as docs/ABI.md says it must.
        Costs a dict lookup per failed host."""
        if output.job_id != self._job_id:
            raise _contradiction(f"job_id {output.job_id}, the input's is {self._job_id}")
        if not self._rounds:
            raise _contradiction("it ran no round, though an executor was granted")
        if output.dry_run:
            raise _contradiction("dry_run is true, though rounds ran")
        if self._to_try:
            host = next(iter(self._to_try))
            raise _contradiction(
                f"{len(self._to_try)} hosts had attempts left and no success or refusal, "
                f"such as {host!r}"
            )
        failures = output.failures
        if len(failures) != len(self._failed):
            raise _contradiction(
                f"it lists {len(failures)} failures; {len(self._failed)} hosts failed"
            )
        in_order = iter(self._hosts)
        for failure in failures:
            made = self._failed.get(failure.host)
            if made != (failure.attempts, failure.reason):
                raise _contradiction(
                    f"it lists {failure!r}; the rounds came to {made!r} for that host"
                )
            if failure.host not in in_order:
                raise _contradiction("its failures are not in the order of host_list")
        if output.failed_hosts != [failure.host for failure in failures]:
            raise _contradiction("failed_hosts are not the hosts of failures")
        _check_counts(output, len(failures), len(self._hosts))

    def _why_not(self, host: object) -> str:
        # Only on the way to an AbiViolation: the scan of the input is no cost.
        if host in self._failed:
            return "it failed its last attempt or was refused"
        if host in self._hosts:
            return "it succeeded"
        return "host_list does not name it"


class NoRounds:
    """A procedure for which the module may ask no round: no executor was
    granted, or the input is not one the module may accept. Its output can
    only be a dry run's: ``dry_run`` true, success, no failures, and the
    input's ``job_id`` (None when the input has none the module could take,
    and so no output is right)."""

    def __init__(self, job_id: int | None, why: str) -> None:
        self._job_id = job_id
        self._why = why

    def admit(self, request: bytes) -> Round:
        raise AbiViolation(f"the module asked for a round, but {self._why}")

    def check_output(self, output: ProcedureOutput) -> None:
        if self._job_id is None:
            raise _contradiction("it has an output for an input the module must refuse")
        if output.job_id != self._job_id:
            raise _contradiction(f"job_id {output.job_id}, the input's is {self._job_id}")
        if not output.dry_run:
            raise _contradiction(f"dry_run is false, but {self._why}")
        if output.failures or output.failed_hosts or output.result != "success":
            raise _contradiction("a dry run reports a failure")
        if not output.message.startswith("dry run: "):
            raise _contradiction(f"a dry run's message is {output.message!r}")


Policy = RoundPolicy | NoRounds
"""What one procedure may ask for and must report."""


def _contradiction(problem: str) -> AbiViolation:
    return AbiViolation(
        f"the module's output contradicts the input and the rounds py_host ran: {problem}"
    )


def _check_counts(output: ProcedureOutput, failed: int, hosts: int) -> None:
    result = "success" if not failed else "failure" if failed == hosts else "partial"
    if output.result != result:
        raise _contradiction(f"result {output.result!r} with {failed} of {hosts} hosts failed")
    message = "1 host failed" if failed == 1 else f"{failed} hosts failed"
    if output.message != message:
        raise _contradiction(f"message {output.message!r}; it is {message!r}")


_REQUEST = b'{"round":{"action":"%s","timeout":%d,"attempt":%d,"hosts":["%s"]}}'


def _round_fields(request: bytes) -> tuple[object, object, object, object]:
    """The action, timeout, attempt and hosts of the round ``request`` asks
    for, as it spells them; checked to be exactly the documented object."""
    try:
        document = strict_json(request)
    except (ValueError, RecursionError) as error:
        raise AbiViolation(f"the module sent an invalid request for a round: {error}") from None
    fields = document.get("round") if type(document) is dict and len(document) == 1 else None
    if type(fields) is not dict or fields.keys() != _ROUND_FIELDS:
        raise AbiViolation(
            "the module sent an invalid request for a round: not "
            '{"round": {"action", "timeout", "attempt", "hosts"}}'
        )
    return fields["action"], fields["timeout"], fields["attempt"], fields["hosts"]


def policy_for_input(procedure: ProcedureInput, data: bytes, granted: bool) -> Policy:
    """The policy for ``procedure``, whose JSON the module gets as ``data``,
    when an executor was ``granted``.

    Its values are taken as they are when each has exactly the type JSON
    gives (then ``data`` says the same), and from ``data`` otherwise: a
    model made with ``model_construct`` may hold anything."""
    fields = vars(procedure)
    if not granted:
        job_id = fields.get("job_id")
        return NoRounds(job_id if type(job_id) is int else input_job_id(data), NO_EXECUTOR)
    policy = _policy(fields, len(data))
    return policy if policy is not None else policy_for_json(data, granted)


def policy_for_json(data: bytes, granted: bool) -> Policy:
    """The policy for the raw input ``data``, when an executor was ``granted``."""
    if not granted:
        return NoRounds(input_job_id(data), NO_EXECUTOR)
    try:
        fields = strict_json(data)
    except (ValueError, RecursionError):
        return NoRounds(None, INVALID_INPUT)
    policy = _policy(fields, len(data))
    return policy if policy is not None else NoRounds(None, INVALID_INPUT)


# At most 20 digits: int() refuses the longest numbers (sys.int_info's
# default_max_str_digits), and a job_id fits in 11.
_JOB_ID = re.compile(rb'"job_id"[ \t\n\r]*:[ \t\n\r]*(-?[0-9]{1,20})[ \t\n\r]*[,}]')


_MOST_UNDERSCORES = 16
"""Underscores an input the module accepts holds, and more: two field names
and an action, as RFC 1123 names have none."""


def input_job_id(data: bytes) -> int | None:
    """The ``job_id`` of the raw input ``data``, None when it has no integer
    one, without decoding all of it when it can: the dry run of a large
    input is not made to wait for a full decode. In an input with no
    backslash, which the module accepts, no string holds a quote, so the
    one place ``"job_id"`` is followed by a colon is its key."""
    if b"\\" not in data:
        found = _job_ids_at_underscores(data)
        if found is None:
            found = _JOB_ID.findall(data)
        if len(found) == 1:
            return int(found[0])
    try:
        fields = strict_json(data)
    except (ValueError, RecursionError):
        return None
    job_id = fields.get("job_id") if type(fields) is dict else None
    return job_id if type(job_id) is int else None


def _job_ids_at_underscores(data: bytes) -> list[bytes] | None:
    """What ``_JOB_ID.findall(data)`` finds, looked for only where an
    underscore is, as every ``"job_id"`` holds one: memchr finds the few an
    input has far faster than the expression scans 10,000 host names, and
    this is time the calling thread holds the GIL. None when ``data`` has
    more than :data:`_MOST_UNDERSCORES`."""
    found: list[bytes] = []
    at = data.find(b"_")
    for _ in range(_MOST_UNDERSCORES):
        if at == -1:
            return found
        match = _JOB_ID.match(data, at - 4) if at >= 4 else None
        if match:
            found.append(match[1])
        at = data.find(b"_", at + 1)
    return None


ProgressCallback = Callable[[Progress], object]
"""Called after each round with where the procedure stands."""


class ProcedureRun:
    """What one procedure does between its steps, whoever runs the steps and
    the executor (:func:`procedure` and :func:`procedure_unread` here, and
    py_host.aio's driver): the round a step reply asks for, admitted by the
    policy; the answer to it, logged and reported to ``progress``; the
    output, checked. Each step ends on time or the procedure ends."""

    __slots__ = ("_instance", "_policy", "_progress", "_round_began")

    def __init__(
        self, instance: Instance, policy: Policy, progress: ProgressCallback | None
    ) -> None:
        self._instance = instance
        self._policy = policy
        self._progress = progress
        self._round_began = 0.0

    def next_round(self, reply: bytes | None) -> Round | None:
        """The round the step reply ``reply`` asks for; None for an output or
        an error (or no reply, from :meth:`Exports.round_or_kept`)."""
        if reply is None or not reply.startswith(ROUND_PREFIX):
            return None
        self._instance.check_run_time()
        round = self._policy.admit(reply)
        self._round_began = time.monotonic()
        return round

    def answer(self, round: Round, answered: Answered) -> bytes:
        """The answer to ``round``, which ended as ``answered``, for the next step."""
        policy = self._policy
        assert isinstance(policy, RoundPolicy)  # NoRounds admits no round
        policy.record(round, answered)
        logged = _LOG.isEnabledFor(logging.DEBUG)
        if logged or self._progress is not None:
            progress = policy.progress()
            if logged:
                statuses = Counter(outcome.status for outcome in answered.outcomes)
                _LOG.debug(
                    "job %d: round %d of %r on %s took %.3f s: %s; %d of %d hosts done",
                    progress.job_id,
                    round.attempt,
                    round.action,
                    _counted(len(round.hosts), "host"),
                    time.monotonic() - self._round_began,
                    ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())),
                    progress.hosts_done,
                    progress.hosts,
                )
            if self._progress is not None:
                self._progress(progress)
        self._instance.check_run_time()
        if answered.every is not None:
            # Bytes repeated by doubling copies: no list of 10,000 to join.
            every = _encoded(answered.every)
            return b"[" + (every + b",") * (len(answered.outcomes) - 1) + every + b"]"
        return encode_outcomes(answered.outcomes)

    def output(self, reply: bytes) -> ProcedureOutput:
        """The procedure's output in the final step reply ``reply``, checked."""
        output = parse_procedure_reply(reply)
        self._policy.check_output(output)
        return output

    def check_output(self, document: bytes) -> None:
        """Check the final reply ``document`` if it carries an output."""
        if document.startswith(OK_PREFIX):
            self.output(document)


def procedure(
    instance: Instance,
    data: bytes,
    policy: Policy,
    executor: Executor | None,
    progress: ProgressCallback | None = None,
) -> ProcedureOutput:
    """Run the procedure whose input is ``data`` to its output: each round
    it asks for is run by ``executor`` between two steps, while no
    WebAssembly runs. Each step's reply comes in the instance's kept buffer."""
    run = ProcedureRun(instance, policy, progress)
    try:
        reply = instance.call(
            partial(Exports.start_procedure, data=data, room=ROUND_ROOM), prints=True
        )
        while (round := run.next_round(reply)) is not None:
            assert executor is not None  # a policy admits a round only with one
            answer = run.answer(round, run_round(executor, round))
            reply = instance.call(partial(Exports.resume_procedure, answer=answer), prints=True)
    except ModuleError:
        cancel(instance)
        raise
    return run.output(reply)


def procedure_unread(
    instance: Instance,
    data: bytes,
    policy: Policy,
    executor: Executor | None,
    progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Run the procedure whose input is ``data`` as :func:`procedure` does,
    but leave its final reply in memory, unread by the caller: ``(ptr,
    length)``. Each step's reply comes in a buffer of its own; those asking
    for a round are read and freed, and an output is read to be checked."""
    run = ProcedureRun(instance, policy, progress)
    try:
        reply = _unread_step(instance, partial(Exports.start_procedure_unread, data=data))
        while round := run.next_round(instance.call(partial(Exports.round_or_kept, reply=reply))):
            assert executor is not None  # a policy admits a round only with one
            answer = run.answer(round, run_round(executor, round))
            reply = _unread_step(instance, partial(Exports.resume_procedure_unread, answer=answer))
    except ModuleError:
        cancel(instance)
        raise
    run.check_output(instance.call(lambda exports, ctx: exports.read(ctx, *reply)))
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


def cancel(instance: Instance) -> None:
    """Make the module abandon the procedure in progress on ``instance``,
    which stays: the module refused a step in its own words, writing a
    step's output failed, or the caller's task was cancelled."""
    instance.call(lambda exports, ctx: exports.cancel_procedure(ctx))


class Answered(NamedTuple):
    """What an executor answered for a round, checked: one outcome per host,
    in order, each one the module can take."""

    outcomes: list[Outcome]
    every: Outcome | None
    """The outcome of every host, when one object answered for all (as
    ``[Outcome.ok()] * n`` does): it is then checked, counted and encoded
    once, not once per host."""


def _every_host(outcome: Outcome, hosts: int) -> Answered:
    return Answered([outcome] * hosts, outcome)


def run_round(executor: Executor, round: Round) -> Answered:
    """What ``executor`` says of ``round``: one outcome per host, in order,
    each one the module can take. What goes wrong in the executor fails the
    attempts it concerns, with the reason: an exception, or a count of
    outcomes other than the round's hosts (which outcome is whose cannot be
    told), fails every host of the round; a bad outcome fails its own host."""
    try:
        answered = list(executor.run_round(round))
    except Exception as error:
        return _raised(error, round)
    return _checked(answered, round)


async def run_round_async(executor: AsyncExecutor, round: Round) -> Answered:
    """What the async ``executor`` says of ``round``, as :func:`run_round`
    says it. A cancellation is no answer: it ends the procedure."""
    try:
        answered = list(await executor.run_round(round))
    except Exception as error:
        return _raised(error, round)
    return _checked(answered, round)


def _raised(error: Exception, round: Round) -> Answered:
    reason = f"the executor raised {type(error).__name__}: {error}"
    return _every_host(Outcome.failed(_utf8_safe(reason)), len(round.hosts))


def _checked(answered: list[Any], round: Round) -> Answered:
    hosts = len(round.hosts)
    if len(answered) != hosts:
        return _every_host(
            Outcome.failed(
                f"the executor answered {_counted(len(answered), 'outcome')} "
                f"for {_counted(hosts, 'host')}"
            ),
            hosts,
        )
    # A round answered with one object for every host ([Outcome.ok()] * n,
    # or Outcome.ok(), which is always the same object) is checked once: a
    # C loop over 10,000 hosts rather than Python's. By identity, so no code
    # of the executor's (an __eq__) is asked.
    if all(map(is_, answered, repeat(answered[0]))):
        return _every_host(_each_usable(answered[:1])[0], hosts)
    return Answered(_each_usable(answered), None)


def _each_usable(answered: list[Any]) -> list[Outcome]:
    return [
        o
        if o.__class__ is Outcome
        and o.status.__class__ is str
        and o.status in _STATUSES
        and o.reason.__class__ is str
        and o.reason.isascii()
        else _usable(o)
        for o in answered
    ]


def _usable(outcome: Any) -> Outcome:
    """``outcome`` as one the module can take, or a failure that says what was wrong with it."""
    try:
        if not isinstance(outcome, Outcome):
            return Outcome.failed(
                f"the executor returned {type(outcome).__name__}, expected Outcome"
            )
        status, reason = outcome.status, outcome.reason
        if not (isinstance(status, str) and status in _STATUSES and isinstance(reason, str)):
            return Outcome.failed(_utf8_safe(f"the executor returned an invalid {outcome!r}"))
        # Plain strings: a subclass of str may spell itself otherwise in JSON.
        return Outcome(str.__str__(status), _utf8_safe(str.__str__(reason)))  # type: ignore[arg-type]
    except Exception as error:
        return Outcome.failed(
            _utf8_safe(
                f"the executor returned an outcome that raised {type(error).__name__}: {error}"
            )
        )


def encode_outcomes(outcomes: Sequence[Outcome]) -> bytes:
    """The answer to a round: one outcome object per host, in order, in
    compact JSON (ASCII, no spaces), as json.dumps would write it."""
    return _encoded_list([_encoded(outcome) for outcome in outcomes])


def _encoded_list(encoded: list[bytes]) -> bytes:
    return b"[" + b",".join(encoded) + b"]"


_OK_ANSWER = b'{"status":"ok"}'


def _encoded(outcome: Outcome) -> bytes:
    if outcome.status == "ok":
        return _OK_ANSWER
    # The status is one of Status, plain ASCII; json.dumps of a lone string
    # is its C encoder, a tenth of the time of encoding the whole object.
    return b'{"status":"%s","reason":%s}' % (
        outcome.status.encode(),
        json.dumps(outcome.reason).encode(),
    )


def _counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is 1, as the module words it."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _utf8_safe(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")
