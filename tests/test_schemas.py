"""The pydantic models and the Rust types describe the same documents.

docs/schemas/ holds the JSON Schemas generated from the Rust types
(schemars; `cargo test --features schema` fails when they are stale, and
`just schemas` writes them again). Here they are compared with the schemas
pydantic makes of py_host's models: field names, types, ranges, lengths,
patterns, required fields and unknown fields. A field added or changed on
one side only fails one of the two tests."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pydantic
import pytest
from conftest import ROOT

import py_host

SCHEMAS = ROOT / "docs/schemas"
ANNOTATIONS = {"$schema", "$defs", "title", "description", "format"}
"""Keys that describe rather than constrain. ``format`` goes too: the Rust
schema says "uint8" or "int32" and also gives the range, which is compared."""


def normalized(schema: Any, root: dict[str, Any] | None = None) -> Any:
    """``schema`` with references resolved and annotations dropped, so two
    generators' schemas of the same document compare equal."""
    root = schema if root is None else root
    if isinstance(schema, list):
        return [normalized(item, root) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return normalized(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root)
    kept = {key: normalized(value, root) for key, value in schema.items() if key not in ANNOTATIONS}
    if "required" in kept:
        kept["required"] = sorted(kept["required"])
    return kept


def rust_schema(name: str) -> Any:
    return normalized(json.loads((SCHEMAS / name).read_text()))


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (py_host.ProcedureInput, "procedure_input.json"),
        (py_host.ProcedureOutput, "procedure_output.json"),
    ],
)
def test_the_pydantic_models_have_the_schemas_of_the_rust_types(
    model: type[pydantic.BaseModel], name: str
) -> None:
    assert normalized(model.model_json_schema()) == rust_schema(name)


def test_the_comparison_sees_a_field_added_or_changed_on_one_side() -> None:
    rust = rust_schema("procedure_input.json")

    class WithANote(py_host.ProcedureInput):
        note: str

    class LongerTimeouts(py_host.ProcedureInput):
        timeout: Annotated[int, pydantic.Field(ge=1, le=1000)]

    class OptionalRetries(py_host.ProcedureInput):
        retries: Annotated[int, pydantic.Field(ge=0, le=255)] = 0

    for changed in (WithANote, LongerTimeouts, OptionalRetries):
        assert normalized(changed.model_json_schema()) != rust, changed.__name__


def test_the_schemas_describe_the_tutorials_documents(rust: py_host.RustModule) -> None:
    document = py_host.ProcedureInput(
        host_list=["server1", "server2"], action="reboot", timeout=10, retries=3, job_id=1
    )
    properties = rust_schema("procedure_input.json")["properties"]
    assert set(properties) == set(document.model_dump())
    output = rust.start_procedure(document)
    assert set(rust_schema("procedure_output.json")["properties"]) == set(output.model_dump())


def descriptions(schema: dict[str, Any], model: str | None = None) -> dict[str, str | None]:
    """Each field's description in ``schema``, or in its definition ``model``."""
    if model is not None:
        schema = schema["$defs"][model]
    return {name: field.get("description") for name, field in schema["properties"].items()}


@pytest.mark.parametrize(
    ("model", "name", "definition"),
    [
        (py_host.ProcedureInput, "procedure_input.json", None),
        (py_host.ProcedureOutput, "procedure_output.json", None),
        (py_host.ProcedureOutput, "procedure_output.json", "HostFailure"),
    ],
)
def test_every_field_is_described_as_the_rust_types_describe_it(
    model: type[pydantic.BaseModel], name: str, definition: str | None
) -> None:
    """The descriptions an editor shows on hover and the JSON Schema carries
    are the Rust types' own (docs/schemas/), word for word."""
    ours = descriptions(model.model_json_schema(), definition)
    theirs = descriptions(json.loads((SCHEMAS / name).read_text()), definition)
    assert ours == theirs
    assert all(ours.values()), ours
