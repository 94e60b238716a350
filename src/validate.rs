//! Turning untrusted bytes into a [`ProcedureInput`] that obeys every rule,
//! or into an [`Error`] that names the field at fault.

use crate::error::{Error, ErrorKind, PathSegment};
use crate::model::{ProcedureInput, Text};

/// The most hosts one procedure may name.
pub const MAX_HOSTS: usize = 100_000;
/// The longest host name RFC 1123 allows, in bytes.
pub const MAX_HOST_NAME_LEN: usize = 253;
/// The longest action name, in bytes.
pub const MAX_ACTION_LEN: usize = 64;

/// Decodes UTF-8, reporting the offset of the first bad byte.
pub fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidUtf8,
            format!("invalid UTF-8 at byte offset {}", e.valid_up_to()),
        )
    })
}

/// Parses and validates a UTF-8 JSON `ProcedureInput`.
pub fn parse_input(bytes: &[u8]) -> Result<ProcedureInput<'_>, Error> {
    let text = utf8(bytes)?;
    // serde would also accept a struct written as a JSON array; the ABI says object.
    if !text.trim_start().starts_with('{') {
        return Err(Error::new(
            ErrorKind::InvalidJson,
            "expected a JSON object for ProcedureInput",
        ));
    }
    // Tracking the path costs a third of the parse: only an error needs it.
    let input = serde_json::from_str(text).map_err(|plain| describe_json_error(text, &plain))?;
    validate(&input)?;
    Ok(input)
}

/// The error for `text`, which serde refused with `plain`, with the path of
/// the field at fault.
fn describe_json_error(text: &str, plain: &serde_json::Error) -> Error {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, ProcedureInput>(&mut deserializer) {
        Err(error) => json_error(path_segments(error.path()), error.inner()),
        Ok(_) => json_error(
            Vec::new(),
            deserializer.end().err().as_ref().unwrap_or(plain),
        ),
    }
}

/// Checks the rules that types alone do not express.
pub fn validate(input: &ProcedureInput<'_>) -> Result<(), Error> {
    if input.timeout == 0 {
        return Err(
            Error::new(ErrorKind::OutOfRange, "must be between 1 and 255, got 0")
                .at(["timeout".into()]),
        );
    }
    if let Some(problem) = action_problem(&input.action) {
        return Err(Error::new(ErrorKind::InvalidValue, problem).at(["action".into()]));
    }
    let hosts = &input.host_list;
    if hosts.is_empty() {
        return Err(
            Error::new(ErrorKind::InvalidValue, "must name at least one host")
                .at(["host_list".into()]),
        );
    }
    if hosts.len() > MAX_HOSTS {
        return Err(Error::new(
            ErrorKind::InvalidValue,
            format!(
                "names {} hosts, at most {MAX_HOSTS} are allowed",
                hosts.len()
            ),
        )
        .at(["host_list".into()]));
    }
    // The first host at fault, in input order: a malformed name, or a name
    // that an earlier one repeats.
    let malformed = hosts
        .iter()
        .enumerate()
        .find_map(|(index, host)| host_name_problem(host).map(|problem| (index, problem)));
    let valid = malformed.as_ref().map_or(hosts.len(), |(index, _)| *index);
    if let Some(index) = first_repeated(&hosts[..valid]) {
        let host: &str = &hosts[index];
        return Err(Error::new(
            ErrorKind::InvalidValue,
            format!("{host:?} appears more than once (host names ignore case)"),
        )
        .at(["host_list".into(), PathSegment::Index(index)]));
    }
    if let Some((index, problem)) = malformed {
        let host: &str = &hosts[index];
        return Err(Error::new(
            ErrorKind::InvalidValue,
            format!("{host:?} is not a valid host name: {problem}"),
        )
        .at(["host_list".into(), PathSegment::Index(index)]));
    }
    Ok(())
}

/// The index of the first name that an earlier one repeats, ignoring ASCII
/// case. Found by sorting, not hashing: a hash table would need a random
/// seed (and so an import) to resist inputs made to collide.
fn first_repeated(names: &[Text<'_>]) -> Option<usize> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    // Stable, so equal names keep input order: in each run of equal names,
    // the second is the first to repeat one before it.
    order.sort_by(|&a, &b| caseless(&names[a]).cmp(caseless(&names[b])));
    order
        .windows(2)
        .filter(|pair| names[pair[0]].eq_ignore_ascii_case(&names[pair[1]]))
        .map(|pair| pair[1])
        .min()
}

fn caseless(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes().map(|byte| byte.to_ascii_lowercase())
}

/// Why `name` is not an RFC 1123 host name, or `None` when it is one.
pub fn host_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Some(format!("longer than {MAX_HOST_NAME_LEN} bytes"));
    }
    let mut start = 0;
    for label in name.as_bytes().split(|&byte| byte == b'.') {
        if label.is_empty() {
            return Some("it has an empty label".into());
        }
        if label.len() > 63 {
            return Some("a label is longer than 63 bytes".into());
        }
        if let Some(at) = label
            .iter()
            .position(|byte| !(byte.is_ascii_alphanumeric() || *byte == b'-'))
        {
            let c = name[start + at..]
                .chars()
                .next()
                .expect("a byte starts a char here");
            return Some(format!("{c:?} is not a letter, digit or hyphen"));
        }
        if label.starts_with(b"-") || label.ends_with(b"-") {
            return Some("a label starts or ends with a hyphen".into());
        }
        start += label.len() + 1;
    }
    None
}

/// Why `action` is not a valid action name, or `None` when it is one.
///
/// An action is a name the executor looks up, never a command line: ASCII
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn action_problem(action: &str) -> Option<String> {
    let Some(first) = action.chars().next() else {
        return Some("must not be empty".into());
    };
    if action.len() > MAX_ACTION_LEN {
        return Some(format!("must be at most {MAX_ACTION_LEN} bytes long"));
    }
    if !first.is_ascii_alphanumeric() {
        return Some(format!("must start with a letter or digit, not {first:?}"));
    }
    action
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map(|c| format!("{c:?} is not allowed (letters, digits, '_', '-', '.')"))
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<PathSegment> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => {
                Some(PathSegment::Key(variant.clone()))
            }
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

/// Maps a serde_json error at `segments` to our kind and the full path of the field.
fn json_error(mut segments: Vec<PathSegment>, error: &serde_json::Error) -> Error {
    if !error.is_data() {
        // Syntax and end-of-input errors: the position is what helps.
        return Error::new(ErrorKind::InvalidJson, error.to_string()).at(segments);
    }
    // serde only reports data errors as text; its wording is stable across 1.x.
    let position = format!(" at line {} column {}", error.line(), error.column());
    let full = error.to_string();
    let message = full.strip_suffix(&position).unwrap_or(&full).to_owned();
    let kind = if message.starts_with("missing field") {
        ErrorKind::MissingField
    } else if message.starts_with("unknown field") {
        ErrorKind::UnknownField
    } else if message.starts_with("duplicate field") {
        ErrorKind::DuplicateField
    } else if message.starts_with("invalid value: integer") {
        ErrorKind::OutOfRange
    } else if message.starts_with("invalid value") {
        ErrorKind::InvalidValue
    } else {
        ErrorKind::InvalidType
    };
    // Missing and duplicate fields are reported at the enclosing object.
    if matches!(kind, ErrorKind::MissingField | ErrorKind::DuplicateField)
        && let Some(field) = message.split('`').nth(1)
    {
        segments.push(PathSegment::Key(field.to_owned()));
    }
    Error::new(kind, message).at(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}"#;

    fn with(field: &str, value: &str) -> String {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(VALID).unwrap();
        object.insert(field.into(), serde_json::from_str(value).unwrap());
        serde_json::to_string(&object).unwrap()
    }

    fn without(field: &str) -> String {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(VALID).unwrap();
        object.remove(field);
        serde_json::to_string(&object).unwrap()
    }

    fn error_of(json: &str) -> Error {
        parse_input(json.as_bytes()).expect_err(json)
    }

    fn path(segments: &[&str]) -> Vec<PathSegment> {
        segments
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(index) => PathSegment::Index(index),
                Err(_) => PathSegment::Key((*s).into()),
            })
            .collect()
    }

    #[test]
    fn accepts_the_tutorial_input() {
        let input = parse_input(VALID.as_bytes()).unwrap();
        let hosts: Vec<&str> = input.host_list.iter().map(|h| &**h).collect();
        assert_eq!(hosts, ["server1", "server2"]);
        assert_eq!((input.timeout, input.retries, input.job_id), (10, 3, 1));
    }

    #[test]
    fn strings_borrow_from_the_input_unless_escaped() {
        let json = VALID.replace("server2", "serv\\u0065r2");
        let input = parse_input(json.as_bytes()).unwrap();
        assert!(matches!(
            input.host_list[0].0,
            std::borrow::Cow::Borrowed("server1")
        ));
        assert!(matches!(&input.host_list[1].0, std::borrow::Cow::Owned(s) if s == "server2"));
    }

    #[test]
    fn accepts_the_edges_of_every_range() {
        for (field, value) in [
            ("timeout", "1"),
            ("timeout", "255"),
            ("retries", "0"),
            ("retries", "255"),
            ("job_id", "-2147483648"),
            ("job_id", "2147483647"),
            ("action", r#""a""#),
            ("host_list", r#"["a"]"#),
            (
                "host_list",
                r#"["10.0.0.1", "xn--bcher-kva.example", "A-1.b"]"#,
            ),
        ] {
            parse_input(with(field, value).as_bytes()).expect(value);
        }
        let longest_action = format!(r#""{}""#, "a".repeat(MAX_ACTION_LEN));
        parse_input(with("action", &longest_action).as_bytes()).unwrap();
    }

    #[test]
    fn refuses_numbers_out_of_range() {
        for (field, value) in [
            ("timeout", "0"),
            ("timeout", "256"),
            ("timeout", "-1"),
            ("retries", "256"),
            ("retries", "-1"),
            ("job_id", "2147483648"),
            ("job_id", "-2147483649"),
        ] {
            let error = error_of(&with(field, value));
            assert_eq!(error.kind, ErrorKind::OutOfRange, "{field}={value}");
            assert_eq!(error.path, path(&[field]), "{field}={value}");
        }
    }

    #[test]
    fn refuses_wrong_types() {
        for (field, value) in [
            ("timeout", "10.5"),
            ("timeout", "true"),
            ("timeout", r#""10""#),
            ("timeout", "null"),
            ("retries", "[]"),
            ("job_id", "1.0"),
            ("action", "1"),
            ("host_list", r#""server1""#),
            ("host_list", "{}"),
        ] {
            let error = error_of(&with(field, value));
            assert_eq!(error.kind, ErrorKind::InvalidType, "{field}={value}");
            assert_eq!(error.path, path(&[field]), "{field}={value}");
        }
        // Beyond u64, serde_json reads an integer as a float.
        let error = error_of(&with("job_id", "18446744073709551616"));
        assert_eq!(error.kind, ErrorKind::InvalidType);
        assert_eq!(error.path, path(&["job_id"]));
        let error = error_of(&with("host_list", r#"["a", 7]"#));
        assert_eq!(error.kind, ErrorKind::InvalidType);
        assert_eq!(error.path, path(&["host_list", "1"]));
    }

    #[test]
    fn refuses_missing_unknown_and_duplicate_fields() {
        for field in ["timeout", "retries", "host_list", "action", "job_id"] {
            let error = error_of(&without(field));
            assert_eq!(error.kind, ErrorKind::MissingField, "{field}");
            assert_eq!(error.path, path(&[field]));
        }
        let error = error_of(&with("priority", "1"));
        assert_eq!(error.kind, ErrorKind::UnknownField);
        assert_eq!(error.path, path(&["priority"]));

        let duplicate = VALID.replacen('{', r#"{"job_id":2,"#, 1);
        let error = error_of(&duplicate);
        assert_eq!(error.kind, ErrorKind::DuplicateField);
        assert_eq!(error.path, path(&["job_id"]));
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        for text in [
            "",
            "   ",
            "[10, 3, [\"a\"], \"reboot\", 1]",
            "null",
            "{",
            r#"{"timeout":10,}"#,
            &format!("{VALID} trailing"),
            &format!("{VALID}{VALID}"),
        ] {
            let error = error_of(text);
            assert_eq!(error.kind, ErrorKind::InvalidJson, "{text}");
        }
    }

    #[test]
    fn deep_nesting_stops_at_the_first_wrong_type() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let error = error_of(&with("host_list", "[]").replace("[]", &deep));
        assert_eq!(error.kind, ErrorKind::InvalidType);
        assert_eq!(error.path, path(&["host_list", "0"]));
    }

    #[test]
    fn refuses_invalid_utf8_with_its_offset() {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[5] = 0xff;
        let error = parse_input(&bytes).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidUtf8);
        assert!(error.message.contains("offset 5"), "{}", error.message);
    }

    #[test]
    fn refuses_bad_host_lists() {
        let cases = [
            (r#"[]"#, vec!["host_list"]),
            (r#"["ok", ""]"#, vec!["host_list", "1"]),
            (r#"["bad_host"]"#, vec!["host_list", "0"]),
            (r#"["-lead"]"#, vec!["host_list", "0"]),
            (r#"["trail-"]"#, vec!["host_list", "0"]),
            (r#"["a..b"]"#, vec!["host_list", "0"]),
            (r#"["a."]"#, vec!["host_list", "0"]),
            (r#"["a b"]"#, vec!["host_list", "0"]),
            (r#"["a\u0000b"]"#, vec!["host_list", "0"]),
            (r#"["bücher"]"#, vec!["host_list", "0"]),
            (r#"["a;rm -rf /"]"#, vec!["host_list", "0"]),
            (r#"["server1", "SERVER1"]"#, vec!["host_list", "1"]),
            (r#"["a", "b", "a"]"#, vec!["host_list", "2"]),
            (r#"["b", "a", "a", "b"]"#, vec!["host_list", "2"]),
            (r#"["b", "a", "B", "A"]"#, vec!["host_list", "2"]),
            (r#"["x", "y", "X", "bad_host"]"#, vec!["host_list", "2"]),
            (r#"["a", "bad_host", "a"]"#, vec!["host_list", "1"]),
            (r#"["a", "bad_host", "bad_host"]"#, vec!["host_list", "1"]),
        ];
        for (hosts, expected) in cases {
            let error = error_of(&with("host_list", hosts));
            assert_eq!(error.kind, ErrorKind::InvalidValue, "{hosts}");
            assert_eq!(error.path, path(&expected), "{hosts}");
        }
        let long_label = format!(r#"["{}"]"#, "a".repeat(64));
        assert_eq!(
            error_of(&with("host_list", &long_label)).kind,
            ErrorKind::InvalidValue
        );
        let long_name = format!(r#"["{}a"]"#, "a.".repeat(MAX_HOST_NAME_LEN / 2 + 1));
        assert_eq!(
            error_of(&with("host_list", &long_name)).kind,
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn refuses_too_many_hosts() {
        let hosts: Vec<String> = (0..=MAX_HOSTS).map(|i| format!("h{i}")).collect();
        let error = error_of(&with("host_list", &serde_json::to_string(&hosts).unwrap()));
        assert_eq!(error.kind, ErrorKind::InvalidValue);
        assert_eq!(error.path, path(&["host_list"]));
    }

    #[test]
    fn refuses_bad_actions() {
        let too_long = format!(r#""{}""#, "a".repeat(MAX_ACTION_LEN + 1));
        for action in [
            r#""""#,
            r#""-x""#,
            r#""re boot""#,
            r#""rm;ls""#,
            r#""é""#,
            &too_long,
        ] {
            let error = error_of(&with("action", action));
            assert_eq!(error.kind, ErrorKind::InvalidValue, "{action}");
            assert_eq!(error.path, path(&["action"]));
        }
    }
}
