//! The JSON entry of the core, stepped as the ABI's host steps it: any
//! input bytes, then any answers from the executor, round after round,
//! through `Procedures::start` and `Procedures::resume`. Every reply must be
//! one well-formed document, every round must ask only what the input
//! allows, and an output must agree with its input.
//!
//! The data is the input up to its first NUL byte (so plain JSON seeds are
//! inputs as they are), then the script of the executor's answers.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rust_lib::calls::Procedures;
use rust_lib::engine::Outcome;
use rust_lib::model::{ProcedureInput, ProcedureOutput, ProcedureResult};
use serde_json::{Map, Value};

/// How the host drives the procedure after starting it.
#[derive(Arbitrary, Debug, Default)]
struct Script<'a> {
    /// No executor granted: the procedure must be over in its first step.
    withhold_executor: bool,
    answers: Vec<Answer<'a>>,
}

/// What the host does with one round.
#[derive(Arbitrary, Debug)]
enum Answer<'a> {
    /// `null`: the executor cannot answer.
    Null,
    /// Any bytes at all as the answer.
    Raw(&'a [u8]),
    /// A well-formed array, one outcome per choice, however many hosts there are.
    Each(Vec<u8>),
    /// The host stops driving: the procedure is abandoned.
    Cancel,
}

impl Answer<'_> {
    /// The answer's bytes, or `None` for a cancel.
    fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Answer::Null => Some(b"null".to_vec()),
            Answer::Raw(bytes) => Some(bytes.to_vec()),
            Answer::Each(choices) => {
                let outcomes: Vec<Outcome> =
                    choices.iter().map(|&choice| outcome(choice)).collect();
                Some(serde_json::to_vec(&outcomes).expect("outcomes serialize"))
            }
            Answer::Cancel => None,
        }
    }
}

fn outcome(choice: u8) -> Outcome {
    match choice % 4 {
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
    }
}

/// The reply's only key and its value: a reply is one object with one key.
fn document(reply: &[u8]) -> (String, Value) {
    let reply: Map<String, Value> =
        serde_json::from_slice(reply).expect("a reply is a JSON object");
    assert_eq!(reply.len(), 1, "a reply has one key: {reply:?}");
    reply.into_iter().next().expect("one key")
}

fn check_error(error: &Value) {
    assert!(error["kind"].is_string() && error["message"].is_string());
    assert!(error["path"].is_array());
}

/// A round asks for the input's action and timeout, on hosts from its
/// host list, each once, on the attempt after the last.
fn check_round(round: &Value, input: &ProcedureInput<'_>, attempt: u64) {
    assert_eq!(round["action"], *input.action);
    assert_eq!(round["timeout"], input.timeout);
    assert_eq!(round["attempt"], attempt);
    assert!(attempt <= u64::from(input.retries) + 1, "too many attempts");
    let hosts = round["hosts"].as_array().expect("hosts is an array");
    assert!(!hosts.is_empty(), "a round has hosts");
    for (i, host) in hosts.iter().enumerate() {
        assert!(
            input.host_list.iter().any(|h| **h == *host),
            "{host} is not an input host"
        );
        assert!(!hosts[..i].contains(host), "{host} twice in one round");
    }
}

fn check_output(output: &Value, input: &ProcedureInput<'_>) {
    let output: ProcedureOutput =
        serde_json::from_value(output.clone()).expect("ok holds a ProcedureOutput");
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
}

/// Answers every round of the procedure started with `input` from
/// `answers`; when they run out, every host succeeds, so it ends.
fn drive(
    procedures: &mut Procedures,
    first: (String, Value),
    input: &[u8],
    answers: &[Answer<'_>],
) {
    let input: ProcedureInput = serde_json::from_slice(input).expect("accepted input parses");
    let mut answers = answers.iter();
    let (mut key, mut value) = first;
    let mut attempt = 1;
    while key == "round" {
        check_round(&value, &input, attempt);
        let hosts = value["hosts"].as_array().map_or(0, Vec::len);
        let answer = match answers.next() {
            Some(answer) => answer.bytes(),
            None => Some(serde_json::to_vec(&vec![Outcome::Ok {}; hosts]).expect("serializes")),
        };
        let Some(answer) = answer else {
            assert!(procedures.cancel(), "a procedure was in progress");
            let (key, error) = document(&procedures.resume(b"[]"));
            assert_eq!(
                (key.as_str(), &error["kind"]),
                ("error", &Value::from("invalid_argument"))
            );
            return;
        };
        (key, value) = document(&procedures.resume(&answer));
        attempt += 1;
    }
    assert_eq!(key, "ok", "a started procedure ends with its output");
    check_output(&value, &input);
    assert!(!procedures.cancel(), "the procedure is over");
}

fuzz_target!(|data: &[u8]| {
    let (input, rest) = match data.iter().position(|&byte| byte == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let script: Script<'_> = Unstructured::new(rest).arbitrary().unwrap_or_default();
    let mut procedures = Procedures::default();
    let (key, value) = document(&procedures.start(input, !script.withhold_executor));
    match key.as_str() {
        "error" => {
            check_error(&value);
            assert!(!procedures.cancel(), "a refused input starts nothing");
        }
        "round" if script.withhold_executor => panic!("a dry run asked for a round: {value}"),
        "round" | "ok" => drive(&mut procedures, (key, value), input, &script.answers),
        other => panic!("a reply's key is ok, error or round, not {other}"),
    }
});
