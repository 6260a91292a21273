//! The log chain's own pieces, outside any step: turning a raw Kafka value into text (or a
//! dead-letter reason), the record id of a raw position, and the enriched record written as
//! the JSON that `schemas.records.LogRecord.model_dump_json()` gives, byte for byte, so the
//! sink tier cannot tell which implementation produced it.

use std::fmt::Write as _;
use std::io::Write as _;

/// A larger "line" is a shipper bug, not a log record (workers.pipeline.MAX_LINE_BYTES).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a raw value is dead-lettered before any step sees it, and whether the DLQ record
/// keeps the value (a too-large one is not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub keep_value: bool,
}

fn is_ascii_space(byte: u8) -> bool {
    // bytes.strip() strips exactly these
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The text of a raw value, as `workers.pipeline.decode` makes it.
pub fn decode(value: Option<&[u8]>) -> Result<&str, Rejection> {
    let value = match value {
        Some(v) if !v.iter().all(|b| is_ascii_space(*b)) => v,
        _ => return Err(Rejection { reason: "empty: the message has no text".into(), keep_value: true }),
    };
    if value.len() > MAX_LINE_BYTES {
        return Err(Rejection {
            reason: format!("too_large: {} bytes > {}", value.len(), MAX_LINE_BYTES),
            keep_value: false,
        });
    }
    let text = std::str::from_utf8(value).map_err(|e| Rejection {
        reason: format!("not_utf8: invalid byte at position {}", e.valid_up_to()),
        keep_value: true,
    })?;
    if text.contains('\0') {
        return Err(Rejection { reason: "binary: the message holds NUL bytes".into(), keep_value: true });
    }
    Ok(text)
}

/// `schemas.records.record_id_for`: blake2b-96 of "topic/partition/offset".
pub fn record_id_for(topic: &str, partition: i64, offset: i64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // blake2b_simd: the same digest as hashlib's, in about half the instructions (AVX2 where
    // the CPU has it), which matters once per record
    let mut state = blake2b_simd::Params::new().hash_length(12).to_state();
    state.update(topic.as_bytes());
    // the key is hashed in pieces: no string is built per record
    let mut number = [0u8; 24];
    for value in [partition, offset] {
        state.update(b"/");
        state.update(decimal(value, &mut number));
    }
    let digest = state.finalize();
    let mut id = String::with_capacity(26);
    id.push_str("r-");
    for &byte in digest.as_bytes() {
        id.push(HEX[usize::from(byte >> 4)] as char);
        id.push(HEX[usize::from(byte & 15)] as char);
    }
    id
}

/// `value` in decimal, written at the end of `buffer`.
fn decimal(value: i64, buffer: &mut [u8; 24]) -> &[u8] {
    let mut rest = value.unsigned_abs();
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        start -= 1;
        buffer[start] = b'-';
    }
    &buffer[start..]
}

/// The parts of an enriched log record, borrowed from the steps' outputs.
pub struct LogRecordParts<'a> {
    pub record_id: &'a str,
    pub topic: &'a str,
    pub partition: i64,
    pub offset: i64,
    pub timestamp_us: i64,
    pub format: &'a str,
    pub level: Option<&'a str>,
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
    pub message: &'a str,
    pub fields: &'a [(String, String)],
    pub template: Option<&'a str>,
    pub template_id: Option<&'a str>,
    pub entities: &'a [(&'a str, &'a str)],
    pub category: Option<&'a str>,
    pub severity: Option<i64>,
    pub redacted: &'a [String],
    pub anomaly_score: f64,
    pub anomaly_reason: Option<&'a str>,
}

/// A JSON string as pydantic-core (and serde_json) writes it: `"` and `\\` escaped, the
/// controls below 0x20 as `\n \r \t \b \f` or `\u00XX`, everything else (non-ASCII too)
/// as it is. Runs of plain bytes are copied whole, found eight bytes at a time: most values
/// need no escape at all.
fn push_str(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut i, mut plain) = (0, 0);
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 16) {
            if !block_needs_escape(chunk.try_into().expect("sixteen bytes")) {
                i += 16;
                continue;
            }
        }
        if let Some(chunk) = bytes.get(i..i + 8) {
            if !word_needs_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        i += 1;
        if byte >= 0x20 && byte != b'"' && byte != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[plain..i - 1]);
        plain = i;
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]),
        }
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// Whether any of sixteen bytes is below 0x20, `"` or `\\`: one SSE2 comparison each.
#[cfg(target_arch = "x86_64")]
fn block_needs_escape(block: &[u8; 16]) -> bool {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline; the load is unaligned and reads exactly
    // the sixteen bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f)); // v <= 0x1f
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) != 0
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn block_needs_escape(block: &[u8; 16]) -> bool {
    let (low, high) = block.split_at(8);
    word_needs_escape(u64::from_le_bytes(low.try_into().expect("eight bytes")))
        || word_needs_escape(u64::from_le_bytes(high.try_into().expect("eight bytes")))
}

/// Whether any of the eight bytes in `word` is below 0x20, `"` or `\\` (exact; the
/// zero-byte test of "Bit Twiddling Hacks").
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS != 0; // some byte < n (n <= 128)
    below(word, 0x20) || below(word ^ (ONES * u64::from(b'"')), 1) || below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// A decimal integer, without the formatting machinery.
fn push_int(out: &mut Vec<u8>, value: i64) {
    let mut buffer = [0u8; 24];
    out.extend_from_slice(decimal(value, &mut buffer));
}

fn push_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => push_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A float as pydantic-core writes it: the shortest round-trip digits, never an exponent,
/// and always a decimal point ("0.0001", "1.0").
fn push_float(out: &mut Vec<u8>, value: f64) {
    // The common case, a score rounded to four decimals (k / 10**4 for a whole k): the
    // double nearest k / 10**4 has that decimal, trailing zeros trimmed, as its shortest
    // round-trip form, so it is written from k without the general algorithm.
    let scaled = (value * 10_000.0).round();
    if (0.0..=1e9).contains(&scaled) && scaled / 10_000.0 == value && !(value == 0.0 && value.is_sign_negative()) {
        let k = scaled as i64;
        push_int(out, k / 10_000);
        out.push(b'.');
        let mut fraction = k % 10_000;
        if fraction == 0 {
            out.push(b'0');
            return;
        }
        let mut width = 4;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        let mut digits = [b'0'; 4];
        for slot in digits[..width].iter_mut().rev() {
            *slot = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        out.extend_from_slice(&digits[..width]);
        return;
    }
    let mut text = String::with_capacity(24);
    let _ = write!(text, "{value}");
    if !text.contains(['.', 'e', 'N', 'i']) {
        text.push_str(".0");
    }
    out.extend_from_slice(text.as_bytes());
}

/// An aware UTC datetime as pydantic writes it: microseconds only when not zero.
pub fn push_timestamp(out: &mut Vec<u8>, timestamp_us: i64) {
    use chrono::{Datelike, Timelike};
    let seconds = timestamp_us.div_euclid(1_000_000);
    let micros = timestamp_us.rem_euclid(1_000_000);
    match chrono::DateTime::from_timestamp(seconds, 0) {
        // Python's datetime holds years 1-9999 only; written field by field, as strftime
        // would, without parsing a format string per record
        Some(at) if (1..=9999).contains(&at.year()) => {
            out.push(b'"');
            push_digits(out, at.year() as u32, 4);
            for (separator, value) in [(b'-', at.month()), (b'-', at.day()), (b'T', at.hour()), (b':', at.minute()), (b':', at.second())] {
                out.push(separator);
                push_digits(out, value, 2);
            }
            if micros != 0 {
                out.push(b'.');
                push_digits(out, micros as u32, 6);
            }
            out.extend_from_slice(b"Z\"");
        }
        Some(at) => {
            let _ = write!(out, "\"{}", at.format("%Y-%m-%dT%H:%M:%S"));
            if micros != 0 {
                let _ = write!(out, ".{micros:06}");
            }
            out.extend_from_slice(b"Z\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `value` zero-padded to `width` digits (`value` has at most `width` digits).
fn push_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(b'0' + ((value / divisor) % 10) as u8);
        divisor /= 10;
    }
}

/// `LogRecord(...).model_dump_json()`.
pub fn log_record_json(r: &LogRecordParts<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + r.message.len() * 2);
    out.extend_from_slice("{\"kind\":\"log\",\"record_id\":".as_bytes());
    push_str(&mut out, r.record_id);
    out.extend_from_slice(",\"origin\":{\"topic\":".as_bytes());
    push_str(&mut out, r.topic);
    out.extend_from_slice(b",\"partition\":");
    push_int(&mut out, r.partition);
    out.extend_from_slice(b",\"offset\":");
    push_int(&mut out, r.offset);
    out.extend_from_slice(b"},\"timestamp\":");
    push_timestamp(&mut out, r.timestamp_us);
    out.extend_from_slice(",\"format\":".as_bytes());
    push_str(&mut out, r.format);
    out.extend_from_slice(",\"level\":".as_bytes());
    push_opt(&mut out, r.level);
    out.extend_from_slice(",\"host\":".as_bytes());
    push_opt(&mut out, r.host);
    out.extend_from_slice(",\"service\":".as_bytes());
    push_opt(&mut out, r.service);
    out.extend_from_slice(",\"message\":".as_bytes());
    push_str(&mut out, r.message);
    out.extend_from_slice(",\"fields\":{".as_bytes());
    for (i, (key, value)) in r.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(&mut out, key);
        out.push(b':');
        push_str(&mut out, value);
    }
    out.extend_from_slice("},\"template\":".as_bytes());
    push_opt(&mut out, r.template);
    out.extend_from_slice(",\"template_id\":".as_bytes());
    push_opt(&mut out, r.template_id);
    out.extend_from_slice(",\"entities\":[".as_bytes());
    for (i, (label, text)) in r.entities.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice("{\"label\":".as_bytes());
        push_str(&mut out, label);
        out.extend_from_slice(",\"text\":".as_bytes());
        push_str(&mut out, text);
        out.push(b'}');
    }
    out.extend_from_slice("],\"category\":".as_bytes());
    push_opt(&mut out, r.category);
    out.extend_from_slice(",\"severity\":".as_bytes());
    match r.severity {
        Some(s) => push_int(&mut out, s),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(",\"redacted\":[".as_bytes());
    for (i, kind) in r.redacted.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(&mut out, kind);
    }
    out.extend_from_slice("],\"anomaly_score\":".as_bytes());
    push_float(&mut out, r.anomaly_score);
    out.extend_from_slice(",\"anomaly_reason\":".as_bytes());
    push_opt(&mut out, r.anomaly_reason);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_match_python() {
        // schemas.records.record_id_for("raw.logs", 0, 7)
        // schemas.records.record_id_for, computed with Python's hashlib
        assert_eq!(record_id_for("raw.logs", 0, 7).len(), 26);
        assert_eq!(record_id_for("raw.logs", 3, 1234567), "r-e576b283f5a1b88584c7ad8e");
        assert_eq!(record_id_for("t", -1, -20), "r-4e7de5fbf2d0775e097da1a0");
    }

    #[test]
    fn decode_rejects_like_python() {
        assert_eq!(decode(Some(b" \t\n")).unwrap_err().reason, "empty: the message has no text");
        assert_eq!(decode(Some(b"ab\xffc")).unwrap_err().reason, "not_utf8: invalid byte at position 2");
        assert_eq!(decode(Some(b"a\0b")).unwrap_err().reason, "binary: the message holds NUL bytes");
        assert_eq!(decode(Some(b"ok")).unwrap(), "ok");
    }

    #[test]
    fn strings_escape_as_serde_json() {
        let samples = ["", "plain", "quote \" and \\ back", "tab\there\nnew\r\u{8}\u{c}", "\u{1}\u{1f}\u{7f}", "naïve ☃ 𝄞", "\"\"", "end\\"];
        for sample in samples {
            let mut ours = Vec::new();
            push_str(&mut ours, sample);
            assert_eq!(ours, serde_json::to_vec(sample).unwrap(), "{sample:?}");
        }
        for byte in 0u8..=255 {
            if byte >= 128 {
                // non-ASCII bytes come only inside UTF-8 sequences: test them as characters
                let text = format!("{}{}{}", "ab".repeat(9), char::from_u32(0x80 + u32::from(byte)).unwrap(), "cd".repeat(9));
                let mut ours = Vec::new();
                push_str(&mut ours, &text);
                assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "char {byte}");
                continue;
            }
            let text = format!("a{}b", byte as char);
            let long = format!("0123456789{}abcdefghij{}", byte as char, byte as char);
            for at in 0..40 {
                let placed = format!("{}{}{}", "x".repeat(at), byte as char, "y".repeat(40 - at));
                let mut ours = Vec::new();
                push_str(&mut ours, &placed);
                assert_eq!(ours, serde_json::to_vec(&placed).unwrap(), "byte {byte} at {at}");
            }
            let mut ours = Vec::new();
            push_str(&mut ours, &long);
            assert_eq!(ours, serde_json::to_vec(&long).unwrap(), "byte {byte} in a long text");
            let mut ours = Vec::new();
            push_str(&mut ours, &text);
            assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "byte {byte}");
        }
    }

    #[test]
    fn four_decimal_floats_as_the_general_path() {
        let general = |value: f64| {
            let mut text = format!("{value}");
            if !text.contains(['.', 'e', 'N', 'i']) {
                text.push_str(".0");
            }
            text
        };
        let mut values: Vec<f64> = (0..=10_000).map(|k| k as f64 / 10_000.0).collect();
        values.extend([1.5, 2.0, 12.3456, 123_456.789, 0.1 + 0.2, 1e-5, 0.33333, -0.0, -0.5, f64::NAN, 1e300, 5e-324]);
        for value in values {
            let mut ours = Vec::new();
            push_float(&mut ours, value);
            assert_eq!(String::from_utf8(ours).unwrap(), general(value), "{value:?}");
        }
    }

    #[test]
    fn integers_as_python() {
        for value in [0, 7, -7, 10, 1_234_567, i64::MAX, i64::MIN] {
            let mut ours = Vec::new();
            push_int(&mut ours, value);
            assert_eq!(String::from_utf8(ours).unwrap(), value.to_string());
        }
    }

    #[test]
    fn floats_and_times_as_pydantic() {
        let mut s = Vec::new();
        push_float(&mut s, 1.0);
        s.push(b' ');
        push_float(&mut s, 0.0001);
        s.push(b' ');
        push_timestamp(&mut s, 1_420_167_845_000_120);
        s.push(b' ');
        push_timestamp(&mut s, -62_135_596_800_000_000); // 0001-01-01T00:00:00
        s.push(b' ');
        push_timestamp(&mut s, 253_402_300_799_999_999); // the last microsecond of 9999
        assert_eq!(
            std::str::from_utf8(&s).unwrap(),
            "1.0 0.0001 \"2015-01-02T03:04:05.000120Z\" \"0001-01-01T00:00:00Z\" \"9999-12-31T23:59:59.999999Z\""
        );
    }
}
