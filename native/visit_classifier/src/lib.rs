//! A whole window of Kafka values classified by the visit record rule in one call, without the
//! interpreter lock.
//!
//! The rule and the schema are defined once, in Python (`streamwatch_common.visit_record`): the schema's
//! leaves are handed to [`Classifier::new`], and this module only decides the records it is sure of.
//! Every record is one of:
//!
//! - `EMPTY` (1): zero bytes;
//! - `VALID` (0) / `INVALID` (3): a one-line JSON object whose schema fields all have the schema's JSON
//!   types (strings, booleans, objects, nulls, and timestamps in the ISO forms below), no key twice;
//!   `INVALID` when a required field is null, absent or blank;
//! - `DEFER` (4): anything else: the caller classifies it with the reference implementation (pyarrow's
//!   JSON reader). This module never calls a record unparseable itself, so it cannot disagree with the
//!   rule on a bad record; tests check that it agrees on every record it does decide.
//!
//! Per window it also counts, over the decided parsed records, the null-or-blank values of each leaf
//! and the repeats of the id leaf, and (optionally) returns each leaf as Arrow buffers.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

const VALID: u8 = 0;
const EMPTY: u8 = 1;
const INVALID: u8 = 3;
const DEFER: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Bool,
    Timestamp,
}

enum Node {
    Leaf {
        kind: Kind,
        leaf: usize,
    },
    Struct {
        children: Vec<(String, usize)>,
        slot: usize,
    },
}

#[derive(Clone)]
enum Val<'de> {
    Null,
    Str(Cow<'de, str>),
    Bool(bool),
    Ts(i64),
}

/// Per record: each leaf's value, whether each struct is present, and what the fallback would see.
struct Record<'de> {
    leaves: Vec<Val<'de>>,
    present: Vec<bool>,
    nulled_blank: bool,
    complex_unknown: bool,
}

struct Schema {
    nodes: Vec<Node>,
    leaf_kinds: Vec<Kind>,
    structs: usize,
}

/// Blank as pyarrow's `utf8_trim_whitespace` (and Python's `str.isspace`) sees it: Unicode White_Space
/// and the information separators U+001C..U+001F.
fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')),
    )
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch (UTC) of `YYYY-MM-DD`, optionally followed by `[T ]HH:MM:SS`, up to six
/// fraction digits and `Z` or `±HH:MM`. None for any other text: the caller defers such records to
/// pyarrow, which accepts more forms (and decides them).
fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if rest.len() < 9 || !(rest[0] == b'T' || rest[0] == b' ') || rest[3] != b':' || rest[6] != b':'
    {
        return None;
    }
    let (hour, minute, second) = (
        digits(&rest[1..3])?,
        digits(&rest[4..6])?,
        digits(&rest[7..9])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * 1_000_000;
    rest = &rest[9..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros += digits(&rest[1..=n])? * 10i64.pow((6 - n) as u32);
        rest = &rest[n + 1..];
    }
    match rest {
        [] | [b'Z'] => Some(micros),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = (h * 60 + m) * 60_000_000;
            Some(if *sign == b'+' {
                micros - offset
            } else {
                micros + offset
            })
        }
        _ => None,
    }
}

struct StructSeed<'s, 'r, 'de> {
    schema: &'s Schema,
    node: usize,
    record: &'r mut Record<'de>,
}

impl<'de> DeserializeSeed<'de> for StructSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StructSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(()) // null: the struct and all its leaves stay null
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Node::Struct { children, slot } = &self.schema.nodes[self.node] else {
            unreachable!("a struct seed holds a struct node")
        };
        self.record.present[*slot] = true;
        let mut seen_known: u64 = 0;
        // Keys outside the schema, hashed: a 1 MB record may hold a hundred thousand of them.
        let mut seen_unknown: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match children.iter().position(|(name, _)| *name == key) {
                Some(index) => {
                    if seen_known & (1 << index) != 0 {
                        return Err(de::Error::custom("a key appears twice"));
                    }
                    seen_known |= 1 << index;
                    let child = children[index].1;
                    match &self.schema.nodes[child] {
                        Node::Struct { .. } => map.next_value_seed(StructSeed {
                            schema: self.schema,
                            node: child,
                            record: &mut *self.record,
                        })?,
                        Node::Leaf { kind, leaf } => {
                            let value = map.next_value_seed(LeafSeed(*kind))?;
                            if let LeafValue::NulledBlank = value {
                                self.record.nulled_blank = true;
                            }
                            self.record.leaves[*leaf] = value.into_val();
                        }
                    }
                }
                None => {
                    if !seen_unknown.insert(key) {
                        return Err(de::Error::custom("a key appears twice"));
                    }
                    if map.next_value::<AnyValue>()?.0 {
                        self.record.complex_unknown = true;
                    }
                }
            }
        }
        Ok(())
    }
}

enum LeafValue<'de> {
    Val(Val<'de>),
    NulledBlank,
}

impl<'de> LeafValue<'de> {
    fn into_val(self) -> Val<'de> {
        match self {
            LeafValue::Val(v) => v,
            LeafValue::NulledBlank => Val::Null,
        }
    }
}

struct LeafSeed(Kind);

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = LeafValue<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LeafValue<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl LeafSeed {
    fn text<'de, E: de::Error>(&self, text: Cow<'de, str>) -> Result<LeafValue<'de>, E> {
        match self.0 {
            Kind::String => Ok(LeafValue::Val(Val::Str(text))),
            // A blank value of a non-string field is null (the rule's "blank counts as empty").
            _ if is_blank(&text) => Ok(LeafValue::NulledBlank),
            Kind::Timestamp => parse_timestamp(&text)
                .map(|t| LeafValue::Val(Val::Ts(t)))
                .ok_or_else(|| E::custom("not a timestamp this classifier decides")),
            Kind::Bool => Err(E::custom("text in a boolean field")),
        }
    }
}

impl<'de> Visitor<'de> for LeafSeed {
    type Value = LeafValue<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value of the field's type")
    }
    fn visit_unit<E: de::Error>(self) -> Result<LeafValue<'de>, E> {
        Ok(LeafValue::Val(Val::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<LeafValue<'de>, E> {
        if self.0 == Kind::Bool {
            Ok(LeafValue::Val(Val::Bool(v)))
        } else {
            Err(E::custom("a boolean in a field of another type"))
        }
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<LeafValue<'de>, E> {
        self.text(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<LeafValue<'de>, E> {
        self.text(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<LeafValue<'de>, E> {
        self.text(Cow::Owned(v))
    }
}

/// An object key, borrowed from the input unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

/// Any JSON value of a field outside the schema; `.0`: it is an object or array.
struct AnyValue(bool);

impl<'de> de::Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AnyValue, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = AnyValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue(true))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        while map.next_entry::<IgnoredAny, AnyValue>()?.is_some() {}
        Ok(AnyValue(true))
    }
}

/// One leaf's Arrow buffers, filled row by row.
struct Column {
    kind: Kind,
    validity: Vec<u8>,
    offsets: Vec<i32>,
    data: Vec<u8>,
    times: Vec<i64>,
}

fn set_bit(bits: &mut Vec<u8>, row: usize, on: bool) {
    if row.is_multiple_of(8) {
        bits.push(0);
    }
    if on {
        bits[row / 8] |= 1 << (row % 8);
    }
}

impl Column {
    fn new(kind: Kind) -> Self {
        Column {
            kind,
            validity: Vec::new(),
            offsets: vec![0],
            data: Vec::new(),
            times: Vec::new(),
        }
    }

    /// Appends row `row`; false when string data outgrew 32-bit offsets.
    fn push(&mut self, row: usize, value: &Val) -> bool {
        set_bit(&mut self.validity, row, !matches!(value, Val::Null));
        match self.kind {
            Kind::String => {
                if let Val::Str(text) = value {
                    self.data.extend_from_slice(text.as_bytes());
                }
                match i32::try_from(self.data.len()) {
                    Ok(end) => self.offsets.push(end),
                    Err(_) => return false,
                }
            }
            Kind::Bool => set_bit(&mut self.data, row, matches!(value, Val::Bool(true))),
            Kind::Timestamp => self.times.push(if let Val::Ts(t) = value { *t } else { 0 }),
        }
        true
    }
}

/// What one window's classification hands back to Python.
struct Outcome {
    verdicts: Vec<u8>,
    null_counts: Vec<u64>,
    duplicates: u64,
    rows: usize,
    columns: Option<Vec<Column>>,
}

/// The visit record rule for one schema, required fields and id field (see the module docs).
#[pyclass(frozen, module = "streamwatch_visit_classifier")]
struct Classifier {
    schema: Schema,
    required: Vec<Option<(bool, usize)>>, // (is a leaf, leaf index or struct slot); None: not in the schema
    id_leaf: Option<usize>,
}

fn blank_or_null(value: &Val) -> bool {
    match value {
        Val::Null => true,
        Val::Str(text) => is_blank(text),
        _ => false,
    }
}

impl Classifier {
    fn parse<'de>(&self, value: &'de [u8], record: &mut Record<'de>) -> bool {
        for leaf in record.leaves.iter_mut() {
            *leaf = Val::Null;
        }
        record.present.iter_mut().for_each(|p| *p = false);
        record.nulled_blank = false;
        record.complex_unknown = false;
        // One line, one object: anything padded, spread over lines or cut short is the caller's.
        if value.first() != Some(&b'{')
            || value.last() != Some(&b'}')
            || value.contains(&b'\n')
            || value.contains(&b'\r')
        {
            return false;
        }
        let mut deserializer = serde_json::Deserializer::from_slice(value);
        let seed = StructSeed {
            schema: &self.schema,
            node: 0,
            record,
        };
        if seed.deserialize(&mut deserializer).is_err() || deserializer.end().is_err() {
            return false;
        }
        // The reference reads a record with a nulled blank again through Python's json module, which
        // refuses a key given twice inside any object: left to it when such objects are present.
        !(record.nulled_blank && record.complex_unknown)
    }

    fn run<'de>(&self, values: &[&'de [u8]], keep_columns: bool) -> Outcome {
        let leaves = self.schema.leaf_kinds.len();
        let mut record = Record {
            leaves: vec![Val::Null; leaves],
            present: vec![false; self.schema.structs],
            nulled_blank: false,
            complex_unknown: false,
        };
        let mut out = Outcome {
            verdicts: Vec::with_capacity(values.len()),
            null_counts: vec![0; leaves],
            duplicates: 0,
            rows: 0,
            columns: keep_columns.then(|| {
                self.schema
                    .leaf_kinds
                    .iter()
                    .map(|k| Column::new(*k))
                    .collect()
            }),
        };
        let mut ids: HashSet<Cow<'de, [u8]>> = HashSet::with_capacity(values.len());
        for value in values {
            if value.is_empty() {
                out.verdicts.push(EMPTY);
                continue;
            }
            if !self.parse(value, &mut record) {
                out.verdicts.push(DEFER);
                continue;
            }
            let missing = self.required.iter().any(|field| match field {
                None => true,
                Some((true, leaf)) => blank_or_null(&record.leaves[*leaf]),
                Some((false, slot)) => !record.present[*slot],
            });
            out.verdicts.push(if missing { INVALID } else { VALID });
            for (leaf, value) in record.leaves.iter().enumerate() {
                if blank_or_null(value) {
                    out.null_counts[leaf] += 1;
                }
            }
            if let Some(leaf) = self.id_leaf {
                let key: Option<Cow<'de, [u8]>> = match &record.leaves[leaf] {
                    v if blank_or_null(v) => None,
                    Val::Str(Cow::Borrowed(text)) => Some(Cow::Borrowed(text.as_bytes())),
                    Val::Str(Cow::Owned(text)) => Some(Cow::Owned(text.as_bytes().to_vec())),
                    Val::Bool(b) => Some(Cow::Owned(vec![u8::from(*b)])),
                    Val::Ts(t) => Some(Cow::Owned(t.to_le_bytes().to_vec())),
                    Val::Null => None,
                };
                if let Some(key) = key {
                    if !ids.insert(key) {
                        out.duplicates += 1;
                    }
                }
            }
            if let Some(columns) = out.columns.as_mut() {
                let row = out.rows;
                if !columns
                    .iter_mut()
                    .zip(record.leaves.iter())
                    .all(|(c, v)| c.push(row, v))
                {
                    out.columns = None; // over 2 GiB of text: the caller reads the rows itself
                }
            }
            out.rows += 1;
        }
        out
    }
}

fn as_bytes<T: Copy>(items: &[T]) -> &[u8] {
    // SAFETY: plain integers, read as their little-endian bytes (Arrow's layout on this platform).
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items)) }
}

type ColumnBuffers<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
);
type Classified<'py> = (
    Bound<'py, PyBytes>,
    Vec<u64>,
    u64,
    usize,
    Option<Vec<ColumnBuffers<'py>>>,
);

#[pymethods]
impl Classifier {
    /// `leaves`: the schema's leaves in order as (dotted name, "string" | "bool" | "timestamp");
    /// `required`: dotted names of required fields (leaves or objects; unknown names are always missing);
    /// `id_field`: the dotted name of the leaf whose repeats are duplicates.
    #[new]
    fn new(
        leaves: Vec<(String, String)>,
        required: Vec<String>,
        id_field: String,
    ) -> PyResult<Self> {
        let mut nodes = vec![Node::Struct {
            children: Vec::new(),
            slot: 0,
        }];
        let mut paths: Vec<String> = vec![String::new()];
        let mut structs = 1;
        let mut leaf_kinds = Vec::new();
        for (name, kind) in &leaves {
            let kind = match kind.as_str() {
                "string" => Kind::String,
                "bool" => Kind::Bool,
                "timestamp" => Kind::Timestamp,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unsupported leaf type {other}"
                    )))
                }
            };
            let parts: Vec<&str> = name.split('.').collect();
            let mut parent = 0;
            for (depth, part) in parts.iter().enumerate() {
                let last = depth + 1 == parts.len();
                let Node::Struct { children, .. } = &nodes[parent] else {
                    return Err(PyValueError::new_err(format!(
                        "{name}: a leaf cannot have fields"
                    )));
                };
                let existing = children.iter().find(|(n, _)| n == part).map(|(_, id)| *id);
                parent = match existing {
                    Some(id) if !last => id,
                    Some(_) => return Err(PyValueError::new_err(format!("{name}: named twice"))),
                    None => {
                        let id = nodes.len();
                        let node = if last {
                            leaf_kinds.push(kind);
                            Node::Leaf {
                                kind,
                                leaf: leaf_kinds.len() - 1,
                            }
                        } else {
                            structs += 1;
                            Node::Struct {
                                children: Vec::new(),
                                slot: structs - 1,
                            }
                        };
                        nodes.push(node);
                        paths.push(parts[..=depth].join("."));
                        if let Node::Struct { children, .. } = &mut nodes[parent] {
                            children.push(((*part).to_owned(), id));
                        }
                        id
                    }
                };
            }
        }
        if nodes
            .iter()
            .any(|n| matches!(n, Node::Struct { children, .. } if children.len() > 64))
        {
            return Err(PyValueError::new_err("more than 64 fields in one object"));
        }
        let find = |dotted: &str| -> Option<(bool, usize)> {
            let id = paths.iter().position(|p| p == dotted && !p.is_empty())?;
            Some(match &nodes[id] {
                Node::Leaf { leaf, .. } => (true, *leaf),
                Node::Struct { slot, .. } => (false, *slot),
            })
        };
        let required = required.iter().map(|r| find(r)).collect();
        let id_leaf = match find(&id_field) {
            Some((true, leaf)) => Some(leaf),
            _ => None,
        };
        Ok(Classifier {
            schema: Schema {
                nodes,
                leaf_kinds,
                structs,
            },
            required,
            id_leaf,
        })
    }

    /// Classifies `values` (a list of bytes) without the interpreter lock. Returns (verdicts: one byte
    /// per value, null-or-blank count per leaf, duplicate ids, parsed rows, per leaf (validity bitmap,
    /// values: offsets | bitmap | int64, string data) or None when `keep_columns` is false or the text
    /// outgrew 32-bit offsets). Counts and columns cover the decided parsed records only.
    #[pyo3(signature = (values, keep_columns))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        keep_columns: bool,
    ) -> PyResult<Classified<'py>> {
        let held: Vec<Bound<'py, PyBytes>> = values
            .iter()
            .map(|v| v.cast_into::<PyBytes>().map_err(PyErr::from))
            .collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
        let out = py.detach(|| self.run(&slices, keep_columns));
        let columns = out.columns.map(|columns| {
            columns
                .iter()
                .map(|c| {
                    let validity = PyBytes::new(py, &c.validity);
                    match c.kind {
                        Kind::String => (
                            validity,
                            PyBytes::new(py, as_bytes(&c.offsets)),
                            Some(PyBytes::new(py, &c.data)),
                        ),
                        Kind::Bool => (validity, PyBytes::new(py, &c.data), None),
                        Kind::Timestamp => (validity, PyBytes::new(py, as_bytes(&c.times)), None),
                    }
                })
                .collect()
        });
        Ok((
            PyBytes::new(py, &out.verdicts),
            out.null_counts,
            out.duplicates,
            out.rows,
            columns,
        ))
    }
}

#[pymodule]
fn streamwatch_visit_classifier(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Classifier>()?;
    m.add("VALID", VALID)?;
    m.add("EMPTY", EMPTY)?;
    m.add("INVALID", INVALID)?;
    m.add("DEFER", DEFER)?;
    Ok(())
}
