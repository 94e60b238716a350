//! The tutorial's functions over plain bytes, and the JSON that crosses the
//! boundary. Adapters such as the WASI ABI in `abi.rs` call these, so the
//! behaviour is defined and tested once.

use crate::engine::{Executor, Outcome, Round, run_procedure};
use crate::error::{Error, ErrorKind};
use crate::validate::{parse_input, utf8};
use serde::Serialize;
use std::io::Write;

/// The JSON document every call that returns a buffer returns: exactly one of
/// `{"ok": <value>}` or `{"error": {"kind", "message", "path"}}`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Reply<'a, T: Serialize> {
    Ok(&'a T),
    Error(&'a Error),
}

/// The reply document for `result`.
pub fn reply<T: Serialize>(result: &Result<T, Error>) -> Vec<u8> {
    match result {
        Ok(value) => to_json(&Reply::Ok(value)),
        Err(error) => to_json(&Reply::<T>::Error(error)),
    }
}

/// Runs a procedure from UTF-8 JSON input and returns the reply document.
pub fn start_procedure(input: &[u8], executor: &mut dyn Executor) -> Vec<u8> {
    reply(&parse_input(input).map(|input| run_procedure(&input, executor)))
}

/// Prints UTF-8 `text` and a newline to `out`, as the tutorial's `println!`.
pub fn print_string(text: &[u8], out: &mut dyn Write) -> Result<(), Error> {
    print_line(format_args!("{}", utf8(text)?), out)
}

/// Prints a little-endian i32 as the tutorial does.
pub fn print_int(le_bytes: [u8; 4], out: &mut dyn Write) -> Result<(), Error> {
    let number = i32::from_le_bytes(le_bytes);
    print_line(format_args!("Python gave us number {number}"), out)
}

/// Writes the line in one piece: std's line-buffered stdout then passes it
/// straight through, so a failed write leaves nothing buffered to come out
/// with a later call.
fn print_line(line: std::fmt::Arguments<'_>, out: &mut dyn Write) -> Result<(), Error> {
    let line = format!("{line}\n");
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(io_error)
}

/// The JSON request an executor receives for a round.
pub fn round_request(round: &Round<'_>) -> Vec<u8> {
    to_json(round)
}

/// Parses an executor's JSON answer: one outcome object per host of the round.
pub fn parse_outcomes(answer: &[u8]) -> Result<Vec<Outcome>, String> {
    serde_json::from_slice(answer).map_err(|e| e.to_string())
}

/// The outcomes of a round of `hosts` hosts from the executor's answer, or,
/// when the answer is unusable, a failure for each host saying why.
pub fn outcomes_from_answer(answer: Result<Vec<u8>, String>, hosts: usize) -> Vec<Outcome> {
    answer
        .and_then(|answer| parse_outcomes(&answer))
        .unwrap_or_else(|problem| {
            let reason = format!("the executor's answer was unusable: {problem}");
            vec![Outcome::Failed { reason }; hosts]
        })
}

fn io_error(error: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("writing to stdout failed: {error}"))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Our types hold only strings, integers and plain enums: serializing cannot fail.
    serde_json::to_vec(value).expect("reply types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Execution;
    use serde_json::{Value, json};

    struct AllOk;
    impl Executor for AllOk {
        fn execute(&mut self, round: &Round<'_>) -> Execution {
            Execution::Ran(vec![Outcome::Ok {}; round.hosts.len()])
        }
    }

    fn reply(input: &str) -> Value {
        serde_json::from_slice(&start_procedure(input.as_bytes(), &mut AllOk)).unwrap()
    }

    #[test]
    fn an_ok_reply_wraps_the_output() {
        let reply =
            reply(r#"{"timeout":1,"retries":0,"host_list":["h"],"action":"ping","job_id":-4}"#);
        assert_eq!(
            reply,
            json!({"ok": {"job_id": -4, "result": "success", "message": "0 hosts failed",
                          "failed_hosts": [], "failures": [], "dry_run": false}})
        );
    }

    #[test]
    fn an_error_reply_carries_kind_message_and_path() {
        let reply =
            reply(r#"{"timeout":0,"retries":0,"host_list":["h"],"action":"ping","job_id":1}"#);
        assert_eq!(
            reply,
            json!({"error": {"kind": "out_of_range", "message": "must be between 1 and 255, got 0",
                             "path": ["timeout"]}})
        );
    }

    #[test]
    fn print_string_keeps_embedded_nul_and_non_ascii() {
        let mut out = Vec::new();
        print_string("a\0b ünï 🦀".as_bytes(), &mut out).unwrap();
        assert_eq!(out, "a\0b ünï 🦀\n".as_bytes());
    }

    #[test]
    fn print_string_refuses_invalid_utf8_and_prints_nothing() {
        let mut out = Vec::new();
        let error = print_string(b"ok\xc3", &mut out).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidUtf8);
        assert!(out.is_empty());
    }

    #[test]
    fn print_int_reads_little_endian() {
        let mut out = Vec::new();
        print_int((-2i32).to_le_bytes(), &mut out).unwrap();
        print_int(2i32.to_le_bytes(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Python gave us number -2\nPython gave us number 2\n"
        );
    }

    #[test]
    fn a_failing_stdout_is_an_io_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("closed"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(
            print_int([0; 4], &mut Broken).unwrap_err().kind,
            ErrorKind::Io
        );
    }

    #[test]
    fn round_request_and_outcomes_wire_format() {
        let round = Round {
            action: "reboot",
            timeout: 10,
            attempt: 2,
            hosts: vec!["server1"],
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&round_request(&round)).unwrap(),
            json!({"action": "reboot", "timeout": 10, "attempt": 2, "hosts": ["server1"]})
        );
        let outcomes = parse_outcomes(
            br#"[{"status":"ok"},{"status":"failed","reason":"down"},
                 {"status":"timeout","reason":"slow"},{"status":"refused","reason":"no"}]"#,
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                Outcome::Ok {},
                Outcome::Failed {
                    reason: "down".into()
                },
                Outcome::Timeout {
                    reason: "slow".into()
                },
                Outcome::Refused {
                    reason: "no".into()
                },
            ]
        );
        for bad in [
            &b"{}"[..],
            b"[{\"status\":\"maybe\"}]",
            b"[{\"status\":\"failed\"}]",
            b"\xff",
        ] {
            assert!(parse_outcomes(bad).is_err());
        }
    }
}
