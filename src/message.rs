//! The words of every error about an input, in one place: docs/ABI.md's
//! "Messages" gives the same rules, and py_host's models follow them too,
//! so a person reads the same sentence whichever host refused the input.
//!
//! Each message names its field (`timeout`, `host_list[2]`), says what the
//! field must be, and ends with what it got.

use crate::validate::{MAX_ACTION_LEN, MAX_HOST_NAME_LEN, MAX_HOSTS};
use serde::de::Unexpected;

/// The longest JSON text of a value quoted whole, in characters; a longer
/// one is named by its type and length, so a message stays short.
pub const MAX_QUOTED: usize = 40;

/// The form every host name must have, as the messages say it.
const HOST_NAME: &str = "a host name (letters, digits, hyphens and dots, RFC 1123)";

/// What a message says it got for `json`, the JSON text of one value.
pub fn got_json(json: &str) -> String {
    match json.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<String>(json) {
            Ok(text) => got_str(&text),
            Err(_) => "a string".into(),
        },
        Some(b'[') => "a list".into(),
        Some(b'{') => "an object".into(),
        Some(b'-' | b'0'..=b'9') => got_number(json),
        _ => json.into(),
    }
}

/// What a message says it got for a number written as `text`: the number
/// itself (`-0` is 0), or for a long one how long it is.
fn got_number(text: &str) -> String {
    let integer = !text.contains(['.', 'e', 'E']);
    if text.chars().count() <= MAX_QUOTED {
        if text == "-0" { "0" } else { text }.into()
    } else if integer {
        format!("a number of {} digits", text.trim_start_matches('-').len())
    } else {
        format!("a number {} characters long", text.chars().count())
    }
}

/// What a message says it got for the string `text`: its JSON text, or for
/// a long one how long it is.
pub fn got_str(text: &str) -> String {
    let quoted = quote(text);
    if quoted.chars().count() <= MAX_QUOTED {
        quoted
    } else {
        format!("a string of {} characters", text.chars().count())
    }
}

/// What a message says it got for a value serde describes as `found`.
fn got_unexpected(found: Unexpected<'_>) -> String {
    match found {
        Unexpected::Bool(value) => value.to_string(),
        Unexpected::Signed(value) => got_number(&value.to_string()),
        Unexpected::Unsigned(value) => got_number(&value.to_string()),
        Unexpected::Float(value) => serde_json::Number::from_f64(value).map_or_else(
            || "a number".into(),
            |number| got_number(&number.to_string()),
        ),
        Unexpected::Str(text) => got_str(text),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "an object".into(),
        _ => "null".into(),
    }
}

/// `text` as a JSON string, the way JSON escapes it.
fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// An integer field, or a value of another type in its place.
pub fn integer(field: &str, min: i64, max: i64, got: &str) -> String {
    format!("{field} must be a whole number from {min} to {max}; got {got}")
}

/// `host_list` of the wrong JSON type.
pub fn host_list_type(found: Unexpected<'_>) -> String {
    format!(
        "host_list must be a list of host names; got {}",
        got_unexpected(found)
    )
}

/// `host_list` with too few or too many hosts.
pub fn host_count(count: usize) -> String {
    format!("host_list must name from 1 to {MAX_HOSTS} hosts; got {count}")
}

/// A host of the wrong JSON type.
pub fn host_type(index: usize, found: Unexpected<'_>) -> String {
    format!(
        "host_list[{index}] must be {HOST_NAME}; got {}",
        got_unexpected(found)
    )
}

/// A host that is not a host name, for the first of its rules it breaks.
pub fn host_name(index: usize, host: &str, reason: &str) -> String {
    format!(
        "host_list[{index}] must be {HOST_NAME}; got {} ({reason})",
        got_str(host)
    )
}

/// A host that an earlier one repeats.
pub fn repeated_host(index: usize, host: &str) -> String {
    format!(
        "host_list[{index}] must not repeat an earlier host (names ignore case); got {}",
        got_str(host)
    )
}

/// Why a host is not a host name: the rules in the order they are checked.
pub fn empty_host_name() -> String {
    "it is empty".into()
}

pub fn long_host_name() -> String {
    format!("it is longer than {MAX_HOST_NAME_LEN} bytes")
}

pub fn empty_label() -> String {
    "it has an empty label".into()
}

pub fn long_label() -> String {
    "a label is longer than 63 bytes".into()
}

pub fn bad_character(c: char) -> String {
    format!(
        "{} is not an ASCII letter, digit, hyphen or dot",
        quote(c.encode_utf8(&mut [0; 4]))
    )
}

pub fn hyphen_at_label_edge() -> String {
    "a label starts or ends with a hyphen".into()
}

/// `action` of the wrong JSON type, or not an action name.
pub fn action(got: &str) -> String {
    format!(
        "action must be an action name: 1 to {MAX_ACTION_LEN} ASCII letters, digits, \"_\", \"-\" \
         or \".\", starting with a letter or digit; got {got}"
    )
}

/// `action` of the wrong JSON type.
pub fn action_type(found: Unexpected<'_>) -> String {
    action(&got_unexpected(found))
}

pub fn missing(field: &str) -> String {
    format!("{field} is missing")
}

pub fn duplicate(field: &str) -> String {
    format!("{field} is given more than once")
}

/// A field `ProcedureInput` does not have.
pub fn unknown(field: &str) -> String {
    format!(
        "ProcedureInput has only the fields timeout, retries, host_list, action and job_id; got {}",
        got_str(field)
    )
}

/// An input that is JSON, `text`, but not an object: named by its type
/// alone, since it may be long.
pub fn not_an_object(text: &str) -> String {
    let got = match text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .as_bytes()
        .first()
    {
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't') => "true",
        Some(b'f') => "false",
        Some(b'n') => "null",
        _ => "a number",
    };
    format!("the input must be one JSON object (a ProcedureInput); got {got}")
}

/// An input that is not JSON: `problem` is the parser's own words, with
/// the line and column where it stopped.
pub fn not_json(problem: &str) -> String {
    format!("the input is not valid JSON: {problem}")
}

/// Text after the input's one object.
pub fn trailing(line: usize, column: usize) -> String {
    format!(
        "the input must be one JSON object, but more text follows it at line {line} column {column}"
    )
}

/// Bytes that are not UTF-8, from `offset` on.
pub fn not_utf8(offset: usize) -> String {
    format!("the input is not valid UTF-8 (at byte offset {offset})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages docs/ABI.md's "Messages" spells out, written out here
    /// rather than built from the pieces above.
    #[test]
    fn messages_read_as_the_document_spells_them() {
        assert_eq!(
            integer("timeout", 1, 255, &got_json("300")),
            "timeout must be a whole number from 1 to 255; got 300"
        );
        assert_eq!(
            integer("retries", 0, 255, &got_json(r#""ten""#)),
            r#"retries must be a whole number from 0 to 255; got "ten""#
        );
        assert_eq!(missing("retries"), "retries is missing");
        assert_eq!(
            host_name(2, "bad host", &bad_character(' ')),
            r#"host_list[2] must be a host name (letters, digits, hyphens and dots, RFC 1123); got "bad host" (" " is not an ASCII letter, digit, hyphen or dot)"#
        );
        assert_eq!(
            host_count(0),
            "host_list must name from 1 to 100000 hosts; got 0"
        );
        assert_eq!(
            action(&got_str("rm/-rf")),
            r#"action must be an action name: 1 to 64 ASCII letters, digits, "_", "-" or ".", starting with a letter or digit; got "rm/-rf""#
        );
    }

    #[test]
    fn a_value_is_quoted_as_json_or_named_by_its_length() {
        let forty_digits = "9".repeat(40);
        let long_integer = format!("-{}", "1".repeat(400));
        let long_string = format!(r#""{}""#, "x".repeat(39));
        for (json, got) in [
            ("300", "300"),
            ("-0", "0"),
            ("-0.0", "-0.0"),
            ("1e400", "1e400"),
            ("10.0", "10.0"),
            (forty_digits.as_str(), forty_digits.as_str()),
            (&format!("1{forty_digits}"), "a number of 41 digits"),
            (&long_integer, "a number of 400 digits"),
            (&format!("1.{forty_digits}"), "a number 42 characters long"),
            (r#""ten""#, r#""ten""#),
            (r#""re\u0062oot""#, r#""reboot""#),
            (r#""a\u0000""#, r#""a\u0000""#),
            (r#""é""#, r#""é""#),
            (
                &format!(r#""{}""#, "x".repeat(38)),
                &format!(r#""{}""#, "x".repeat(38)),
            ),
            (&long_string, "a string of 39 characters"),
            ("true", "true"),
            ("false", "false"),
            ("null", "null"),
            ("[1]", "a list"),
            (r#"{"a":1}"#, "an object"),
        ] {
            assert_eq!(got_json(json), got, "{json}");
        }
    }

    #[test]
    fn a_value_serde_found_reads_as_the_same_value_in_json() {
        for (found, got) in [
            (Unexpected::Bool(true), "true"),
            (Unexpected::Signed(-7), "-7"),
            (Unexpected::Unsigned(7), "7"),
            (Unexpected::Float(7.5), "7.5"),
            (Unexpected::Str("x"), r#""x""#),
            (Unexpected::Seq, "a list"),
            (Unexpected::Map, "an object"),
            (Unexpected::Other("null"), "null"),
        ] {
            assert_eq!(got_unexpected(found), got);
        }
    }
}
