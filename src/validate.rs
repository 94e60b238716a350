//! Turning untrusted bytes into a [`ProcedureInput`] that obeys every rule,
//! or into an [`Error`] that names the field at fault.

use crate::compact;
use crate::error::{Error, ErrorKind, PathSegment};
use crate::message;
use crate::model::{ProcedureInput, Text};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::error::Category;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// The most hosts one procedure may name.
pub const MAX_HOSTS: usize = 100_000;
/// The longest host name RFC 1123 allows, in bytes.
pub const MAX_HOST_NAME_LEN: usize = 253;
/// The longest action name, in bytes.
pub const MAX_ACTION_LEN: usize = 64;

/// Decodes UTF-8, reporting the offset of the first bad byte.
pub fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidUtf8, message::not_utf8(e.valid_up_to())))
}

/// Parses and validates a UTF-8 JSON `ProcedureInput`.
pub fn parse_input(bytes: &[u8]) -> Result<ProcedureInput<'_>, Error> {
    let text = utf8(bytes)?;
    // The input as py_host and the Node host write it is read without
    // serde_json; anything else, and every error, is serde_json's to read.
    let input = match compact::read(text) {
        Some(input) => input,
        None => read_fields(text)?,
    };
    validate(&input)?;
    Ok(input)
}

/// Reads the fields of a `ProcedureInput` from JSON `text` with serde_json,
/// their types and ranges checked, but not yet the rules of [`validate`].
pub(crate) fn read_fields(text: &str) -> Result<ProcedureInput<'_>, Error> {
    let refusal = Refusal::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let input = Fields(&refusal)
        .deserialize(&mut deserializer)
        .map_err(|error| {
            // Every field records why it refused a value. Anything else is
            // the parser's: a value that is not an object (the only error of
            // data it raises itself), or text that is not JSON.
            let problem = match error.classify() {
                Category::Data => message::not_an_object(text),
                _ => message::not_json(&error.to_string()),
            };
            refusal
                .take()
                .unwrap_or_else(|| Error::new(ErrorKind::InvalidJson, problem))
        })?;
    deserializer.end().map_err(|error| {
        Error::new(
            ErrorKind::InvalidJson,
            message::trailing(error.line(), error.column()),
        )
    })?;
    Ok(input)
}

/// Checks the rules that types alone do not express.
pub fn validate(input: &ProcedureInput<'_>) -> Result<(), Error> {
    if input.timeout < TIMEOUT.min as u8 {
        return Err(Error::new(
            ErrorKind::OutOfRange,
            TIMEOUT.message(&input.timeout.to_string()),
        )
        .at(["timeout".into()]));
    }
    if !is_action(&input.action) {
        return Err(Error::new(
            ErrorKind::InvalidValue,
            message::action(&message::got_str(&input.action)),
        )
        .at(["action".into()]));
    }
    let hosts = &input.host_list;
    if hosts.is_empty() || hosts.len() > MAX_HOSTS {
        return Err(
            Error::new(ErrorKind::InvalidValue, message::host_count(hosts.len()))
                .at(["host_list".into()]),
        );
    }
    match first_fault(hosts) {
        None => Ok(()),
        Some(HostFault::Repeated(index)) => {
            let host: &str = &hosts[index];
            Err(
                Error::new(ErrorKind::InvalidValue, message::repeated_host(index, host))
                    .at(["host_list".into(), PathSegment::Index(index)]),
            )
        }
        Some(HostFault::Malformed(index, problem)) => {
            let host: &str = &hosts[index];
            Err(Error::new(
                ErrorKind::InvalidValue,
                message::host_name(index, host, &problem),
            )
            .at(["host_list".into(), PathSegment::Index(index)]))
        }
    }
}

/// A host of the list at fault, by its index.
#[derive(Debug, PartialEq, Eq)]
enum HostFault {
    /// The name repeats an earlier one, ignoring ASCII case.
    Repeated(usize),
    /// The name is not a host name, for this reason.
    Malformed(usize, String),
}

/// The first host at fault, in input order: a malformed name, or a name
/// that an earlier one repeats (only names before the first malformed one
/// count as earlier ones).
fn first_fault(hosts: &[Text<'_>]) -> Option<HostFault> {
    // About four times the probes a table at most half full takes on average.
    first_fault_hashed(hosts, 4 * hosts.len() + 64).unwrap_or_else(|| first_fault_sorted(hosts))
}

/// [`first_fault`] name by name, then sorting for the repeated ones: O(n
/// log n) whatever the names.
fn first_fault_sorted(hosts: &[Text<'_>]) -> Option<HostFault> {
    let malformed = hosts
        .iter()
        .enumerate()
        .find_map(|(index, host)| host_name_problem(host).map(|problem| (index, problem)));
    let valid = malformed.as_ref().map_or(hosts.len(), |(index, _)| *index);
    if let Some(index) = first_repeated_sorted(&hosts[..valid]) {
        return Some(HostFault::Repeated(index));
    }
    malformed.map(|(index, problem)| HostFault::Malformed(index, problem))
}

/// [`first_fault`] in one pass in input order, each name checked and
/// hashed from the same words and looked up in a hash table; `None` when
/// probing the table took more than `budget` steps. The hash is not keyed
/// (a random seed would need an import), so inputs made to collide are
/// possible: they exhaust the budget, and sorting answers instead.
fn first_fault_hashed(hosts: &[Text<'_>], budget: usize) -> Option<Option<HostFault>> {
    let slots = (hosts.len() * 2).next_power_of_two().max(16);
    let mask = slots - 1;
    // The multiplication carries every bit of the input only into the top bits.
    let shift = 64 - slots.trailing_zeros();
    let mut table: Vec<u32> = vec![0; slots];
    let mut hashes: Vec<u64> = Vec::with_capacity(hosts.len());
    let mut steps = 0;
    for (index, name) in hosts.iter().enumerate() {
        let hash = match host_name_hash(name.as_bytes()) {
            Some(hash) => hash,
            None => match why_not_a_host_name(name) {
                Some(problem) => return Some(Some(HostFault::Malformed(index, problem))),
                // The two checks agree (a test says so): not reached.
                None => caseless_hash(name),
            },
        };
        hashes.push(hash);
        let mut slot = (hash >> shift) as usize;
        // The first slot apart: it is nearly always free, and then no loop
        // is entered (each step of a loop checks the epoch in WebAssembly).
        if table[slot] == 0 {
            table[slot] = (index + 1) as u32;
            continue;
        }
        loop {
            let held = table[slot] as usize;
            if held == 0 {
                table[slot] = (index + 1) as u32;
                break;
            }
            let earlier = held - 1;
            if hashes[earlier] == hash && hosts[earlier].eq_ignore_ascii_case(name) {
                return Some(Some(HostFault::Repeated(index)));
            }
            steps += 1;
            if steps > budget {
                return None;
            }
            slot = (slot + 1) & mask;
        }
    }
    Some(None)
}

/// FxHash's mixing over 8 bytes at a time, each byte with bit 0x20 set:
/// that makes an ASCII letter lowercase, so names equal ignoring case hash
/// the same.
fn caseless_hash(name: &str) -> u64 {
    let (words, rest) = name.as_bytes().as_chunks::<8>();
    let hash = words.iter().fold(name.len() as u64, |hash, word| {
        mix_caseless(hash, u64::from_le_bytes(*word))
    });
    match rest {
        [] => hash,
        _ => mix_caseless(hash, last_bytes(name.as_bytes())),
    }
}

/// One step of [`caseless_hash`]: the next 8 bytes of the name.
#[inline(always)]
fn mix_caseless(hash: u64, word: u64) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    (hash.rotate_left(5) ^ (word | 0x2020_2020_2020_2020)).wrapping_mul(K)
}

/// The bytes of `name` after its last whole 8 (`name.len() % 8` of them),
/// in the low bytes of a word whose other bytes are 0. Read as one word,
/// or two that overlap, that end where the name ends: byte by byte, every
/// byte would be a load and a step of a loop, and copying a slice of
/// unknown length into a word a call of memcpy.
#[inline(always)]
fn last_bytes(name: &[u8]) -> u64 {
    let rest = name.len() % 8;
    if rest == 0 {
        return 0;
    }
    // Bytes that two loads both read are the same bytes, so OR keeps them.
    let overlapping = |low: u64, high: u64, size: usize| low | (high << (8 * (rest - size)));
    if let Some(last) = name.last_chunk::<8>() {
        u64::from_le_bytes(*last) >> (8 * (8 - rest))
    } else if let (Some(first), Some(last)) = (name.first_chunk::<4>(), name.last_chunk::<4>()) {
        let word = |bytes: &[u8; 4]| u64::from(u32::from_le_bytes(*bytes));
        overlapping(word(first), word(last), 4)
    } else if let (Some(first), Some(last)) = (name.first_chunk::<2>(), name.last_chunk::<2>()) {
        let word = |bytes: &[u8; 2]| u64::from(u16::from_le_bytes(*bytes));
        overlapping(word(first), word(last), 2)
    } else {
        u64::from(name[0])
    }
}

/// The index of the first name that an earlier one repeats, ignoring ASCII
/// case, by sorting: O(n log n) whatever the names.
fn first_repeated_sorted(names: &[Text<'_>]) -> Option<usize> {
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
    if is_host_name(name.as_bytes()) {
        None
    } else {
        why_not_a_host_name(name)
    }
}

/// Each rule of a host name in turn, for the message about the first that
/// `name` breaks; `None` when it breaks none.
#[inline(never)]
fn why_not_a_host_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(message::empty_host_name());
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Some(message::long_host_name());
    }
    let mut start = 0;
    for label in name.as_bytes().split(|&byte| byte == b'.') {
        if label.is_empty() {
            return Some(message::empty_label());
        }
        if label.len() > 63 {
            return Some(message::long_label());
        }
        if let Some(at) = label
            .iter()
            .position(|byte| !(byte.is_ascii_alphanumeric() || *byte == b'-'))
        {
            let c = name[start + at..]
                .chars()
                .next()
                .expect("a byte starts a char here");
            return Some(message::bad_character(c));
        }
        if label.starts_with(b"-") || label.ends_with(b"-") {
            return Some(message::hyphen_at_label_edge());
        }
        start += label.len() + 1;
    }
    None
}

/// Whether `name` is an RFC 1123 host name.
fn is_host_name(name: &[u8]) -> bool {
    host_name_hash(name).is_some()
}

/// [`caseless_hash`] of `name` when it is an RFC 1123 host name, else
/// `None`: nearly every name is one, and [`why_not_a_host_name`] would look
/// for the first bad byte of each label to say so, an early exit in every
/// step of the loop. Here the bytes are read 8 at a time as one integer,
/// checked and hashed, and only the dots' places looked at one by one.
#[inline(always)]
fn host_name_hash(name: &[u8]) -> Option<u64> {
    if name.len() > MAX_HOST_NAME_LEN {
        return None;
    }
    // Checked by length first: an empty label has no first or last byte.
    let label_ok = |start: usize, end: usize| {
        (1..=63).contains(&(end - start)) && name[start] != b'-' && name[end - 1] != b'-'
    };
    // Each label that ends at one of the dots of the word at `index`, which
    // starts at `*label_start`; after them, the last label starts there.
    let labels_ok = |index: usize, mut dots: u64, label_start: &mut usize| {
        while dots != 0 {
            let dot = index * 8 + dots.trailing_zeros() as usize / 8;
            if !label_ok(*label_start, dot) {
                return false;
            }
            *label_start = dot + 1;
            dots &= dots - 1;
        }
        true
    };
    // A name of at most 8 bytes is one word: checked and hashed with no
    // loop entered (each step of a loop checks the epoch in WebAssembly).
    if name.len() <= 8 {
        let (word, fill) = match name.first_chunk::<8>() {
            Some(word) => (u64::from_le_bytes(*word), 0),
            None => (
                last_bytes(name),
                u64::from_le_bytes(*b"aaaaaaaa") << (8 * name.len()),
            ),
        };
        let mut label_start = 0;
        let dots = host_name_bytes(word | fill)?;
        return (labels_ok(0, dots, &mut label_start) && label_ok(label_start, name.len()))
            .then(|| mix_caseless(name.len() as u64, word));
    }
    let (words, rest) = name.as_chunks::<8>();
    // The last bytes in a word of their own, hashed as they are and checked
    // filled up with letters.
    let tail = (!rest.is_empty()).then(|| {
        let fill = u64::from_le_bytes(*b"aaaaaaaa") << (8 * rest.len());
        (last_bytes(name), fill)
    });
    let mut label_start = 0;
    let mut hash = name.len() as u64;
    let words = words
        .iter()
        .map(|word| (u64::from_le_bytes(*word), 0))
        .chain(tail);
    for (index, (word, fill)) in words.enumerate() {
        let dots = host_name_bytes(word | fill)?;
        hash = mix_caseless(hash, word);
        if !labels_ok(index, dots, &mut label_start) {
            return None;
        }
    }
    label_ok(label_start, name.len()).then_some(hash)
}

/// The dots of `word`, as the high bit of each byte that is one, when each
/// of its 8 bytes is an ASCII letter, digit, hyphen or dot; else `None`.
fn host_name_bytes(word: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of x that lies in `low..=high`: adding
    // 0x80 - low sets it when the byte is at least `low`, adding 0x7f - high
    // when it is above `high`. With every byte below 0x80 (checked below)
    // no sum carries into the next byte.
    let within = |x: u64, low: u8, high: u8| {
        x.wrapping_add(ONES * u64::from(0x80 - low))
            & !x.wrapping_add(ONES * u64::from(0x7f - high))
            & HIGH
    };
    let digits = within(word, b'0', b'9');
    let letters = within(word | (ONES * 0x20), b'a', b'z');
    let hyphens_and_dots = within(word, b'-', b'.');
    let dots = within(word, b'.', b'.');
    (word & HIGH == 0 && (digits | letters | hyphens_and_dots) == HIGH).then_some(dots)
}

/// Whether `action` is an action name.
///
/// An action is a name the executor looks up, never a command line: ASCII
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn is_action(action: &str) -> bool {
    action.len() <= MAX_ACTION_LEN
        && action
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_alphanumeric())
        && action
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

// Reading the input's fields. serde_json reports a value it refused as
// English text only, so each field checks its own value and records the
// error, kind and path, in a `Refusal` before it fails: the kind never
// depends on anyone's wording.

/// The first problem a field found, recorded where the parse can read it
/// back once serde_json has unwound.
#[derive(Default)]
struct Refusal(Cell<Option<Error>>);

impl Refusal {
    /// Records `error` and returns the deserializer's error to fail with,
    /// which says the same for callers who read only that.
    fn refuse<E: de::Error>(&self, error: Error) -> E {
        let failure = E::custom(&error);
        self.0.set(Some(error));
        failure
    }

    fn take(&self) -> Option<Error> {
        self.0.take()
    }
}

/// Where a value that is not an integer lies in the input.
#[derive(Clone, Copy)]
enum At {
    Action,
    HostList,
    Host(usize),
}

impl At {
    fn path(self) -> Vec<PathSegment> {
        match self {
            At::Action => vec!["action".into()],
            At::HostList => vec!["host_list".into()],
            At::Host(index) => vec!["host_list".into(), index.into()],
        }
    }

    /// The message about `found` here, of the wrong JSON type.
    fn wrong_type(self, found: Unexpected<'_>) -> String {
        match self {
            At::Action => message::action_type(found),
            At::HostList => message::host_list_type(found),
            At::Host(index) => message::host_type(index, found),
        }
    }
}

/// For whoever deserializes an input with serde directly (the fuzz target):
/// the same checks, with the error as text.
impl<'de> Deserialize<'de> for ProcedureInput<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Fields(&Refusal::default()).deserialize(deserializer)
    }
}

/// The input object, field by field.
struct Fields<'r>(&'r Refusal);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ProcedureInput<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        // Anything but an object is refused by serde_json itself, unrecorded.
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ProcedureInput<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object for ProcedureInput")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let refusal = self.0;
        let (mut timeout, mut retries, mut host_list, mut action, mut job_id) =
            (None, None, None, None, None);
        // Keys are strings in JSON, so reading one fails only on bad JSON.
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "timeout" => fill(&mut timeout, "timeout", refusal, || {
                    map.next_value_seed(Integer::new(refusal, &TIMEOUT))
                }),
                "retries" => fill(&mut retries, "retries", refusal, || {
                    map.next_value_seed(Integer::new(refusal, &RETRIES))
                }),
                "host_list" => fill(&mut host_list, "host_list", refusal, || {
                    map.next_value_seed(HostList(refusal))
                }),
                "action" => fill(&mut action, "action", refusal, || {
                    map.next_value_seed(Str(refusal, At::Action))
                }),
                "job_id" => fill(&mut job_id, "job_id", refusal, || {
                    map.next_value_seed(Integer::new(refusal, &JOB_ID))
                }),
                unknown => Err(refusal.refuse(
                    Error::new(ErrorKind::UnknownField, message::unknown(unknown))
                        .at([unknown.into()]),
                )),
            }?;
        }
        let missing = |name: &'static str| {
            refusal.refuse(
                Error::new(ErrorKind::MissingField, message::missing(name)).at([name.into()]),
            )
        };
        Ok(ProcedureInput {
            timeout: timeout.ok_or_else(|| missing("timeout"))?,
            retries: retries.ok_or_else(|| missing("retries"))?,
            host_list: host_list.ok_or_else(|| missing("host_list"))?,
            action: action.ok_or_else(|| missing("action"))?,
            job_id: job_id.ok_or_else(|| missing("job_id"))?,
        })
    }
}

/// Reads the field `name` into its empty `slot`; a second value for it is
/// refused before it is read.
fn fill<T, E: de::Error>(
    slot: &mut Option<T>,
    name: &'static str,
    refusal: &Refusal,
    read: impl FnOnce() -> Result<T, E>,
) -> Result<(), E> {
    if slot.is_some() {
        return Err(refusal.refuse(
            Error::new(ErrorKind::DuplicateField, message::duplicate(name)).at([name.into()]),
        ));
    }
    *slot = Some(read()?);
    Ok(())
}

/// An integer field, and the range its rules allow.
struct IntegerField {
    name: &'static str,
    min: i64,
    max: i64,
}

impl IntegerField {
    /// The one message about this field's value, whatever is wrong with it.
    fn message(&self, got: &str) -> String {
        message::integer(self.name, self.min, self.max, got)
    }
}

// `timeout` is read as a `u8` like `retries`: its 0 is refused with the
// rules on values, after the whole object is read (docs/ABI.md's order).
const TIMEOUT: IntegerField = IntegerField {
    name: "timeout",
    min: 1,
    max: 255,
};
const RETRIES: IntegerField = IntegerField {
    name: "retries",
    min: 0,
    max: 255,
};
const JOB_ID: IntegerField = IntegerField {
    name: "job_id",
    min: i32::MIN as i64,
    max: i32::MAX as i64,
};

/// An integer field of type `T`, from its JSON text: serde_json reads an
/// integer beyond 64 bits as a float, or not at all, so only the text tells
/// a huge integer from a fraction.
struct Integer<'r, T> {
    refusal: &'r Refusal,
    field: &'static IntegerField,
    of: PhantomData<T>,
}

impl<'r, T> Integer<'r, T> {
    fn new(refusal: &'r Refusal, field: &'static IntegerField) -> Self {
        Integer {
            refusal,
            field,
            of: PhantomData,
        }
    }
}

impl<'de, T: TryFrom<i64>> DeserializeSeed<'de> for Integer<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        let json = <&RawValue>::deserialize(deserializer)?.get();
        integer(json).map_err(|kind| {
            let error = Error::new(kind, self.field.message(&message::got_json(json)));
            self.refusal.refuse(error.at([self.field.name.into()]))
        })
    }
}

/// The integer that `json`, one JSON value, writes: a number with no
/// fraction and no exponent (`-0` is 0), within `T`'s range; else the kind
/// of error it is.
pub(crate) fn integer<T: TryFrom<i64>>(json: &str) -> Result<T, ErrorKind> {
    match json.as_bytes()[0] {
        // What JSON calls an integer, of any length: parsing it fails only
        // when it overflows.
        b'-' | b'0'..=b'9' if !json.contains(['.', 'e', 'E']) => json
            .parse::<i64>()
            .ok()
            .and_then(|value| T::try_from(value).ok())
            .ok_or(ErrorKind::OutOfRange),
        _ => Err(ErrorKind::InvalidType),
    }
}

/// The host list: an array of strings.
struct HostList<'r>(&'r Refusal);

impl<'de> DeserializeSeed<'de> for HostList<'_> {
    type Value = Vec<Text<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl HostList<'_> {
    /// Records that the list is `found`, of the wrong JSON type.
    fn wrong<E: de::Error>(&self, found: Unexpected<'_>) -> E {
        wrong_type(self.0, At::HostList, found)
    }
}

impl<'de> Visitor<'de> for HostList<'_> {
    type Value = Vec<Text<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut hosts = Vec::new();
        while let Some(host) = seq.next_element_seed(Str(self.0, At::Host(hosts.len())))? {
            hosts.push(host);
        }
        Ok(hosts)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Signed(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Unsigned(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong(NULL))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong(Unexpected::Map))
    }
}

/// A string field, or a host in the list: borrowed from the input unless
/// JSON escapes made a copy necessary.
struct Str<'r>(&'r Refusal, At);

impl<'de> DeserializeSeed<'de> for Str<'_> {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Str<'_> {
    /// Records that the string is `found`, of the wrong JSON type.
    fn wrong<E: de::Error>(&self, found: Unexpected<'_>) -> E {
        wrong_type(self.0, self.1, found)
    }
}

impl<'de> Visitor<'de> for Str<'_> {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Signed(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Unsigned(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(self.wrong(Unexpected::Float(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.wrong(NULL))
    }

    // Refused before its elements are read: nesting of any depth costs nothing.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong(Unexpected::Seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong(Unexpected::Map))
    }
}

/// JSON's `null`, which serde calls a unit.
const NULL: Unexpected<'static> = Unexpected::Other("null");

/// Records that the value at `at` is `found`, of the wrong JSON type.
fn wrong_type<E: de::Error>(refusal: &Refusal, at: At, found: Unexpected<'_>) -> E {
    refusal.refuse(Error::new(ErrorKind::InvalidType, at.wrong_type(found)).at(at.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}"#;

    /// The fields of VALID, each with its value as JSON text.
    const FIELDS_OF_VALID: [(&str, &str); 5] = [
        ("timeout", "10"),
        ("retries", "3"),
        ("host_list", r#"["server1","server2"]"#),
        ("action", r#""reboot""#),
        ("job_id", "1"),
    ];

    /// VALID with `field` set to the JSON text `value`, kept exactly as
    /// written (a number is not read and written again), or added last.
    fn with(field: &str, value: &str) -> String {
        let mut fields: Vec<String> = FIELDS_OF_VALID
            .iter()
            .filter(|(name, _)| *name != field)
            .map(|(name, json)| format!(r#""{name}":{json}"#))
            .collect();
        let at = FIELDS_OF_VALID
            .iter()
            .position(|(name, _)| *name == field)
            .unwrap_or(fields.len());
        fields.insert(at, format!(r#""{field}":{value}"#));
        format!("{{{}}}", fields.join(","))
    }

    fn without(field: &str) -> String {
        let fields: Vec<String> = FIELDS_OF_VALID
            .iter()
            .filter(|(name, _)| *name != field)
            .map(|(name, json)| format!(r#""{name}":{json}"#))
            .collect();
        format!("{{{}}}", fields.join(","))
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

    /// docs/ABI.md's rule for an integer field: a JSON number written with
    /// no fraction and no exponent is an integer (`-0` is 0) however many
    /// digits it has, and `out_of_range` outside the field's range; any
    /// other value is `invalid_type`.
    #[test]
    fn integers_follow_the_rule_at_every_edge() {
        let googol_to_the_fourth = format!("1{}", "0".repeat(400));
        let beyond_every_range = [
            "18446744073709551616",
            "9223372036854775808",
            "-9223372036854775809",
            "-1000000000000000000000000000000",
            &googol_to_the_fourth,
            &format!("-{googol_to_the_fourth}"),
        ];
        let not_integers = [
            "1.0", "1e2", "1E2", "1e+2", "10.5", "-0.0", "0e0", "-1e30", "1e999", "true", "false",
            "null", r#""10""#, r#""""#, "[]", "[1]", "{}",
        ];
        let mut cases: Vec<(&str, &str, Result<i64, ErrorKind>)> = vec![
            ("timeout", "1", Ok(1)),
            ("timeout", "255", Ok(255)),
            ("timeout", "0", Err(ErrorKind::OutOfRange)),
            ("timeout", "-0", Err(ErrorKind::OutOfRange)),
            ("timeout", "256", Err(ErrorKind::OutOfRange)),
            ("timeout", "-1", Err(ErrorKind::OutOfRange)),
            ("retries", "0", Ok(0)),
            ("retries", "-0", Ok(0)),
            ("retries", "255", Ok(255)),
            ("retries", "256", Err(ErrorKind::OutOfRange)),
            ("retries", "-1", Err(ErrorKind::OutOfRange)),
            ("job_id", "-0", Ok(0)),
            ("job_id", "-2147483648", Ok(-2147483648)),
            ("job_id", "2147483647", Ok(2147483647)),
            ("job_id", "2147483648", Err(ErrorKind::OutOfRange)),
            ("job_id", "-2147483649", Err(ErrorKind::OutOfRange)),
        ];
        for field in ["timeout", "retries", "job_id"] {
            cases.extend(beyond_every_range.map(|v| (field, v, Err(ErrorKind::OutOfRange))));
            cases.extend(not_integers.map(|v| (field, v, Err(ErrorKind::InvalidType))));
        }
        for (field, value, expected) in cases {
            let got = parse_input(with(field, value).as_bytes()).map(|input| match field {
                "timeout" => i64::from(input.timeout),
                "retries" => i64::from(input.retries),
                _ => i64::from(input.job_id),
            });
            match (got, expected) {
                (Ok(number), Ok(expected)) => assert_eq!(number, expected, "{field}={value}"),
                (Err(error), Err(kind)) => {
                    assert_eq!(
                        (error.kind, error.path),
                        (kind, path(&[field])),
                        "{field}={value}"
                    );
                    assert!(
                        error.message.len() < 100,
                        "{field}={value}: {}",
                        error.message
                    );
                }
                (got, _) => panic!("{field}={value}: {got:?}, expected {expected:?}"),
            }
        }
    }

    /// docs/ABI.md's "Messages": one message per integer field, whatever
    /// is wrong with its value, ending with the value as JSON writes it.
    #[test]
    fn an_integer_field_says_its_range_and_what_it_got() {
        let long_string = format!(r#""{}""#, "9".repeat(39));
        for (field, value, message) in [
            (
                "timeout",
                "300",
                "timeout must be a whole number from 1 to 255; got 300",
            ),
            (
                "timeout",
                "0",
                "timeout must be a whole number from 1 to 255; got 0",
            ),
            (
                "timeout",
                "-0",
                "timeout must be a whole number from 1 to 255; got 0",
            ),
            (
                "retries",
                r#""ten""#,
                r#"retries must be a whole number from 0 to 255; got "ten""#,
            ),
            (
                "retries",
                "1.5",
                "retries must be a whole number from 0 to 255; got 1.5",
            ),
            (
                "retries",
                "1e2",
                "retries must be a whole number from 0 to 255; got 1e2",
            ),
            (
                "retries",
                &long_string,
                "retries must be a whole number from 0 to 255; got a string of 39 characters",
            ),
            (
                "retries",
                "true",
                "retries must be a whole number from 0 to 255; got true",
            ),
            (
                "retries",
                "null",
                "retries must be a whole number from 0 to 255; got null",
            ),
            (
                "retries",
                "[1]",
                "retries must be a whole number from 0 to 255; got a list",
            ),
            (
                "retries",
                r#"{"a":1}"#,
                "retries must be a whole number from 0 to 255; got an object",
            ),
            (
                "job_id",
                "2147483648",
                "job_id must be a whole number from -2147483648 to 2147483647; got 2147483648",
            ),
            (
                "job_id",
                &format!("-1{}", "0".repeat(400)),
                "job_id must be a whole number from -2147483648 to 2147483647; got a number of 401 digits",
            ),
        ] {
            assert_eq!(
                error_of(&with(field, value)).message,
                message,
                "{field}={value}"
            );
        }
    }

    #[test]
    fn an_input_that_is_not_an_object_says_what_it_should_be() {
        for (text, got) in [
            ("[]", "a list"),
            (" 7", "a number"),
            (r#""x""#, "a string"),
            ("true", "true"),
            ("\tfalse", "false"),
            ("null", "null"),
        ] {
            let error = error_of(text);
            assert_eq!((error.kind, error.path), (ErrorKind::InvalidJson, vec![]));
            assert_eq!(
                error.message,
                format!("the input must be one JSON object (a ProcedureInput); got {got}"),
            );
        }
        assert_eq!(
            error_of("reboot server1").message,
            "the input is not valid JSON: expected value at line 1 column 1"
        );
        assert_eq!(
            error_of(&format!("{VALID} x")).message,
            format!(
                "the input must be one JSON object, but more text follows it at line 1 column {}",
                VALID.len() + 2
            )
        );
    }

    #[test]
    fn serde_alone_reads_an_input_with_the_same_checks() {
        let input: ProcedureInput = serde_json::from_str(VALID).unwrap();
        assert_eq!(input, parse_input(VALID.as_bytes()).unwrap());
        let error = serde_json::from_str::<ProcedureInput>(&with("retries", "1e2")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("retries must be a whole number from 0 to 255; got 1e2"),
            "{error}"
        );
    }

    #[test]
    fn refuses_wrong_types() {
        // One value of each JSON type (and both signs of integer, which
        // serde reads apart), each in the place of a string and of a list.
        let every_type = [
            ("true", "true"),
            ("-7", "-7"),
            ("7", "7"),
            ("7.5", "7.5"),
            (r#""x""#, r#""x""#),
            ("null", "null"),
            ("[]", "a list"),
            ("{}", "an object"),
        ];
        let action = "action must be an action name: 1 to 64 ASCII letters, digits, \"_\", \"-\" or \".\", starting with a letter or digit; got";
        let host = "must be a host name (letters, digits, hyphens and dots, RFC 1123); got";
        for (field, expected, right) in [
            ("action", action, r#""x""#),
            (
                "host_list",
                "host_list must be a list of host names; got",
                "[]",
            ),
        ] {
            for (value, got) in every_type.iter().filter(|(value, _)| *value != right) {
                let error = error_of(&with(field, value));
                assert_eq!(error.kind, ErrorKind::InvalidType, "{field}={value}");
                assert_eq!(error.path, path(&[field]), "{field}={value}");
                assert_eq!(error.message, format!("{expected} {got}"));
            }
        }
        for (value, got) in every_type.iter().filter(|(value, _)| *value != r#""x""#) {
            let error = error_of(&with("host_list", &format!(r#"["a", {value}]"#)));
            assert_eq!(error.kind, ErrorKind::InvalidType, "{value}");
            assert_eq!(error.path, path(&["host_list", "1"]), "{value}");
            assert_eq!(error.message, format!("host_list[1] {host} {got}"));
        }
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

        // docs/ABI.md: refused at the name, before the value is read.
        let unreadable = "[".repeat(100_000);
        for (field, kind) in [
            ("job_id", ErrorKind::DuplicateField),
            ("priority", ErrorKind::UnknownField),
        ] {
            let error = error_of(&VALID.replacen('}', &format!(r#","{field}":{unreadable}"#), 1));
            assert_eq!((error.kind, error.path), (kind, path(&[field])));
        }
        // And a missing field only once the object is read.
        let error = error_of(r#"{"action":7}"#);
        assert_eq!(
            (error.kind, error.path),
            (ErrorKind::InvalidType, path(&["action"]))
        );
        let error = error_of(r#"{"job_id":1}"#);
        assert_eq!(
            (error.kind, error.path),
            (ErrorKind::MissingField, path(&["timeout"]))
        );
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

    /// RFC 1123: a name of at most 253 bytes, a label of at most 63. The
    /// lengths are written out, not taken from the code's constants.
    #[test]
    fn host_names_at_the_length_limits() {
        let label = |c: &str, len: usize| c.repeat(len);
        let cases = [
            // 253 bytes: three labels of 63, and one of 61, with 3 dots.
            (
                format!(
                    "{}.{}.{}.{}",
                    label("a", 63),
                    label("b", 63),
                    label("c", 63),
                    label("d", 61)
                ),
                253,
                true,
            ),
            (
                format!(
                    "{}.{}.{}.{}",
                    label("a", 63),
                    label("b", 63),
                    label("c", 63),
                    label("d", 62)
                ),
                254,
                false,
            ),
            (format!("{}a", "a.".repeat(126)), 253, true),
            (format!("{}ab", "a.".repeat(126)), 254, false),
            (label("x", 63), 63, true),
            (label("x", 64), 64, false),
            (format!("a.{}.b", label("x", 63)), 67, true),
            (format!("a.{}.b", label("x", 64)), 68, false),
            (format!("a.{}", label("x", 64)), 66, false),
            (format!("{}.a", label("x", 64)), 66, false),
        ];
        for (host, len, valid) in cases {
            assert_eq!(host.len(), len, "the case is built as described");
            let json = with("host_list", &format!(r#"["ok", "{host}"]"#));
            match parse_input(json.as_bytes()) {
                Ok(input) => {
                    assert!(valid, "{len} bytes accepted: {host}");
                    assert_eq!(&*input.host_list[1], host);
                }
                Err(error) => {
                    assert!(!valid, "{len} bytes refused: {host}: {error}");
                    assert_eq!(error.kind, ErrorKind::InvalidValue, "{host}");
                    assert_eq!(error.path, path(&["host_list", "1"]), "{host}");
                }
            }
            assert_eq!(host_name_problem(&host).is_none(), valid, "{host}");
        }
    }

    #[test]
    fn takes_at_most_max_hosts() {
        let mut hosts: Vec<String> = (0..MAX_HOSTS).map(|i| format!("h{i}")).collect();
        let input = with("host_list", &serde_json::to_string(&hosts).unwrap());
        assert_eq!(
            parse_input(input.as_bytes()).unwrap().host_list.len(),
            100_000
        );
        hosts.push("one-more".into());
        let error = error_of(&with("host_list", &serde_json::to_string(&hosts).unwrap()));
        assert_eq!(error.kind, ErrorKind::InvalidValue);
        assert_eq!(error.path, path(&["host_list"]));
    }

    /// Every string of up to 6 bytes over letters of both cases, a digit,
    /// a hyphen, a dot and two bytes a host name may not hold, and labels
    /// and names around the length limits: the one-pass check agrees with
    /// the rules checked one by one.
    #[test]
    fn the_one_pass_check_agrees_with_every_rule() {
        let alphabet = [b'a', b'Z', b'0', b'-', b'.', b'_', 0xc3];
        let mut names: Vec<Vec<u8>> = vec![Vec::new()];
        let mut shorter = names.clone();
        for _ in 0..6 {
            shorter = shorter
                .iter()
                .flat_map(|name| {
                    alphabet
                        .iter()
                        .map(move |&byte| [&name[..], &[byte]].concat())
                })
                .collect();
            names.extend(shorter.iter().cloned());
        }
        // The same after 8 bytes and before 9, where the check reads whole words.
        let short = names.clone();
        for name in &short {
            names.push([b"abcdefgh", &name[..]].concat());
            names.push([&name[..], b"abcdefghi"].concat());
        }
        for len in [62, 63, 64] {
            for (prefix, suffix) in [("", ""), ("a.", ""), ("", ".a"), ("-", ""), ("", "-")] {
                names.push(format!("{prefix}{}{suffix}", "x".repeat(len)).into_bytes());
            }
        }
        for len in [252, 253, 254] {
            let name = format!("{}.{}", "a".repeat(len - 64), "b".repeat(63));
            names.push(name.into_bytes());
        }
        for name in names {
            let Ok(name) = std::str::from_utf8(&name) else {
                assert!(!is_host_name(&name), "{name:?}");
                continue;
            };
            assert_eq!(
                host_name_hash(name.as_bytes()),
                why_not_a_host_name(name)
                    .is_none()
                    .then(|| caseless_hash(name)),
                "{name:?}"
            );
        }
    }

    /// Each byte value in each place of labels 1 to 17 bytes long, which
    /// the check reads 8 bytes at a time (a name of at most 8 bytes as one
    /// word).
    #[test]
    fn every_byte_in_every_place_of_a_label() {
        for len in 1..=17 {
            for at in 0..len {
                for byte in 0..=u8::MAX {
                    let mut name = vec![b'a'; len];
                    name[at] = byte;
                    let valid = std::str::from_utf8(&name)
                        .is_ok_and(|name| why_not_a_host_name(name).is_none());
                    assert_eq!(is_host_name(&name), valid, "{byte:#x} at {at} of {len}");
                    if let Ok(name) = std::str::from_utf8(&name) {
                        let hash = valid.then(|| caseless_hash(name));
                        assert_eq!(host_name_hash(name.as_bytes()), hash, "{name:?}");
                    }
                    let inner = at > 0 && at < len - 1;
                    let allowed = byte.is_ascii_alphanumeric() || (inner && b"-.".contains(&byte));
                    assert_eq!(valid, allowed, "{byte:#x} at {at} of {len}");
                }
            }
        }
    }

    /// The rule first_fault follows, written out: the first malformed
    /// name, unless a name before it equals, ignoring ASCII case, one
    /// before that.
    fn first_fault_by_the_rule(names: &[&str]) -> Option<HostFault> {
        let malformed = (0..names.len()).find_map(|index| {
            why_not_a_host_name(names[index]).map(|problem| HostFault::Malformed(index, problem))
        });
        let valid = match malformed {
            Some(HostFault::Malformed(index, _)) => index,
            _ => names.len(),
        };
        (0..valid)
            .find(|&j| (0..j).any(|i| names[i].eq_ignore_ascii_case(names[j])))
            .map(HostFault::Repeated)
            .or(malformed)
    }

    fn texts<'a>(names: &[&'a str]) -> Vec<Text<'a>> {
        names.iter().map(|&name| name.into()).collect()
    }

    #[test]
    fn the_first_fault_by_hashing_and_by_sorting() {
        // Names sharing long prefixes and lengths, in both cases, and a few
        // malformed ones, drawn in a fixed pseudo-random order into lists
        // of every length to 60.
        let pool = [
            "a",
            "A",
            "b",
            "host1",
            "HOST1",
            "host10",
            "host01",
            "server1.example.com",
            "SERVER1.example.COM",
            "server1.example.org",
            "server2.example.com",
            "abcdefgh",
            "abcdefghi",
            "ABCDEFGH",
            "abcdefgh.i",
            "x-1",
            "X-1",
            "x-2",
        ];
        let malformed = ["bad_host", "BAD_HOST", "-x", "abcdefgh..i", ""];
        let mut state = 7u32;
        let mut draw = |from: usize| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as usize % from
        };
        let mut faults = [0; 3];
        for len in 0..=60 {
            for _ in 0..40 {
                let names: Vec<&str> = (0..len)
                    .map(|_| match draw(4 * len + 1) {
                        0 => malformed[draw(malformed.len())],
                        _ => pool[draw(pool.len())],
                    })
                    .collect();
                let expected = first_fault_by_the_rule(&names);
                faults[match expected {
                    None => 0,
                    Some(HostFault::Repeated(_)) => 1,
                    Some(HostFault::Malformed(..)) => 2,
                }] += 1;
                let names = texts(&names);
                assert_eq!(first_fault(&names), expected, "{names:?}");
                assert_eq!(first_fault_sorted(&names), expected, "{names:?}");
                assert_eq!(
                    first_fault_hashed(&names, usize::MAX),
                    Some(expected),
                    "{names:?}"
                );
            }
        }
        assert!(faults.iter().all(|&count| count > 100), "{faults:?}");
    }

    #[test]
    fn hashing_ignores_case_in_every_byte() {
        let lower = "server-01.rack-9.example.com";
        let upper = lower.to_ascii_uppercase();
        assert_eq!(caseless_hash(lower), caseless_hash(&upper));
        let names = texts(&["other", lower, &upper]);
        assert_eq!(
            first_fault_hashed(&names, usize::MAX),
            Some(Some(HostFault::Repeated(2)))
        );
    }

    /// Hashing gives up after its budget of probes (inputs made to collide
    /// would take quadratic time), and sorting answers instead; names as
    /// plain as a numbered series never come near that budget.
    #[test]
    fn hashing_gives_up_on_collisions_beyond_its_budget() {
        let owned: Vec<String> = (0..MAX_HOSTS).map(|i| format!("host{i}")).collect();
        let names: Vec<Text<'_>> = owned.iter().map(|name| name.as_str().into()).collect();
        assert_eq!(
            first_fault_hashed(&names[..1000], 0),
            None,
            "1000 names in 2048 slots and not one collision"
        );
        for len in [10, 1000, 10_000, MAX_HOSTS] {
            assert_eq!(
                first_fault_hashed(&names[..len], 2 * len),
                Some(None),
                "{len} numbered names"
            );
        }
        let mut repeated = names[..1000].to_vec();
        repeated.push("HOST999".into());
        repeated.push("host3".into());
        assert_eq!(first_fault_hashed(&repeated, 0), None);
        assert_eq!(first_fault(&repeated), Some(HostFault::Repeated(1000)));
    }

    /// The last bytes of every length of name to 17, each of them any
    /// value: as the loop over them one by one reads them.
    #[test]
    fn the_last_bytes_are_read_as_one_word() {
        let one_by_one = |name: &[u8]| {
            name[name.len() / 8 * 8..]
                .iter()
                .rev()
                .fold(0, |word, &byte| (word << 8) | u64::from(byte))
        };
        for len in 0..=17 {
            let name: Vec<u8> = (1..=len as u8).collect();
            assert_eq!(last_bytes(&name), one_by_one(&name), "{name:?}");
            for at in 0..len {
                for byte in [0, 0x7f, 0x80, 0xff] {
                    let mut name = name.clone();
                    name[at] = byte;
                    assert_eq!(last_bytes(&name), one_by_one(&name), "{name:?}");
                }
            }
        }
    }

    #[test]
    fn a_bad_character_is_named_whichever_label_holds_it() {
        for (name, named) in [
            ("a_b", r#""_""#),
            ("ab.c_d", r#""_""#),
            ("abc.de.fg!h", r#""!""#),
            ("ab.cd.é", r#""é""#),
            ("x.y.z.w€v", r#""€""#),
            ("a\u{1}", r#""\u0001""#),
        ] {
            let expected = format!("{named} is not an ASCII letter, digit, hyphen or dot");
            assert_eq!(host_name_problem(name), Some(expected), "{name}");
        }
    }

    /// docs/ABI.md's "Messages", for the rules on values.
    #[test]
    fn the_rules_on_values_say_what_is_wrong() {
        let host = "must be a host name (letters, digits, hyphens and dots, RFC 1123); got";
        for (field, value, message) in [
            ("host_list", "[]".to_owned(), "host_list must name from 1 to 100000 hosts; got 0".to_owned()),
            ("host_list", r#"["a", "b-"]"#.into(), format!(r#"host_list[1] {host} "b-" (a label starts or ends with a hyphen)"#)),
            ("host_list", r#"["a..b"]"#.into(), format!(r#"host_list[0] {host} "a..b" (it has an empty label)"#)),
            ("host_list", r#"["a", ""]"#.into(), format!(r#"host_list[1] {host} "" (it is empty)"#)),
            ("host_list", format!(r#"["{}.x"]"#, "a".repeat(64)), format!("host_list[0] {host} a string of 66 characters (a label is longer than 63 bytes)")),
            ("host_list", format!(r#"["{}a"]"#, "a.".repeat(127)), format!("host_list[0] {host} a string of 255 characters (it is longer than 253 bytes)")),
            ("host_list", r#"["server1", "SERVER1"]"#.into(), r#"host_list[1] must not repeat an earlier host (names ignore case); got "SERVER1""#.into()),
            ("action", r#""rm/-rf""#.into(), r#"action must be an action name: 1 to 64 ASCII letters, digits, "_", "-" or ".", starting with a letter or digit; got "rm/-rf""#.into()),
        ] {
            assert_eq!(error_of(&with(field, &value)).message, message, "{value}");
        }
        assert_eq!(error_of(&without("retries")).message, "retries is missing");
        assert_eq!(
            error_of(&VALID.replacen('{', r#"{"job_id":2,"#, 1)).message,
            "job_id is given more than once"
        );
        assert_eq!(
            error_of(&with("dry_run", "true")).message,
            r#"ProcedureInput has only the fields timeout, retries, host_list, action and job_id; got "dry_run""#
        );
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[5] = 0xff;
        assert_eq!(
            parse_input(&bytes).unwrap_err().message,
            "the input is not valid UTF-8 (at byte offset 5)"
        );
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
