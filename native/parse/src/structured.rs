//! JSON lines and logfmt (workers/steps/structured_logs.py) with Python's semantics: the JSON
//! reader follows CPython's C scanner (`json.loads`: NaN/Infinity literals, strict control
//! characters, exact integers, duplicate keys keep their first position and last value) and
//! values are re-spelled as `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`.
use polaris_pyunicode::is_str_space;
use crate::Defer;
use indexmap::IndexMap;

/// FNV-1a: the field maps are small and keyed by short strings; SipHash's DoS resistance
/// buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// A Python dict of str -> str: insertion order, a re-set key keeps its place.
pub type Fields = IndexMap<String, String, FnvBuild>;

/// Deeper nesting than this is left to Python (whose RecursionError point depends on its
/// own stack depth).
const MAX_NESTING: usize = 200;
/// sys.int_max_str_digits
const MAX_INT_DIGITS: usize = 4300;

#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer literal, kept as its (validated) text: Python ints are exact.
    Int(String),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(IndexMap<String, Json>),
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

/// Err(None): Python raises ValueError (not JSON); Err(Some(defer)): decide in Python.
type ReadResult<T> = Result<T, Option<Defer>>;

impl Reader<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && matches!(self.bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> ReadResult<Json> {
        let Some(&b) = self.bytes.get(self.pos) else { return Err(None) };
        match b {
            b'"' => {
                self.pos += 1;
                self.string().map(Json::Str)
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err(Some(Defer("JSON nesting deeper than the native limit")));
                }
                self.pos += 1;
                let value = if b == b'{' { self.object() } else { self.array() };
                self.depth -= 1;
                value
            }
            b'n' if self.literal("null") => Ok(Json::Null),
            b't' if self.literal("true") => Ok(Json::Bool(true)),
            b'f' if self.literal("false") => Ok(Json::Bool(false)),
            b'N' if self.literal("NaN") => Ok(Json::Float(f64::NAN)),
            b'I' if self.literal("Infinity") => Ok(Json::Float(f64::INFINITY)),
            b'-' if self.text[self.pos..].starts_with("-Infinity") => {
                self.pos += "-Infinity".len();
                Ok(Json::Float(f64::NEG_INFINITY))
            }
            _ => self.number(),
        }
    }

    fn number(&mut self) -> ReadResult<Json> {
        let start = self.pos;
        let bytes = self.bytes;
        let mut idx = self.pos;
        if bytes.get(idx) == Some(&b'-') {
            idx += 1;
        }
        match bytes.get(idx) {
            Some(b'1'..=b'9') => {
                idx += 1;
                while bytes.get(idx).is_some_and(u8::is_ascii_digit) {
                    idx += 1;
                }
            }
            Some(b'0') => idx += 1,
            _ => return Err(None),
        }
        let mut is_float = false;
        if bytes.get(idx) == Some(&b'.') && bytes.get(idx + 1).is_some_and(u8::is_ascii_digit) {
            is_float = true;
            idx += 2;
            while bytes.get(idx).is_some_and(u8::is_ascii_digit) {
                idx += 1;
            }
        }
        if matches!(bytes.get(idx), Some(b'e' | b'E')) {
            let e_start = idx;
            idx += 1;
            if matches!(bytes.get(idx), Some(b'-' | b'+')) {
                idx += 1;
            }
            while bytes.get(idx).is_some_and(u8::is_ascii_digit) {
                idx += 1;
            }
            if bytes[idx - 1].is_ascii_digit() {
                is_float = true;
            } else {
                idx = e_start;
            }
        }
        self.pos = idx;
        let literal = &self.text[start..idx];
        if is_float {
            literal.parse::<f64>().map(Json::Float).map_err(|_| None)
        } else {
            let digits = literal.trim_start_matches('-');
            if digits.len() > MAX_INT_DIGITS {
                return Err(None); // int(): exceeds the limit for integer string conversion
            }
            // "-0" is the int 0.
            let canonical = if digits.bytes().all(|d| d == b'0') { "0".to_string() } else { literal.to_string() };
            Ok(Json::Int(canonical))
        }
    }

    fn hex4(&mut self) -> ReadResult<u32> {
        let chunk = self.text.get(self.pos..self.pos + 4).ok_or(None)?;
        if !chunk.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(None);
        }
        self.pos += 4;
        u32::from_str_radix(chunk, 16).map_err(|_| None)
    }

    /// After the opening quote (strict=True scanstring).
    fn string(&mut self) -> ReadResult<String> {
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let run = rest.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20).ok_or(None)?;
            out.push_str(&rest[..run]);
            self.pos += run;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = *self.bytes.get(self.pos).ok_or(None)?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) && self.text[self.pos..].starts_with("\\u") {
                                let save = self.pos;
                                self.pos += 2;
                                let low = self.hex4()?;
                                if (0xDC00..0xE000).contains(&low) {
                                    code = 0x10000 + (((code - 0xD800) << 10) | (low - 0xDC00));
                                } else {
                                    self.pos = save;
                                }
                            }
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => return Err(Some(Defer("lone surrogate in a JSON string"))),
                            }
                        }
                        _ => return Err(None),
                    }
                }
                _ => return Err(None), // control character
            }
        }
    }

    fn object(&mut self) -> ReadResult<Json> {
        let mut map = IndexMap::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(map));
        }
        loop {
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(None);
            }
            self.pos += 1;
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(None);
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            map.insert(key, value);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(map));
                }
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                _ => return Err(None),
            }
        }
    }

    fn array(&mut self) -> ReadResult<Json> {
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                _ => return Err(None),
            }
        }
    }
}

/// `json.loads(text)`: Ok(None) where Python raises ValueError.
pub fn json_loads(text: &str) -> Result<Option<Json>, Defer> {
    let mut reader = Reader { text, bytes: text.as_bytes(), pos: 0, depth: 0 };
    reader.skip_ws();
    let value = match reader.value() {
        Ok(value) => value,
        Err(None) => return Ok(None),
        Err(Some(defer)) => return Err(defer),
    };
    reader.skip_ws();
    Ok((reader.pos == text.len()).then_some(value))
}

/// repr(float).
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Shortest round-tripping digit count from Rust; then, like Python's dtoa, the n-digit
    // decimal closest to the value (Rust may pick another of the shortest candidates).
    let shortest = format!("{:e}", value.abs());
    let digit_count = shortest.split_once('e').map_or(1, |(m, _)| m.chars().filter(char::is_ascii_digit).count());
    let closest = format!("{:.*e}", digit_count.saturating_sub(1), value.abs());
    let formatted = if closest.parse::<f64>().ok() == Some(value.abs()) { closest } else { shortest };
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let decpt = exponent + 1;
    let sign = if value < 0.0 { "-" } else { "" };
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        let mut out = format!("{sign}{}", &digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
        out
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        format!("{sign}{}.{}", &digits[..decpt as usize], &digits[decpt as usize..])
    }
}

fn dump_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// json.dumps(value, ensure_ascii=False, separators=(",", ":")).
fn dump(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(text) => out.push_str(text),
        Json::Float(f) if f.is_nan() => out.push_str("NaN"),
        Json::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        Json::Float(f) => out.push_str(&float_repr(*f)),
        Json::Str(s) => dump_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dump(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                dump_string(out, key);
                out.push(':');
                dump(out, item);
            }
            out.push('}');
        }
    }
}

fn stringify(value: Json) -> String {
    match value {
        Json::Str(s) => s,
        other => {
            let mut out = String::new();
            dump(&mut out, &other);
            out
        }
    }
}

fn flatten(map: IndexMap<String, Json>, prefix: &str, out: &mut Fields) {
    for (key, item) in map {
        let dotted = format!("{prefix}{key}");
        match item {
            Json::Object(inner) if !inner.is_empty() => flatten(inner, &format!("{dotted}."), out),
            Json::Null => {}
            other => {
                out.insert(dotted, stringify(other));
            }
        }
    }
}

/// structured_logs.decode_json_object.
pub fn decode_json_object(text: &str) -> Result<Option<Fields>, Defer> {
    match json_loads(text)? {
        Some(Json::Object(map)) => {
            let mut flat = Fields::with_capacity_and_hasher(map.len(), FnvBuild::default());
            flatten(map, "", &mut flat);
            Ok(Some(flat))
        }
        _ => Ok(None),
    }
}

fn unquote(value: &str) -> Result<String, Defer> {
    if value.len() >= 2 && value.starts_with('"') {
        let inner = || value.chars().skip(1).take(value.chars().count().saturating_sub(2)).collect::<String>();
        return Ok(match json_loads(value)? {
            Some(Json::Str(decoded)) => decoded,
            _ => inner(),
        });
    }
    Ok(value.to_string())
}

/// structured_logs.decode_logfmt (its token regex hand-coded; see the module docs there).
pub fn decode_logfmt(text: &str) -> Result<Option<Fields>, Defer> {
    if !text.contains('=') {
        return Ok(None);
    }
    let mut pairs = Fields::default();
    let (mut assignments, mut bare_keys) = (0usize, 0usize);
    let mut position = 0;
    let end = text.len();
    while position < end {
        // \s*
        let rest = &text[position..];
        let after_ws = rest.len() - rest.trim_start_matches(is_str_space).len();
        let key_start = position + after_ws;
        // ([^\s="]+)
        let key_len = text[key_start..]
            .char_indices()
            .find(|&(_, c)| is_str_space(c) || c == '=' || c == '"')
            .map_or(end - key_start, |(i, _)| i);
        if key_len == 0 {
            if rest.chars().all(is_str_space) {
                break;
            }
            return Ok(None);
        }
        let key = &text[key_start..key_start + key_len];
        let mut cursor = key_start + key_len;
        let value = if text[cursor..].starts_with('=') {
            cursor += 1;
            let value_start = cursor;
            let quoted_end = if text[cursor..].starts_with('"') { quoted_value_end(text, cursor + 1) } else { None };
            match quoted_end {
                Some(stop) => cursor = stop,
                None => {
                    // [^\s"]*
                    cursor += text[cursor..]
                        .char_indices()
                        .find(|&(_, c)| is_str_space(c) || c == '"')
                        .map_or(end - cursor, |(i, _)| i);
                }
            }
            Some(&text[value_start..cursor])
        } else {
            None
        };
        match value {
            None => {
                pairs.insert(key.to_string(), "true".to_string());
                bare_keys += 1;
            }
            Some(value) => {
                pairs.insert(key.to_string(), unquote(value)?);
                assignments += 1;
            }
        }
        position = cursor;
        if position < end && !text[position..].chars().next().is_some_and(is_str_space) {
            return Ok(None);
        }
    }
    Ok((assignments >= 2 && assignments > bare_keys).then_some(pairs))
}

/// End (after the closing quote) of `"(?:[^"\\]|\\.)*"` whose body starts at `start`.
fn quoted_value_end(text: &str, start: usize) -> Option<usize> {
    let mut chars = text[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(start + i + 1),
            '\\' => match chars.next() {
                Some((_, '\n')) | None => return None,
                Some(_) => {}
            },
            _ => {}
        }
    }
    None
}
