"""The words of every error about an input, as the module words them
(``src/message.rs``, and the "Messages" of the ABI document): py_host's
models refuse a value with the same sentence the module would, so a person
reads one set of messages whichever side refused the input."""

from __future__ import annotations

import json
from collections.abc import Mapping

MAX_QUOTED = 40
"""The longest JSON text of a value quoted whole, in characters."""

MAX_HOSTS = 100_000
MAX_HOST_NAME_LEN = 253
MAX_LABEL_LEN = 63
MAX_ACTION_LEN = 64

_HOST_NAME = "a host name (letters, digits, hyphens and dots, RFC 1123)"
_ASCII_LETTERS_AND_DIGITS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)
_HOST_CHARACTERS = _ASCII_LETTERS_AND_DIGITS | {"-"}
_ACTION_CHARACTERS = _ASCII_LETTERS_AND_DIGITS | {"_", "-", "."}


def got(value: object) -> str:
    """What a message says it got: ``value`` as JSON writes it, or for a
    long one its type and length."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(int(value))
        if len(text) <= MAX_QUOTED:
            return text
        return f"a number of {len(text.lstrip('-'))} digits"
    if isinstance(value, float):
        text = json.dumps(value)
        return text if len(text) <= MAX_QUOTED else f"a number {len(text)} characters long"
    if isinstance(value, str):
        return _got_str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    # A Python value JSON has no form for (a tuple, bytes, a set, ...).
    return f"a Python {type(value).__name__}"


def _got_str(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if len(quoted) <= MAX_QUOTED else f"a string of {len(text)} characters"


def integer(field: str, low: int, high: int, value: object) -> str:
    return f"{field} must be a whole number from {low} to {high}; got {got(value)}"


def host_list_type(value: object) -> str:
    return f"host_list must be a list of host names; got {got(value)}"


def host_count(count: int) -> str:
    return f"host_list must name from 1 to {MAX_HOSTS} hosts; got {count}"


def host(index: int, value: object) -> str:
    """A host not a string, or for a string not a host name, with the first
    rule it breaks."""
    message = f"host_list[{index}] must be {_HOST_NAME}; got {got(value)}"
    if isinstance(value, str):
        reason = host_name_problem(value)
        if reason is not None:
            message += f" ({reason})"
    return message


def repeated_host(index: int, name: str) -> str:
    return (
        f"host_list[{index}] must not repeat an earlier host (names ignore case); "
        f"got {_got_str(name)}"
    )


def host_name_problem(name: str) -> str | None:
    """The first rule of a host name that ``name`` breaks, or ``None``."""
    if not name:
        return "it is empty"
    if len(name.encode()) > MAX_HOST_NAME_LEN:
        return f"it is longer than {MAX_HOST_NAME_LEN} bytes"
    for label in name.split("."):
        if not label:
            return "it has an empty label"
        if len(label.encode()) > MAX_LABEL_LEN:
            return f"a label is longer than {MAX_LABEL_LEN} bytes"
        for character in label:
            if character not in _HOST_CHARACTERS:
                quoted = json.dumps(character, ensure_ascii=False)
                return f"{quoted} is not an ASCII letter, digit, hyphen or dot"
        if label.startswith("-") or label.endswith("-"):
            return "a label starts or ends with a hyphen"
    return None


def is_action(action: str) -> bool:
    return (
        0 < len(action) <= MAX_ACTION_LEN
        and action[0] in _ASCII_LETTERS_AND_DIGITS
        and all(character in _ACTION_CHARACTERS for character in action)
    )


def action(value: object) -> str:
    return (
        f'action must be an action name: 1 to {MAX_ACTION_LEN} ASCII letters, digits, "_", "-" '
        f'or ".", starting with a letter or digit; got {got(value)}'
    )


def missing(field: str) -> str:
    return f"{field} is missing"


def unknown(field: object) -> str:
    return (
        "ProcedureInput has only the fields timeout, retries, host_list, action and job_id; "
        f"got {got(field)}"
    )


def not_an_object(value: object) -> str:
    """An input that is not a mapping, named by its type alone, as the
    module names a JSON value that is not an object."""
    if value is None or isinstance(value, bool):
        what = got(value)
    elif isinstance(value, (int, float)):
        what = "a number"
    elif isinstance(value, str):
        what = "a string"
    elif isinstance(value, list):
        what = "a list"
    else:
        what = f"a Python {type(value).__name__}"
    return f"the input must be one JSON object (a ProcedureInput); got {what}"
