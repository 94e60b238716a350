//! The commonest input, read without serde_json: a `ProcedureInput` written
//! with no spaces, as py_host and the Node host write it,
//! `{"timeout":10,"retries":3,"host_list":["a","b"],"action":"reboot","job_id":1}`.
//!
//! [`read`] takes only what it is sure of: each of the five fields once, in
//! any order, integers in their fields' ranges written as JSON's grammar
//! writes them, and strings with no escape or control character. Anything
//! else, even a document that means the same (a space, an escape, a
//! repeated or unknown field, a number out of range), is `None`, and the
//! full reading of [`crate::validate`] answers, with its errors. So the
//! input read here is the very input serde_json would have read.

use crate::model::{ProcedureInput, Text};
use crate::validate::integer;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The input `text` holds, when it is written as py_host writes it; `None`
/// for anything else (see the module's documentation).
pub fn read(text: &str) -> Option<ProcedureInput<'_>> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    let (mut timeout, mut retries, mut host_list, mut action, mut job_id) =
        (None, None, None, None, None);
    cursor.eat(b'{')?;
    loop {
        let key = cursor.string()?;
        cursor.eat(b':')?;
        match key {
            "timeout" if timeout.is_none() => timeout = Some(cursor.integer()?),
            "retries" if retries.is_none() => retries = Some(cursor.integer()?),
            "host_list" if host_list.is_none() => host_list = Some(cursor.host_list()?),
            "action" if action.is_none() => action = Some(Text::from(cursor.string()?)),
            "job_id" if job_id.is_none() => job_id = Some(cursor.integer()?),
            _ => return None,
        }
        match cursor.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    (cursor.at == text.len()).then_some(())?;
    Some(ProcedureInput {
        timeout: timeout?,
        retries: retries?,
        host_list: host_list?,
        action: action?,
        job_id: job_id?,
    })
}

#[derive(Clone, Copy)]
struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The next byte to read.
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string with no escape and no control character, borrowed.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + closing_quote(&self.bytes[start..])?;
        self.at = end + 1;
        // A quote is a character of its own, so `start` and `end` lie on
        // characters' boundaries of the UTF-8 text.
        self.text.get(start..end)
    }

    /// An integer within `T`'s range: `-`, then `0` or digits that do not
    /// start with `0`, and no fraction or exponent.
    fn integer<T: TryFrom<i64>>(&mut self) -> Option<T> {
        let start = self.at;
        let digits = start + usize::from(self.bytes.get(start) == Some(&b'-'));
        let end = digits
            + self.bytes[digits..]
                .iter()
                .take_while(|byte| byte.is_ascii_digit())
                .count();
        let written = &self.bytes[digits..end];
        // What follows must be a comma or a brace, which the caller checks:
        // a fraction or an exponent would make this no integer.
        let grammatical = written == b"0" || written.first().is_some_and(|&first| first != b'0');
        grammatical.then_some(())?;
        self.at = end;
        integer(&self.text[start..end]).ok()
    }

    /// An array of strings, each borrowed.
    fn host_list(&mut self) -> Option<Vec<Text<'a>>> {
        self.eat(b'[')?;
        let mut hosts = Vec::new();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(hosts);
        }
        // A copy of the cursor in a local: `self` is behind a pointer, which
        // in WebAssembly means linear memory, and every step would load and
        // store `at` there, each access with its bounds check.
        let mut cursor = *self;
        loop {
            hosts.push(Text::from(cursor.string()?));
            match cursor.next()? {
                b',' => continue,
                b']' => break,
                _ => return None,
            }
        }
        self.at = cursor.at;
        Some(hosts)
    }
}

/// Where the first byte of `bytes` that ends a plain string lies, when it
/// is a quote; `None` when it is a backslash or a control character (below
/// 0x20), or when there is none. Read 8 bytes at a time, and the byte found
/// taken from the word read, not loaded again.
#[inline(always)]
fn closing_quote(bytes: &[u8]) -> Option<usize> {
    let (words, rest) = bytes.as_chunks::<8>();
    let quote_in = |index: usize, word: u64| {
        let found = specials(word);
        (found != 0).then(|| {
            let at = found.trailing_zeros() as usize / 8;
            ((word >> (8 * at)) as u8 == b'"').then_some(index * 8 + at)
        })
    };
    // The first word apart: a short string ends in it, with no loop entered.
    if let Some(first) = words.first()
        && let Some(found) = quote_in(0, u64::from_le_bytes(*first))
    {
        return found;
    }
    for (index, word) in words.iter().enumerate().skip(1) {
        if let Some(found) = quote_in(index, u64::from_le_bytes(*word)) {
            return found;
        }
    }
    let start = words.len() * 8;
    let at = rest
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
    (rest[at] == b'"').then_some(start + at)
}

/// The high bit of bytes of `word` that are a quote, a backslash or below
/// 0x20. Exact in the lowest such byte; a byte above it may be flagged
/// wrongly, by the borrow of a subtraction, but only the lowest is used.
#[inline(always)]
fn specials(word: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | control
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::read_fields;

    /// The reference reading: serde_json's, through the validator's fields.
    fn by_serde(text: &str) -> Option<ProcedureInput<'_>> {
        read_fields(text).ok()
    }

    /// What [`read`] must do with `text`: read nothing, or exactly what
    /// serde_json reads.
    fn agrees(text: &str) -> bool {
        read(text).is_none_or(|input| by_serde(text) == Some(input))
    }

    const TUTORIAL: &str = r#"{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}"#;

    #[test]
    fn reads_what_py_host_and_the_node_host_write() {
        let many = format!(
            r#"{{"timeout":255,"retries":0,"host_list":[{}],"action":"a.b-c_d","job_id":-2147483648}}"#,
            (0..1000)
                .map(|i| format!(r#""host{i}.example""#))
                .collect::<Vec<_>>()
                .join(",")
        );
        for text in [
            TUTORIAL,
            &many,
            // Any order of the fields.
            r#"{"job_id":2147483647,"action":"x","host_list":["b"],"retries":255,"timeout":1}"#,
            // What the rules on values refuse, read here all the same.
            r#"{"timeout":0,"retries":0,"host_list":[],"action":"","job_id":-0}"#,
            r#"{"timeout":1,"retries":0,"host_list":["bad_host","BAD_HOST"," ","ü/€"],"action":"rm -rf","job_id":0}"#,
        ] {
            let input = read(text).unwrap_or_else(|| panic!("not read: {text}"));
            assert_eq!(Some(input), by_serde(text), "{text}");
        }
    }

    #[test]
    fn leaves_all_else_to_serde_json() {
        let with = |from: &str, to: &str| TUTORIAL.replacen(from, to, 1);
        for text in [
            with(":10", ": 10"),
            with(",\"retries", ", \"retries"),
            format!(" {TUTORIAL}"),
            format!("{TUTORIAL} "),
            format!("{TUTORIAL}{{}}"),
            with("server1", "server\\u0031"),
            with("server1", "server\\\"1"),
            with("server1", "server\u{1}"),
            with("reboot", "re\\u0062oot"),
            with("\"timeout\"", "\"time\\u006fut\""),
            with(":10", ":010"),
            with(":10", ":10.0"),
            with(":10", ":1e1"),
            with(":10", ":256"),
            with(":10", ":-1"),
            with(":10", ":-"),
            with(":10", ":\"10\""),
            with(":10", ":null"),
            with(":1}", ":2147483648}"),
            with(":1}", ":18446744073709551616}"),
            with("[\"server1\",\"server2\"]", "[\"server1\",]"),
            with("[\"server1\",\"server2\"]", "[\"server1\" ]"),
            with("[\"server1\",\"server2\"]", "[[]]"),
            with("[\"server1\",\"server2\"]", "\"server1\""),
            with("\"reboot\"", "[\"reboot\"]"),
            with("\"timeout\":10,", ""),
            with("\"timeout\":10,", "\"timeout\":10,\"timeout\":10,"),
            with(",\"retries\":3", ",\"retries\":3,\"retries\":3"),
            with(",\"action\"", ",\"action\":\"x\",\"action\""),
            with(",\"host_list\"", ",\"host_list\":[],\"host_list\""),
            with(",\"job_id\":1}", ",\"job_id\":1,\"job_id\":1}"),
            with("\"timeout\":10,", "\"timeout\":10,\"dry_run\":true,"),
            with(",\"job_id\":1}", "}"),
            with(",\"job_id\":1}", ",\"job_id\":1,}"),
            "{}".into(),
            "[]".into(),
            "".into(),
        ] {
            assert!(read(&text).is_none(), "read: {text}");
        }
    }

    /// Every document one byte away from a few read ones (a byte deleted,
    /// replaced or inserted, with bytes that matter to JSON or to a
    /// string): each is read as serde_json reads it, or left to it.
    #[test]
    fn agrees_with_serde_json_one_byte_away() {
        let bases = [
            TUTORIAL.to_owned(),
            r#"{"job_id":-20,"action":"a","host_list":[],"retries":0,"timeout":0}"#.into(),
            r#"{"timeout":1,"retries":99,"host_list":["abcdefgh","abcdefghi","a","ab.c-d"],"action":"x","job_id":-0}"#.into(),
        ];
        let bytes: &[u8] = b"\"\\,:{}[]0129-+.eE aZ_\x00\x01\x1f\x7f";
        let mut checked = 0;
        for base in &bases {
            assert!(read(base).is_some(), "{base}");
            let base = base.as_bytes();
            for at in 0..=base.len() {
                let mut mutants = vec![[&base[..at], &base[(at + 1).min(base.len())..]].concat()];
                for &byte in bytes {
                    mutants.push([&base[..at], &[byte], &base[at..]].concat());
                    if at < base.len() {
                        mutants.push([&base[..at], &[byte], &base[at + 1..]].concat());
                    }
                }
                for mutant in mutants {
                    let text = std::str::from_utf8(&mutant).expect("ASCII");
                    assert!(agrees(text), "{text}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// Each byte value in each place of strings 0 to 17 bytes long, which
    /// are read 8 bytes at a time: a plain string ends at its first quote,
    /// unless a backslash or a control character comes before it.
    #[test]
    fn a_plain_string_ends_at_its_first_quote() {
        let rule = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
                .filter(|&at| bytes[at] == b'"')
        };
        for len in 0..=17 {
            for at in 0..len {
                for byte in 0..=u8::MAX {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        closing_quote(&bytes),
                        rule(&bytes),
                        "{byte:#x} at {at} of {len}"
                    );
                    // Bytes after the first special one do not matter.
                    bytes.push(b'"');
                    bytes.extend([0, b'\\', 0x80, 0xff, b'"']);
                    assert_eq!(closing_quote(&bytes), rule(&bytes), "{bytes:?}");
                }
            }
            assert_eq!(closing_quote(&vec![b'a'; len]), None);
        }
    }
}
