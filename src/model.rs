//! The procedure's input and output, as they cross the boundary in JSON.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ops::Deref;

/// What the host asks for: run `action` on every host of `host_list`.
///
/// Deserializing checks types and ranges only; [`crate::validate`] checks the
/// rules that serde cannot express (host names, duplicates, a zero timeout).
/// Strings borrow from the input where they can: a procedure may name
/// 100,000 hosts, and a copy of each would cost more than the parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureInput<'a> {
    /// Seconds each attempt may take, 1 to 255.
    pub timeout: u8,
    /// Attempts after the first for a host that failed, 0 to 255.
    pub retries: u8,
    /// Host names (RFC 1123), unique ignoring case, in the order to report them.
    #[serde(borrow)]
    pub host_list: Vec<Text<'a>>,
    /// The action's name, as the host's executor knows it.
    #[serde(borrow)]
    pub action: Text<'a>,
    pub job_id: i32,
}

/// A string from the input: borrowed from it unless JSON escapes made a copy
/// necessary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Text(Cow::Borrowed(text))
    }
}

/// Overall result: every host succeeded, some failed, or all failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcedureResult {
    Success,
    Partial,
    Failure,
}

/// Why one host failed, after how many attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFailure {
    pub host: String,
    pub attempts: u16,
    /// The reason the executor gave for the last failed attempt.
    pub reason: String,
}

/// What the procedure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureOutput {
    pub job_id: i32,
    pub result: ProcedureResult,
    /// For people: how many hosts failed, or that nothing ran.
    pub message: String,
    /// The hosts that failed, in input order.
    pub failed_hosts: Vec<String>,
    /// One entry per failed host, in the same order as `failed_hosts`.
    pub failures: Vec<HostFailure>,
    /// True when no executor was granted, so nothing ran.
    pub dry_run: bool,
}
