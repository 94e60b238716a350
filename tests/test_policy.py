"""The policy that admits a module's rounds (docs/ABI.md, "What a host
checks"), rule by rule at its edges; the inputs it is built from, by the
module's own rules ("ProcedureInput and ProcedureOutput"); and an
executor's answers, checked host by host. Every expected value is read
from docs/ABI.md, not from running the code."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from conftest import tutorial_input
from hypothesis import given
from hypothesis import strategies as st

import py_host
from py_host import Outcome, ProcedureInput, Round
from py_host._rounds import (
    Answered,
    NoRounds,
    RoundPolicy,
    encode_outcomes,
    policy_for_input,
    policy_for_json,
)
from py_host._wire import encode_input

NETWORK = py_host.SimulatedNetwork()
OK, FAILED, REFUSED = Outcome.ok(), Outcome.failed("down"), Outcome.refused("no")


def as_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


def policy(**changes: Any) -> RoundPolicy:
    made = policy_for_json(as_json(tutorial_input(**changes)), NETWORK)
    assert isinstance(made, RoundPolicy)
    return made


def request(**fields: Any) -> bytes:
    """A round as the module spells it, for the tutorial's input unless ``fields`` say otherwise."""
    round = {"action": "reboot", "timeout": 10, "attempt": 1, "hosts": ["server1", "server2"]}
    round.update(fields)
    return json.dumps({"round": round}).encode()


def respell(request: bytes) -> bytes:
    """``request`` without the spaces after separators, as the module writes
    JSON (the names and actions of these tests hold no space)."""
    return request.replace(b": ", b":").replace(b", ", b",")


# The input the policy is built from: exactly what the module accepts.

LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63] * 3 + ["a" * 61])
"""253 bytes: three labels of 63 and one of 61, with three dots."""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 1),
        ("timeout", 255),
        ("retries", 0),
        ("retries", 255),
        ("job_id", -(2**31)),
        ("job_id", 2**31 - 1),
        ("action", "a"),
        ("action", "a" * 64),
        ("action", "9_x.y-z"),
        ("host_list", ["a"]),
        ("host_list", ["10.0.0.1", "xn--bcher-kva.example", "A-1.b", "a--b"]),
        ("host_list", [NAME_253]),
        ("host_list", [f"{LABEL_63}.b"]),
        ("host_list", [f"{'a-' * 31}a", NAME_253]),
        ("host_list", [f"h{i}" for i in range(100_000)]),
    ],
)
def test_an_input_at_the_edge_of_every_rule_gets_a_policy(field: str, value: Any) -> None:
    assert isinstance(
        policy_for_json(as_json(tutorial_input(**{field: value})), NETWORK), RoundPolicy
    )


VALID = as_json(tutorial_input()).decode()


@pytest.mark.parametrize(
    "text",
    [
        VALID.replace('"retries": 3', '"retries": -2'),
        VALID.replace('"retries": 3', '"retries": -1'),
        VALID.replace('"retries": 3', '"retries": 256'),
        VALID.replace('"retries": 3', '"retries": 1000'),
        VALID.replace('"retries": 3', '"retries": 18446744073709551616'),
        VALID.replace('"retries": 3', '"retries": "9"'),
        VALID.replace('"retries": 3', '"retries": 9.0'),
        VALID.replace('"retries": 3', '"retries": 9e0'),
        VALID.replace('"retries": 3', '"retries": true'),
        VALID.replace('"retries": 3', '"retries": null'),
        VALID.replace('"timeout": 10', '"timeout": 1.5'),
        VALID.replace('"timeout": 10', '"timeout": 0'),
        VALID.replace('"timeout": 10', '"timeout": 256'),
        VALID.replace('"timeout": 10', '"timeout": NaN'),
        VALID.replace('"job_id": 1', '"job_id": 2147483648'),
        VALID.replace('"job_id": 1', '"job_id": -2147483649'),
        VALID.replace('"job_id": 1', '"job_id": 1.0'),
        VALID.replace('"action": "reboot"', '"action": ""'),
        VALID.replace('"action": "reboot"', f'"action": "{"a" * 65}"'),
        VALID.replace('"action": "reboot"', '"action": "-x"'),
        VALID.replace('"action": "reboot"', '"action": "re boot"'),
        VALID.replace('"action": "reboot"', '"action": "r\\u00e9boot"'),
        # The last of a duplicate key would win in Python; the module refuses it.
        VALID.replace('{"timeout": 10', '{"retries": 200, "timeout": 10'),
        VALID.replace('"job_id": 1', '"job_id": 1, "priority": 1'),
        VALID.replace(', "job_id": 1', ""),
        f"{VALID} trailing",
        f"[{VALID}]",
        "\ufeff" + VALID,
        "null",
    ],
)
def test_an_input_the_module_refuses_gets_no_policy(text: str) -> None:
    assert isinstance(policy_for_json(text.encode(), NETWORK), NoRounds)


@pytest.mark.parametrize(
    "hosts",
    [
        [],
        [""],
        ["a..b"],
        ["a."],
        [".a"],
        ["-a"],
        ["a-"],
        ["a.-b"],
        ["a-.b"],
        ["a b"],
        ["a_b"],
        ["a\nb"],  # joined with newlines, it would read as two good names
        ["bücher"],
        ["a\udc80"],
        ["a", "A"],
        ["a", "b", "a"],
        ["Server1", "sErVeR1"],
        [NAME_253 + "a"],
        ["a" * 64],
        [f"{'a-' * 31}ab"],
        [f"b.{'a' * 64}.c"],
        [f"h{i}" for i in range(100_001)],
        [["a"]],
        [5],
        "a",
        None,
    ],
)
def test_a_host_list_the_module_refuses_gets_no_policy(hosts: Any) -> None:
    fields = tutorial_input(host_list=hosts)
    try:
        data = json.dumps(fields).encode()
    except UnicodeEncodeError:
        data = b""
    assert isinstance(policy_for_json(data, NETWORK), NoRounds)
    model = ProcedureInput.model_construct(**fields)
    assert isinstance(policy_for_input(model, data, NETWORK), NoRounds)


def test_invalid_utf8_gets_no_policy() -> None:
    assert isinstance(
        policy_for_json(VALID.encode().replace(b"reboot", b"reb\xffot"), NETWORK), NoRounds
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"retries": -2},
        {"retries": 1000},
        {"retries": "3"},
        {"retries": None},
        {"retries": True},
        {"timeout": 1.5},
        {"host_list": [["a"]]},
        {"host_list": 5},
    ],
)
def test_a_model_made_without_validation_gets_the_policy_its_json_gets(
    changes: dict[str, Any],
) -> None:
    model = ProcedureInput.model_construct(**tutorial_input(**changes))
    assert isinstance(policy_for_input(model, encode_input(model), NETWORK), NoRounds)


def test_a_model_whose_values_are_not_plain_is_judged_by_its_json() -> None:
    class Count(int):
        pass

    model = ProcedureInput.model_construct(**tutorial_input(retries=Count(0)))
    made = policy_for_input(model, encode_input(model), NETWORK)
    assert isinstance(made, RoundPolicy)
    made.admit(request())
    made.record(Round("reboot", 10, 1, ("server1", "server2")), Answered([FAILED, FAILED], None))
    with pytest.raises(py_host.AbiViolation):
        made.admit(request(attempt=2))
    # A tuple is written as a JSON array, which the module accepts.
    model = ProcedureInput.model_construct(**tutorial_input(host_list=("server1", "server2")))
    assert isinstance(policy_for_input(model, encode_input(model), NETWORK), RoundPolicy)


def rfc1123(name: str) -> bool:
    """docs/ABI.md's rule, spelled out plainly."""
    labels = name.split(".")
    return (
        0 < len(name.encode()) <= 253
        and all(1 <= len(label) <= 63 for label in labels)
        and all(re.fullmatch(r"[A-Za-z0-9-]+", label) for label in labels)
        and not any(label.startswith("-") or label.endswith("-") for label in labels)
    )


def test_host_names_are_judged_as_the_rule_says_on_many_shapes() -> None:
    alphabet = ["a", "Z", "0", "-", ".", "\n", " ", "_", "é", ""]
    names = {a + b + c + d for a in alphabet for b in alphabet for c in alphabet for d in alphabet}
    for name in sorted(names):
        made = policy_for_json(as_json(tutorial_input(host_list=[name])), NETWORK)
        assert isinstance(made, RoundPolicy) == rfc1123(name), repr(name)
        # Among other, good names, before and after it.
        made = policy_for_json(as_json(tutorial_input(host_list=["x", name, "y"])), NETWORK)
        expected = rfc1123(name) and name.lower() not in {"x", "y"}
        assert isinstance(made, RoundPolicy) == expected, repr(name)


# The rounds it admits: every rule at its edge.

HISTORY = list[tuple[bytes, Sequence[Outcome]]]


@pytest.mark.parametrize(
    ("changes", "history", "asked", "refusal"),
    [
        ({}, [], request(), None),
        # Each host at most 1 + retries times: the last allowed, one more not.
        (
            {"retries": 1},
            [(request(), [FAILED, OK])],
            request(attempt=2, hosts=["server1"]),
            None,
        ),
        (
            {"retries": 1},
            [(request(), [FAILED, OK]), (request(attempt=2, hosts=["server1"]), [FAILED])],
            request(attempt=3, hosts=["server1"]),
            "'server1' that the input does not allow",
        ),
        (
            {"retries": 0},
            [(request(), [FAILED, FAILED])],
            request(attempt=2),
            "'server1' that the input does not allow",
        ),
        (
            {"retries": 0, "host_list": ["a"]},
            [],
            request(hosts=["a"], attempt=1),
            None,
        ),
        # Never again once a host succeeded or was refused.
        ({}, [(request(), [OK, FAILED])], request(attempt=2), "'server1' that the input"),
        ({}, [(request(), [OK, OK])], request(attempt=2, hosts=[""]), "'' that the input"),
        ({}, [(request(), [FAILED, REFUSED])], request(attempt=2), "'server2' that the input"),
        (
            {},
            [(request(), [FAILED, Outcome.timed_out(10)])],
            request(attempt=2),
            None,
        ),
        # The input's action and timeout, exactly.
        ({}, [], request(action="shutdown"), "asked to run 'shutdown'"),
        ({}, [], request(action="REBOOT"), "asked to run 'REBOOT'"),
        ({}, [], request(timeout=11), "with timeout 11"),
        ({}, [], request(timeout=9), "with timeout 9"),
        ({}, [], request(timeout="10"), "invalid request"),
        ({"timeout": 1}, [], request(timeout=True), "invalid request"),
        # Hosts from host_list, spelled as there, each once, at least one.
        ({}, [], request(hosts=["server3"]), "'server3' that the input does not allow"),
        ({}, [], request(hosts=["SERVER1"]), "'SERVER1' that the input does not allow"),
        ({}, [], request(hosts=["server1", "server1"]), "a host twice"),
        ({}, [], request(hosts=[]), "no hosts"),
        ({}, [], request(hosts="server1"), "invalid request"),
        ({}, [], request(hosts=[["server1"]]), "invalid request"),
        ({}, [], request(hosts=[1]), "1 that the input does not allow"),
        # Attempts count up from 1 by one.
        ({}, [], request(attempt=2), "asked for attempt 2; this is round 1"),
        ({}, [], request(attempt=0), "asked for attempt 0; this is round 1"),
        (
            {},
            [(request(), [FAILED, FAILED])],
            request(attempt=1),
            "asked for attempt 1; this is round 2",
        ),
        (
            {},
            [(request(), [FAILED, FAILED])],
            request(attempt=3),
            "asked for attempt 3; this is round 2",
        ),
        ({}, [], request(attempt=1.0), "invalid request"),
        ({}, [], request(attempt=True), "asked for attempt True"),
        # Exactly the documented object.
        ({}, [], request(priority=1), "invalid request"),
        ({}, [], request().replace(b'"hosts"', b'"hosts": [], "hosts"'), "invalid request"),
        ({}, [], b'{"round": null}', "invalid request"),
        ({}, [], b"not json", "invalid request"),
        ({}, [], b'{"round": {}, "ok": {}}', "invalid request"),
    ],
)
@pytest.mark.parametrize("spelling", ["spaced", "compact"])
def test_a_round_is_admitted_only_as_the_input_allows(
    changes: dict[str, Any], history: HISTORY, asked: bytes, refusal: str | None, spelling: str
) -> None:
    # Compact, as the module writes JSON: a request for every host left is
    # then the very bytes py_host admits without decoding them.
    if spelling == "compact":
        history = [(respell(earlier), outcomes) for earlier, outcomes in history]
        asked = respell(asked)
    rounds = policy(**changes)
    for earlier, outcomes in history:
        rounds.record(rounds.admit(earlier), Answered(list(outcomes), None))
    if refusal is None:
        fields = json.loads(asked)["round"]
        assert rounds.admit(asked) == Round(
            fields["action"], fields["timeout"], fields["attempt"], tuple(fields["hosts"])
        )
    else:
        with pytest.raises(py_host.AbiViolation, match=re.escape(refusal)):
            rounds.admit(asked)


@pytest.mark.parametrize("outcome", [OK, FAILED, REFUSED, Outcome.timed_out(10)])
@pytest.mark.parametrize("hosts", [["server1", "server2"], ["server2"]])
def test_one_outcome_object_for_every_host_counts_as_that_outcome_for_each(
    outcome: Outcome, hosts: list[str]
) -> None:
    one_by_one, all_at_once = policy(retries=1), policy(retries=1)
    for rounds, every in ((one_by_one, None), (all_at_once, outcome)):
        asked = rounds.admit(respell(request(hosts=hosts)))
        rounds.record(asked, Answered([outcome] * len(hosts), every))
    retried = outcome.status in {"failed", "timeout"}
    left = [host for host in ("server1", "server2") if host not in hosts or retried]
    for done in sorted({"server1", "server2"} - set(left)):
        for rounds in (one_by_one, all_at_once):
            with pytest.raises(py_host.AbiViolation, match=f"{done!r} that the input"):
                rounds.admit(respell(request(attempt=2, hosts=[done])))
    if left:
        again = respell(request(attempt=2, hosts=left))
        expected = Round("reboot", 10, 2, tuple(left))
        assert all_at_once.admit(again) == one_by_one.admit(again) == expected


def test_with_the_most_retries_a_host_gets_256_attempts_and_no_more() -> None:
    rounds = policy(retries=255, host_list=["a"])
    for attempt in range(1, 257):
        rounds.record(rounds.admit(request(attempt=attempt, hosts=["a"])), Answered([FAILED], None))
    with pytest.raises(py_host.AbiViolation, match="'a' that the input does not allow"):
        rounds.admit(request(attempt=257, hosts=["a"]))


def test_a_request_longer_than_any_round_of_the_input_is_refused() -> None:
    data = as_json(tutorial_input())
    rounds = policy_for_json(data, NETWORK)
    assert isinstance(rounds, RoundPolicy)
    padded = request()[:-1] + b" " * (len(data) + 256 - len(request())) + b"}"
    assert len(padded) == len(data) + 256
    rounds.admit(padded)
    with pytest.raises(py_host.AbiViolation, match=f"in {len(data) + 257} bytes"):
        policy(**{}).admit(padded[:-1] + b" }")


@pytest.mark.parametrize("retries", [-2, -1, 256, 1000])
def test_with_retries_out_of_range_no_round_is_admitted(retries: int) -> None:
    made = policy_for_json(as_json(tutorial_input(retries=retries)), NETWORK)
    with pytest.raises(py_host.AbiViolation, match="the module asked for a round, but the input"):
        made.admit(request())


# Through the public API: a model made with model_construct, and raw JSON.


@pytest.mark.parametrize(
    "fields",
    [
        tutorial_input(retries="3"),
        tutorial_input(retries=None),
        tutorial_input(retries=-2),
        tutorial_input(retries=1000),
        tutorial_input(timeout=1.5),
        tutorial_input(host_list=[["a"]]),
        tutorial_input(host_list=5),
        {key: value for key, value in tutorial_input().items() if key != "host_list"},
        tutorial_input(host_list=[object()]),
        tutorial_input(job_id=True),
    ],
)
def test_a_model_made_without_validation_ends_in_invalid_input(fields: dict[str, Any]) -> None:
    ran: list[str] = []
    with py_host.load(executor=lambda host, action, timeout: ran.append(host) is None) as rust:
        with pytest.raises(py_host.InvalidInput):
            rust.start_procedure(ProcedureInput.model_construct(**fields))
        assert rust.live_allocations() == 0
        assert rust.start_procedure(tutorial_input()).result == "success"
    assert ran == ["server1", "server2"]


# An executor's answers, host by host.


def test_a_bad_outcome_fails_only_its_own_host() -> None:
    ran: Counter[str] = Counter()
    lock = threading.Lock()

    def action(host: str, action: str, timeout: int) -> Outcome | bool:
        with lock:
            ran[host] += 1
        return Outcome("weird", "x") if host == "bad" else True  # type: ignore[arg-type]

    with py_host.load(executor=action) as rust:
        output = rust.start_procedure(tutorial_input(retries=2, host_list=["web1", "bad", "web2"]))
    assert output.failed_hosts == ["bad"]
    assert output.failures[0].attempts == 3
    assert "'weird'" in output.failures[0].reason
    assert ran == {"web1": 1, "bad": 3, "web2": 1}


class Answering:
    """An executor that answers each round with ``count`` outcomes, whatever its hosts."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.rounds: list[Round] = []

    def run_round(self, round: Round) -> Sequence[Outcome]:
        self.rounds.append(round)
        return [Outcome.ok()] * self.count


@pytest.mark.parametrize(
    ("count", "answered"), [(1, "1 outcome"), (3, "3 outcomes"), (0, "0 outcomes")]
)
def test_another_count_of_outcomes_than_hosts_fails_every_host_of_the_round(
    count: int, answered: str
) -> None:
    # Which outcome is whose cannot be told: no host's is taken, and each is
    # retried as any failed attempt is.
    executor = Answering(count)
    with py_host.load(executor=executor) as rust:
        output = rust.start_procedure(tutorial_input(retries=1))
    assert output.failed_hosts == ["server1", "server2"]
    reason = f"the executor answered {answered} for 2 hosts"
    assert [(f.attempts, f.reason) for f in output.failures] == [(2, reason), (2, reason)]
    assert [r.attempt for r in executor.rounds] == [1, 2]


def variants() -> list[str]:
    """Inputs near the edges of every rule, valid or not, spelled in
    several ways; seeded, so the same each run."""
    rng = random.Random(12)
    values: dict[str, list[str]] = {
        "timeout": ["1", "255", "0", "256", "-0", "10.0", "1e1", '"10"', "true", "null"],
        "retries": ["0", "255", "-1", "-0", "256", "3.5", "[]", "1000", "18446744073709551616"],
        "job_id": ["-2147483648", "2147483647", "2147483648", "-0", "0", "1E2"],
        "action": [
            '"a"',
            '"9X"',
            '"re\\u0062oot"',
            '"-x"',
            f'"{"a" * 64}"',
            f'"{"a" * 65}"',
            '"a b"',
        ],
        "host_list": [
            '["a"]',
            '["a","A"]',
            '["serv\\u0065r1","server2"]',
            '["a-b.c","xn--d"]',
            f'["{NAME_253}"]',
            f'["{NAME_253}a"]',
            '["a.","b"]',
            '["a\\nb"]',
            "[]",
            '["a",1]',
        ],
    }
    texts = []
    for _ in range(300):
        fields = {name: rng.choice(choices[:2]) for name, choices in values.items()}
        for name in rng.sample(sorted(values), rng.randint(0, 2)):
            fields[name] = rng.choice(values[name])
        items = [f'"{name}":{value}' for name, value in fields.items()]
        rng.shuffle(items)
        if rng.random() < 0.1:
            items.append(rng.choice(items))
        texts.append("{" + rng.choice([",", ", ", " ,\n"]).join(items) + "}")
    return texts


def test_the_policy_never_refuses_what_the_module_accepts() -> None:
    # A correct module never breaks the ABI: whatever it accepts, py_host
    # must let it run, and take its output.
    network = py_host.SimulatedNetwork(down={"a"}, flaky={"server1": 1})
    accepted = 0
    with py_host.load(executor=network) as rust:
        for text in variants():
            try:
                rust.start_procedure_json(text)
                accepted += 1
            except py_host.InvalidInput:
                continue
    assert accepted > 50, "the variants reach the module's acceptance too"


@given(
    st.lists(
        st.builds(Outcome, st.sampled_from(["ok", "failed", "timeout", "refused"]), st.text()),
        min_size=1,
    )
)
def test_an_answer_is_the_compact_json_of_its_outcomes(outcomes: list[Outcome]) -> None:
    # docs/ABI.md, "resume_procedure": one {"status"} or {"status", "reason"}
    # object per host; json.dumps with compact separators writes it so.
    expected = [
        {"status": "ok"} if o.status == "ok" else {"status": o.status, "reason": o.reason}
        for o in outcomes
    ]
    assert encode_outcomes(outcomes) == json.dumps(expected, separators=(",", ":")).encode()


def test_success_is_one_outcome() -> None:
    assert Outcome.ok() is Outcome.ok()
    assert Outcome.ok() == Outcome("ok")


class OneForAll:
    """An executor that answers every host of a round with one object."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def run_round(self, round: Round) -> Sequence[Any]:
        return [self.outcome] * len(round.hosts)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (
            Outcome("weird", "x"),
            "the executor returned an invalid Outcome(status='weird', reason='x')",
        ),  # type: ignore[arg-type]
        ("ok", "the executor returned str, expected Outcome"),
    ],
    ids=["bad status", "not an Outcome"],
)
def test_one_bad_outcome_for_every_host_fails_every_host(outcome: Any, reason: str) -> None:
    with py_host.load(executor=OneForAll(outcome)) as rust:
        output = rust.start_procedure(tutorial_input(retries=0, host_list=["a", "b", "c"]))
    assert [(f.host, f.reason) for f in output.failures] == [(h, reason) for h in "abc"]


class Liar(Outcome):
    """An outcome that claims to equal anything."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = Outcome.__hash__


class Answering2:
    def run_round(self, round: Round) -> Sequence[Outcome]:
        return [Outcome.ok(), Liar("failed", "down")]


def test_a_round_is_taken_as_answered_alike_only_by_identity() -> None:
    # The liar equals the first outcome, but is its own: its host failed.
    with py_host.load(executor=Answering2()) as rust:
        output = rust.start_procedure(tutorial_input(retries=0, host_list=["a", "b"]))
    assert [(f.host, f.reason) for f in output.failures] == [("b", "down")]
