//! The JSON entry of the core, as the ABI drives it: any input bytes, and
//! any answers from the executor, round after round. The reply must always
//! be one well-formed document, and an output must agree with its input.
//!
//! The data is the input up to its first NUL byte (so plain JSON seeds are
//! inputs as they are), then the executor's answers.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rust_lib::calls;
use rust_lib::engine::{Execution, Executor, Outcome, Round};
use rust_lib::model::{ProcedureInput, ProcedureOutput, ProcedureResult};
use serde_json::Value;

/// What the executor answers to one round.
#[derive(Arbitrary, Debug)]
enum Answer<'a> {
    NotGranted,
    Raw(&'a [u8]),
    Unreadable,
    Each(Vec<u8>),
}

/// Replays the answers; when they run out, every attempt succeeds.
struct Replay<'a> {
    answers: std::vec::IntoIter<Answer<'a>>,
}

impl Executor for Replay<'_> {
    fn execute(&mut self, round: &Round<'_>) -> Execution {
        let hosts = round.hosts.len();
        let outcomes = match self.answers.next() {
            Some(Answer::NotGranted) => return Execution::NotGranted,
            Some(Answer::Raw(bytes)) => calls::outcomes_from_answer(Ok(bytes.to_vec()), hosts),
            Some(Answer::Unreadable) => {
                calls::outcomes_from_answer(Err("not a live buffer".into()), hosts)
            }
            Some(Answer::Each(choices)) => choices
                .iter()
                .map(|choice| match choice % 4 {
                    0 => Outcome::Ok {},
                    1 => Outcome::Failed {
                        reason: "down".into(),
                    },
                    2 => Outcome::Timeout {
                        reason: "slow".into(),
                    },
                    _ => Outcome::Refused {
                        reason: "no".into(),
                    },
                })
                .collect(),
            None => vec![Outcome::Ok {}; hosts],
        };
        Execution::Ran(outcomes)
    }
}

fuzz_target!(|data: &[u8]| {
    let (input, rest) = match data.iter().position(|&byte| byte == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let answers: Vec<Answer<'_>> = Unstructured::new(rest).arbitrary().unwrap_or_default();
    let mut executor = Replay {
        answers: answers.into_iter(),
    };
    let reply: Value = serde_json::from_slice(&calls::start_procedure(input, &mut executor))
        .expect("a reply is JSON");
    let document = reply.as_object().expect("a reply is an object");
    assert_eq!(document.len(), 1, "a reply has one key: {reply}");
    if let Some(error) = document.get("error") {
        assert!(error["kind"].is_string() && error["message"].is_string());
        assert!(error["path"].is_array());
        return;
    }
    let input: ProcedureInput = serde_json::from_slice(input).expect("accepted input parses");
    let output: ProcedureOutput =
        serde_json::from_value(document["ok"].clone()).expect("ok holds a ProcedureOutput");
    assert_eq!(output.job_id, input.job_id);
    let failed: Vec<&String> = output.failures.iter().map(|f| &f.host).collect();
    assert_eq!(failed, output.failed_hosts.iter().collect::<Vec<_>>());
    let mut remaining = input.host_list.iter();
    for host in &output.failed_hosts {
        assert!(
            remaining.any(|h| **h == **host),
            "failed hosts keep input order"
        );
    }
    for failure in &output.failures {
        assert!((1..=u16::from(input.retries) + 1).contains(&failure.attempts));
    }
    let expected = match output.failed_hosts.len() {
        0 => ProcedureResult::Success,
        n if n == input.host_list.len() => ProcedureResult::Failure,
        _ => ProcedureResult::Partial,
    };
    assert_eq!(output.result, expected);
    assert!(!output.dry_run || output.failed_hosts.is_empty());
});
