//! The one error type every export reports: a machine-readable kind, a
//! message for people, and the path of the offending field.

use serde::Serialize;
use std::fmt;

/// What went wrong, as a stable snake_case string the host can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text is not a single well-formed JSON object.
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field the model does not know.
    UnknownField,
    /// The same field appears twice in one object.
    DuplicateField,
    /// A value of the wrong JSON type (a string where an integer belongs, ...).
    InvalidType,
    /// A number outside the range of its field.
    OutOfRange,
    /// A value of the right type that breaks a rule (a malformed host name, ...).
    InvalidValue,
    /// An argument of the ABI itself is unusable (a buffer that is not live, ...).
    InvalidArgument,
    /// Writing to the module's standard output failed.
    Io,
}

/// One step of a field path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSegment {
    fn from(key: &str) -> Self {
        PathSegment::Key(key.to_owned())
    }
}

impl From<usize> for PathSegment {
    fn from(index: usize) -> Self {
        PathSegment::Index(index)
    }
}

/// An error with the path of the field it concerns (empty for the whole input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub path: Vec<PathSegment>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            path: Vec::new(),
        }
    }

    pub fn at(mut self, path: impl IntoIterator<Item = PathSegment>) -> Self {
        self.path = path.into_iter().collect();
        self
    }
}

// Every message about an input names its field itself (src/message.rs).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_kind_and_mixed_path() {
        let error = Error::new(ErrorKind::OutOfRange, "too big").at(["host_list".into(), 0.into()]);
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"kind":"out_of_range","message":"too big","path":["host_list",0]}"#
        );
    }
}
