//! The parse step (workers/steps/parse.py is the reference): one raw record in, one parsed
//! line out, with the format catalog (formats.yaml) handed over as data by Python.
//!
//! Everything follows the Python reference exactly, including the order of `fields`.  Where
//! an input reaches behaviour the native code does not reproduce (a lone surrogate, JSON
//! nested deeper than the native limit, a timestamp Python would overflow on, a zone rule
//! beyond chrono-tz's table), the line is *deferred*: `parse` returns `Err(Defer)` and the
//! caller runs the Python reference for that line.  Catalog features that cannot be honoured
//! at all are refused when the parser is built, with an error naming the format.
pub mod matcher;
pub mod pytime;
pub mod structured;

use matcher::PyRegex;
pub use pytime::Defer;
use pytime::{parse_timestamp, py_int, py_rstrip, py_strip, StrptimeLocale, TimestampFormat, Zone};
use serde::Deserialize;
use std::collections::HashMap;

/// Level and format lookups, once or more per line: foldhash, not SipHash.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use structured::Fields;

/// The IANA tz database version of the zone rules (chrono-tz's).
pub const TZDB_VERSION: &str = chrono_tz::IANA_TZDB_VERSION;

/// ParsedLine.format for a record no format fits.
pub const UNKNOWN_FORMAT: &str = "unknown";

const SYSLOG_FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];
const SYSLOG_SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
const SYSLOG_SEVERITY_LEVELS: [&str; 8] = ["FATAL", "CRITICAL", "CRITICAL", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG"];
const MAX_PRI: i128 = 24 * 8 - 1;

// -- the catalog as handed over by Python --------------------------------------------------------

/// One LineFormat of workers/steps/log_formats.py.
#[derive(Debug, Deserialize)]
pub struct FormatSpec {
    pub name: String,
    pub kind: String,
    pub pattern: Option<String>,
    /// `pattern.flags` (Python re flag bits)
    #[serde(default)]
    pub pattern_flags: u32,
    pub first_chars: Option<Vec<String>>,
    pub message_group: String,
    pub host_group: Option<String>,
    pub service_group: Option<String>,
    pub service_default: Option<String>,
    pub timestamp_group: Option<String>,
    pub timestamp_formats: Vec<String>,
    /// "UTC", "fixed:<offset µs>" or an IANA key
    pub zone: String,
    pub level_group: Option<String>,
    pub level_aliases: Vec<(String, String)>,
    pub level_by_first_char: Vec<(String, String)>,
    pub pri_group: Option<String>,
    pub structured_data_group: Option<String>,
    pub nil_value: Option<String>,
    pub nested: bool,
    pub private_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct StructuredKeysSpec {
    pub timestamp: Vec<String>,
    pub level: Vec<String>,
    pub message: Vec<String>,
    pub host: Vec<String>,
    pub service: Vec<String>,
}

/// The FormatCatalog plus what the native code needs of the running Python.
#[derive(Debug, Deserialize)]
pub struct CatalogSpec {
    pub formats: Vec<FormatSpec>,
    pub level_aliases: Vec<(String, String)>,
    pub numeric_levels: Vec<(String, String)>,
    pub structured_keys: StructuredKeysSpec,
    /// unicodedata.unidata_version: the native classes are CPython 3.11's (Unicode 14.0.0)
    pub unicode_version: String,
    pub strptime_locale: StrptimeLocale,
}

// -- compiled formats ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regex,
    Json,
    Logfmt,
}

struct LineFormat {
    name: String,
    kind: Kind,
    pattern: Option<PyRegex>,
    message_group: String,
    host_group: Option<String>,
    service_group: Option<String>,
    service_default: Option<String>,
    timestamp_group: Option<String>,
    timestamp_formats: Vec<TimestampFormat>,
    zone: Zone,
    level_group: Option<String>,
    level_aliases: Map<String, String>,
    level_by_first_char: Map<String, String>,
    pri_group: Option<String>,
    structured_data_group: Option<String>,
    nil_value: Option<String>,
    nested: bool,
    private_groups: Vec<String>,
}

/// One parsed record (ParsedLine); `format` indexes `LineParser::format_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub format: Option<usize>,
    pub timestamp_micros: Option<i64>,
    pub level: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub message: String,
    pub fields: Fields,
}

impl Parsed {
    fn unknown(record: &str) -> Parsed {
        Parsed {
            format: None,
            timestamp_micros: None,
            level: None,
            host: None,
            service: None,
            message: record.to_string(),
            fields: Fields::default(),
        }
    }
}

struct StructuredKeys {
    timestamp: Vec<String>,
    level: Vec<String>,
    message: Vec<String>,
    host: Vec<String>,
    service: Vec<String>,
}

/// Per-batch scratch space: capture locations, and the last timestamp each format decoded
/// (lines of one second share their timestamp text; the reference time is fixed per batch,
/// so the memo holds for year-less formats too).
pub struct Scratch {
    locations: Vec<matcher::Locations>,
    last_timestamps: Vec<Option<(String, Option<i64>)>>,
}

pub struct LineParser {
    formats: Vec<LineFormat>,
    by_name: HashMap<String, usize>,
    /// Candidates per first character (ASCII fast table and the rest).
    by_ascii_char: Vec<Option<Vec<usize>>>,
    by_other_char: HashMap<char, Vec<usize>>,
    candidates_any: Vec<usize>,
    level_aliases: Map<String, String>,
    numeric_levels: Map<String, String>,
    structured_keys: StructuredKeys,
    sd_element: PyRegex,
    sd_param: PyRegex,
}

fn level_map(pairs: &[(String, String)], owner: &str) -> Result<Map<String, String>, String> {
    for (key, _) in pairs {
        // The level lookup lowercases the raw level the Python way only for ASCII (and
        // U+212A); with ASCII keys nothing else can match, so this is exact.
        if !key.is_ascii() {
            return Err(format!("{owner}: level key {key:?} is not ASCII (not supported by the native parser)"));
        }
    }
    Ok(pairs.iter().cloned().collect())
}

fn compile_format(spec: FormatSpec, locale: &StrptimeLocale) -> Result<LineFormat, String> {
    let name = spec.name.clone();
    let with_name = |e: String| format!("format {name:?}: {e}");
    let kind = match spec.kind.as_str() {
        "regex" => Kind::Regex,
        "json" => Kind::Json,
        "logfmt" => Kind::Logfmt,
        other => return Err(with_name(format!("kind {other:?}"))),
    };
    let pattern = match (&spec.pattern, kind) {
        (Some(source), Kind::Regex) => Some(PyRegex::new_single_line(source, spec.pattern_flags).map_err(with_name)?),
        (None, Kind::Regex) => return Err(with_name("regex format without a pattern".into())),
        _ => None,
    };
    let timestamp_formats = spec
        .timestamp_formats
        .iter()
        .map(|f| TimestampFormat::new(f, locale))
        .collect::<Result<Vec<_>, _>>()
        .map_err(with_name)?;
    let zone = pytime::zone_from_spec(&spec.zone).map_err(with_name)?;
    Ok(LineFormat {
        kind,
        pattern,
        message_group: spec.message_group,
        host_group: spec.host_group,
        service_group: spec.service_group,
        service_default: spec.service_default,
        timestamp_group: spec.timestamp_group,
        timestamp_formats,
        zone,
        level_group: spec.level_group,
        level_aliases: level_map(&spec.level_aliases, &name).map_err(with_name)?,
        level_by_first_char: spec.level_by_first_char.iter().cloned().collect(),
        pri_group: spec.pri_group,
        structured_data_group: spec.structured_data_group,
        nil_value: spec.nil_value,
        nested: spec.nested,
        private_groups: spec.private_groups,
        name: spec.name,
    })
}

fn pop_first(values: &mut Fields, keys: &[String]) -> Option<String> {
    keys.iter().find_map(|key| values.shift_remove(key))
}

/// str.partition("\n") -> (header, continuation)
fn split_header(record: &str) -> (&str, &str) {
    match record.split_once('\n') {
        Some((header, continuation)) => (header, continuation),
        None => (record, ""),
    }
}

impl LineParser {
    pub fn new(spec: CatalogSpec) -> Result<LineParser, String> {
        if spec.unicode_version != polaris_pyunicode::UNICODE_VERSION {
            return Err(format!(
                "the native parser's character classes are Unicode {} (CPython 3.11); this Python has {}: \
                 regenerate them with native/pyunicode/gen_tables.py",
                polaris_pyunicode::UNICODE_VERSION,
                spec.unicode_version
            ));
        }
        let locale = &spec.strptime_locale;
        for name in locale.a_weekday.iter().chain(&locale.f_weekday).chain(&locale.a_month).chain(&locale.f_month).chain(&locale.am_pm) {
            if !name.is_ascii() || name.to_ascii_lowercase() != *name {
                return Err(format!("strptime locale name {name:?} is not lowercase ASCII (not supported)"));
            }
        }
        let mut formats = Vec::with_capacity(spec.formats.len());
        let mut first_chars: Vec<Option<Vec<char>>> = Vec::new();
        for format_spec in spec.formats {
            first_chars.push(format_spec.first_chars.as_ref().map(|chars| {
                chars.iter().filter_map(|c| c.chars().next()).collect()
            }));
            formats.push(compile_format(format_spec, locale)?);
        }
        let by_name: HashMap<String, usize> = formats.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        let indexed: std::collections::BTreeSet<char> = first_chars.iter().flatten().flatten().copied().collect();
        let candidates_for = |c: char| -> Vec<usize> {
            (0..formats.len())
                .filter(|&i| first_chars[i].as_ref().is_none_or(|chars| chars.contains(&c)))
                .collect()
        };
        let mut by_ascii_char: Vec<Option<Vec<usize>>> = vec![None; 128];
        let mut by_other_char = HashMap::new();
        for &c in &indexed {
            if c.is_ascii() {
                by_ascii_char[c as usize] = Some(candidates_for(c));
            } else {
                by_other_char.insert(c, candidates_for(c));
            }
        }
        let candidates_any = (0..formats.len()).filter(|&i| first_chars[i].is_none()).collect();
        let keys = spec.structured_keys;
        Ok(LineParser {
            by_name,
            by_ascii_char,
            by_other_char,
            candidates_any,
            level_aliases: level_map(&spec.level_aliases, "levels")?,
            numeric_levels: level_map(&spec.numeric_levels, "numeric_levels")?,
            structured_keys: StructuredKeys {
                timestamp: keys.timestamp,
                level: keys.level,
                message: keys.message,
                host: keys.host,
                service: keys.service,
            },
            sd_element: PyRegex::new(r#"\[([^\s\]=]+)((?:\s+[^\s=\]]+="(?:[^"\\]|\\.)*")*)\s*\]"#, 0, false, false)?,
            sd_param: PyRegex::new(r#"([^\s=\]]+)="((?:[^"\\]|\\.)*)""#, 0, false, false)?,
            formats,
        })
    }

    pub fn format_names(&self) -> impl Iterator<Item = &str> {
        self.formats.iter().map(|f| f.name.as_str())
    }

    pub fn format_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn format_name(&self, index: Option<usize>) -> &str {
        index.map_or(UNKNOWN_FORMAT, |i| &self.formats[i].name)
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            locations: (0..self.formats.len()).map(|_| Default::default()).collect(),
            last_timestamps: vec![None; self.formats.len()],
        }
    }

    fn candidates(&self, first: char) -> &[usize] {
        let found = if first.is_ascii() {
            self.by_ascii_char[first as usize].as_deref()
        } else {
            self.by_other_char.get(&first).map(Vec::as_slice)
        };
        found.unwrap_or(&self.candidates_any)
    }

    /// Parser.parse: `source_format` is a format index (tried first).
    pub fn parse(&self, line: &str, source_format: Option<usize>, reference_micros: i64, scratch: &mut Scratch) -> Result<Parsed, Defer> {
        let record = py_strip(line);
        if let Some(index) = source_format {
            if let Some(parsed) = self.try_format(index, record, reference_micros, scratch)? {
                return Ok(parsed);
            }
        }
        self.detect(record, true, reference_micros, scratch)
    }

    fn detect(&self, record: &str, nested_allowed: bool, reference_micros: i64, scratch: &mut Scratch) -> Result<Parsed, Defer> {
        let Some(first) = record.chars().next() else {
            return Ok(Parsed::unknown(record));
        };
        let (header, continuation) = split_header(record);
        let ascii = header.is_ascii();
        for &index in self.candidates(first) {
            let format = &self.formats[index];
            if format.nested && !nested_allowed {
                continue;
            }
            if let Some(pattern) = &format.pattern {
                let spans = pattern
                    .match_start(header, ascii, &mut scratch.locations[index])
                    .map_err(|_| Defer("regex backtrack limit"))?;
                if let Some(spans) = spans {
                    return self.build_from_match(index, header, &spans, continuation, reference_micros, scratch);
                }
                continue;
            }
            if let Some(parsed) = self.try_format(index, record, reference_micros, scratch)? {
                return Ok(parsed);
            }
        }
        Ok(Parsed::unknown(record))
    }

    fn try_format(&self, index: usize, record: &str, reference_micros: i64, scratch: &mut Scratch) -> Result<Option<Parsed>, Defer> {
        let format = &self.formats[index];
        match format.kind {
            Kind::Json => self.parse_structured(index, record, structured::decode_json_object),
            Kind::Logfmt => self.parse_structured(index, record, structured::decode_logfmt),
            Kind::Regex => {
                let Some(pattern) = &format.pattern else { return Ok(None) };
                let (header, continuation) = split_header(record);
                let spans = pattern
                    .match_start(header, header.is_ascii(), &mut scratch.locations[index])
                    .map_err(|_| Defer("regex backtrack limit"))?;
                match spans {
                    Some(spans) => self.build_from_match(index, header, &spans, continuation, reference_micros, scratch).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    fn build_from_match(
        &self,
        index: usize,
        header: &str,
        spans: &matcher::Spans,
        continuation: &str,
        reference_micros: i64,
        scratch: &mut Scratch,
    ) -> Result<Parsed, Defer> {
        let format = &self.formats[index];
        let Some(pattern) = &format.pattern else { return Ok(Parsed::unknown(header)) };
        // The groups as Python's dict of them, borrowed from the header until the roles
        // (message, timestamp, host ...) are taken out: only what stays a field is copied.
        let mut groups = Groups::with_capacity(pattern.named_groups.len());
        for (group, name) in &pattern.named_groups {
            if let Some((start, end)) = spans[*group] {
                let value = &header[start..end];
                if format.nil_value.as_deref() != Some(value) {
                    groups.insert(name, value);
                }
            }
        }
        for private in &format.private_groups {
            groups.take(private);
        }
        let mut message = groups.take(&format.message_group).unwrap_or_default().to_string();
        let trimmed = py_rstrip(&message).len();
        message.truncate(trimmed);
        if !continuation.is_empty() {
            message.push('\n');
            message.push_str(continuation);
        }
        let mut timestamp = None;
        if let Some(group) = &format.timestamp_group {
            let text = groups.take(group).unwrap_or_default();
            let memo = &mut scratch.last_timestamps[index];
            timestamp = match memo {
                Some((last, result)) if last == text => *result,
                _ => {
                    let result = parse_timestamp(text, &format.timestamp_formats, &format.zone, reference_micros)?;
                    *memo = Some((text.to_string(), result));
                    result
                }
            };
        }
        let host = match format.host_group.as_deref() {
            Some(group) if !group.is_empty() => groups.take(group).map(str::to_string),
            _ => None,
        };
        let mut service = format.service_default.clone();
        if let Some(group) = &format.service_group {
            if let Some(value) = groups.take(group) {
                service = Some(value.to_string());
            }
        }
        let mut level = None;
        if let Some(group) = &format.level_group {
            if let Some(raw_level) = groups.take(group) {
                level = self.normalise_level(raw_level, format);
                if level.is_none() {
                    groups.insert("level_raw", raw_level);
                } else if !format.level_by_first_char.is_empty() {
                    groups.insert(group, raw_level);
                }
            }
        }
        let mut groups = groups.into_fields();
        if let Some(group) = &format.pri_group {
            if let Some(raw) = groups.shift_remove(group) {
                let pri_level = decode_pri(raw, &mut groups)?;
                if level.is_none() {
                    level = pri_level.map(str::to_string);
                }
            }
        }
        if let Some(group) = &format.structured_data_group {
            let raw = groups.shift_remove(group).unwrap_or_default();
            self.decode_structured_data(raw, &mut groups)?;
        }
        let parsed = Parsed { format: Some(index), timestamp_micros: timestamp, level, host, service, message, fields: groups };
        if format.nested {
            return self.merge_nested(parsed, reference_micros, scratch);
        }
        Ok(parsed)
    }

    fn merge_nested(&self, outer: Parsed, reference_micros: i64, scratch: &mut Scratch) -> Result<Parsed, Defer> {
        let inner = self.detect(&outer.message, false, reference_micros, scratch)?;
        if inner.format.is_none() {
            return Ok(outer);
        }
        let mut fields = outer.fields;
        for (key, value) in inner.fields {
            fields.insert(key, value);
        }
        fields.insert("inner_format".to_string(), self.format_name(inner.format).to_string());
        let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
        Ok(Parsed {
            format: outer.format,
            timestamp_micros: inner.timestamp_micros.or(outer.timestamp_micros),
            level: inner.level,
            host: non_empty(inner.host).or(outer.host),
            service: non_empty(inner.service).or(outer.service),
            message: inner.message,
            fields,
        })
    }

    fn normalise_level(&self, raw: &str, format: &LineFormat) -> Option<String> {
        if !format.level_by_first_char.is_empty() {
            let first: String = raw.chars().take(1).collect();
            return format.level_by_first_char.get(&first).cloned();
        }
        let stripped = py_strip(raw);
        // str.lower() matters only where it can give an (ASCII) key; see level_map.
        if !stripped.chars().all(|c| c.is_ascii() || c == '\u{212A}') {
            return None;
        }
        let key: String = stripped.chars().map(|c| if c == '\u{212A}' { 'k' } else { c.to_ascii_lowercase() }).collect();
        format
            .level_aliases
            .get(&key)
            .or_else(|| self.level_aliases.get(&key))
            .or_else(|| self.numeric_levels.get(&key))
            .cloned()
    }

    fn decode_structured_data(&self, raw: String, fields: &mut Fields) -> Result<(), Defer> {
        if raw.is_empty() {
            return Ok(());
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for element in find_iter(&self.sd_element, &raw)? {
            let (Some((id_start, id_end)), Some((params_start, params_end))) = (element[1], element[2]) else { continue };
            let sd_id = &raw[id_start..id_end];
            let params = &raw[params_start..params_end];
            for param in find_iter(&self.sd_param, params)? {
                let (Some((name_start, name_end)), Some((value_start, value_end))) = (param[1], param[2]) else { continue };
                found.push((
                    format!("sd.{sd_id}.{}", &params[name_start..name_end]),
                    sd_unescape(&params[value_start..value_end]),
                ));
            }
        }
        fields.insert("structured_data".to_string(), raw);
        for (key, value) in found {
            fields.insert(key, value);
        }
        Ok(())
    }

    fn parse_structured(
        &self,
        index: usize,
        record: &str,
        decode: fn(&str) -> Result<Option<Fields>, Defer>,
    ) -> Result<Option<Parsed>, Defer> {
        let format = &self.formats[index];
        let mut continuation = "";
        let mut decoded = decode(record)?;
        if decoded.is_none() && record.contains('\n') {
            let (header, rest) = split_header(record);
            continuation = rest;
            decoded = decode(header)?;
        }
        let Some(mut decoded) = decoded else { return Ok(None) };
        let keys = &self.structured_keys;
        let message = pop_first(&mut decoded, &keys.message);
        let raw_level = pop_first(&mut decoded, &keys.level);
        let raw_time = pop_first(&mut decoded, &keys.timestamp);
        let mut level = None;
        if let Some(raw_level) = raw_level {
            level = self.normalise_level(&raw_level, format);
            if level.is_none() {
                decoded.insert("level_raw".to_string(), raw_level);
            }
        }
        let mut timestamp = None;
        if let Some(raw_time) = raw_time {
            timestamp = parse_timestamp(&raw_time, &STRUCTURED_TIME_FORMATS, &format.zone, 0)?;
            if timestamp.is_none() {
                decoded.insert("time_raw".to_string(), raw_time);
            }
        }
        let host = pop_first(&mut decoded, &keys.host);
        let service = pop_first(&mut decoded, &keys.service);
        let message = message.unwrap_or_else(|| {
            if continuation.is_empty() {
                record.to_string()
            } else {
                split_header(record).0.to_string()
            }
        });
        let mut message = message.trim_end_matches(['\r', '\n']).to_string();
        if !continuation.is_empty() {
            message.push('\n');
            message.push_str(continuation);
        }
        Ok(Some(Parsed {
            format: Some(index),
            timestamp_micros: timestamp,
            level,
            host,
            service,
            message,
            fields: decoded,
        }))
    }
}

/// ("iso8601", "epoch"): the timestamp formats of structured records.
static STRUCTURED_TIME_FORMATS: [TimestampFormat; 2] = [TimestampFormat::Iso8601, TimestampFormat::Epoch];

/// re.finditer for patterns that cannot match the empty string.
fn find_iter(regex: &PyRegex, text: &str) -> Result<Vec<matcher::Spans>, Defer> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < text.len() {
        // Python scans start positions left to right; the pattern is anchored at its start.
        match regex.match_start(&text[position..], text.is_ascii(), &mut Default::default()).map_err(|_| Defer("regex backtrack limit"))? {
            Some(spans) => {
                let end = spans[0].map_or(0, |(_, e)| e);
                out.push(spans.iter().map(|s| s.map(|(a, b)| (a + position, b + position))).collect());
                position += end.max(1);
            }
            None => {
                position += text[position..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    Ok(out)
}

/// _SD_UNESCAPE.sub(r"\1"): `\\([\\"\]])` -> the character.
fn sd_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('\\' | '"' | ']')) {
            if let Some(next) = chars.next() {
                out.push(next);
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// parse._decode_pri: Err where Python raises (int() of a non-number, index out of range).
/// A small insertion-ordered map of borrowed group values with the dict semantics the
/// parser needs (`pop` keeps the others' order, assigning a present key keeps its place),
/// so the role groups taken out of a match are never copied.
struct Groups<'a> {
    entries: Vec<(&'a str, &'a str)>,
}

impl<'a> Groups<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Groups { entries: Vec::with_capacity(capacity) }
    }

    fn insert(&mut self, name: &'a str, value: &'a str) {
        match self.entries.iter_mut().find(|(key, _)| *key == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    fn take(&mut self, name: &str) -> Option<&'a str> {
        let position = self.entries.iter().position(|(key, _)| *key == name)?;
        Some(self.entries.remove(position).1)
    }

    fn into_fields(self) -> Fields {
        let mut fields = Fields::with_capacity_and_hasher(self.entries.len(), Default::default());
        for (name, value) in self.entries {
            fields.insert(name.to_string(), value.to_string());
        }
        fields
    }
}

fn decode_pri(raw: String, fields: &mut Fields) -> Result<Option<&'static str>, Defer> {
    let pri = py_int(&raw).map_err(|_| Defer("int() of the PRI group raises in Python"))?;
    if pri > MAX_PRI {
        fields.insert("pri".to_string(), raw);
        return Ok(None);
    }
    let facility = pri.div_euclid(8);
    let severity = pri.rem_euclid(8) as usize;
    // Python indexes from the end for negative values.
    let facility_index = if facility < 0 { facility + 24 } else { facility };
    if facility_index < 0 {
        return Err(Defer("PRI facility index out of range raises in Python"));
    }
    fields.insert("facility".to_string(), SYSLOG_FACILITIES[facility_index as usize].to_string());
    fields.insert("severity".to_string(), SYSLOG_SEVERITIES[severity].to_string());
    Ok(Some(SYSLOG_SEVERITY_LEVELS[severity]))
}

/// Reference time for year-less timestamps, from float seconds as
/// `datetime.fromtimestamp(seconds, UTC)` would read it.
pub fn reference_micros_from_seconds(seconds: f64) -> Option<i64> {
    pytime::from_timestamp(seconds)
}
