//! What a line itself says: its level's severity and the error words in its message
//! (`level_severity` and `error_content_strength` in workers/steps/score_logs.py).

use std::sync::OnceLock;

use crate::pyfloat::clamp01;
use polaris_pyunicode::{is_re_word, is_str_space};

/// `LEVEL_SEVERITY`: level name (upper case) -> severity.
const LEVEL_SEVERITY: [(&str, f64); 14] = [
    ("EMERG", 1.0),
    ("EMERGENCY", 1.0),
    ("PANIC", 1.0),
    ("ALERT", 1.0),
    ("FATAL", 1.0),
    ("CRIT", 1.0),
    ("CRITICAL", 1.0),
    ("SEVERE", 0.8),
    ("ERROR", 0.7),
    ("ERR", 0.7),
    ("E", 0.7),
    ("WARN", 0.3),
    ("WARNING", 0.3),
    ("W", 0.3),
];

/// `ERROR_LEVEL_MIN_SEVERITY`: lines at least this severe count towards the error rate.
pub(crate) const ERROR_LEVEL_MIN_SEVERITY: f64 = 0.7;

/// `ERROR_WORDS`, in the dict's order (which decides the regex's order among equal lengths).
const ERROR_WORDS: [(&str, f64); 29] = [
    ("fatal", 0.9),
    ("panic", 0.9),
    ("exception", 0.8),
    ("traceback", 0.8),
    ("segfault", 0.9),
    ("segmentation fault", 0.9),
    ("core dump", 0.8),
    ("abort", 0.7),
    ("crash", 0.8),
    ("out of memory", 0.9),
    ("oom", 0.7),
    ("corrupt", 0.8),
    ("fail", 0.6),
    ("error", 0.4),
    ("refused", 0.5),
    ("denied", 0.5),
    ("timeout", 0.5),
    ("timed out", 0.5),
    ("unreachable", 0.5),
    ("unable", 0.4),
    ("cannot", 0.4),
    ("can not", 0.4),
    ("could not", 0.4),
    ("lost", 0.4),
    ("killed", 0.5),
    ("terminated", 0.4),
    ("invalid", 0.3),
    ("illegal", 0.4),
    ("warn", 0.2),
];

/// `_CONTENT_SCAN_CHARS`: only the message's first this many characters are searched.
const CONTENT_SCAN_CHARS: usize = 2000;

/// Python's level lookup: `LEVEL_SEVERITY.get(level.strip().upper(), 0.0)`, 0 for no level.
pub fn level_severity(level: Option<&str>) -> f64 {
    let Some(level) = level else { return 0.0 };
    let name = level.trim_matches(is_str_space);
    let severity_of = |matches: &dyn Fn(&str) -> bool| {
        LEVEL_SEVERITY.iter().find(|(key, _)| matches(key)).map_or(0.0, |&(_, severity)| severity)
    };
    if name.is_ascii() {
        severity_of(&|key| key.eq_ignore_ascii_case(name))
    } else {
        // Full upper case, as str.upper(): "ı" -> "I" and "ſ" -> "S" can still make a name.
        let upper = name.to_uppercase();
        severity_of(&|key| key == upper)
    }
}

/// A word found in a message: an index into the vocabulary's alphabetical order.
pub type ErrorWordSet = u32;

/// The error vocabulary arranged for scanning.
struct Vocabulary {
    /// (word, weight) in alphabetical order (Python's `sorted(found)`); bit i of an
    /// `ErrorWordSet` is word i.
    alphabetical: Vec<(&'static str, f64)>,
    /// Per first letter (a..z), the indices of the words starting with it, in the order the
    /// regex alternation tries them: longest first, equal lengths in dict order.
    by_first_letter: [Vec<u8>; 26],
}

fn vocabulary() -> &'static Vocabulary {
    static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        let mut alphabetical = ERROR_WORDS.to_vec();
        alphabetical.sort_by(|a, b| a.0.cmp(b.0));
        // `sorted(ERROR_WORDS, key=len, reverse=True)`: a stable sort, longest first.
        let mut regex_order = ERROR_WORDS.to_vec();
        regex_order.sort_by_key(|&(word, _)| std::cmp::Reverse(word.len()));
        let mut by_first_letter: [Vec<u8>; 26] = Default::default();
        for (word, _) in regex_order {
            let index = alphabetical.iter().position(|(w, _)| *w == word).unwrap_or_default();
            let first = word.as_bytes()[0];
            by_first_letter[usize::from(first - b'a')].push(index as u8);
        }
        Vocabulary { alphabetical, by_first_letter }
    })
}

/// Python's `error_content_strength(message)`: the noisy-OR of the weights of the distinct
/// error words present, and those words in alphabetical order.
pub fn error_content_strength(message: &str) -> (f64, Vec<&'static str>) {
    let found = error_words_in(message);
    (error_words_strength(found), error_words(found).collect())
}

/// The words of a set, in alphabetical order.
pub fn error_words(found: ErrorWordSet) -> impl Iterator<Item = &'static str> {
    let words = &vocabulary().alphabetical;
    (0..words.len()).filter(move |i| found & (1 << i) != 0).map(|i| words[i].0)
}

/// `noisy_or([(ERROR_WORDS[w], 1.0) for w in sorted(found)])`, same operations, same order.
pub fn error_words_strength(found: ErrorWordSet) -> f64 {
    if found == 0 {
        return 0.0;
    }
    let mut keep = 1.0;
    for (i, &(_, weight)) in vocabulary().alphabetical.iter().enumerate() {
        if found & (1 << i) != 0 {
            keep *= 1.0 - clamp01(weight * 1.0);
        }
    }
    clamp01(1.0 - keep)
}

/// The error words Python's `_ERROR_WORD_RE` finds in the first 2000 characters, written
/// out as that regex runs: `\b(word|...)` with the words longest first, case-insensitive,
/// non-overlapping matches from left to right.
///
/// Case-insensitive as Python's `re` is for these ASCII words: ASCII case, plus the look-alikes
/// "İ" and "ı" for i, Kelvin sign for k and "ſ" for s. A match with İ, ı or ſ lower-cases to no
/// listed word, so Python drops it; but it is still a match, which consumes its text.
/// (tests/unit/test_native_score.py checks these look-alikes against Python's `re`.)
pub fn error_words_in(message: &str) -> ErrorWordSet {
    let head = python_prefix(message, CONTENT_SCAN_CHARS);
    if head.is_ascii() {
        ascii_error_words_in(head.as_bytes())
    } else {
        unicode_error_words_in(head)
    }
}

/// `\w` for ASCII: `[A-Za-z0-9_]`, as a table (the scan looks at every byte).
static ASCII_WORD: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'_';
        byte += 1;
    }
    table
};

/// The common case, ASCII text: ASCII case only, and `\w` is `[A-Za-z0-9_]`.
fn ascii_error_words_in(text: &[u8]) -> ErrorWordSet {
    let vocabulary = vocabulary();
    let is_word = |byte: u8| ASCII_WORD[usize::from(byte)];
    let mut found: ErrorWordSet = 0;
    let mut pos = 0;
    while pos < text.len() {
        let byte = text[pos];
        if !is_word(byte) {
            pos += 1;
            continue;
        }
        // A word starts here (`\b`): try the words starting with its letter.
        if byte.is_ascii_alphabetic() {
            let candidates = &vocabulary.by_first_letter[usize::from(byte.to_ascii_lowercase() - b'a')];
            let rest = &text[pos..];
            let matched = candidates.iter().find_map(|&index| {
                let word = vocabulary.alphabetical[usize::from(index)].0.as_bytes();
                let listed = rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
                listed.then_some((index, word.len()))
            });
            if let Some((index, len)) = matched {
                found |= 1 << index;
                pos += len;
            }
        }
        // No word can start before the end of this run of word characters (a match ends
        // with a letter, so this holds after a match too).
        while pos < text.len() && is_word(text[pos]) {
            pos += 1;
        }
    }
    found
}

/// Any text: characters decoded, Python's word characters and case-insensitive look-alikes.
fn unicode_error_words_in(head: &str) -> ErrorWordSet {
    let vocabulary = vocabulary();
    let bytes = head.as_bytes();
    let mut found: ErrorWordSet = 0;
    let mut pos = 0;
    let mut prev_is_word = false; // `\b` before a letter: the previous character is no word character
    while pos < bytes.len() {
        let byte = bytes[pos];
        let (first_letter, is_word, width) = if byte.is_ascii() {
            let lower = byte.to_ascii_lowercase();
            (lower.is_ascii_lowercase().then_some(lower), byte.is_ascii_alphanumeric() || byte == b'_', 1)
        } else {
            let c = head[pos..].chars().next().unwrap_or_default();
            let letter = match c {
                '\u{130}' | '\u{131}' => Some(b'i'),
                '\u{212a}' => Some(b'k'),
                '\u{17f}' => Some(b's'),
                _ => None,
            };
            (letter, is_re_word(c), c.len_utf8())
        };
        if let (false, Some(letter)) = (prev_is_word, first_letter) {
            let candidates = &vocabulary.by_first_letter[usize::from(letter - b'a')];
            let matched = candidates.iter().find_map(|&index| {
                let word = vocabulary.alphabetical[usize::from(index)].0;
                match_word_at(head, pos, word).map(|(end, listed)| (index, end, listed))
            });
            if let Some((index, end, listed)) = matched {
                if listed {
                    found |= 1 << index;
                }
                pos = end;
                prev_is_word = true; // every word ends with a letter
                continue;
            }
        }
        prev_is_word = is_word;
        pos += width;
    }
    found
}

/// Whether `word` (ASCII lower case) matches `text` at byte `start` case-insensitively as
/// Python's `re` does; the end of the match, and whether it lower-cases to `word` itself.
fn match_word_at(text: &str, start: usize, word: &str) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    let mut pos = start;
    let mut listed = true;
    for &expected in word.as_bytes() {
        let byte = *bytes.get(pos)?;
        if byte.is_ascii() {
            if byte.to_ascii_lowercase() != expected {
                return None;
            }
            pos += 1;
        } else {
            let c = text[pos..].chars().next()?;
            match (expected, c) {
                (b'i', '\u{130}' | '\u{131}') | (b's', '\u{17f}') => listed = false,
                (b'k', '\u{212a}') => {} // Kelvin sign: lower-cases to "k"
                _ => return None,
            }
            pos += c.len_utf8();
        }
    }
    Some((pos, listed))
}

/// `text[:chars]` in Python: the first `chars` code points.
fn python_prefix(text: &str, chars: usize) -> &str {
    if text.len() <= chars {
        return text;
    }
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_words_case_insensitively_with_suffixes() {
        let (strength, words) = error_content_strength("Kernel PANIC after write Failed");
        assert_eq!(words, ["fail", "panic"]);
        assert!(strength > 0.9 && strength <= 1.0);
        assert_eq!(error_content_strength("all good").0, 0.0);
    }

    #[test]
    fn a_look_alike_match_consumes_its_text() {
        // "tımed out" matches (and is dropped), so "out of memory" is never tried.
        assert_eq!(error_content_strength("t\u{131}med out of memory").1, Vec::<&str>::new());
        assert_eq!(error_content_strength("tamed out of memory").1, ["out of memory"]);
        assert_eq!(error_content_strength("\u{212a}illed").1, ["killed"]);
    }

    #[test]
    fn level_names_are_stripped_and_upper_cased() {
        assert_eq!(level_severity(Some(" error\u{1c}")), 0.7);
        assert_eq!(level_severity(Some("warn\u{131}ng")), 0.3);
        assert_eq!(level_severity(Some("")), 0.0);
        assert_eq!(level_severity(None), 0.0);
    }
}
