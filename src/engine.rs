//! The procedure engine: an action on every host, in rounds that the host
//! runs one at a time, failed hosts retried, and a report of what happened.

use crate::model::{HostFailure, ProcedureInput, ProcedureOutput, ProcedureResult, Text};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The attempts due in one round: the same action on each of `hosts`. The
/// module writes a round's JSON itself ([`Procedure::write_round`]); this is
/// what the tests hold that JSON to, as serde_json writes it.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Round<'a> {
    pub action: &'a str,
    /// Seconds each attempt may take; the executor enforces it.
    pub timeout: u8,
    /// 1 for the first attempt, up to `1 + retries`.
    pub attempt: u16,
    pub hosts: Vec<&'a str>,
}

/// How one attempt on one host ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "OutcomeFields")]
pub enum Outcome {
    /// Succeeded.
    Ok {},
    /// Failed; worth another attempt.
    Failed { reason: String },
    /// Ran past the timeout; worth another attempt.
    Timeout { reason: String },
    /// The executor will not run this action: retrying cannot help.
    Refused { reason: String },
}

/// An outcome as an answer spells it. Read as a plain struct, not as an
/// internally tagged enum, which serde buffers field by field: that took a
/// sixth of a round's parsing and the module's largest function.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeFields {
    status: Status,
    #[serde(default, deserialize_with = "present")]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    Failed,
    Timeout,
    Refused,
}

/// A field that, when present, is a string: never `null`.
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<String>, D::Error> {
    String::deserialize(field).map(Some)
}

impl TryFrom<OutcomeFields> for Outcome {
    type Error = &'static str;

    fn try_from(fields: OutcomeFields) -> Result<Self, Self::Error> {
        match (fields.status, fields.reason) {
            (Status::Ok, None) => Ok(Outcome::Ok {}),
            (Status::Ok, Some(_)) => Err("an `ok` outcome has no `reason`"),
            (_, None) => Err("missing field `reason`"),
            (Status::Failed, Some(reason)) => Ok(Outcome::Failed { reason }),
            (Status::Timeout, Some(reason)) => Ok(Outcome::Timeout { reason }),
            (Status::Refused, Some(reason)) => Ok(Outcome::Refused { reason }),
        }
    }
}

/// What an executor did with a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// No executor was granted: nothing ran.
    NotGranted,
    /// One outcome per host of the round, in the round's order.
    Ran(Vec<Outcome>),
    /// As many `ok` outcomes as this: the commonest answer of all, which
    /// leaves nothing to record host by host.
    AllOk(usize),
}

/// A procedure between its rounds: which hosts are still to be tried, and
/// what each one's attempts so far came to. The host drives it, one round
/// at a time, so no host code ever runs inside the engine.
///
/// It keeps its own copy of what it needs of the input, since the input's
/// bytes are gone between rounds.
#[derive(Debug, Clone)]
pub struct Procedure {
    action: String,
    timeout: u8,
    retries: u8,
    job_id: i32,
    /// The hosts' names in input order as a round's request lists them:
    /// each a JSON string, commas between. One buffer, where a string each
    /// would be an allocation per host to make and to free; and the first
    /// round, on every host, copies it whole.
    hosts_json: Vec<u8>,
    /// Where each host's JSON string ends in `hosts_json`, just past its
    /// closing quote.
    ends: Vec<usize>,
    /// The attempt of the round now due: 1 for the first.
    attempt: u16,
    /// The hosts the round now due asks for, by index into `ends`, in
    /// input order.
    pending: Vec<usize>,
    /// Why each pending host's last attempt failed, in the order of
    /// `pending`; empty before the first round's outcomes. A host that
    /// succeeds needs nothing kept, so a round where every host does
    /// leaves nothing to record.
    reasons: Vec<String>,
    /// The hosts that left the rounds refused, in the order they left:
    /// index, attempts, reason.
    refused: Vec<(usize, u16, String)>,
}

/// Where a procedure stands after a step.
#[derive(Debug)]
pub enum Step {
    /// Another round is due: run it and [`Procedure::record`] what it did.
    Round(Procedure),
    /// The procedure is over.
    Done(ProcedureOutput),
}

impl Procedure {
    /// Starts `input`, which must have passed [`crate::validate::validate`]:
    /// its first round is due, on every host. (Without an executor there is
    /// nothing to run: see [`dry_run`].)
    pub fn start(input: &ProcedureInput<'_>) -> Procedure {
        let (hosts_json, ends) = hosts_json(&input.host_list);
        Procedure {
            action: input.action.to_string(),
            timeout: input.timeout,
            retries: input.retries,
            job_id: input.job_id,
            hosts_json,
            ends,
            attempt: 1,
            pending: (0..input.host_list.len()).collect(),
            reasons: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// How many hosts the round now due asks for.
    pub fn pending_hosts(&self) -> usize {
        self.pending.len()
    }

    /// The JSON string of the host at `index` in the input's `host_list`.
    fn host_json(&self, index: usize) -> &[u8] {
        let start = index
            .checked_sub(1)
            .map_or(0, |before| self.ends[before] + 1);
        &self.hosts_json[start..self.ends[index]]
    }

    /// The name of the host at `index` in the input's `host_list`.
    fn host(&self, index: usize) -> &str {
        let json = self.host_json(index);
        std::str::from_utf8(&json[1..json.len() - 1]).expect("a name is copied whole")
    }

    /// The round now due: the input's action on each host still pending.
    #[cfg(test)]
    pub fn round(&self) -> Round<'_> {
        Round {
            action: &self.action,
            timeout: self.timeout,
            attempt: self.attempt,
            hosts: self.pending.iter().map(|&i| self.host(i)).collect(),
        }
    }

    /// Appends the round now due to `out` as JSON, exactly as serde_json
    /// would write it as a struct: `{"action":..,"timeout":..,"attempt":..,"hosts":[..]}`.
    /// Its hosts' JSON strings are copied as they are from `hosts_json`.
    pub fn write_round(&self, out: &mut Vec<u8>) {
        let every_host = self.pending.len() == self.ends.len();
        let hosts_len = if every_host {
            self.hosts_json.len()
        } else {
            self.pending
                .iter()
                .map(|&i| self.host_json(i).len() + 1)
                .sum()
        };
        // The rest of the round, and the few bytes a caller wraps it in, fit
        // in 80 more besides the action: the buffer is never grown.
        out.reserve(hosts_len + self.action.len() + 80);
        out.extend_from_slice(br#"{"action":"#);
        serde_json::to_writer(&mut *out, &self.action).expect("a string always serializes");
        write!(
            out,
            r#","timeout":{},"attempt":{},"hosts":["#,
            self.timeout, self.attempt
        )
        .expect("writing to a Vec cannot fail");
        if every_host {
            // `pending` is every host, in input order: the first round, or
            // one after every host failed.
            out.extend_from_slice(&self.hosts_json);
        } else {
            for (n, &host) in self.pending.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(self.host_json(host));
            }
        }
        out.extend_from_slice(b"]}");
    }

    /// Takes what the executor did with the round now due: the next round,
    /// or the output once no host is left to try (at its first success or
    /// refusal, or after `1 + retries` attempts).
    pub fn record(mut self, execution: Execution) -> Step {
        let pending = self.pending.len();
        let outcomes = match execution {
            Execution::NotGranted if self.attempt == 1 => {
                return Step::Done(dry_run_of(self.job_id, &self.action, self.ends.len()));
            }
            // Refused, so the hosts leave the rounds: there is nobody left to retry them.
            Execution::NotGranted => vec![
                Outcome::Refused {
                    reason: "the executor stopped answering".into()
                };
                pending
            ],
            Execution::AllOk(count) if count == pending => {
                // Every host succeeded: none is left to try, or to report.
                self.pending.clear();
                return Step::Done(self.output());
            }
            Execution::AllOk(count) => answered_wrong_count(count, pending),
            Execution::Ran(outcomes) if outcomes.len() != pending => {
                answered_wrong_count(outcomes.len(), pending)
            }
            Execution::Ran(outcomes) => outcomes,
        };
        let mut still_pending = Vec::new();
        let mut reasons = Vec::new();
        for (&host, outcome) in self.pending.iter().zip(outcomes) {
            match outcome {
                Outcome::Ok {} => {}
                Outcome::Refused { reason } => self.refused.push((host, self.attempt, reason)),
                Outcome::Failed { reason } | Outcome::Timeout { reason } => {
                    still_pending.push(host);
                    reasons.push(reason);
                }
            }
        }
        self.pending = still_pending;
        self.reasons = reasons;
        if self.pending.is_empty() || self.attempt > u16::from(self.retries) {
            return Step::Done(self.output());
        }
        self.attempt += 1;
        Step::Round(self)
    }

    fn output(mut self) -> ProcedureOutput {
        // The hosts refused (in input order within the round each left)
        // and those that failed their last attempt of all, this round's
        // (in input order): a stable sort merges those runs.
        let mut failed = std::mem::take(&mut self.refused);
        let last = self.pending.iter().zip(std::mem::take(&mut self.reasons));
        failed.extend(last.map(|(&host, reason)| (host, self.attempt, reason)));
        failed.sort_by_key(|&(host, ..)| host);
        let failures: Vec<HostFailure> = failed
            .into_iter()
            .map(|(host, attempts, reason)| HostFailure {
                host: self.host(host).to_owned(),
                attempts,
                reason,
            })
            .collect();
        let result = match failures.len() {
            0 => ProcedureResult::Success,
            n if n == self.ends.len() => ProcedureResult::Failure,
            _ => ProcedureResult::Partial,
        };
        ProcedureOutput {
            job_id: self.job_id,
            result,
            message: hosts_failed_message(failures.len()),
            failed_hosts: failures.iter().map(|f| f.host.clone()).collect(),
            failures,
            dry_run: false,
        }
    }
}

/// `hosts` as a round's request lists them, each a JSON string, commas
/// between; and where each one's string ends.
///
/// Each name is copied between its quotes as it is: names that passed
/// validation (RFC 1123: letters, digits, hyphens and dots) never need an
/// escape, and scanning every byte for one took a third of what a round on
/// 10,000 hosts still cost in wasm.
fn hosts_json(hosts: &[Text<'_>]) -> (Vec<u8>, Vec<usize>) {
    debug_assert!(
        hosts.iter().all(|host| !host.bytes().any(needs_escape)),
        "a host name that did not pass validation"
    );
    let size = hosts.iter().map(|host| host.len() + 3).sum::<usize>();
    let mut json = vec![b','; size.saturating_sub(1)];
    let mut ends = Vec::with_capacity(hosts.len());
    let mut start = 0;
    for host in hosts {
        let end = start + host.len() + 2;
        json[start] = b'"';
        copy_name(&mut json[start + 1..end - 1], host.as_bytes());
        json[end - 1] = b'"';
        ends.push(end);
        start = end + 1;
    }
    (json, ends)
}

/// Copies `from` over `to`, of the same length, in two copies of the same
/// fixed size, overlapping as they must. `copy_from_slice` calls memcpy for
/// a length the compiler does not know, which in wasm is `memory.copy`, a
/// call out to the runtime that costs more than copying a short name (and
/// a loop of fixed-size copies is compiled back into one). A name longer
/// than 64 bytes is rare, and long enough for the call to pay.
fn copy_name(to: &mut [u8], from: &[u8]) {
    fn both_ends<const N: usize>(to: &mut [u8], from: &[u8]) {
        let len = from.len();
        to[..N].copy_from_slice(&from[..N]);
        to[len - N..].copy_from_slice(&from[len - N..]);
    }
    match from.len() {
        0 => {}
        1 => to[0] = from[0],
        2..4 => both_ends::<2>(to, from),
        4..8 => both_ends::<4>(to, from),
        8..16 => both_ends::<8>(to, from),
        16..32 => both_ends::<16>(to, from),
        32..=64 => both_ends::<32>(to, from),
        _ => to.copy_from_slice(from),
    }
}

/// Whether JSON escapes `byte` in a string.
fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The outcomes of a round of `pending` hosts whose executor answered
/// `count` outcomes, not one per host: every host failed.
fn answered_wrong_count(count: usize, pending: usize) -> Vec<Outcome> {
    let reason = format!(
        "the executor answered {} for {}",
        counted(count, "outcome"),
        counted(pending, "host")
    );
    vec![failed(&reason); pending]
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        reason: reason.to_owned(),
    }
}

fn hosts_failed_message(count: usize) -> String {
    format!("{} failed", counted(count, "host"))
}

/// `count` and `noun`, plural unless the count is 1: "1 host", "0 hosts".
fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The output of a procedure when no executor was granted: nothing ran.
pub fn dry_run(input: &ProcedureInput<'_>) -> ProcedureOutput {
    dry_run_of(input.job_id, &input.action, input.host_list.len())
}

fn dry_run_of(job_id: i32, action: &str, count: usize) -> ProcedureOutput {
    let hosts = if count == 1 { "host" } else { "hosts" };
    ProcedureOutput {
        job_id,
        result: ProcedureResult::Success,
        message: format!("dry run: no executor granted, {action:?} not run on {count} {hosts}"),
        failed_hosts: Vec::new(),
        failures: Vec::new(),
        dry_run: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs rounds of attempts. The host grants one; the engine never runs anything itself.
    pub trait Executor {
        fn execute(&mut self, round: &Round<'_>) -> Execution;
    }

    /// Runs `input.action` on every host through `executor`, round after round
    /// until the procedure is over: up to `1 + retries` attempts each, a host
    /// leaving the rounds at its first success or refusal.
    ///
    /// `input` must have passed [`crate::validate::validate`].
    pub fn run_procedure(
        input: ProcedureInput<'_>,
        executor: &mut dyn Executor,
    ) -> ProcedureOutput {
        let mut step = Step::Round(Procedure::start(&input));
        loop {
            match step {
                Step::Round(procedure) => {
                    let execution = executor.execute(&procedure.round());
                    step = procedure.record(execution);
                }
                Step::Done(output) => return output,
            }
        }
    }
    use std::collections::HashMap;

    fn input<'a>(hosts: &[&'a str], retries: u8) -> ProcedureInput<'a> {
        ProcedureInput {
            timeout: 10,
            retries,
            host_list: hosts.iter().map(|&h| h.into()).collect(),
            action: "reboot".into(),
            job_id: 7,
        }
    }

    /// Answers from a script: each host fails its first `n` attempts
    /// (`u16::MAX` for always), and records every round it saw.
    #[derive(Default)]
    struct Scripted {
        fails_first: HashMap<&'static str, u16>,
        refuse: bool,
        rounds: Vec<(u16, Vec<String>)>,
    }

    impl Executor for Scripted {
        fn execute(&mut self, round: &Round<'_>) -> Execution {
            self.rounds.push((
                round.attempt,
                round.hosts.iter().map(|h| (*h).to_owned()).collect(),
            ));
            Execution::Ran(
                round
                    .hosts
                    .iter()
                    .map(|host| match self.fails_first.get(host) {
                        _ if self.refuse => Outcome::Refused {
                            reason: "not permitted".into(),
                        },
                        Some(&n) if round.attempt <= n => Outcome::Failed {
                            reason: format!("{host} down on attempt {}", round.attempt),
                        },
                        _ => Outcome::Ok {},
                    })
                    .collect(),
            )
        }
    }

    struct Fixed(Execution);

    impl Executor for Fixed {
        fn execute(&mut self, _: &Round<'_>) -> Execution {
            self.0.clone()
        }
    }

    #[test]
    fn all_succeed_in_one_round() {
        let mut executor = Scripted::default();
        let output = run_procedure(input(&["a", "b"], 3), &mut executor);
        assert_eq!(output.result, ProcedureResult::Success);
        assert_eq!(output.message, "0 hosts failed");
        assert!(output.failed_hosts.is_empty() && output.failures.is_empty());
        assert!(!output.dry_run);
        assert_eq!(output.job_id, 7);
        assert_eq!(executor.rounds, [(1, vec!["a".into(), "b".into()])]);
    }

    #[test]
    fn the_tutorial_scene_server1_down() {
        let mut executor = Scripted {
            fails_first: HashMap::from([("server1", u16::MAX)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["server1", "server2"], 3), &mut executor);
        assert_eq!(output.result, ProcedureResult::Partial);
        assert_eq!(output.message, "1 host failed");
        assert_eq!(output.failed_hosts, ["server1"]);
        assert_eq!(
            output.failures,
            [HostFailure {
                host: "server1".into(),
                attempts: 4,
                reason: "server1 down on attempt 4".into()
            }]
        );
        // One round per attempt, each carrying only the hosts still failing.
        let rounds: Vec<_> = executor.rounds.iter().map(|(a, h)| (*a, h.len())).collect();
        assert_eq!(rounds, [(1, 2), (2, 1), (3, 1), (4, 1)]);
    }

    #[test]
    fn every_host_is_named_as_the_input_spells_it() {
        let names = ["a", "Bravo.example", "c-3", "delta"];
        let mut executor = Scripted {
            refuse: true,
            ..Default::default()
        };
        let output = run_procedure(input(&names, 0), &mut executor);
        assert_eq!(executor.rounds, [(1, names.map(String::from).to_vec())]);
        assert_eq!(output.failed_hosts, names);
        assert_eq!(output.failures[3].host, "delta");
    }

    #[test]
    fn a_flaky_host_recovers_within_its_retries() {
        let mut executor = Scripted {
            fails_first: HashMap::from([("b", 2)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["a", "b"], 2), &mut executor);
        assert_eq!(output.result, ProcedureResult::Success);
        assert_eq!(executor.rounds.len(), 3);
    }

    #[test]
    fn retries_zero_means_one_attempt() {
        let mut executor = Scripted {
            fails_first: HashMap::from([("b", 1)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["a", "b"], 0), &mut executor);
        assert_eq!(output.failed_hosts, ["b"]);
        assert_eq!(output.failures[0].attempts, 1);
        assert_eq!(executor.rounds.len(), 1);
    }

    #[test]
    fn failed_hosts_keep_input_order_and_all_failing_is_failure() {
        let mut executor = Scripted {
            fails_first: HashMap::from([("c", 1), ("a", 9), ("b", 9)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["c", "a", "b"], 1), &mut executor);
        assert_eq!(output.result, ProcedureResult::Partial);
        assert_eq!(output.message, "2 hosts failed");
        assert_eq!(output.failed_hosts, ["a", "b"]);
        let mut executor = Scripted {
            fails_first: HashMap::from([("c", 9), ("a", 9), ("b", 9)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["c", "a", "b"], 1), &mut executor);
        assert_eq!(output.result, ProcedureResult::Failure);
        assert_eq!(output.message, "3 hosts failed");
        assert_eq!(output.failed_hosts, ["c", "a", "b"]);
    }

    #[test]
    fn the_maximum_retries_run_256_attempts() {
        let mut executor = Scripted {
            fails_first: HashMap::from([("a", u16::MAX)]),
            ..Default::default()
        };
        let output = run_procedure(input(&["a"], 255), &mut executor);
        assert_eq!(output.failures[0].attempts, 256);
        assert_eq!(executor.rounds.len(), 256);
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let mut executor = Scripted {
            refuse: true,
            ..Default::default()
        };
        let output = run_procedure(input(&["a", "b"], 3), &mut executor);
        assert_eq!(output.result, ProcedureResult::Failure);
        assert_eq!(output.failures[0].reason, "not permitted");
        assert_eq!(output.failures[0].attempts, 1);
        assert_eq!(executor.rounds.len(), 1);
    }

    #[test]
    fn timeouts_are_retried_like_failures() {
        let timeout = Outcome::Timeout {
            reason: "timed out after 10 s".into(),
        };
        let output = run_procedure(input(&["a"], 2), &mut Fixed(Execution::Ran(vec![timeout])));
        assert_eq!(output.failures[0].attempts, 3);
        assert_eq!(output.failures[0].reason, "timed out after 10 s");
    }

    #[test]
    fn no_executor_is_a_dry_run() {
        let output = run_procedure(input(&["a", "b"], 3), &mut Fixed(Execution::NotGranted));
        assert!(output.dry_run);
        assert_eq!(output.result, ProcedureResult::Success);
        assert_eq!(
            output.message,
            r#"dry run: no executor granted, "reboot" not run on 2 hosts"#
        );
        assert!(output.message.contains("2 hosts"), "{}", output.message);
        assert!(output.failed_hosts.is_empty());
    }

    #[test]
    fn a_wrong_number_of_outcomes_fails_the_round() {
        let output = run_procedure(
            input(&["a", "b"], 1),
            &mut Fixed(Execution::Ran(vec![Outcome::Ok {}])),
        );
        assert_eq!(output.failed_hosts, ["a", "b"]);
        assert_eq!(
            output.failures[0].reason,
            "the executor answered 1 outcome for 2 hosts"
        );
    }

    #[test]
    fn an_executor_withdrawn_after_the_first_round_fails_the_rest() {
        struct FailsThenVanishes;
        impl Executor for FailsThenVanishes {
            fn execute(&mut self, round: &Round<'_>) -> Execution {
                if round.attempt == 1 {
                    Execution::Ran(vec![failed("down"); round.hosts.len()])
                } else {
                    Execution::NotGranted
                }
            }
        }
        let output = run_procedure(input(&["a"], 3), &mut FailsThenVanishes);
        assert!(!output.dry_run);
        assert_eq!(output.failures[0].reason, "the executor stopped answering");
        assert_eq!(output.failures[0].attempts, 2);
    }

    #[test]
    fn a_procedure_held_between_rounds_owns_its_input() {
        let text = String::from(
            r#"{"timeout":5,"retries":1,"host_list":["a","b"],"action":"ping","job_id":3}"#,
        );
        let procedure = Procedure::start(&crate::validate::parse_input(text.as_bytes()).unwrap());
        drop(text);
        let round = procedure.round();
        assert_eq!((round.action, round.timeout, round.attempt), ("ping", 5, 1));
        assert_eq!(round.hosts, ["a", "b"]);
        let outcomes = vec![failed("down"), Outcome::Ok {}];
        let Step::Round(procedure) = procedure.record(Execution::Ran(outcomes)) else {
            panic!("the second round was not due");
        };
        assert_eq!(
            (procedure.round().attempt, procedure.round().hosts),
            (2, vec!["a"])
        );
        let Step::Done(output) = procedure.record(Execution::Ran(vec![failed("still down")]))
        else {
            panic!("a third round was due with retries 1");
        };
        assert_eq!(output.failures[0].attempts, 2);
        assert_eq!(output.failures[0].reason, "still down");
    }

    #[test]
    fn outcomes_are_read_as_docs_abi_spells_them() {
        let read = |text: &str| serde_json::from_str::<Outcome>(text).map_err(|e| e.to_string());
        assert_eq!(read(r#"{"status":"ok"}"#), Ok(Outcome::Ok {}));
        for (status, expected) in [
            ("failed", Outcome::Failed { reason: "r".into() }),
            ("timeout", Outcome::Timeout { reason: "r".into() }),
            ("refused", Outcome::Refused { reason: "r".into() }),
        ] {
            let text = format!(r#"{{"reason":"r","status":"{status}"}}"#);
            assert_eq!(read(&text), Ok(expected));
            let error = read(&format!(r#"{{"status":"{status}"}}"#)).unwrap_err();
            assert!(error.contains("missing field `reason`"), "{error}");
        }
        for (text, problem) in [
            (r#"{"status":"ok","reason":"r"}"#, "no `reason`"),
            (r#"{"status":"failed","reason":null}"#, "invalid type: null"),
            (r#"{"status":"ok","extra":1}"#, "unknown field `extra`"),
            (r#"{"status":"maybe"}"#, "unknown variant `maybe`"),
            (r#"{"reason":"r"}"#, "missing field `status`"),
            (r#""ok""#, "invalid type"),
        ] {
            let error = read(text).unwrap_err();
            assert!(error.contains(problem), "{text}: {error}");
        }
    }

    /// Scripted procedures of every kind of outcome, hosts refused in one
    /// round and failing in another, held to a plain model of the rules
    /// that keeps each host's attempts and last reason.
    #[test]
    fn failures_come_in_input_order_whenever_their_hosts_left() {
        let mut seed = 1u32;
        let mut next = move |below: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) % below
        };
        for _ in 0..2000 {
            let names: Vec<String> = (0..1 + next(8)).map(|i| format!("h{i}")).collect();
            let hosts: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut procedure = Procedure::start(&input(&hosts, next(4) as u8));
            let mut last: Vec<Option<(u16, String)>> = vec![None; hosts.len()];
            let mut pending: Vec<usize> = (0..hosts.len()).collect();
            let output = loop {
                let round = procedure.round();
                let names: Vec<_> = pending.iter().map(|&host| hosts[host]).collect();
                assert_eq!(round.hosts, names);
                let attempt = round.attempt;
                let outcomes: Vec<Outcome> = pending
                    .iter()
                    .map(|&host| {
                        let reason = format!("{host} in round {attempt}");
                        match next(4) {
                            0 => Outcome::Ok {},
                            1 => Outcome::Failed { reason },
                            2 => Outcome::Timeout { reason },
                            _ => Outcome::Refused { reason },
                        }
                    })
                    .collect();
                let mut still_pending = Vec::new();
                for (&host, outcome) in pending.iter().zip(&outcomes) {
                    last[host] = match outcome {
                        Outcome::Ok {} => None,
                        Outcome::Refused { reason } => Some((attempt, reason.clone())),
                        Outcome::Failed { reason } | Outcome::Timeout { reason } => {
                            still_pending.push(host);
                            Some((attempt, reason.clone()))
                        }
                    };
                }
                pending = still_pending;
                match procedure.record(Execution::Ran(outcomes)) {
                    Step::Round(next) => procedure = next,
                    Step::Done(output) => break output,
                }
            };
            let expected: Vec<HostFailure> = (last.into_iter().enumerate())
                .filter_map(|(host, last)| {
                    last.map(|(attempts, reason)| HostFailure {
                        host: hosts[host].into(),
                        attempts,
                        reason,
                    })
                })
                .collect();
            assert_eq!(output.failures, expected);
            let failed: Vec<_> = expected.iter().map(|f| f.host.clone()).collect();
            assert_eq!(output.failed_hosts, failed);
        }
    }

    fn written_round(procedure: &Procedure) -> String {
        let mut out = Vec::new();
        procedure.write_round(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_round_is_written_as_serde_json_writes_it() {
        // Names of every length a label may have, and the longest name.
        let names: Vec<String> = (1..=63)
            .map(|len| "abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)[..len].into())
            .collect();
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        let mut hosts: Vec<&str> = names.iter().map(String::as_str).collect();
        hosts.extend(["x", &longest]);
        // An action JSON escapes, though validation lets none through.
        for (hosts, action, timeout) in [
            (&hosts[..], "reboot", 10),
            (&hosts[..], "re\"boot\n", 255),
            (&["only"][..], "a", 1),
        ] {
            let input = ProcedureInput {
                timeout,
                retries: 255,
                host_list: hosts.iter().map(|&h| h.into()).collect(),
                action: action.into(),
                job_id: 0,
            };
            // Every other host failing, round after round, down to the
            // first host alone until its 256th attempt: rounds on every
            // host, on some, and on one.
            let mut procedure = Procedure::start(&input);
            for round in 1.. {
                let expected = serde_json::to_string(&procedure.round()).unwrap();
                assert_eq!(written_round(&procedure), expected);
                let outcomes = (0..procedure.pending_hosts())
                    .map(|i| {
                        if i % 2 == 0 {
                            failed("down")
                        } else {
                            Outcome::Ok {}
                        }
                    })
                    .collect();
                match procedure.record(Execution::Ran(outcomes)) {
                    Step::Round(next) => procedure = next,
                    Step::Done(_) => {
                        assert_eq!(round, 256);
                        break;
                    }
                }
            }
            // And every name comes back as it was in the output.
            let refused = vec![
                Outcome::Refused {
                    reason: "no".into()
                };
                hosts.len()
            ];
            let Step::Done(output) = Procedure::start(&input).record(Execution::Ran(refused))
            else {
                panic!("a refusal was retried");
            };
            assert_eq!(output.failed_hosts, hosts);
        }
    }

    /// An all-ok answer does what as many `ok` outcomes do one by one: in
    /// the first round and a later one (the last, so that the output shows
    /// it), with one per host, too few or too many.
    #[test]
    fn all_ok_is_as_many_ok_outcomes() {
        for count in 0..=4 {
            for later_round in [false, true] {
                let run = |execution: Execution| {
                    let retries = u8::from(later_round);
                    let mut procedure = Procedure::start(&input(&["a", "b", "c"], retries));
                    if later_round {
                        let outcomes = vec![failed("down"), Outcome::Ok {}, failed("down")];
                        let Step::Round(next) = procedure.record(Execution::Ran(outcomes)) else {
                            panic!("the second round was not due");
                        };
                        procedure = next;
                    }
                    let Step::Done(output) = procedure.record(execution) else {
                        panic!("a round was due after the last");
                    };
                    output
                };
                let one_by_one = run(Execution::Ran(vec![Outcome::Ok {}; count]));
                assert_eq!(run(Execution::AllOk(count)), one_by_one);
            }
        }
    }

    #[test]
    fn needs_escape_is_json_s_rule() {
        // RFC 8259: a quote, a backslash and the control characters
        // U+0000 to U+001F must be escaped in a string; nothing else.
        for byte in 0..=u8::MAX {
            let must = matches!(byte, b'"' | b'\\' | 0x00..=0x1f);
            assert_eq!(needs_escape(byte), must, "{byte:#x}");
        }
    }

    #[test]
    fn copy_name_copies_every_length() {
        for len in 0..=300 {
            let from: Vec<u8> = (1..=len).map(|byte| byte as u8).collect();
            let mut to = vec![0; len];
            copy_name(&mut to, &from);
            assert_eq!(to, from);
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a host name that did not pass validation")]
    fn a_host_name_json_escapes_is_refused_where_assertions_are_on() {
        Procedure::start(&input(&["a", "quo\"te"], 0));
    }
}
