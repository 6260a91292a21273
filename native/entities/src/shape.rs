//! The line shape (`shape_of` in workers/steps/entities.py): numbers and ids masked so that
//! lines differing only in them share one plan.
//!
//! The reference is one regex with three alternatives, applied by `re.sub` from left to
//! right (at each position the first alternative that matches wins):
//!
//! 1. `0[xX][0-9A-Fa-f]+` (0x-hex),
//! 2. `(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[0-9])[0-9A-Fa-f]{6,}(?![0-9A-Za-z])`
//!    (a standalone hex word of 6+ characters with a digit),
//! 3. `(?<![A-Za-z])[0-9]+` (a number not glued to a preceding letter).
//!
//! A match's digits become `0`, its hex letters `a`/`A`. Every class is ASCII, so a byte
//! scan gives the same matches (a UTF-8 continuation byte is in no class, as the non-ASCII
//! code point it belongs to is not), and the mask keeps the length in bytes and code points.

/// The shape of `text` as UTF-8 bytes, written into `out` (cleared first): the text is
/// copied, then each masked run (ASCII only, so the bytes stay valid UTF-8) is rewritten
/// in place.
pub fn shape_into(text: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(text.as_bytes());
    let mut position = 0;
    // Every alternative starts with a hex digit: jump from one to the next.
    while let Some(offset) = out[position..].iter().position(|&byte| is(byte, HEX)) {
        let start = position + offset;
        match masked_run_at(out, start) {
            Some(end) => {
                out[start..end].iter_mut().for_each(|byte| *byte = mask(*byte));
                position = end;
            }
            None => position = start + 1,
        }
    }
}

const DIGIT: u8 = 1;
const LETTER: u8 = 2; // ASCII letter
const HEX: u8 = 4;
const ALNUM: u8 = DIGIT | LETTER;

/// The ASCII classes of each byte (none for non-ASCII bytes), one lookup per test.
static CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let c = byte as u8;
        classes[byte] = if c.is_ascii_digit() { DIGIT | HEX } else if c.is_ascii_hexdigit() { LETTER | HEX } else if c.is_ascii_alphabetic() { LETTER } else { 0 };
        byte += 1;
    }
    classes
};

#[inline]
fn is(byte: u8, class: u8) -> bool {
    CLASSES[usize::from(byte)] & class != 0
}

/// The shape of `text`.
pub fn shape_of(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    shape_into(text, &mut out);
    // Masking rewrites ASCII bytes as ASCII bytes: the UTF-8 of `text` stays valid.
    String::from_utf8(out).unwrap_or_else(|_| unreachable!("masking keeps UTF-8 valid"))
}

fn mask(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => b'0',
        b'a'..=b'f' => b'a',
        b'A'..=b'F' => b'A',
        other => other,
    }
}

/// End of the masked run that starts at `start` (a hex digit), trying the alternatives in
/// order. Bytes before `start` may already be masked: masking keeps every class used here.
#[inline]
fn masked_run_at(bytes: &[u8], start: usize) -> Option<usize> {
    let first = bytes[start];
    let before = if start > 0 { CLASSES[usize::from(bytes[start - 1])] } else { 0 };
    let run_end = |from: usize, class: u8| from + bytes[from..].iter().take_while(|&&byte| is(byte, class)).count();

    if first == b'0'
        && matches!(bytes.get(start + 1), Some(b'x' | b'X'))
        && bytes.get(start + 2).is_some_and(|&byte| is(byte, HEX))
    {
        return Some(run_end(start + 2, HEX));
    }

    if before & ALNUM == 0 {
        // `[0-9A-Fa-f]{6,}` is greedy and a shorter run is always followed by a hex
        // character (alphanumeric), so only the whole run can satisfy the lookahead.
        let end = run_end(start, HEX);
        if end - start >= 6
            && bytes[start..end].iter().any(|&byte| is(byte, DIGIT))
            && !bytes.get(end).is_some_and(|&byte| is(byte, ALNUM))
        {
            return Some(end);
        }
    }

    if is(first, DIGIT) && before & LETTER == 0 {
        return Some(run_end(start, DIGIT));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::shape_of;

    #[test]
    fn masks_numbers_and_ids_but_not_digits_inside_words() {
        assert_eq!(
            shape_of("Accepted password for fztu from 119.137.62.142 port 49116 ssh2"),
            "Accepted password for fztu from 000.000.00.000 port 00000 ssh2"
        );
        assert_eq!(shape_of("connected to neo4j at 10.0.0.1"), "connected to neo4j at 00.0.0.0");
        assert_eq!(shape_of("session 0x14ED93111f2005d"), "session 0x00AA00000a0000a");
        assert_eq!(shape_of("blk_-1608999687919862906 deadbeef1 cafe"), "blk_-0000000000000000000 aaaaaaaa0 cafe");
        assert_eq!(shape_of("a12 x0y é12 12é"), "a10 x0y é00 00é");
    }
}
