"""Bad input to each of the four functions: a table of cases, then property
tests over generated input. Every case ends in a clear py_host error naming
what is wrong (or in a correct result), and afterwards the module still works
and holds no buffer."""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import wasmtime
from conftest import ROOT, tutorial_input
from hypothesis import given, settings
from hypothesis import strategies as st

import py_host

TUTORIAL_JSON = json.dumps(tutorial_input())
DEEP = 100_000
INSTANCES: dict[int, object] = {}
"""The instances each module started the corpus with."""


@pytest.fixture(scope="module")
def shared() -> Iterator[py_host.RustModule]:
    """One module for the whole corpus: each case must leave it clean."""
    with py_host.load() as module:
        yield module


def assert_still_works(rust: py_host.RustModule) -> None:
    # Bad input is refused by the models or by the module's own error reply:
    # neither may cost the instance, or counting its buffers would prove nothing.
    assert rust._pool.live() == INSTANCES.setdefault(id(rust), rust._pool.live())
    assert rust.live_allocations() == 0
    assert rust.start_procedure(tutorial_input()).job_id == 1
    assert rust.live_allocations() == 0


@dataclass
class Case:
    name: str
    call: Callable[[py_host.RustModule], object]
    error: type[py_host.Error] | None
    kind: str | None = None
    path: tuple[str | int, ...] | None = None
    marks: list[Any] = field(default_factory=list)


def print_string(
    name: str,
    text: Any,
    error: type[py_host.Error] | None = py_host.InvalidInput,
    kind: str | None = None,
) -> Case:
    return Case(f"print_string: {name}", lambda rust: rust.print_string(text), error, kind)


def print_int(
    name: str,
    value: Any,
    error: type[py_host.Error] | None = py_host.InvalidInput,
    kind: str | None = None,
) -> Case:
    return Case(f"print_int: {name}", lambda rust: rust.print_int(value), error, kind)


def raw(
    name: str, document: str | bytes, kind: str | None, path: tuple[str | int, ...] | None = None
) -> Case:
    error = py_host.InvalidInput if kind else None
    return Case(
        f"start_procedure (JSON): {name}",
        lambda rust: rust.start_procedure_json(document),
        error,
        kind,
        path,
    )


def model(
    name: str, fields: Any, kind: str | None, path: tuple[str | int, ...] | None = None
) -> Case:
    error = py_host.InvalidInput if kind else None
    return Case(
        f"start_procedure (model): {name}",
        lambda rust: rust.start_procedure(fields),
        error,
        kind,
        path,
    )


def double_free(rust: py_host.RustModule) -> None:
    reply = rust.start_procedure_buffer(TUTORIAL_JSON)
    reply.free()
    reply.free()


def read_after_free(rust: py_host.RustModule) -> None:
    reply = rust.start_procedure_buffer(TUTORIAL_JSON)
    reply.free()
    reply.read()


def free_inside_context_then_again(rust: py_host.RustModule) -> None:
    with rust.start_procedure_buffer(TUTORIAL_JSON) as reply:
        reply.free()
    reply.free()


def hosts(count: int) -> str:
    return json.dumps(tutorial_input(host_list=[f"h{i}" for i in range(count)]))


CASES = [
    # print_string
    print_string("invalid UTF-8", b"\xff", kind="invalid_utf8"),
    print_string("truncated sequence", b"ok\xc3", kind="invalid_utf8"),
    print_string("overlong encoding", b"\xc0\xaf", kind="invalid_utf8"),
    print_string("surrogate encoded in UTF-8", b"a\xed\xa0\x80b", kind="invalid_utf8"),
    print_string("invalid UTF-8 in a bytearray", bytearray(b"\xfe"), kind="invalid_utf8"),
    print_string("lone high surrogate", "half \ud800", kind="invalid_utf8"),
    print_string("lone low surrogate", "\udfff", kind="invalid_utf8"),
    print_string("None", None, kind="invalid_type"),
    print_string("an int", 3, kind="invalid_type"),
    print_string("a list", ["a"], kind="invalid_type"),
    print_string("embedded NUL", "a\0b", None),
    print_string("empty", "", None),
    print_string("10 MB", "x" * 10_000_000, None),
    print_string("a memoryview", memoryview(b"view"), None),
    # print_int
    print_int("2**31", 2**31, kind="out_of_range"),
    print_int("-2**31 - 1", -(2**31) - 1, kind="out_of_range"),
    print_int("2**64", 2**64, kind="out_of_range"),
    print_int("-10**30", -(10**30), kind="out_of_range"),
    print_int("a bool", True, kind="invalid_type"),
    print_int("a float", 2.0, kind="invalid_type"),
    print_int("a str", "2", kind="invalid_type"),
    print_int("None", None, kind="invalid_type"),
    print_int("the tutorial's 4 bytes", b"\x02\x00\x00\x00", kind="invalid_type"),
    print_int("i32 min", -(2**31), None),
    print_int("i32 max", 2**31 - 1, None),
    # start_procedure, JSON the module alone checks
    raw("empty", b"", "invalid_json"),
    raw("whitespace", " \n\t", "invalid_json"),
    raw("null", "null", "invalid_json"),
    raw("an array", '[10, 3, ["a"], "reboot", 1]', "invalid_json"),
    raw("unclosed", "{", "invalid_json"),
    raw("trailing comma", '{"timeout":10,}', "invalid_json"),
    raw("trailing data", TUTORIAL_JSON + " x", "invalid_json"),
    raw("two documents", TUTORIAL_JSON + TUTORIAL_JSON, "invalid_json"),
    raw("a byte-order mark", "\ufeff" + TUTORIAL_JSON, "invalid_json"),
    raw("NaN", TUTORIAL_JSON.replace('"timeout": 10', '"timeout": NaN'), "invalid_json"),
    raw("a lone surrogate escape", TUTORIAL_JSON.replace("reboot", "\\ud800"), "invalid_json"),
    raw("invalid UTF-8", b"\xff" + TUTORIAL_JSON.encode(), "invalid_utf8"),
    raw("nesting 100,000 deep", "[" * DEEP + "]" * DEEP, "invalid_json"),
    raw(
        "nesting in the host list",
        TUTORIAL_JSON.replace('["server1", "server2"]', "[" * DEEP + "]" * DEEP),
        "invalid_type",
        ("host_list", 0),
    ),
    raw(
        "nesting in an unknown field",
        TUTORIAL_JSON[:-1] + ', "x": ' + "[" * DEEP + "]" * DEEP + "}",
        "unknown_field",
        ("x",),
    ),
    raw("duplicate field", '{"job_id": 2, ' + TUTORIAL_JSON[1:], "duplicate_field", ("job_id",)),
    raw(
        "exponent for an int",
        TUTORIAL_JSON.replace('"timeout": 10', '"timeout": 1e1'),
        "invalid_type",
        ("timeout",),
    ),
    raw(
        "an int beyond u64",
        TUTORIAL_JSON.replace('"job_id": 1', '"job_id": 18446744073709551616'),
        "out_of_range",
        ("job_id",),
    ),
    raw(
        "an object for an int",
        TUTORIAL_JSON.replace('"job_id": 1', '"job_id": {"a": 1}'),
        "invalid_type",
        ("job_id",),
    ),
    raw(
        "a 10 MB action",
        json.dumps(tutorial_input(action="a" * 10_000_000)),
        "invalid_value",
        ("action",),
    ),
    raw("100,000 hosts", hosts(100_000), None),
    raw("100,001 hosts", hosts(100_001), "invalid_value", ("host_list",)),
    # start_procedure, through the models
    model("a list, not a mapping", [1, 2], "invalid_json"),
    model("None", None, "invalid_json"),
    model(
        "100,001 hosts",
        tutorial_input(host_list=[f"h{i}" for i in range(100_001)]),
        "invalid_value",
        ("host_list",),
    ),
    # free_mem, through a reply buffer
    Case("free_mem: twice", double_free, py_host.BufferFreed),
    Case("free_mem: read after free", read_after_free, py_host.BufferFreed),
    Case(
        "free_mem: free after the context freed it",
        free_inside_context_then_again,
        py_host.BufferFreed,
    ),
]

# Field by field: each is refused alike by the pydantic models and by the
# module. Where they word the path differently the module's is given, and
# pydantic's must be a prefix of it.
FIELD_CASES: list[tuple[str, dict[str, Any], str, tuple[str | int, ...]]] = [
    ("timeout zero", tutorial_input(timeout=0), "out_of_range", ("timeout",)),
    ("timeout above u8", tutorial_input(timeout=256), "out_of_range", ("timeout",)),
    ("timeout negative", tutorial_input(timeout=-1), "out_of_range", ("timeout",)),
    ("retries above u8", tutorial_input(retries=300), "out_of_range", ("retries",)),
    ("job_id above i32", tutorial_input(job_id=2**31), "out_of_range", ("job_id",)),
    ("job_id below i32", tutorial_input(job_id=-(2**31) - 1), "out_of_range", ("job_id",)),
    ("timeout a float", tutorial_input(timeout=10.5), "invalid_type", ("timeout",)),
    ("timeout an integral float", tutorial_input(timeout=10.0), "invalid_type", ("timeout",)),
    ("timeout a bool", tutorial_input(timeout=True), "invalid_type", ("timeout",)),
    ("timeout a string", tutorial_input(timeout="10"), "invalid_type", ("timeout",)),
    ("retries null", tutorial_input(retries=None), "invalid_type", ("retries",)),
    ("action a number", tutorial_input(action=7), "invalid_type", ("action",)),
    ("host_list a string", tutorial_input(host_list="server1"), "invalid_type", ("host_list",)),
    ("a host a number", tutorial_input(host_list=["a", 7]), "invalid_type", ("host_list", 1)),
    ("empty host list", tutorial_input(host_list=[]), "invalid_value", ("host_list",)),
    ("empty host name", tutorial_input(host_list=["a", ""]), "invalid_value", ("host_list", 1)),
    ("underscore", tutorial_input(host_list=["bad_host"]), "invalid_value", ("host_list", 0)),
    ("leading hyphen", tutorial_input(host_list=["-a"]), "invalid_value", ("host_list", 0)),
    ("trailing hyphen", tutorial_input(host_list=["a-"]), "invalid_value", ("host_list", 0)),
    ("empty label", tutorial_input(host_list=["a..b"]), "invalid_value", ("host_list", 0)),
    ("trailing dot", tutorial_input(host_list=["a."]), "invalid_value", ("host_list", 0)),
    ("label too long", tutorial_input(host_list=["a" * 64]), "invalid_value", ("host_list", 0)),
    (
        "name too long",
        tutorial_input(host_list=["a." * 127 + "a"]),
        "invalid_value",
        ("host_list", 0),
    ),
    ("shell in host", tutorial_input(host_list=["a;reboot"]), "invalid_value", ("host_list", 0)),
    (
        "option as host",
        tutorial_input(host_list=["-oProxyCommand=x"]),
        "invalid_value",
        ("host_list", 0),
    ),
    ("space in host", tutorial_input(host_list=["a b"]), "invalid_value", ("host_list", 0)),
    ("NUL in host", tutorial_input(host_list=["a\0b"]), "invalid_value", ("host_list", 0)),
    ("non-ASCII host", tutorial_input(host_list=["bücher"]), "invalid_value", ("host_list", 0)),
    ("URL as host", tutorial_input(host_list=["http://a"]), "invalid_value", ("host_list", 0)),
    (
        "duplicate host",
        tutorial_input(host_list=["a", "b", "a"]),
        "invalid_value",
        ("host_list", 2),
    ),
    ("duplicate by case", tutorial_input(host_list=["a", "A"]), "invalid_value", ("host_list", 1)),
    ("empty action", tutorial_input(action=""), "invalid_value", ("action",)),
    ("action with space", tutorial_input(action="re boot"), "invalid_value", ("action",)),
    ("action with a shell", tutorial_input(action="reboot;ls"), "invalid_value", ("action",)),
    ("action too long", tutorial_input(action="a" * 65), "invalid_value", ("action",)),
    ("unknown field", tutorial_input(priority=1), "unknown_field", ("priority",)),
] + [
    (
        f"missing {name}",
        {k: v for k, v in tutorial_input().items() if k != name},
        "missing_field",
        (name,),
    )
    for name in tutorial_input()
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_corpus(shared: py_host.RustModule, case: Case) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        if case.error is None:
            case.call(shared)
        else:
            with pytest.raises(case.error) as raised:
                case.call(shared)
            if case.kind is not None:
                assert isinstance(raised.value, py_host.ModuleError)
                assert raised.value.kind == case.kind
            if case.path is not None:
                assert isinstance(raised.value, py_host.ModuleError)
                assert raised.value.path == case.path
    assert_still_works(shared)


@pytest.mark.parametrize(
    ("case", "fields", "kind", "path"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES]
)
def test_a_bad_field_is_refused_alike_by_models_and_module(
    shared: py_host.RustModule, case: str, fields: dict[str, Any], kind: str, path: tuple[Any, ...]
) -> None:
    with pytest.raises(py_host.InvalidInput) as by_models:
        shared.start_procedure(fields)
    with pytest.raises(py_host.InvalidInput) as by_module:
        shared.start_procedure_json(json.dumps(fields))
    assert (by_module.value.kind, by_module.value.path) == (kind, path)
    assert by_models.value.kind == kind
    assert path[: len(by_models.value.path)] == by_models.value.path
    assert_still_works(shared)


@pytest.mark.parametrize(
    ("case", "fields", "kind", "path"),
    # model_construct drops unknown fields, so that case cannot bypass the models.
    [case for case in FIELD_CASES if case[2] != "unknown_field"],
    ids=[c[0] for c in FIELD_CASES if c[2] != "unknown_field"],
)
def test_the_module_refuses_what_bypasses_the_models(
    shared: py_host.RustModule, case: str, fields: dict[str, Any], kind: str, path: tuple[Any, ...]
) -> None:
    unchecked = py_host.ProcedureInput.model_construct(**fields)
    with pytest.raises(py_host.InvalidInput) as raised:
        shared.start_procedure(unchecked)
    assert (raised.value.kind, raised.value.path) == (kind, path)
    assert_still_works(shared)


def test_a_model_holding_what_json_cannot_encode_is_refused(shared: py_host.RustModule) -> None:
    unchecked = py_host.ProcedureInput.model_construct(**tutorial_input(job_id=object()))
    with pytest.raises(py_host.InvalidInput) as raised:
        shared.start_procedure(unchecked)
    assert raised.value.kind == "invalid_type"


def test_a_model_nested_deeper_than_json_can_encode_is_refused(shared: py_host.RustModule) -> None:
    nested: list[Any] = []
    for _ in range(DEEP):
        nested = [nested]
    unchecked = py_host.ProcedureInput.model_construct(**tutorial_input(host_list=nested))
    with pytest.raises(py_host.InvalidInput):
        shared.start_procedure(unchecked)


def test_a_number_too_big_for_a_float_is_invalid_input_with_an_executor_too() -> None:
    with (
        py_host.load(executor=py_host.SimulatedNetwork()) as rust,
        pytest.raises(py_host.InvalidInput),
    ):
        rust.start_procedure_json(TUTORIAL_JSON.replace('"timeout": 10', '"timeout": 1e999'))


def test_invalid_input_names_the_field_in_its_message(shared: py_host.RustModule) -> None:
    with pytest.raises(
        py_host.InvalidInput, match=r'^host_list\[1\] must be a host name .*; got "bad_host"'
    ):
        shared.start_procedure_json(json.dumps(tutorial_input(host_list=["a", "bad_host"])))


# RFC 1123 (docs/ABI.md): a host name of at most 253 bytes, a label of at
# most 63. Each case: the name, its length written out, and whether the rule
# takes it.
HOST_NAME_EDGES: dict[str, tuple[str, int, bool]] = {
    "253 bytes, labels of 63": (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]), 253, True),
    "254 bytes, labels of 63": (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]), 254, False),
    "253 bytes, labels of 1": ("a." * 126 + "a", 253, True),
    "254 bytes, labels of 1": ("a." * 126 + "ab", 254, False),
    "a label of 63": ("x" * 63, 63, True),
    "a label of 64": ("x" * 64, 64, False),
    "an inner label of 63": ("a." + "x" * 63 + ".b", 67, True),
    "an inner label of 64": ("a." + "x" * 64 + ".b", 68, False),
}


def models_alone(rust: py_host.RustModule, fields: dict[str, Any]) -> object:
    """What the models make of ``fields``, with the error start_procedure
    would raise: the module never sees them, so it cannot cover for a
    model that accepts too much."""
    return py_host.ProcedureInput.model_validate(fields)


HOST_NAME_WAYS: dict[str, Callable[[py_host.RustModule, dict[str, Any]], object]] = {
    "models": models_alone,
    "models, then the module": lambda rust, fields: rust.start_procedure(fields),
    "raw JSON": lambda rust, fields: rust.start_procedure_json(json.dumps(fields)),
    "unchecked model": lambda rust, fields: rust.start_procedure(
        py_host.ProcedureInput.model_construct(**fields)
    ),
}


@pytest.mark.parametrize("way", HOST_NAME_WAYS.values(), ids=HOST_NAME_WAYS.keys())
@pytest.mark.parametrize(
    ("host", "length", "valid"), HOST_NAME_EDGES.values(), ids=HOST_NAME_EDGES.keys()
)
def test_host_names_at_the_length_limits(
    shared: py_host.RustModule,
    way: Callable[[py_host.RustModule, dict[str, Any]], object],
    host: str,
    length: int,
    valid: bool,
) -> None:
    assert len(host.encode()) == length, "the case is built as its name says"
    call = functools.partial(way, shared, tutorial_input(host_list=["ok", host]))
    if valid:
        call()
    else:
        with pytest.raises(py_host.InvalidInput) as raised:
            call()
        assert (raised.value.kind, raised.value.path) == ("invalid_value", ("host_list", 1))
    assert_still_works(shared)


class Bare:
    """The module with no host around it, to make the calls py_host never
    makes: pointers that are not live buffers."""

    def __init__(self) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, str(ROOT / "py_host/rust_lib.wasm"))
        linker = wasmtime.Linker(engine)
        linker.define_unknown_imports_as_traps(module)
        self.exports = linker.instantiate(self.store, module).exports(self.store)

    def call(self, name: str, *args: int) -> int:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        result: int = func(self.store, *args)
        return result

    def lend(self, data: bytes) -> int:
        ptr = self.call("alloc", len(data)) & 0xFFFF_FFFF
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        memory.write(self.store, data, ptr)
        return ptr

    def dangling(self, length: int) -> int:
        """The address of a buffer of ``length`` bytes, freed."""
        ptr = self.lend(bytes(length))
        assert self.call("dealloc", ptr, length) == 0
        return ptr

    def reply(self, packed: int) -> bytes:
        packed &= 2**64 - 1
        ptr, length = packed >> 32, packed & 0xFFFF_FFFF
        assert ptr != 0, "a reply in a buffer of its own"
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        return bytes(memory.read(self.store, ptr, ptr + length))


def no_history(bare: Bare) -> None:
    """A fresh instance."""


def a_long_history(bare: Bare) -> None:
    """Buffers of many sizes made, some kept and some freed, a procedure run
    and text printed: the allocator's state is nothing like a fresh one's."""
    sizes = [1, 4096, 70_000, 13, 300_000, 61, 7]
    kept = [(bare.lend(bytes(size)), size) for size in sizes]
    for ptr, size in kept[::2]:
        assert bare.call("dealloc", ptr, size) == 0
    text = bare.lend(b"hello")
    assert bare.call("print_string", text, 5) == 0
    reply = bare.call("start_procedure", bare.lend(TUTORIAL_JSON.encode()), len(TUTORIAL_JSON))
    assert bare.call("free_mem", (reply & (2**64 - 1)) >> 32) == 0


@dataclass
class Buffers:
    """What one bad call passes: a stale pointer, freed after the live
    buffers were made so that none of them can lie where it points."""

    tutorial: int
    """The tutorial's input, live."""
    out: int
    """200 live bytes for a reply."""
    stale: int
    """61 bytes, freed."""


BAD_CALLS: dict[str, Callable[[Bare, Buffers], int]] = {
    "print_string": lambda bare, b: bare.call("print_string", b.stale, 61),
    "print_int": lambda bare, b: bare.call("print_int", b.stale),
    "start_procedure": lambda bare, b: bare.call("start_procedure", b.stale, 61),
    "start_procedure_into, input": lambda bare, b: bare.call(
        "start_procedure_into", b.stale, 61, b.out, 200
    ),
    "start_procedure_into, reply buffer": lambda bare, b: bare.call(
        "start_procedure_into", b.tutorial, len(TUTORIAL_JSON), b.stale, 61
    ),
    "resume_procedure, answer": lambda bare, b: bare.call(
        "resume_procedure", b.stale, 61, b.out, 200
    ),
    "resume_procedure, reply buffer": lambda bare, b: bare.call(
        "resume_procedure", b.tutorial, 2, b.stale, 61
    ),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_a_bad_pointer_gets_the_same_reply_whatever_came_before(
    call: Callable[[Bare, Buffers], int],
) -> None:
    replies = []
    for history in (no_history, a_long_history):
        bare = Bare()
        history(bare)
        tutorial, out = bare.lend(TUTORIAL_JSON.encode()), bare.lend(bytes(200))
        buffers = Buffers(tutorial, out, stale=bare.dangling(61))
        reply = bare.reply(call(bare, buffers))
        assert json.loads(reply)["error"]["kind"] == "invalid_argument"
        # Nor does it name the address, in any base.
        for written in (str(buffers.stale), f"{buffers.stale:x}", f"{buffers.stale:X}"):
            assert written.encode() not in reply
        replies.append((buffers.stale, reply))
    (first, first_reply), (second, second_reply) = replies
    assert first != second, "the histories must leave the stale buffer at two addresses"
    assert first_reply == second_reply


# Properties over generated input.

LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z")
HOST = st.lists(LABEL, min_size=1, max_size=3).map(".".join)
NEAR_HOST = st.one_of(
    HOST, st.text(max_size=12), st.sampled_from(["", "-a", "a-", "a..b", "A", "a_b", "ü"])
)
INT = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 2**64 - 1]),
)
VALUE = st.one_of(
    INT,
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.none(),
)
FIELDS = st.fixed_dictionaries(
    {
        "timeout": st.one_of(INT, VALUE),
        "retries": st.one_of(INT, VALUE),
        "host_list": st.one_of(st.lists(NEAR_HOST, max_size=4), VALUE),
        "action": st.one_of(
            st.sampled_from(["reboot", "ping", "a.b-c_d"]), st.text(max_size=8), VALUE
        ),
        "job_id": st.one_of(INT, VALUE),
    },
    optional={"extra": VALUE},
)
PROPERTY = settings(max_examples=300, deadline=None)


def accepts(call: Callable[[], object]) -> bool:
    try:
        call()
    except py_host.InvalidInput:
        return False
    return True


@PROPERTY
@given(FIELDS)
def test_models_and_module_accept_the_same_inputs(
    shared: py_host.RustModule, fields: dict[str, Any]
) -> None:
    by_models = accepts(lambda: py_host.ProcedureInput.model_validate(fields))
    by_module = accepts(lambda: shared.start_procedure_json(json.dumps(fields)))
    assert by_models == by_module
    assert shared.live_allocations() == 0


@PROPERTY
@given(st.binary(max_size=200) | FIELDS.map(lambda fields: json.dumps(fields).encode()))
def test_any_bytes_give_an_output_or_invalid_input(shared: py_host.RustModule, data: bytes) -> None:
    if accepts(lambda: shared.start_procedure_json(data)):
        py_host.ProcedureOutput.model_validate_json(shared.start_procedure_json(data))
    assert shared.live_allocations() == 0


@PROPERTY
@given(st.text())
def test_any_text_is_printed_exactly(shared: py_host.RustModule, text: str) -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        shared.print_string(text)
    assert buffer.getvalue() == text + "\n"


@PROPERTY
@given(st.integers())
def test_any_int_is_printed_or_refused(shared: py_host.RustModule, value: int) -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        in_range = accepts(lambda: shared.print_int(value))
    assert in_range == (-(2**31) <= value < 2**31)
    assert buffer.getvalue() == (f"Python gave us number {value}\n" if in_range else "")


@PROPERTY
@given(
    hosts=st.lists(HOST, min_size=1, max_size=8, unique_by=str.lower),
    down=st.sets(st.integers(0, 7)),
    flaky=st.dictionaries(st.integers(0, 7), st.integers(1, 4)),
    retries=st.integers(0, 3),
)
def test_results_match_a_reference_model(
    hosts: list[str], down: set[int], flaky: dict[int, int], retries: int
) -> None:
    down_hosts = {hosts[i] for i in down if i < len(hosts)}
    flaky_hosts = {hosts[i]: n for i, n in flaky.items() if i < len(hosts)}
    network = py_host.SimulatedNetwork(down=down_hosts, flaky=flaky_hosts)
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(tutorial_input(host_list=hosts, retries=retries))
    failed = [h for h in hosts if h in down_hosts or flaky_hosts.get(h, 0) > retries]
    assert output.failed_hosts == failed
    assert output.message == (
        f"{len(failed)} host failed" if len(failed) == 1 else f"{len(failed)} hosts failed"
    )
    assert output.result == (
        "success" if not failed else "failure" if len(failed) == len(hosts) else "partial"
    )
    assert all(f.attempts == retries + 1 for f in output.failures)
