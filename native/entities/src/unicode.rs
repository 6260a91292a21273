//! The character classes of CPython 3.11 (Unicode 14.0) that the value checks depend on:
//! `\d` / `str.isdecimal` and the whitespace `int()` strips. Generated from the venv's
//! Python with `unicodedata`, so they agree with the reference exactly (not with the
//! Unicode version of Rust's std). Regenerate with gen_unicode_tables.py beside Cargo.toml.

/// The code point of digit zero of every run of decimal digits (each run is 0..=9, in order).
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0,
    0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0,
    0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0,
    0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// Non-ASCII code points for which `str.isspace()` is true (`int()` treats them as spaces).
const NON_ASCII_SPACES: [u32; 19] = [
    0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
    0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
];

/// The value of a decimal digit as Python's `\d` and `int()` see it, else `None`.
pub fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii() {
        return c.to_digit(10);
    }
    let code = u32::from(c);
    let run = DECIMAL_ZEROS.partition_point(|&zero| zero <= code);
    let zero = DECIMAL_ZEROS[run.checked_sub(1)?];
    (code - zero < 10).then_some(code - zero)
}

/// Python's `\d` in a str pattern.
pub fn is_decimal(c: char) -> bool {
    decimal_value(c).is_some()
}

/// `c.isspace()` for a non-ASCII `c`.
pub fn is_non_ascii_space(c: char) -> bool {
    let code = u32::from(c);
    NON_ASCII_SPACES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_other_scripts() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('\u{663}'), Some(3)); // Arabic-Indic three
        assert_eq!(decimal_value('\u{1d7d9}'), Some(1)); // second run of math digits
        assert_eq!(decimal_value('x'), None);
        assert_eq!(decimal_value('\u{2460}'), None); // circled one: numeric, not decimal
        assert!(is_non_ascii_space('\u{3000}'));
        assert!(!is_non_ascii_space('\u{180e}'));
    }
}
