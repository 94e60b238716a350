//! The tutorial's functions over plain bytes, and the JSON that crosses the
//! boundary. Adapters such as the WASI ABI in `abi.rs` and the browser build
//! call these, so the behaviour is defined and tested once.
//!
//! A procedure runs in steps the host drives: [`Procedures::start`] answers
//! with the output, an error, or the first round for the host's executor;
//! the host runs it and hands its outcomes to [`Procedures::resume`], again
//! and again until the output comes. No host code runs inside a step.

use crate::engine::{Execution, Outcome, Procedure, Step, dry_run};
use crate::error::{Error, ErrorKind};
use crate::validate::{parse_input, utf8};
use serde::Serialize;
use std::io::Write;

/// The JSON document every call that returns a buffer returns: exactly one of
/// `{"ok": <value>}`, `{"error": {"kind", "message", "path"}}`, or, from a
/// procedure's step, `{"round": <round>}`, which [`Procedures::settle`]
/// writes itself.
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

/// The procedure an adapter holds between the steps its host drives: at
/// most one at a time.
#[derive(Debug, Default)]
pub struct Procedures {
    current: Option<Procedure>,
}

impl Procedures {
    /// Starts a procedure from UTF-8 JSON input, abandoning any still in
    /// progress, and returns its first step's reply: the output (at once
    /// when no executor is granted: a dry run), an error, or a round.
    pub fn start(&mut self, input: &[u8], executor_granted: bool) -> Vec<u8> {
        self.current = None;
        match parse_input(input) {
            Err(error) => reply::<()>(&Err(error)),
            Ok(input) if !executor_granted => reply::<_>(&Ok(dry_run(&input))),
            Ok(input) => self.settle(Step::Round(Procedure::start(&input))),
        }
    }

    /// Takes the executor's answer to the round now due (UTF-8 JSON: one
    /// outcome per host, or `null` when the executor cannot answer) and
    /// returns the next step's reply. An answer that is not one outcome per
    /// host fails every host of the round, with the reason.
    pub fn resume(&mut self, answer: &[u8]) -> Vec<u8> {
        let Some(procedure) = self.current.take() else {
            return reply::<()>(&Err(Error::new(
                ErrorKind::InvalidArgument,
                "no procedure is in progress: start_procedure starts one",
            )));
        };
        let execution = execution_from_answer(answer, procedure.pending_hosts());
        self.settle(procedure.record(execution))
    }

    /// Abandons the procedure in progress; false when there was none.
    pub fn cancel(&mut self) -> bool {
        self.current.take().is_some()
    }

    fn settle(&mut self, step: Step) -> Vec<u8> {
        match step {
            Step::Round(procedure) => {
                let mut document = br#"{"round":"#.to_vec();
                procedure.write_round(&mut document);
                document.push(b'}');
                self.current = Some(procedure);
                document
            }
            Step::Done(output) => reply::<_>(&Ok(output)),
        }
    }
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

/// Writes the line in one piece, so a failed write leaves nothing behind
/// to come out with a later call.
fn print_line(line: std::fmt::Arguments<'_>, out: &mut dyn Write) -> Result<(), Error> {
    let line = format!("{line}\n");
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(io_error)
}

/// What the executor did, from its JSON answer to a round of `hosts` hosts.
fn execution_from_answer(answer: &[u8], hosts: usize) -> Execution {
    if let Some(count) = all_ok(answer) {
        return Execution::AllOk(count);
    }
    // Checked as UTF-8 in one pass over the whole answer, rather than once
    // for each of its strings; bytes that are not UTF-8 are read as before,
    // for the same reason.
    let outcomes = match std::str::from_utf8(answer) {
        Ok(text) => serde_json::from_str::<Option<Vec<Outcome>>>(text),
        Err(_) => serde_json::from_slice(answer),
    };
    match outcomes {
        Ok(None) => Execution::NotGranted,
        Ok(Some(outcomes)) => Execution::Ran(outcomes),
        Err(problem) => {
            let reason = format!("the executor's answer was unusable: {problem}");
            Execution::Ran(vec![Outcome::Failed { reason }; hosts])
        }
    }
}

/// How many outcomes `answer` holds when it is the commonest answer of all,
/// every host ok, written with no spaces as py_host and the Node host write
/// it: `[{"status":"ok"},{"status":"ok"}]`. Compared 16 bytes at a time,
/// where serde_json would read each object key by key. `None` for any other
/// answer, even one that means the same.
fn all_ok(answer: &[u8]) -> Option<usize> {
    const OK: &[u8] = br#"{"status":"ok"}"#;
    const OK_AND_COMMA: &[u8; 16] = br#"{"status":"ok"},"#;
    let (items, last) = answer
        .strip_prefix(b"[")?
        .strip_suffix(b"]")?
        .as_chunks::<16>();
    (last == OK && items.iter().all(|item| item == OK_AND_COMMA)).then_some(items.len() + 1)
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
    use serde_json::{Value, json};

    fn json(document: &[u8]) -> Value {
        serde_json::from_slice(document).unwrap()
    }

    const TUTORIAL: &str = r#"{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}"#;

    #[test]
    fn an_ok_reply_wraps_the_output() {
        let mut procedures = Procedures::default();
        let input = r#"{"timeout":1,"retries":0,"host_list":["h"],"action":"ping","job_id":-4}"#;
        assert_eq!(
            json(&procedures.start(input.as_bytes(), true)),
            json!({"round": {"action": "ping", "timeout": 1, "attempt": 1, "hosts": ["h"]}})
        );
        assert_eq!(
            json(&procedures.resume(br#"[{"status":"ok"}]"#)),
            json!({"ok": {"job_id": -4, "result": "success", "message": "0 hosts failed",
                          "failed_hosts": [], "failures": [], "dry_run": false}})
        );
        assert!(!procedures.cancel(), "the procedure is over");
    }

    #[test]
    fn a_round_reply_is_written_byte_for_byte() {
        let mut procedures = Procedures::default();
        assert_eq!(
            String::from_utf8(procedures.start(TUTORIAL.as_bytes(), true)).unwrap(),
            r#"{"round":{"action":"reboot","timeout":10,"attempt":1,"hosts":["server1","server2"]}}"#
        );
        let answer = br#"[{"status":"ok"},{"status":"failed","reason":"down"}]"#;
        assert_eq!(
            String::from_utf8(procedures.resume(answer)).unwrap(),
            r#"{"round":{"action":"reboot","timeout":10,"attempt":2,"hosts":["server2"]}}"#
        );
    }

    #[test]
    fn an_error_reply_carries_kind_message_and_path() {
        let input = r#"{"timeout":0,"retries":0,"host_list":["h"],"action":"ping","job_id":1}"#;
        assert_eq!(
            json(&Procedures::default().start(input.as_bytes(), true)),
            json!({"error": {"kind": "out_of_range", "message": "timeout must be a whole number from 1 to 255; got 0",
                             "path": ["timeout"]}})
        );
    }

    #[test]
    fn without_an_executor_a_procedure_is_a_dry_run_in_one_step() {
        let mut procedures = Procedures::default();
        let reply = json(&procedures.start(TUTORIAL.as_bytes(), false));
        assert_eq!(reply["ok"]["dry_run"], json!(true));
        assert_eq!(
            reply["ok"]["message"],
            json!(r#"dry run: no executor granted, "reboot" not run on 2 hosts"#)
        );
        assert!(!procedures.cancel());
    }

    #[test]
    fn the_tutorial_traced_round_by_round() {
        // docs/ABI.md's traced example: server1 down, retries 3.
        let mut procedures = Procedures::default();
        let round = |attempt: u16, hosts: &[&str]| json!({"round": {"action": "reboot", "timeout": 10, "attempt": attempt, "hosts": hosts}});
        assert_eq!(
            json(&procedures.start(TUTORIAL.as_bytes(), true)),
            round(1, &["server1", "server2"])
        );
        let down = br#"[{"status":"failed","reason":"host is down"}]"#;
        assert_eq!(
            json(
                &procedures
                    .resume(br#"[{"status":"failed","reason":"host is down"},{"status":"ok"}]"#)
            ),
            round(2, &["server1"])
        );
        assert_eq!(json(&procedures.resume(down)), round(3, &["server1"]));
        assert_eq!(json(&procedures.resume(down)), round(4, &["server1"]));
        assert_eq!(
            json(&procedures.resume(down)),
            json!({"ok": {"job_id": 1, "result": "partial", "message": "1 host failed",
                          "failed_hosts": ["server1"],
                          "failures": [{"host": "server1", "attempts": 4, "reason": "host is down"}],
                          "dry_run": false}})
        );
    }

    #[test]
    fn resuming_with_no_procedure_is_an_error() {
        let mut procedures = Procedures::default();
        let reply = json(&procedures.resume(b"[]"));
        assert_eq!(reply["error"]["kind"], json!("invalid_argument"));
        procedures.start(TUTORIAL.as_bytes(), true);
        assert!(procedures.cancel());
        assert_eq!(
            json(&procedures.resume(br#"[{"status":"ok"},{"status":"ok"}]"#))["error"]["kind"],
            json!("invalid_argument"),
            "a cancelled procedure cannot be resumed"
        );
    }

    #[test]
    fn a_new_procedure_abandons_the_one_in_progress() {
        let mut procedures = Procedures::default();
        procedures.start(TUTORIAL.as_bytes(), true);
        let other = r#"{"timeout":2,"retries":0,"host_list":["x"],"action":"ping","job_id":9}"#;
        assert_eq!(
            json(&procedures.start(other.as_bytes(), true))["round"]["hosts"],
            json!(["x"])
        );
        assert_eq!(
            json(&procedures.resume(br#"[{"status":"ok"}]"#))["ok"]["job_id"],
            json!(9)
        );
    }

    #[test]
    fn an_invalid_input_abandons_the_one_in_progress_too() {
        let mut procedures = Procedures::default();
        procedures.start(TUTORIAL.as_bytes(), true);
        assert!(json(&procedures.start(b"{}", true))["error"].is_object());
        assert!(!procedures.cancel());
    }

    #[test]
    fn every_outcome_status_is_read_and_null_means_no_executor() {
        let outcomes = execution_from_answer(
            br#"[{"status":"ok"},{"status":"failed","reason":"down"},
                 {"status":"timeout","reason":"slow"},{"status":"refused","reason":"no"}]"#,
            4,
        );
        assert_eq!(
            outcomes,
            Execution::Ran(vec![
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
            ])
        );
        assert_eq!(execution_from_answer(b" null ", 2), Execution::NotGranted);
    }

    fn fails_every_host(execution: &Execution) -> bool {
        let unusable = |outcome: &Outcome| {
            matches!(outcome, Outcome::Failed { reason }
                if reason.starts_with("the executor's answer was unusable: "))
        };
        matches!(execution, Execution::Ran(outcomes) if outcomes.iter().all(unusable))
    }

    /// Each host's outcome, an all-ok answer's too; `None` for no executor.
    fn spelled_out(execution: Execution) -> Option<Vec<Outcome>> {
        match execution {
            Execution::NotGranted => None,
            Execution::Ran(outcomes) => Some(outcomes),
            Execution::AllOk(count) => Some(vec![Outcome::Ok {}; count]),
        }
    }

    /// Answers of ok outcomes only, written every way JSON allows or
    /// almost: each is read as one Ok per outcome, or refused, exactly as
    /// serde_json reads it.
    #[test]
    fn an_answer_of_oks_is_read_as_serde_json_reads_it() {
        let ok = r#"{"status":"ok"}"#;
        let oks = |n: usize| format!("[{}]", vec![ok; n].join(","));
        let mut answers: Vec<String> = (0..=4).map(oks).collect();
        answers.extend([
            r#"[{"status":"ok"}, {"status":"ok"}]"#.into(),
            r#" [{"status":"ok"}]"#.into(),
            r#"[{"status": "ok"}]"#.into(),
            r#"[{"status":"ok"},]"#.into(),
            r#"[{"status":"ok"}{"status":"ok"}]"#.into(),
            r#"[{"status":"ok"},{"status":"ok"},{"status":"ok"}"#.into(),
            r#"[{"status":"ok"},{"status":"failed","reason":"x"}]"#.into(),
            r#"[{"status":"failed","reason":"x"},{"status":"ok"}]"#.into(),
            r#"[{"status":"ok"},{"status":"ok"}]]"#.into(),
            r#"[{"status":"ok"},{"status":"0k"}]"#.into(),
            r#"[{"status":"0k"},{"status":"ok"}]"#.into(),
            r#"[{"status":"ok"} {"status":"ok"}]"#.into(),
            r#"[{"status":"ok"},,"status":"ok"}]"#.into(),
        ]);
        for answer in answers {
            let by_serde = match serde_json::from_str::<Option<Vec<Outcome>>>(&answer) {
                Ok(Some(outcomes)) => Some(outcomes),
                _ => None,
            };
            let got = execution_from_answer(answer.as_bytes(), 2);
            match by_serde {
                Some(outcomes) => assert_eq!(spelled_out(got), Some(outcomes), "{answer}"),
                None => assert!(fails_every_host(&got), "{answer}: {got:?}"),
            }
        }
        assert_eq!(
            execution_from_answer(oks(10_000).as_bytes(), 10_000),
            Execution::AllOk(10_000)
        );
        assert_eq!(all_ok(oks(3).as_bytes()), Some(3));
        assert_eq!(all_ok(b"[]"), None, "serde_json reads what is not all ok");
    }

    #[test]
    fn an_unusable_answer_fails_every_host_of_the_round() {
        for bad in [
            &b"{}"[..],
            b"[{\"status\":\"maybe\"}]",
            b"[{\"status\":\"failed\"}]",
            b"[{\"status\":\"ok\",\"extra\":1}]",
            b"\xff",
            b"",
        ] {
            let Execution::Ran(outcomes) = execution_from_answer(bad, 2) else {
                panic!("{bad:?} was read as no executor");
            };
            assert_eq!(outcomes.len(), 2);
            for outcome in outcomes {
                let Outcome::Failed { reason } = outcome else {
                    panic!("{bad:?} did not fail the host");
                };
                assert!(
                    reason.starts_with("the executor's answer was unusable: "),
                    "{reason}"
                );
            }
        }
    }

    #[test]
    fn an_answer_that_is_not_utf8_fails_every_host_even_inside_a_string() {
        let answer = b"[{\"status\":\"failed\",\"reason\":\"\xff\"},{\"status\":\"ok\"}]";
        let Execution::Ran(outcomes) = execution_from_answer(answer, 2) else {
            panic!("read as no executor");
        };
        assert_eq!(outcomes.len(), 2);
        for outcome in outcomes {
            let Outcome::Failed { reason } = outcome else {
                panic!("the host did not fail: {outcome:?}");
            };
            assert!(
                reason.starts_with("the executor's answer was unusable: "),
                "{reason}"
            );
        }
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
}
