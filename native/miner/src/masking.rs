//! Masking and tokenising (port of `workers/steps/templates_masking.py`).
//!
//! A token is masked through its *shape* (ASCII digits turned into `1`, except that `0`
//! and `1` are kept when `0x`/`0X` occurs): the mask regex treats those digits alike, so
//! one regex run serves every token of a shape. Whole lines are masked token by token,
//! except where a date or a `5 KB` size may span whitespace.
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use fancy_regex::Regex;
use indexmap::IndexMap;

use crate::py_text::{split_words, translate_pattern, Texts};
use polaris_pyunicode::{is_re_digit, is_re_word};

pub const WILDCARD: &str = "<*>";
const CLOCK: &str = "<*>:<*>:<*>";
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const ENDS_MONTH: u8 = 1;
const ENDS_DAY: u8 = 2;
const ENDS_DIGIT: u8 = 4;
/// Entries per memo; a full memo is emptied (ids churn it), as in the reference.
const MEMO_CAP: usize = 1 << 16;
/// The backtracking budget of one regex run. Python's `re` has none; a run that
/// exceeds this reports an error instead of silently masking differently.
const BACKTRACK_LIMIT: usize = 100_000_000;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The reference's `_MASK`, in Python `re` syntax (translated at start-up).
fn mask_pattern() -> String {
    let month = format!("(?:{})", MONTHS.join("|"));
    let day = format!("(?:{})", DAYS.join("|"));
    let tld = r"(?:com|net|org|edu|gov|mil|info|biz|local|lan)";
    let cctld = r"[a-z]{2}";
    [
        format!(r"(?P<date>\b(?:{day}\s+)?{month}\s+\d{{1,2}}\s+\d\d:\d\d:\d\d(?:\s+[A-Z]{{3,4}})?(?:\s+\d{{4}})?\b)"),
        r#"(?<=://)[^\s\]\)'\",]+"#.to_string(),
        concat!(
            r"(?<![\w.\-/])(?:/[\w.\-]+)+/(?P<kind>[A-Za-z]+(?:[_\-][A-Za-z]+)*[_\-])-?\d+",
            r#"(?P<ext>(?:\.[A-Za-z]+)?\.?)(?=$|[\s:,;)\]'\"])"#
        )
        .to_string(),
        r#"(?<![\w.\-/])(?:/[\w.\-]+){2,}/?(?=$|[\s:,;)\]'\"])"#.to_string(),
        r"(?<![\w:])(?:[0-9A-Fa-f]{2}[:\-]){3,}[0-9A-Fa-f]{2}(?![\w:])".to_string(),
        format!(r"(?<![\w\-.])[\w\-]+(?:\.[\w\-]+)*\.{tld}(?![\w\-.])"),
        format!(r"(?<![\w\-.])(?=[\w\-.]*\d)[\w\-]+(?:\.[\w\-]+)+\.{cctld}(?![\w\-.])"),
        r"(?<![\w\-.])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*-\d+(?![\w\-])".to_string(),
        r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]\d)".to_string(),
        r"(?<![\w.])\d+(?:\.\d+)?\s?(?:[KMGT]i?B|[KMGTk]|B)\b".to_string(),
        r"\b0[xX][0-9a-fA-F]+\b".to_string(),
        r"(?<=[A-Za-z]_)-?\d[\w\-]*".to_string(),
        r"(?<![\w\-])(?=[a-fA-F]*\d|[a-fA-F]{8})[0-9a-fA-F]{8,}(?!\w)".to_string(),
        r"(?<=[A-Za-z])\d+(?=\.\d)".to_string(),
        r"(?<![\w.\-])-?\d+\.\d+(?!\d|\.\d)".to_string(),
        r"(?:(?<![A-Za-z0-9])-)?(?<![A-Za-z\d])\d+".to_string(),
    ]
    .join("|")
}

fn compile(python: &str, texts: Texts) -> Regex {
    // The patterns are constants of this module, so a failure is a bug, caught by any test.
    let translated = translate_pattern(python, texts).expect("miner pattern translates");
    fancy_regex::RegexBuilder::new(&translated)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .expect("miner pattern compiles")
}

/// `_MASK` for ASCII-only texts (most of them): far smaller automata, built faster ...
static MASK_ASCII: LazyLock<Regex> = LazyLock::new(|| compile(&mask_pattern(), Texts::Ascii));
/// ... and for any text, built on first use.
static MASK: LazyLock<Regex> = LazyLock::new(|| compile(&mask_pattern(), Texts::Unicode));

/// `_UNIT.match`: a size's unit (`KB`, `k` ...) starts the text.
fn starts_with_unit(text: &str) -> bool {
    let bytes = text.as_bytes();
    let unit_len = match bytes {
        [b'K' | b'M' | b'G' | b'T', b'i', b'B', ..] => 3,
        [b'K' | b'M' | b'G' | b'T', b'B', ..] => 2,
        [b'K' | b'M' | b'G' | b'T' | b'k' | b'B', ..] => 1,
        _ => return false,
    };
    // `\b` after the unit's last letter: no word character follows. Where `KiB`/`KB` runs
    // on, backtracking to a bare `K` fails as well (an `i` or `B` follows it).
    !text[unit_len..].chars().next().is_some_and(is_re_word)
}

#[derive(Debug)]
pub struct MaskError(pub String);

impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "masking failed: {}", self.0)
    }
}

impl std::error::Error for MaskError {}

/// Masking of one shape: where the masks fall, the masked text and its key.
struct Shaped {
    spans: Vec<(usize, usize, String)>,
    masked: String,
    key: String,
    /// No kept digit that the shape may have changed: `masked` fits every text.
    exact: bool,
    tail: u8,
    unit: bool,
}

impl Shaped {
    fn new(shape: &str) -> Result<Self, MaskError> {
        let mut spans = Vec::new();
        let mut masked = String::with_capacity(shape.len());
        let mut last = 0;
        let mask: &Regex = if shape.is_ascii() { &MASK_ASCII } else { &MASK };
        for found in mask.captures_iter(shape) {
            let captures = found.map_err(|e| MaskError(format!("{e} on {shape:?}")))?;
            let Some(whole) = captures.get(0) else {
                continue;
            };
            let replacement = if captures.name("date").is_some() {
                CLOCK.to_string()
            } else if let Some(kind) = captures.name("kind") {
                let ext = captures.name("ext").map_or("", |m| m.as_str());
                format!("/{WILDCARD}/{}{WILDCARD}{ext}", kind.as_str())
            } else {
                WILDCARD.to_string()
            };
            masked.push_str(&shape[last..whole.start()]);
            masked.push_str(&replacement);
            last = whole.end();
            spans.push((whole.start(), whole.end(), replacement));
        }
        masked.push_str(&shape[last..]);
        let key = mask_digit_runs(&masked);
        let exact = !masked.contains('1');
        let ends = |names: &[&str]| {
            let start = shape
                .char_indices()
                .rev()
                .nth(2)
                .map(|(at, _)| at)
                .unwrap_or(0);
            names.contains(&&shape[start..])
        };
        let tail = (if ends(&MONTHS) { ENDS_MONTH } else { 0 })
            | (if ends(&DAYS) { ENDS_DAY } else { 0 })
            | (if shape.chars().next_back().is_some_and(is_re_digit) {
                ENDS_DIGIT
            } else {
                0
            });
        let unit = starts_with_unit(shape);
        Ok(Shaped {
            spans,
            masked,
            key,
            exact,
            tail,
            unit,
        })
    }

    /// The text's masking (`_MASK.sub` on it) from the masks found in its shape.
    fn mask<'t>(&'t self, text: &'t str) -> Cow<'t, str> {
        if self.exact {
            return Cow::Borrowed(&self.masked);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end, replacement) in &self.spans {
            out.push_str(&text[last..*start]);
            out.push_str(replacement);
            last = *end;
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }
}

/// `re.sub(r"\d+", "<*>", text)`.
fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if is_re_digit(c) {
            if !in_run {
                out.push_str(WILDCARD);
                in_run = true;
            }
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out
}

/// The shape of a text: every ASCII digit turned into `1`, or only 2-9 when `0x`/`0X`
/// occurs (so the `0` of `0x` survives).
fn shape_of(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return Cow::Borrowed(text);
    }
    let keeps_zero = text.contains("0x") || text.contains("0X");
    let low = if keeps_zero { '2' } else { '0' };
    Cow::Owned(
        text.chars()
            .map(|c| if (low..='9').contains(&c) { '1' } else { c })
            .collect(),
    )
}

/// `_MAY_MASK.search`: a digit, a `/` or eight hex letters in a row.
fn may_mask(content: &str) -> bool {
    if content.is_ascii() {
        let mut hex_run = 0;
        for &b in content.as_bytes() {
            if b == b'/' || b.is_ascii_digit() {
                return true;
            }
            hex_run = if b.is_ascii_hexdigit() {
                hex_run + 1
            } else {
                0
            };
            if hex_run == 8 {
                return true;
            }
        }
        return false;
    }
    let mut hex_run = 0;
    for c in content.chars() {
        if c == '/' || is_re_digit(c) {
            return true;
        }
        hex_run = if c.is_ascii_hexdigit() {
            hex_run + 1
        } else {
            0
        };
        if hex_run == 8 {
            return true;
        }
    }
    false
}

/// `text.split()`, with a byte loop for ASCII text (most lines).
fn words_of(content: &str) -> Vec<&str> {
    if !content.is_ascii() {
        return split_words(content).collect();
    }
    let mut words = Vec::with_capacity(16);
    let mut start = None;
    for (at, &b) in content.as_bytes().iter().enumerate() {
        let space = matches!(b, b'\t'..=b'\r' | 0x1c..=b' ');
        match (space, start) {
            (true, Some(from)) => {
                words.push(&content[from..at]);
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(from) = start {
        words.push(&content[from..]);
    }
    words
}

/// A masked token repeated (`blk_<*> blk_<*>`) collapses into one.
fn is_repeatable(token: &str) -> bool {
    token.contains(WILDCARD) && token.chars().any(is_re_word)
}

/// One token's masking: masked text, grouping key, `ENDS_*` flags, starts with a unit.
struct TokenInfo {
    masked: String,
    key: String,
    tail: u8,
    unit: bool,
}

/// The memos of masking: results per shape and per token.
#[derive(Default)]
pub struct Masker {
    shapes: Map<String, Shaped>,
    /// An index map so that a line looks each word up once and then holds plain indices
    /// while it inserts the words it has not seen.
    tokens: IndexMap<String, TokenInfo, foldhash::fast::RandomState>,
}

/// The masked tokens of a line and its grouping key (every digit run masked).
pub struct Masked<'a> {
    pub tokens: Vec<Cow<'a, str>>,
    pub key: String,
}

fn shaped<'m>(shapes: &'m mut Map<String, Shaped>, text: &str) -> Result<&'m Shaped, MaskError> {
    let shape = shape_of(text);
    if !shapes.contains_key(shape.as_ref()) {
        if shapes.len() >= MEMO_CAP {
            shapes.clear();
        }
        let shaped = Shaped::new(&shape)?;
        shapes.insert(shape.to_string(), shaped);
    }
    shapes
        .get(shape.as_ref())
        .ok_or_else(|| MaskError("shape memo lost an entry".into()))
}

/// Collects masked tokens and the key; a masked token repeated (`blk_<*> blk_<*>`)
/// collapses into its first occurrence, key and all.
struct LineBuilder<'a> {
    tokens: Vec<Cow<'a, str>>,
    key: String,
}

impl<'a> LineBuilder<'a> {
    fn with_capacity(words: usize, bytes: usize) -> Self {
        LineBuilder {
            tokens: Vec::with_capacity(words),
            key: String::with_capacity(bytes + 16),
        }
    }

    fn push(&mut self, token: Cow<'a, str>, key: &str) {
        if self.tokens.last().is_some_and(|last| *last == token) && is_repeatable(&token) {
            return;
        }
        if !self.tokens.is_empty() {
            self.key.push(' ');
        }
        self.key.push_str(key);
        self.tokens.push(token);
    }

    fn finish(self) -> Masked<'a> {
        Masked {
            tokens: self.tokens,
            key: self.key,
        }
    }
}

impl Masker {
    /// `mask(content).split()` and the line's grouping key.
    pub fn mask_tokens<'a>(&'a mut self, content: &'a str) -> Result<Masked<'a>, MaskError> {
        let words = words_of(content);
        if !may_mask(content) {
            // nothing to mask, and no digit for the key
            let key = words.join(" ");
            return Ok(Masked {
                tokens: words.into_iter().map(Cow::Borrowed).collect(),
                key,
            });
        }
        let Masker {
            shapes,
            tokens: memo,
        } = self;
        if memo.len() + words.len() > MEMO_CAP {
            memo.clear(); // up front, so that the indices of this line's words stay valid
        }
        let mut indices = Vec::with_capacity(words.len());
        for word in &words {
            let index = match memo.get_index_of(*word) {
                Some(index) => index,
                None => {
                    let shaped = shaped(shapes, word)?;
                    let info = TokenInfo {
                        masked: shaped.mask(word).into_owned(),
                        key: shaped.key.clone(),
                        tail: shaped.tail,
                        unit: shaped.unit,
                    };
                    memo.insert_full((*word).to_string(), info).0
                }
            };
            indices.push(index);
        }
        let memo: &'a IndexMap<String, TokenInfo, foldhash::fast::RandomState> = memo;
        let mut tail = 0;
        let spans_whitespace = indices.iter().any(|&index| {
            let info = &memo[index];
            let joins =
                tail != 0 && (tail & ENDS_MONTH != 0 || (tail & ENDS_DIGIT != 0 && info.unit));
            tail = info.tail;
            joins
        });
        if spans_whitespace {
            let infos: Vec<&'a TokenInfo> = indices.iter().map(|&index| &memo[index]).collect();
            return mask_segments(shapes, content, &words, &infos);
        }
        let mut line = LineBuilder::with_capacity(words.len(), content.len());
        for index in indices {
            let info = &memo[index];
            line.push(Cow::Borrowed(info.masked.as_str()), &info.key);
        }
        Ok(line.finish())
    }
}

/// Masked tokens and keys of a line where a date or size may span whitespace: whitespace
/// that one of them may cross joins its neighbours into a segment, masked as the
/// original text; a mask never crosses any other whitespace.
fn mask_segments<'a>(
    shapes: &mut Map<String, Shaped>,
    content: &str,
    words: &[&str],
    infos: &[&'a TokenInfo],
) -> Result<Masked<'a>, MaskError> {
    let n = words.len();
    let mut joined = vec![false; n]; // joined[i]: words i and i + 1 are one segment
    for i in 0..n.saturating_sub(1) {
        let (tail, after) = (infos[i].tail, infos[i + 1]);
        if tail & ENDS_MONTH != 0 {
            // Jul|17|09:07:44|PDT|2005
            for flag in &mut joined[i..(i + 4).min(n)] {
                *flag = true;
            }
        }
        if (tail & ENDS_DAY != 0 && after.tail & ENDS_MONTH != 0)
            || (tail & ENDS_DIGIT != 0 && after.unit)
        {
            joined[i] = true;
        }
    }
    // Where a word starts in the line: the reference's `content.index(word, pos)` from the
    // end of the previous word, which only whitespace separates from it.
    let offset = |word: &str| word.as_ptr() as usize - content.as_ptr() as usize;
    let mut line = LineBuilder::with_capacity(n, content.len());
    let mut i = 0;
    while i < n {
        if !joined[i] || i == n - 1 {
            line.push(Cow::Borrowed(infos[i].masked.as_str()), &infos[i].key);
            i += 1;
            continue;
        }
        let mut k = i;
        while k < n - 1 && joined[k] {
            k += 1;
        }
        let segment = &content[offset(words[i])..offset(words[k]) + words[k].len()];
        let shaped = shaped(shapes, segment)?;
        let masked = shaped.mask(segment);
        for (token, key) in split_words(&masked).zip(split_words(&shaped.key)) {
            line.push(Cow::Owned(token.to_string()), key);
        }
        i = k + 1;
    }
    Ok(line.finish())
}

/// Stable id of a template text: blake2b with an 8-byte digest, in hex.
pub fn template_id(template: &str) -> String {
    use blake2::digest::{Update, VariableOutput};
    let mut hasher = blake2::Blake2bVar::new(8).expect("8 is a valid blake2b output size");
    hasher.update(template.as_bytes());
    let mut digest = [0u8; 8];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer has the output size");
    let mut hex = String::with_capacity(16);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 15), 16).unwrap_or('0'));
    }
    hex
}

/// The values behind each `<*>` in a line, given the template's literal pieces (the
/// template split at `<*>`). Literal pieces are found left to right in the
/// whitespace-normalised line; a value is what lies between two of them. Positions count
/// code points, as in the reference, so that even its overshooting arithmetic agrees.
pub fn extract_values(literals: &[String], content: &str) -> Vec<String> {
    let line = split_words(content).collect::<Vec<_>>().join(" ");
    // byte offset of every code point, and of the end
    let bounds: Vec<usize> = line
        .char_indices()
        .map(|(at, _)| at)
        .chain(std::iter::once(line.len()))
        .collect();
    let chars = bounds.len() - 1;
    let byte_at = |pos: usize| bounds[pos.min(chars)];
    let char_at = |byte: usize| bounds.partition_point(|&b| b < byte);
    let slice = |start: usize, end: usize| -> String {
        if start >= end || start >= chars {
            String::new()
        } else {
            line[byte_at(start)..byte_at(end)].to_string()
        }
    };
    let mut values = Vec::with_capacity(literals.len().saturating_sub(1));
    let Some(first) = literals.first() else {
        return values;
    };
    let mut pos = if line.starts_with(first.as_str()) {
        crate::py_text::char_len(first)
    } else {
        0
    };
    let last = literals.len() - 1;
    for (index, literal) in literals.iter().enumerate().skip(1) {
        let literal_len = crate::py_text::char_len(literal);
        let mut end = if index == last {
            if !literal.is_empty() && line.ends_with(literal.as_str()) {
                chars - literal_len
            } else {
                chars
            }
        } else {
            let from = pos + 1;
            let found = if literal.is_empty() || from > chars {
                None
            } else {
                line[byte_at(from)..]
                    .find(literal.as_str())
                    .map(|at| char_at(byte_at(from) + at))
            };
            found.unwrap_or(pos)
        };
        if end < pos {
            end = pos;
        }
        values.push(slice(pos, end));
        pos = end + literal_len;
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_python_blake2b() {
        // hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        assert_eq!(template_id(""), "e4a6a0577479b2b4");
        assert_eq!(template_id("abc <*> x"), "5be027deeff99827");
    }

    #[test]
    fn masks_compile_and_mask() {
        let mut masker = Masker::default();
        let masked = masker
            .mask_tokens("Receiving block blk_-42 src: /10.0.0.1:50010")
            .expect("masks");
        assert_eq!(
            masked.tokens,
            vec!["Receiving", "block", "blk_<*>", "src:", "/<*>:<*>"]
        );
    }
}
