//! The procedure's input and output, as they cross the boundary in JSON.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ops::Deref;

/// The host names [`crate::validate::host_name_problem`] accepts, as a
/// pattern for the schema: RFC 1123 labels of letters, digits and inner
/// hyphens, at most 63 bytes each, joined by dots.
pub const HOST_NAME_PATTERN: &str = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
/// The action names [`crate::validate::is_action`] accepts.
pub const ACTION_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$";

/// What the host asks for: run `action` on every host of `host_list`.
//
// `crate::validate` reads it from JSON (types and ranges, as it goes) and
// then checks the rules that types do not express (host names, duplicates,
// a zero timeout), which the schema attributes below restate. Strings
// borrow from the input where they can: a procedure may name 100,000
// hosts, and a copy of each would cost more than the parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
// For the schema: no field but these.
#[serde(deny_unknown_fields)]
pub struct ProcedureInput<'a> {
    /// Seconds each attempt may take, 1 to 255.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub timeout: u8,
    /// Attempts after the first for a host that failed, 0 to 255.
    pub retries: u8,
    /// Host names (RFC 1123), unique ignoring case, in the order to report them.
    #[cfg_attr(feature = "schema", schemars(
        length(min = 1, max = crate::validate::MAX_HOSTS),
        inner(length(min = 1, max = crate::validate::MAX_HOST_NAME_LEN), regex(pattern = HOST_NAME_PATTERN))
    ))]
    pub host_list: Vec<Text<'a>>,
    /// The action's name, as the host's executor knows it.
    #[cfg_attr(feature = "schema", schemars(
        length(min = 1, max = crate::validate::MAX_ACTION_LEN),
        regex(pattern = ACTION_PATTERN)
    ))]
    pub action: Text<'a>,
    /// The caller's number for this procedure, given back in its output.
    // JSON Schema validators treat "format": "int32" as a note only.
    #[cfg_attr(feature = "schema", schemars(range(min = i32::MIN, max = i32::MAX)))]
    pub job_id: i32,
}

// A string from the input: borrowed from it unless JSON escapes made a copy
// necessary. (A comment, not a doc comment: the schema would show it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(inline))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProcedureResult {
    Success,
    Partial,
    Failure,
}

/// Why one host failed, after how many attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HostFailure {
    /// The host, as `host_list` names it.
    pub host: String,
    /// 1 to 256: the first attempt and up to 255 retries.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 256)))]
    pub attempts: u16,
    /// The reason the executor gave for the last failed attempt.
    pub reason: String,
}

/// What the procedure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProcedureOutput {
    /// The input's `job_id`.
    #[cfg_attr(feature = "schema", schemars(range(min = i32::MIN, max = i32::MAX)))]
    pub job_id: i32,
    /// `success`: every host succeeded; `partial`: some failed; `failure`: all failed.
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
