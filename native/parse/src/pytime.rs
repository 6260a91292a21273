//! Timestamp decoding with CPython 3.11's semantics (workers/steps/log_timestamps.py):
//! `datetime.fromisoformat` (the C implementation, byte for byte), `float()` +
//! `datetime.fromtimestamp`, the fast strptime decoder of log_timestamps.py, `_strptime`
//! for other patterns, the year rule of year-less timestamps, and zone conversion with
//! ZoneInfo's fold=0 rule.  Results are microseconds since the epoch (UTC).
use polaris_pyunicode::{decimal_value, is_str_space};
use crate::matcher::PyRegex;
use chrono::{Offset, TimeZone};

pub const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// datetime.min and datetime.max as microseconds since the epoch.
const MIN_MICROS: i64 = -62_135_596_800 * MICROS_PER_SECOND;
const MAX_MICROS: i64 = 253_402_300_799 * MICROS_PER_SECOND + 999_999;
/// chrono-tz lists transitions up to 2099 and then keeps the last offset, where ZoneInfo
/// follows the zone's rule string; beyond this instant the native parser defers.
const IANA_HORIZON_MICROS: i64 = 4_070_908_800 * MICROS_PER_SECOND; // 2099-01-01T00:00:00Z

/// The native parser cannot decide this exactly: the caller uses the Python reference.
#[derive(Debug, Clone)]
pub struct Defer(pub &'static str);

/// Python's datetime fields (no validation implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub micro: i64,
}

impl Civil {
    /// datetime(...)'s argument checks.
    pub fn is_valid(&self) -> bool {
        (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && (0..24).contains(&self.hour)
            && (0..60).contains(&self.minute)
            && (0..60).contains(&self.second)
            && (0..1_000_000).contains(&self.micro)
    }

    /// Microseconds of this wall time read as UTC.
    pub fn wall_micros(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        days * MICROS_PER_DAY
            + ((self.hour * 60 + self.minute) * 60 + self.second) * MICROS_PER_SECOND
            + self.micro
    }

    pub fn from_wall_micros(micros: i64) -> Civil {
        let days = micros.div_euclid(MICROS_PER_DAY);
        let rest = micros.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds = rest / MICROS_PER_SECOND;
        Civil {
            year,
            month,
            day,
            hour: seconds / 3600,
            minute: seconds / 60 % 60,
            second: seconds % 60,
            micro: rest % MICROS_PER_SECOND,
        }
    }
}

pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Proleptic Gregorian ordinal (date.toordinal(): 0001-01-01 is 1).
fn to_ordinal(year: i64, month: i64, day: i64) -> i64 {
    days_from_civil(year, month, day) + 719_163
}

fn from_ordinal(ordinal: i64) -> Option<(i64, i64, i64)> {
    let (y, m, d) = civil_from_days(ordinal - 719_163);
    (1..=9999).contains(&y).then_some((y, m, d))
}

// -- zones ---------------------------------------------------------------------------------

/// The zone of a format's zone-less timestamps.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Utc,
    /// datetime.timezone(timedelta): offset in microseconds
    Fixed(i64),
    Iana(chrono_tz::Tz),
}

impl Zone {
    /// Offset (µs) at a UTC instant: `utc.astimezone(zone)`.
    pub fn offset_at_utc(&self, utc_micros: i64) -> Result<i64, Defer> {
        match self {
            Zone::Utc => Ok(0),
            Zone::Fixed(offset) => Ok(*offset),
            Zone::Iana(tz) => {
                if utc_micros >= IANA_HORIZON_MICROS {
                    return Err(Defer("zone rule beyond chrono-tz's transition table"));
                }
                let seconds = utc_micros.div_euclid(MICROS_PER_SECOND);
                let utc = chrono::DateTime::from_timestamp(seconds, 0)
                    .ok_or(Defer("instant out of chrono's range"))?
                    .naive_utc();
                Ok(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * MICROS_PER_SECOND)
            }
        }
    }

    /// UTC instant of a wall time in this zone with fold=0 (ZoneInfo: in a repeated hour
    /// the first, earlier offset; in a skipped hour the offset before the transition).
    pub fn local_to_utc(&self, wall_micros: i64) -> Result<i64, Defer> {
        match self {
            Zone::Utc => Ok(wall_micros),
            Zone::Fixed(offset) => Ok(wall_micros - offset),
            Zone::Iana(_) => {
                // Offsets in effect around the wall time (a day either side covers every
                // transition's neighbourhood), then the fixed points offset(wall - o) == o.
                let day = MICROS_PER_DAY;
                let first = self.offset_at_utc(wall_micros)?;
                let mut candidates = vec![
                    first,
                    self.offset_at_utc(wall_micros - day)?,
                    self.offset_at_utc(wall_micros + day)?,
                    self.offset_at_utc(wall_micros - first)?,
                ];
                let last = candidates[3];
                candidates.push(self.offset_at_utc(wall_micros - last)?);
                let mut valid: Option<i64> = None;
                for &offset in &candidates {
                    if self.offset_at_utc(wall_micros - offset)? == offset {
                        valid = Some(valid.map_or(offset, |v: i64| v.max(offset)));
                    }
                }
                let offset = match valid {
                    // Repeated hour: fold=0 is the first, i.e. the larger offset.
                    Some(offset) => offset,
                    // Skipped hour: the offset before the transition, in effect just
                    // before wall - (offset after).
                    None => {
                        let largest = candidates.iter().copied().max().unwrap_or(first);
                        self.offset_at_utc(wall_micros - largest)?
                    }
                };
                Ok(wall_micros - offset)
            }
        }
    }
}

/// `aware.astimezone(UTC)` where Python raises OverflowError out of datetime's range.
fn checked_utc(utc_micros: i64) -> Result<i64, Defer> {
    if (MIN_MICROS..=MAX_MICROS).contains(&utc_micros) {
        Ok(utc_micros)
    } else {
        Err(Defer("astimezone(UTC) overflows in Python"))
    }
}

/// A decoded timestamp: naive (wall time, zone to be applied) or aware (offset µs).
#[derive(Debug, Clone, Copy)]
pub struct Decoded {
    pub civil: Civil,
    pub offset: Option<i64>,
}

impl Decoded {
    /// `(parsed if aware else parsed.replace(tzinfo=zone)).astimezone(UTC)`.
    pub fn to_utc(self, zone: &Zone) -> Result<i64, Defer> {
        let wall = self.civil.wall_micros();
        match self.offset {
            Some(offset) => checked_utc(wall - offset),
            None => checked_utc(zone.local_to_utc(wall)?),
        }
    }
}

// -- Python number parsing -------------------------------------------------------------------

pub fn py_strip(text: &str) -> &str {
    text.trim_matches(is_str_space)
}

pub fn py_rstrip(text: &str) -> &str {
    text.trim_end_matches(is_str_space)
}

/// `int(text)` for text made of decimal characters only (regex `\d` groups).
pub fn digits_value(text: &str) -> Option<i64> {
    let mut value: i64 = 0;
    let mut any = false;
    for c in text.chars() {
        let digit = decimal_value(c)?;
        value = value.checked_mul(10)?.checked_add(i64::from(digit))?;
        any = true;
    }
    any.then_some(value)
}

/// `int()` raises ValueError for this text.
#[derive(Debug, Clone, Copy)]
pub struct NotAnInt;

/// Python `int(text)` (base 10): whitespace, sign, decimal characters with single
/// underscores between them.  Err where Python raises ValueError; the value saturates
/// (callers compare it with small bounds only).
pub fn py_int(text: &str) -> Result<i128, NotAnInt> {
    let body = py_strip(text);
    let (negative, digits) = match body.chars().next() {
        Some('-') => (true, &body[1..]),
        Some('+') => (false, &body[1..]),
        _ => (false, body),
    };
    let mut value: i128 = 0;
    let mut previous_digit = false;
    let mut count = 0usize;
    let mut chars = digits.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if !previous_digit || chars.peek().is_none_or(|n| decimal_value(*n).is_none()) {
                return Err(NotAnInt);
            }
            previous_digit = false;
            continue;
        }
        let digit = decimal_value(c).ok_or(NotAnInt)?;
        value = value.saturating_mul(10).saturating_add(i128::from(digit));
        previous_digit = true;
        count += 1;
    }
    if count == 0 || count > 4300 {
        return Err(NotAnInt); // no digits; or sys.int_max_str_digits
    }
    Ok(if negative { -value } else { value })
}

/// Python `float(text)` for a str.
pub fn py_float(text: &str) -> Option<f64> {
    // _PyUnicode_TransformDecimalAndSpaceToASCII, then strip ASCII whitespace.
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else if is_str_space(c) {
            ascii.push(' ');
        } else if let Some(d) = decimal_value(c) {
            ascii.push(char::from(b'0' + d as u8));
        } else {
            return None;
        }
    }
    let body = ascii.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'));
    let cleaned: std::borrow::Cow<str> = if body.contains('_') {
        // Underscores only between digits.
        let bytes = body.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'_' {
                let before = i > 0 && bytes[i - 1].is_ascii_digit();
                let after = bytes.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if !before || !after {
                    return None;
                }
            }
        }
        body.replace('_', "").into()
    } else {
        body.into()
    };
    let s: &str = &cleaned;
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        let negative = s.starts_with('-');
        return Some(match (lower.as_str(), negative) {
            ("nan", _) => f64::NAN,
            (_, true) => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        });
    }
    // digits [. digits] [e [sign] digits], at least one mantissa digit.
    let bytes = unsigned.as_bytes();
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    s.parse::<f64>().ok()
}

// -- epoch -----------------------------------------------------------------------------------

const EPOCH_SECONDS_MAX: f64 = 1e11;

/// `datetime.fromtimestamp(value, tz=UTC)` (round half even to microseconds).
pub fn from_timestamp(value: f64) -> Option<i64> {
    let intpart = value.trunc();
    let mut floatpart = (value - intpart) * 1e6;
    floatpart = floatpart.round_ties_even();
    let mut intpart = intpart;
    if floatpart >= 1e6 {
        floatpart -= 1e6;
        intpart += 1.0;
    } else if floatpart < 0.0 {
        floatpart += 1e6;
        intpart -= 1.0;
    }
    // time_t range, then gmtime and datetime's year range
    if !(-9.2e18..9.2e18).contains(&intpart) {
        return None;
    }
    let seconds = intpart as i64;
    let micros = seconds.checked_mul(MICROS_PER_SECOND)?.checked_add(floatpart as i64)?;
    (MIN_MICROS..=MAX_MICROS).contains(&micros).then_some(micros)
}

/// log_timestamps.parse_epoch.
pub fn parse_epoch(text: &str) -> Option<i64> {
    let mut value = py_float(text)?;
    if !value.is_finite() {
        return None;
    }
    while value.abs() >= EPOCH_SECONDS_MAX {
        value /= 1000.0;
    }
    from_timestamp(value)
}

// -- datetime.fromisoformat (CPython 3.11, Modules/_datetimemodule.c) -----------------------

/// The C code reads a NUL-terminated UTF-8 buffer; `at` gives 0 past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn at(&self, index: usize) -> u8 {
        self.0.get(index).copied().unwrap_or(0)
    }

    fn digits(&self, pos: &mut usize, count: usize, value: &mut i64) -> bool {
        for _ in 0..count {
            let b = self.at(*pos);
            *pos += 1;
            if !b.is_ascii_digit() {
                return false;
            }
            *value = *value * 10 + i64::from(b - b'0');
        }
        true
    }
}

fn find_separator(b: &Bytes, len: usize) -> usize {
    if len == 7 {
        return 7;
    }
    if b.at(4) == b'-' {
        if b.at(5) == b'W' {
            if len < 8 {
                return usize::MAX;
            }
            if len > 8 && b.at(8) == b'-' {
                if len == 9 {
                    return usize::MAX;
                }
                if len > 10 && b.at(10).is_ascii_digit() {
                    return 8;
                }
                return 10;
            }
            return 8;
        }
        return 10;
    }
    if b.at(4) == b'W' {
        let mut idx = 7;
        while idx < len && b.at(idx).is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return idx;
        }
        return if idx % 2 == 0 { 7 } else { 8 };
    }
    8
}

fn iso_to_ymd(iso_year: i64, iso_week: i64, iso_day: i64) -> Option<(i64, i64, i64)> {
    if iso_week <= 0 || iso_week >= 53 {
        let mut out_of_range = true;
        if iso_week == 53 {
            let first_weekday = (to_ordinal(iso_year, 1, 1) + 6) % 7;
            if first_weekday == 3 || (first_weekday == 2 && is_leap(iso_year)) {
                out_of_range = false;
            }
        }
        if out_of_range {
            return None;
        }
    }
    if iso_day <= 0 || iso_day >= 8 {
        return None;
    }
    // iso_week1_monday
    let first_day = to_ordinal(iso_year, 1, 1);
    let first_weekday = (first_day + 6) % 7;
    let mut week1_monday = first_day - first_weekday;
    if first_weekday > 3 {
        week1_monday += 7;
    }
    let ordinal = week1_monday + (iso_week - 1) * 7 + iso_day - 1;
    let (y, m, d) = civil_from_days(ordinal - 719_163);
    Some((y, m, d))
}

fn parse_isoformat_date(b: &Bytes, len: usize) -> Option<(i64, i64, i64)> {
    let mut p = 0;
    let mut year = 0;
    if !b.digits(&mut p, 4, &mut year) {
        return None;
    }
    let uses_separator = b.at(p) == b'-';
    if uses_separator {
        p += 1;
    }
    if b.at(p) == b'W' {
        p += 1;
        let mut week = 0;
        let mut day = 0;
        if !b.digits(&mut p, 2, &mut week) {
            return None;
        }
        if p < len {
            if uses_separator {
                let c = b.at(p);
                p += 1;
                if c != b'-' {
                    return None;
                }
            }
            if !b.digits(&mut p, 1, &mut day) {
                return None;
            }
        } else {
            day = 1;
        }
        return iso_to_ymd(year, week, day);
    }
    let mut month = 0;
    let mut day = 0;
    if !b.digits(&mut p, 2, &mut month) {
        return None;
    }
    if uses_separator {
        let c = b.at(p);
        p += 1;
        if c != b'-' {
            return None;
        }
    }
    if !b.digits(&mut p, 2, &mut day) {
        return None;
    }
    Some((year, month, day))
}

/// parse_hh_mm_ss_ff: Err on failure; Ok(trailing) where trailing is the C code's "1".
fn parse_hh_mm_ss_ff(b: &Bytes, start: usize, end: usize) -> Result<([i64; 3], i64, bool), ()> {
    let mut vals = [0i64; 3];
    let mut micro = 0i64;
    let mut p = start;
    let mut has_separator = true;
    let mut i = 0;
    while i < 3 {
        if !b.digits(&mut p, 2, &mut vals[i]) {
            return Err(());
        }
        let c = b.at(p);
        p += 1;
        if i == 0 {
            has_separator = c == b':';
        }
        if p >= end {
            return Ok((vals, micro, c != 0));
        } else if has_separator && c == b':' {
            i += 1;
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_separator {
            p -= 1;
        } else {
            return Err(());
        }
        i += 1;
    }
    // size_t arithmetic in C: p past the end reads as a huge remainder
    let len_remains = end.checked_sub(p).unwrap_or(usize::MAX);
    let to_parse = len_remains.min(6);
    if to_parse == 0 {
        return Err(()); // unreachable in C (would index correction[-1])
    }
    if !b.digits(&mut p, to_parse, &mut micro) {
        return Err(());
    }
    const CORRECTION: [i64; 5] = [100_000, 10_000, 1_000, 100, 10];
    if to_parse < 6 {
        micro *= CORRECTION[to_parse - 1];
    }
    while b.at(p).is_ascii_digit() {
        p += 1;
    }
    Ok((vals, micro, b.at(p) != 0))
}

/// Ok(None): no zone; Ok(Some(offset µs)).
#[allow(clippy::type_complexity)]
fn parse_isoformat_time(b: &Bytes, start: usize, len: usize) -> Result<([i64; 3], i64, Option<i64>), ()> {
    let end = start + len;
    let mut tz_pos = start;
    loop {
        let c = b.at(tz_pos);
        if c == b'Z' || c == b'+' || c == b'-' {
            break;
        }
        tz_pos += 1;
        if tz_pos >= end {
            break;
        }
    }
    let (time, micro, trailing) = parse_hh_mm_ss_ff(b, start, tz_pos)?;
    if tz_pos == end {
        return if trailing { Err(()) } else { Ok((time, micro, None)) };
    }
    if b.at(tz_pos) == b'Z' {
        return if b.at(tz_pos + 1) != 0 { Err(()) } else { Ok((time, micro, Some(0))) };
    }
    let sign = if b.at(tz_pos) == b'-' { -1 } else { 1 };
    let (tz, tz_micro, tz_trailing) = parse_hh_mm_ss_ff(b, tz_pos + 1, end)?;
    if tz_trailing {
        return Err(());
    }
    let seconds = sign * ((tz[0] * 3600) + (tz[1] * 60) + tz[2]);
    // tzinfo_from_isoformat_results: a zero seconds offset is UTC, microseconds ignored.
    let offset = if seconds == 0 { 0 } else { seconds * MICROS_PER_SECOND + sign * tz_micro };
    Ok((time, micro, Some(offset)))
}

/// `datetime.fromisoformat(text)`; None where it raises ValueError.
pub fn fromisoformat(text: &str) -> Option<Decoded> {
    if text.chars().count() < 7 {
        return None;
    }
    let b = Bytes(text.as_bytes());
    let mut len = text.len();
    let separator = find_separator(&b, len);
    if separator == usize::MAX {
        return None;
    }
    let (year, month, day) = parse_isoformat_date(&b, separator)?;
    let mut time = [0i64; 3];
    let mut micro = 0;
    let mut offset = None;
    if len > separator {
        let mut p = separator;
        let lead = b.at(p);
        p += if lead & 0x80 == 0 {
            1
        } else {
            match lead & 0xf0 {
                0xe0 => 3,
                0xf0 => 4,
                _ => 2,
            }
        };
        len -= p;
        let (t, m, o) = parse_isoformat_time(&b, p, len).ok()?;
        time = t;
        micro = m;
        offset = o;
    }
    if let Some(offset) = offset {
        // timezone(timedelta): strictly within one day
        if offset.abs() >= MICROS_PER_DAY {
            return None;
        }
    }
    let civil = Civil { year, month, day, hour: time[0], minute: time[1], second: time[2], micro };
    civil.is_valid().then_some(Decoded { civil, offset })
}

/// log_timestamps._parse_iso_naive_or_aware.
pub fn parse_iso(text: &str) -> Option<Decoded> {
    if let Some(decoded) = fromisoformat(text) {
        return Some(decoded);
    }
    let mut candidate = py_strip(text).to_string();
    if candidate.ends_with(['Z', 'z']) {
        candidate.pop();
        candidate.push_str("+00:00");
    }
    // _TRAILING_ZONE_NAME: \s+[A-Z]{2,5}$ (Go's "-0400 EST")
    let letters = candidate.bytes().rev().take_while(u8::is_ascii_uppercase).count();
    if (2..=5).contains(&letters) {
        let head = &candidate[..candidate.len() - letters];
        let trimmed = py_rstrip(head);
        if trimmed.len() < head.len() {
            candidate.truncate(trimmed.len());
        }
    }
    // _has_offset: "+" or "-" past the first ten characters
    let tail_has_sign = candidate.chars().skip(10).any(|c| c == '+' || c == '-');
    if tail_has_sign {
        candidate = compact_offset(&candidate);
    }
    candidate = truncate_fractions(&candidate);
    fromisoformat(&candidate)
}

/// _COMPACT_OFFSET.sub(r"\1:\2"): `\s*([+-]\d\d):?(\d\d)$`.
fn compact_offset(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let is_digit = |c: char| decimal_value(c).is_some();
    let is_sign = |c: char| c == '+' || c == '-';
    let sign_at = if n >= 6
        && is_sign(chars[n - 6])
        && is_digit(chars[n - 5])
        && is_digit(chars[n - 4])
        && chars[n - 3] == ':'
        && is_digit(chars[n - 2])
        && is_digit(chars[n - 1])
    {
        n - 6
    } else if n >= 5
        && is_sign(chars[n - 5])
        && is_digit(chars[n - 4])
        && is_digit(chars[n - 3])
        && is_digit(chars[n - 2])
        && is_digit(chars[n - 1])
    {
        n - 5
    } else {
        return text.to_string();
    };
    let mut start = sign_at;
    while start > 0 && is_str_space(chars[start - 1]) {
        start -= 1;
    }
    let mut out: String = chars[..start].iter().collect();
    out.extend(&chars[sign_at..sign_at + 3]);
    out.push(':');
    out.extend(&chars[n - 2..]);
    out
}

/// _ISO_FRACTION.sub(r"\1"): `([.,]\d{6})\d+` -> first six digits.
fn truncate_fractions(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '.' || c == ',' {
            let mut j = i + 1;
            while j < chars.len() && decimal_value(chars[j]).is_some() {
                j += 1;
            }
            if j - (i + 1) >= 7 {
                out.extend(&chars[i..i + 7]);
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

// -- strptime ----------------------------------------------------------------------------------

/// The names `_strptime` matches (its LocaleTime), handed over by Python.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StrptimeLocale {
    pub a_weekday: Vec<String>,
    pub f_weekday: Vec<String>,
    pub a_month: Vec<String>,
    pub f_month: Vec<String>,
    pub am_pm: Vec<String>,
    /// `_strptime._TimeRE_cache[directive]`: Python's regex of every directive.
    pub directive_regexes: std::collections::HashMap<String, String>,
}

const FAST_DIRECTIVES: &str = "YymdHMSfbaz";
const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// One strptime pattern, compiled the way log_timestamps._strptime_cached would run it.
pub enum Strptime {
    /// log_timestamps' own fast decoder (_fast_pattern / _fast_strptime).
    Fast { regex: PyRegex, groups: Vec<(usize, char)> },
    /// datetime.strptime (`_strptime`).
    Full { regex: PyRegex, groups: Vec<(usize, char)>, locale: Box<StrptimeLocale> },
    /// datetime.strptime always raises ValueError for this pattern (bad directive).
    AlwaysNone,
}

/// Directives of `_strptime` whose post-processing the native parser implements.
const FULL_DIRECTIVES: &str = "dfHIjmMSyYzbBaApZ%";

impl Strptime {
    pub fn new(pattern: &str, locale: &StrptimeLocale) -> Result<Strptime, String> {
        if let Some(fast) = fast_pattern(pattern) {
            let regex = PyRegex::new(&fast, 0, false, true)?;
            let mut groups: Vec<(usize, char)> = Vec::new();
            for (index, name) in &regex.named_groups {
                let Some(directive) = name.chars().next() else { continue };
                groups.push((*index, directive));
            }
            return Ok(Strptime::Fast { regex, groups });
        }
        // _TimeRE.pattern(): escape regex characters, whitespace runs -> \s+, directives.
        let mut escaped = String::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if is_str_space(c) {
                while i < chars.len() && is_str_space(chars[i]) {
                    i += 1;
                }
                escaped.push_str("\\s+");
                continue;
            }
            if "\\.^$*+?(){}[]|".contains(c) {
                escaped.push('\\');
            }
            escaped.push(c);
            i += 1;
        }
        let mut regex_source = String::new();
        let chars: Vec<char> = escaped.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '%' {
                let Some(&directive) = chars.get(i + 1) else {
                    return Ok(Strptime::AlwaysNone); // "stray %"
                };
                let Some(directive_regex) = locale.directive_regexes.get(&directive.to_string()) else {
                    return Ok(Strptime::AlwaysNone); // "bad directive"
                };
                if !FULL_DIRECTIVES.contains(directive) {
                    return Err(format!("strptime directive %{directive} is not supported by the native parser"));
                }
                regex_source.push_str(directive_regex);
                i += 2;
            } else {
                regex_source.push(chars[i]);
                i += 1;
            }
        }
        let regex = PyRegex::new(&regex_source, polaris_pyregex::IGNORECASE, true, false)?;
        let mut groups = Vec::new();
        for (index, name) in &regex.named_groups {
            let mut letters = name.chars();
            match (letters.next(), letters.next()) {
                (Some(directive), None) => groups.push((*index, directive)),
                _ => return Err(format!("unexpected strptime group {name:?}")),
            }
        }
        Ok(Strptime::Full { regex, groups, locale: Box::new(locale.clone()) })
    }

    pub fn parse(&self, text: &str) -> Result<Option<Decoded>, Defer> {
        match self {
            Strptime::AlwaysNone => Ok(None),
            Strptime::Fast { regex, groups } => {
                let Some(spans) = regex.match_start(text, text.is_ascii(), &mut Default::default()).map_err(|_| Defer("regex backtrack limit"))? else {
                    return Ok(None);
                };
                let get = |directive: char| {
                    groups.iter().find(|(_, d)| *d == directive).and_then(|(index, _)| {
                        spans[*index].map(|(s, e)| &text[s..e])
                    })
                };
                Ok(fast_strptime(&get))
            }
            Strptime::Full { regex, groups, locale } => {
                let Some(spans) = regex.match_start(text, text.is_ascii(), &mut Default::default()).map_err(|_| Defer("regex backtrack limit"))? else {
                    return Ok(None);
                };
                if spans[0].map(|(_, e)| e) != Some(text.len()) {
                    return Ok(None); // unconverted data remains
                }
                let found: Vec<(char, &str)> = groups
                    .iter()
                    .filter_map(|(index, d)| spans[*index].map(|(s, e)| (*d, &text[s..e])))
                    .collect();
                Ok(full_strptime(&found, locale))
            }
        }
    }
}

/// log_timestamps._fast_pattern: the pattern as a Python regex, or None (slow path).
fn fast_pattern(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut parts = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '%' {
            let directive = *chars.get(i + 1)?;
            if !FAST_DIRECTIVES.contains(directive) {
                return None;
            }
            parts.push_str(match directive {
                'Y' => r"(?P<Y>\d{4})",
                'y' => r"(?P<y>\d\d)",
                'm' => r"(?P<m>\d\d?)",
                'd' => r"(?P<d>\d\d?)",
                'H' => r"(?P<H>\d\d?)",
                'M' => r"(?P<M>\d\d)",
                'S' => r"(?P<S>\d\d)",
                'f' => r"(?P<f>\d{1,6})",
                'b' => r"(?P<b>[A-Za-z]{3})",
                'a' => r"[A-Za-z]{3}",
                _ => r"(?P<z>[+-]\d\d:?\d\d|Z)",
            });
            i += 2;
            continue;
        }
        if is_str_space(c) {
            parts.push_str(r"\s+");
        } else if c.is_ascii_alphanumeric() || c == '_' {
            parts.push(c);
        } else {
            parts.push('\\');
            parts.push(c);
        }
        i += 1;
    }
    Some(parts)
}

fn fast_strptime<'t>(get: &dyn Fn(char) -> Option<&'t str>) -> Option<Decoded> {
    let int = |d: char| get(d).and_then(digits_value);
    let year = match get('Y') {
        Some(y) => digits_value(y)?,
        None => {
            let short = match get('y') {
                Some(y) => digits_value(y)?,
                None => 0,
            };
            if short < 69 {
                2000 + short
            } else {
                1900 + short
            }
        }
    };
    let month = match get('b') {
        Some(b) => {
            let lower = b.to_ascii_lowercase();
            MONTHS.iter().position(|m| *m == lower).map_or(0, |i| i as i64 + 1)
        }
        None => int('m').unwrap_or(1),
    };
    let fraction = match get('f') {
        Some(f) => {
            let digits = digits_value(f)?;
            digits * 10i64.pow(6 - f.chars().count() as u32)
        }
        None => 0,
    };
    let offset = match get('z') {
        None => None,
        Some("Z") => Some(0),
        Some(z) => {
            let compact: Vec<char> = z.chars().filter(|c| *c != ':').collect();
            let sign = if compact[0] == '-' { -1 } else { 1 };
            let hours = digits_value(&compact[1..3].iter().collect::<String>())?;
            let minutes = digits_value(&compact[3..5].iter().collect::<String>())?;
            let offset = sign * (hours * 3600 + minutes * 60) * MICROS_PER_SECOND;
            if offset.abs() >= MICROS_PER_DAY {
                return None;
            }
            Some(offset)
        }
    };
    let civil = Civil {
        year,
        month,
        day: int('d').unwrap_or(1),
        hour: int('H').unwrap_or(0),
        minute: int('M').unwrap_or(0),
        second: int('S').unwrap_or(0),
        micro: fraction,
    };
    civil.is_valid().then_some(Decoded { civil, offset })
}

/// Python's `str.lower()` is needed for names only: exact for ASCII; other text cannot
/// equal a (lowercase ASCII) name after lowering unless it holds U+212A.
fn lower_name(text: &str) -> String {
    text.chars()
        .map(|c| if c == '\u{212A}' { 'k' } else { c.to_ascii_lowercase() })
        .collect()
}

fn name_index(names: &[String], text: &str) -> Option<i64> {
    if !text.chars().all(|c| c.is_ascii() || c == '\u{212A}') {
        // A non-ASCII lowercase never equals an ASCII name (checked at load).
        return None;
    }
    let lower = lower_name(text);
    names.iter().position(|n| *n == lower).map(|i| i as i64)
}

/// `_strptime._strptime` + `_strptime_datetime` for the supported directives.
fn full_strptime(found: &[(char, &str)], locale: &StrptimeLocale) -> Option<Decoded> {
    let mut year: Option<i64> = None;
    let (mut month, mut day) = (1i64, 1i64);
    let (mut hour, mut minute, mut second, mut fraction) = (0i64, 0i64, 0i64, 0i64);
    let mut gmtoff: Option<i64> = None;
    let mut gmtoff_fraction = 0i64;
    let mut julian: Option<i64> = None;
    let get = |d: char| found.iter().find(|(k, _)| *k == d).map(|(_, v)| *v);
    for &(key, value) in found {
        match key {
            'y' => {
                let y = py_int(value).ok()? as i64;
                year = Some(if y <= 68 { y + 2000 } else { y + 1900 });
            }
            'Y' => year = Some(py_int(value).ok()? as i64),
            'm' => month = py_int(value).ok()? as i64,
            'B' => month = name_index(&locale.f_month, value)?,
            'b' => month = name_index(&locale.a_month, value)?,
            'd' => day = py_int(value).ok()? as i64,
            'H' => hour = py_int(value).ok()? as i64,
            'I' => {
                hour = py_int(value).ok()? as i64;
                let ampm = get('p').map(lower_name).unwrap_or_default();
                let am = locale.am_pm.first().map(String::as_str).unwrap_or("");
                let pm = locale.am_pm.get(1).map(String::as_str).unwrap_or("");
                if ampm.is_empty() || ampm == am {
                    if hour == 12 {
                        hour = 0;
                    }
                } else if ampm == pm && hour != 12 {
                    hour += 12;
                }
            }
            'M' => minute = py_int(value).ok()? as i64,
            'S' => second = py_int(value).ok()? as i64,
            'f' => {
                let digits = value.chars().count();
                let padded = format!("{value}{}", "0".repeat(6usize.saturating_sub(digits)));
                fraction = py_int(&padded).ok()? as i64;
            }
            'A' => {
                name_index(&locale.f_weekday, value)?;
            }
            'a' => {
                name_index(&locale.a_weekday, value)?;
            }
            'j' => julian = Some(py_int(value).ok()? as i64),
            'z' => {
                if value == "Z" {
                    gmtoff = Some(0);
                } else {
                    let mut z: Vec<char> = value.chars().collect();
                    if z.get(3) == Some(&':') {
                        z.remove(3);
                        if z.len() > 5 {
                            if z[5] != ':' {
                                return None;
                            }
                            z.remove(5);
                        }
                    }
                    let slice = |a: usize, b: usize| -> String { z.iter().skip(a).take(b.saturating_sub(a)).collect() };
                    let hours = py_int(&slice(1, 3)).ok()? as i64;
                    let minutes = py_int(&slice(3, 5)).ok()? as i64;
                    let seconds_text = slice(5, 7);
                    let seconds = if seconds_text.is_empty() { 0 } else { py_int(&seconds_text).ok()? as i64 };
                    let mut offset = hours * 3600 + minutes * 60 + seconds;
                    let remainder: String = z.iter().skip(8).collect();
                    let padded = format!("{remainder}{}", "0".repeat(6usize.saturating_sub(remainder.chars().count())));
                    let mut offset_fraction = py_int(&padded).ok()? as i64;
                    if z.first() == Some(&'-') {
                        offset = -offset;
                        offset_fraction = -offset_fraction;
                    }
                    gmtoff = Some(offset);
                    gmtoff_fraction = offset_fraction;
                }
            }
            _ => {} // 'p', 'Z', '%': matched, no value of their own
        }
    }
    let mut leap_year_fix = false;
    let mut year = match year {
        Some(y) => y,
        None if month == 2 && day == 29 => {
            leap_year_fix = true;
            1904
        }
        None => 1900,
    };
    match julian {
        None => {
            // datetime_date(year, month, day) validates the date.
            if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
                return None;
            }
        }
        Some(julian) => {
            if !(1..=9999).contains(&year) {
                return None;
            }
            let (y, m, d) = from_ordinal(julian - 1 + to_ordinal(year, 1, 1))?;
            year = y;
            month = m;
            day = d;
        }
    }
    if leap_year_fix {
        year = 1900;
    }
    let offset = match gmtoff {
        None => None,
        Some(seconds) => {
            let total = seconds * MICROS_PER_SECOND + gmtoff_fraction;
            if total.abs() >= MICROS_PER_DAY {
                return None;
            }
            Some(total)
        }
    };
    let civil = Civil { year, month, day, hour, minute, second, micro: fraction };
    civil.is_valid().then_some(Decoded { civil, offset })
}

// -- the timestamp formats of one line format -------------------------------------------------

pub enum TimestampFormat {
    Iso8601,
    Epoch,
    Strptime(Strptime),
    /// `yearless:<pattern>`: "%Y <pattern>" applied to "2000 <text>"
    Yearless(Strptime),
}

pub const YEARLESS_FUTURE_TOLERANCE_MICROS: i64 = 7 * MICROS_PER_DAY;

impl TimestampFormat {
    pub fn new(spec: &str, locale: &StrptimeLocale) -> Result<TimestampFormat, String> {
        Ok(match spec {
            "iso8601" => TimestampFormat::Iso8601,
            "epoch" => TimestampFormat::Epoch,
            _ => match spec.strip_prefix("yearless:") {
                Some(pattern) => TimestampFormat::Yearless(Strptime::new(&format!("%Y {pattern}"), locale)?),
                None => TimestampFormat::Strptime(Strptime::new(spec, locale)?),
            },
        })
    }
}

/// log_timestamps.parse_timestamp: µs since the epoch (UTC), None where none fits.
pub fn parse_timestamp(
    text: &str,
    formats: &[TimestampFormat],
    zone: &Zone,
    reference_micros: i64,
) -> Result<Option<i64>, Defer> {
    if text.is_empty() {
        return Ok(None);
    }
    for format in formats {
        let decoded = match format {
            TimestampFormat::Iso8601 => parse_iso(text),
            TimestampFormat::Epoch => {
                if let Some(utc) = parse_epoch(text) {
                    return Ok(Some(utc));
                }
                None
            }
            TimestampFormat::Strptime(strptime) => strptime.parse(text)?,
            TimestampFormat::Yearless(strptime) => {
                if let Some(utc) = yearless(text, strptime, zone, reference_micros)? {
                    return Ok(Some(utc));
                }
                None
            }
        };
        if let Some(decoded) = decoded {
            return decoded.to_utc(zone).map(Some);
        }
    }
    Ok(None)
}

/// The year rule (log_timestamps._yearless without its memo).
fn yearless(text: &str, strptime: &Strptime, zone: &Zone, reference_micros: i64) -> Result<Option<i64>, Defer> {
    let Some(parsed) = strptime.parse(&format!("2000 {text}"))? else {
        return Ok(None);
    };
    let reference_wall = reference_micros + zone.offset_at_utc(reference_micros)?;
    let reference_year = Civil::from_wall_micros(reference_wall).year;
    for year in [reference_year, reference_year - 1, reference_year - 2] {
        // replace(year=...): Feb 29 outside a leap year raises; so does a year out of range.
        let candidate = Civil { year, ..parsed.civil };
        if !candidate.is_valid() {
            continue;
        }
        // Same tzinfo on both sides: Python subtracts wall times.
        if candidate.wall_micros() - reference_wall <= YEARLESS_FUTURE_TOLERANCE_MICROS {
            let utc = zone.local_to_utc(candidate.wall_micros())?;
            return checked_utc(utc).map(Some);
        }
    }
    Ok(None)
}

/// Parse a zone spec from Python: "UTC", "fixed:<µs>", or an IANA key.
pub fn zone_from_spec(spec: &str) -> Result<Zone, String> {
    if spec == "UTC" {
        return Ok(Zone::Utc);
    }
    if let Some(micros) = spec.strip_prefix("fixed:") {
        let offset: i64 = micros.parse().map_err(|_| format!("bad fixed zone {spec:?}"))?;
        return Ok(if offset == 0 { Zone::Utc } else { Zone::Fixed(offset) });
    }
    spec.parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|e| format!("unknown zone {spec:?}: {e}"))
}
