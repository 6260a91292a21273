//! Float operations written to give exactly CPython's results: the same libm calls, and the
//! same decimal rounding (half to even on the exact binary value) for `format(x, ".Nf")` and
//! `round(x, N)`.

use std::fmt::Write;
use std::hint::black_box;

/// `math.pow(2.0, exponent)`. The base goes through `black_box` because LLVM otherwise
/// rewrites `pow(2.0, x)` as `exp2(x)`, and glibc's exp2 and pow may differ in the last bit.
#[inline]
pub(crate) fn pow2(exponent: f64) -> f64 {
    black_box(2.0f64).powf(exponent)
}

/// Python's `clamp01` (anomaly_common): NaN passes through, as there. Not `f64::clamp`,
/// which keeps -0.0 where Python returns 0.0.
#[inline]
#[allow(clippy::manual_clamp)]
pub(crate) fn clamp01(value: f64) -> f64 {
    if value <= 0.0 {
        0.0
    } else if value >= 1.0 {
        1.0
    } else {
        value
    }
}

const POWERS_OF_TEN: [u64; 5] = [1, 10, 100, 1_000, 10_000];

/// `|value| * 10**precision` rounded half to even, computed exactly; None when it does not
/// fit the fast path (huge magnitudes), or for non-finite values.
///
/// Why exact integers: `|value|` is `mantissa * 2**exponent`, so `|value| * 10**p` is
/// `mantissa * 10**p / 2**-exponent`, a quotient whose rounding needs only the remainder.
fn scaled_round_half_even(value: f64, precision: usize) -> Option<u64> {
    if !value.is_finite() {
        return None;
    }
    let bits = value.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if biased_exponent == 0 {
        (fraction, -1074) // subnormal (or zero)
    } else {
        (fraction | (1u64 << 52), biased_exponent - 1075)
    };
    let scaled = u128::from(mantissa) * u128::from(POWERS_OF_TEN[precision]); // < 2**67
    let rounded = if exponent >= 0 {
        if exponent > 10 {
            return None; // beyond 2**63 / 10**4: leave it to the general formatter
        }
        scaled << exponent
    } else {
        let shift = (-exponent) as u32;
        if shift > 100 {
            0 // scaled < 2**67 <= half of 2**shift: rounds to zero
        } else {
            let quotient = scaled >> shift;
            let remainder = scaled & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            if remainder > half || (remainder == half && quotient & 1 == 1) {
                quotient + 1
            } else {
                quotient
            }
        }
    };
    u64::try_from(rounded).ok().filter(|&r| r < (1 << 53))
}

/// Append `format(value, f".{precision}f")` (precision at most 4).
pub(crate) fn push_fixed(out: &mut String, value: f64, precision: usize) {
    if value.is_nan() {
        out.push_str("nan"); // Rust would write "NaN"
        return;
    }
    match scaled_round_half_even(value, precision) {
        Some(scaled) => {
            if value.is_sign_negative() {
                out.push('-'); // also for -0.0 and what rounds to 0, as Python
            }
            // The digits of `scaled`, with a point before the last `precision` of them.
            let mut digits = [b'0'; 24];
            let mut start = digits.len();
            let mut rest = scaled;
            while rest > 0 || start > digits.len() - precision - 1 {
                start -= 1;
                digits[start] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            let digits = std::str::from_utf8(&digits[start..]).unwrap_or_default(); // ASCII digits
            let (integer, fraction) = digits.split_at(digits.len() - precision);
            out.push_str(integer);
            if precision > 0 {
                out.push('.');
                out.push_str(fraction);
            }
        }
        // Rust's fixed-precision formatting also rounds the exact value half to even.
        None => {
            let _ = write!(out, "{value:.precision$}");
        }
    }
}

/// Python's `round(value, 4)`: the value correctly rounded to 4 decimals (half to even on
/// the exact binary value), then the float nearest to that decimal (CPython: dtoa mode 3,
/// then strtod; here one correctly rounded division).
pub(crate) fn round4(value: f64) -> f64 {
    match scaled_round_half_even(value, 4) {
        Some(scaled) => {
            let rounded = scaled as f64 / 10_000.0; // scaled < 2**53: exact as a float
            if value.is_sign_negative() {
                -rounded
            } else {
                rounded
            }
        }
        None if value.is_finite() => {
            let text = format!("{value:.4}");
            text.parse().unwrap_or(value)
        }
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_fixed(value: f64, precision: usize) -> String {
        if value.is_nan() {
            "nan".to_owned()
        } else {
            format!("{value:.precision$}")
        }
    }

    fn samples() -> Vec<f64> {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            0.125,
            0.375,
            0.05,
            0.00005,
            0.00015,
            0.03125,
            0.46875,
            1e-320,
            5e-324,
            1e22,
            123456.5,
            9007199254740993.0,
            1e300,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -0.001,
            -2.5,
            1800.0000000000002,
            0.1 + 0.2,
        ];
        // A deterministic spread of magnitudes and bit patterns.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..30_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            if value.is_finite() {
                values.push(value);
            }
            values.push((state % 1_000_000) as f64 / 65536.0);
            values.push((state % 100_000) as f64 / 10_000.0 + 0.00005);
            values.push((state >> 11) as f64 / (1u64 << 53) as f64);
        }
        values
    }

    #[test]
    fn fixed_formatting_matches_the_general_formatter() {
        for value in samples() {
            for precision in 0..=4 {
                let mut out = String::new();
                push_fixed(&mut out, value, precision);
                assert_eq!(out, reference_fixed(value, precision), "{value:e} .{precision}");
            }
        }
    }

    #[test]
    fn round4_matches_format_then_parse() {
        for value in samples() {
            let expected: f64 =
                if value.is_finite() { format!("{value:.4}").parse().unwrap() } else { value };
            let got = round4(value);
            assert!(got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan()), "{value:e}");
        }
    }
}
