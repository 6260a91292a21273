//! The candidate checks of the pattern file (`check` key), as `_apply_check` and
//! `_VALUE_CHECKS` define them in workers/steps/entities.py.

use std::fmt;
use std::str::FromStr;

use polaris_pyunicode::{decimal_value, is_int_space, is_re_digit};
use crate::EntityError;

/// A candidate's check. The reshaping ones only look at characters the shape keeps, so
/// they run once per shape; the value ones need the real digits and run per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    None,
    /// Spark input splits: `hdfs://h:9000/f.log:0+7292` loses `:0+7292`.
    Url,
    /// kubectl's `pod/name` -> `name`.
    AfterSlash,
    /// kubelet's `pod="namespace/name"` -> a K8S_NAMESPACE and a K8S_POD.
    K8sNamespacePod,
    Value(ValueCheck),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCheck {
    Ipv4,
    Port,
    HttpStatus,
}

impl FromStr for Check {
    type Err = EntityError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "" => Check::None,
            "url" => Check::Url,
            "after_slash" => Check::AfterSlash,
            "k8s_namespace_pod" => Check::K8sNamespacePod,
            "ipv4" => Check::Value(ValueCheck::Ipv4),
            "port" => Check::Value(ValueCheck::Port),
            "http_status" => Check::Value(ValueCheck::HttpStatus),
            other => return Err(EntityError::UnknownCheck(other.to_owned())),
        })
    }
}

/// Why Python's `int(text)` would raise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntError {
    /// `invalid literal for int() with base 10: ...`
    InvalidLiteral(String),
    /// More digits than `sys.get_int_max_str_digits()` allows.
    TooManyDigits { digits: usize, limit: usize },
}

impl fmt::Display for IntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntError::InvalidLiteral(text) => write!(f, "invalid literal for int() with base 10: {text:?}"),
            IntError::TooManyDigits { digits, limit } => write!(
                f,
                "Exceeds the limit ({limit} digits) for integer string conversion: value has {digits} digits; \
                 use sys.set_int_max_str_digits() to increase the limit"
            ),
        }
    }
}

impl ValueCheck {
    /// Whether the real characters `text` pass (`_check_ipv4`, `_check_port`,
    /// `_check_http_status`), or the error `int()` raises on them.
    pub fn passes(self, text: &str, max_str_digits: usize) -> Result<bool, IntError> {
        let int = |part: &str| python_int(part, max_str_digits);
        Ok(match self {
            // `all(...)` stops at the first octet over 255: a bad literal after it is not read.
            ValueCheck::Ipv4 => {
                for part in text.split('.') {
                    if int(part)? > 255 {
                        return Ok(false);
                    }
                }
                true
            }
            ValueCheck::Port => (1..=65535).contains(&int(text)?),
            ValueCheck::HttpStatus => (100..=599).contains(&int(text)?),
        })
    }
}

/// Python's `int(text)` (base 10), saturated to `i64`: surrounding whitespace, a sign,
/// decimal digits of any script and single underscores between digits.
/// `max_str_digits` is `sys.get_int_max_str_digits()` (0: no limit).
pub fn python_int(text: &str, max_str_digits: usize) -> Result<i64, IntError> {
    let invalid = || IntError::InvalidLiteral(text.to_owned());
    let trimmed = text.trim_matches(is_int_space);
    let (negative, body) = match trimmed.chars().next() {
        Some('-') => (true, &trimmed[1..]),
        Some('+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let mut value: i64 = 0;
    let mut digits = 0usize;
    let mut after_underscore = false;
    for c in body.chars() {
        if c == '_' {
            if digits == 0 || after_underscore {
                return Err(invalid());
            }
            after_underscore = true;
            continue;
        }
        let digit = decimal_value(c).ok_or_else(invalid)?;
        value = value.saturating_mul(10).saturating_add(i64::from(digit));
        digits += 1;
        after_underscore = false;
    }
    if digits == 0 || after_underscore {
        return Err(invalid());
    }
    if max_str_digits > 0 && digits > max_str_digits {
        return Err(IntError::TooManyDigits { digits, limit: max_str_digits });
    }
    Ok(if negative { -value } else { value })
}

/// How many code points `re.search(r":\d+\+\d+$", text)` matches (0: no match).
pub fn split_suffix_len(text: &str) -> usize {
    // `$` also matches before a final "\n"; `\d` cannot match "\n", so no match ends later.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut reversed = body.chars().rev().peekable();
    let mut length = 0;
    for separator in ['+', ':'] {
        let mut digits = 0;
        while reversed.next_if(|&c| is_re_digit(c)).is_some() {
            digits += 1;
        }
        if digits == 0 || reversed.next() != Some(separator) {
            return 0;
        }
        length += digits + 1;
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_like_python() {
        let ok = |text: &str| python_int(text, 4300).ok();
        assert_eq!(ok(" 5 "), Some(5));
        assert_eq!(ok("\u{2000}5\u{3000}"), Some(5));
        assert_eq!(ok("-5"), Some(-5));
        assert_eq!(ok("1_0"), Some(10));
        assert_eq!(ok("\u{663}_\u{663}"), Some(33));
        assert_eq!(ok("007"), Some(7));
        assert_eq!(ok("99999999999999999999999999"), Some(i64::MAX));
        for bad in ["", "  ", "+ 5", "_1", "1_", "1__0", "+_1", "1 2", "\x1c5", "a"] {
            assert_eq!(ok(bad), None, "{bad:?}");
        }
        assert!(matches!(python_int(&"1".repeat(4301), 4300), Err(IntError::TooManyDigits { .. })));
    }

    #[test]
    fn ipv4_stops_at_the_first_large_octet() {
        assert_eq!(ValueCheck::Ipv4.passes("300.x.1.1", 4300), Ok(false));
        assert!(ValueCheck::Ipv4.passes("x.300.1.1", 4300).is_err());
        assert_eq!(ValueCheck::Ipv4.passes("255.0.0.1", 4300), Ok(true));
    }

    #[test]
    fn split_suffix() {
        assert_eq!(split_suffix_len("hdfs://h:9000/f.log:0+7292"), 7);
        assert_eq!(split_suffix_len("hdfs://h:9000/f.log:0+7292\n"), 7);
        assert_eq!(split_suffix_len("hdfs://h:9000/f.log"), 0);
        assert_eq!(split_suffix_len("x:+1"), 0);
        assert_eq!(split_suffix_len(":1+2:3+4"), 4);
    }
}
