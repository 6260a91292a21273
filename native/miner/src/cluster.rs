//! Groups of lines (port of `workers/steps/templates_cluster.py`).
//!
//! A cluster keeps the masked tokens of its first line and, per position that varied,
//! the common prefix/suffix and a few sample values; its template keeps a varying
//! token's prefix/suffix up to a separator and makes the rest `<*>`. Lengths and slices
//! count code points, as in the reference.
use crate::masking::WILDCARD;
use crate::py_text::{char_len, common_prefix_len, common_suffix_len, skip_chars};
use polaris_pyunicode::is_str_digit;

/// Distinct values kept per varying position (bounds state size).
const SAMPLE_CAP: usize = 8;

/// How one position of a cluster varied.
#[derive(Clone, Debug)]
pub struct Varying {
    pub position: usize,
    pub prefix: String,
    pub suffix: String,
    pub samples: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub cid: usize,
    /// Masked tokens of the first line.
    pub tokens: Vec<String>,
    /// Grouping key; `<*>` where the cluster generalised.
    pub key: Vec<String>,
    /// Positions that varied, in the order they first did.
    pub varying: Vec<Varying>,
    pub size: u64,
    pub template: String,
    /// `template_id(hashed)`, kept up to date by the miner.
    pub tid: String,
    pub hashed: String,
    /// `hashed` split at `<*>`, for extracting values.
    pub literals: Vec<String>,
    /// Bumped whenever `hashed` changes, so that callers can cache per template.
    pub revision: u64,
}

impl Cluster {
    pub fn new(cid: usize, tokens: Vec<String>, key: Vec<String>) -> Self {
        let template = tokens.join(" ");
        Cluster {
            cid,
            tokens,
            key,
            varying: Vec::new(),
            size: 0,
            template,
            tid: String::new(),
            hashed: String::new(),
            literals: Vec::new(),
            revision: 0,
        }
    }

    fn varying_at(&self, position: usize) -> Option<usize> {
        self.varying.iter().position(|v| v.position == position)
    }

    pub fn observe<S: AsRef<str>>(&mut self, tokens: &[S]) {
        self.size += 1;
        let same = tokens.len() == self.tokens.len()
            && tokens
                .iter()
                .zip(&self.tokens)
                .all(|(a, b)| a.as_ref() == b);
        if same {
            return;
        }
        let mut changed = false;
        for (i, value) in tokens.iter().enumerate() {
            // a line is never longer than its cluster's first one (same grouping key)
            let Some(first) = self.tokens.get(i) else {
                break;
            };
            if value.as_ref() != first {
                changed = self.vary(i, value.as_ref()) || changed;
            }
        }
        if changed {
            self.template = self.render();
        }
    }

    /// Records `value` at position `i`; whether the template may have changed.
    fn vary(&mut self, i: usize, value: &str) -> bool {
        let index = match self.varying_at(i) {
            Some(index) => index,
            None => {
                let first = self.tokens[i].clone();
                self.varying.push(Varying {
                    position: i,
                    prefix: first.clone(),
                    suffix: first.clone(),
                    samples: vec![first],
                });
                let entry = self.varying.last_mut().expect("just pushed");
                if !entry.samples.iter().any(|s| s == value) {
                    entry.samples.push(value.to_string());
                }
                entry
                    .prefix
                    .truncate(common_prefix_len(&entry.prefix, value));
                let keep = common_suffix_len(&entry.suffix, value);
                entry.suffix.drain(..entry.suffix.len() - keep);
                return true;
            }
        };
        let entry = &mut self.varying[index];
        let fresh = entry.samples.len() < SAMPLE_CAP && !entry.samples.iter().any(|s| s == value);
        if fresh {
            entry.samples.push(value.to_string());
        }
        if value.starts_with(entry.prefix.as_str()) && value.ends_with(entry.suffix.as_str()) {
            return fresh;
        }
        entry
            .prefix
            .truncate(common_prefix_len(&entry.prefix, value));
        let keep = common_suffix_len(&entry.suffix, value);
        entry.suffix.drain(..entry.suffix.len() - keep);
        true
    }

    /// Takes in another cluster's lines and value statistics.
    pub fn absorb(&mut self, other: &Cluster) {
        self.size += other.size;
        for (i, value) in other.tokens.iter().enumerate() {
            let theirs = other.varying_at(i).map(|index| &other.varying[index]);
            let samples = theirs.map_or(std::slice::from_ref(value), |v| v.samples.as_slice());
            for sample in samples {
                if self.tokens.get(i) != Some(sample) && i < self.tokens.len() {
                    self.vary(i, sample);
                }
            }
            if let (Some(theirs), Some(index)) = (theirs, self.varying_at(i)) {
                let mine = &mut self.varying[index];
                mine.prefix
                    .truncate(common_prefix_len(&mine.prefix, &theirs.prefix));
                let keep = common_suffix_len(&mine.suffix, &theirs.suffix);
                mine.suffix.drain(..mine.suffix.len() - keep);
            }
        }
        self.template = self.render();
    }

    pub fn render(&self) -> String {
        let mut out: Vec<String> = self.tokens.clone();
        for v in &self.varying {
            let shortest = v.samples.iter().map(|s| char_len(s)).min().unwrap_or(0);
            let overlap = char_len(&v.prefix) + char_len(&v.suffix) > shortest;
            let suffix = if overlap { "" } else { v.suffix.as_str() };
            if let Some(slot) = out.get_mut(v.position) {
                *slot = varying_token(&v.prefix, suffix, &v.samples);
            }
        }
        out.join(" ")
    }
}

fn starts_variable(rest: &str) -> bool {
    rest.chars().next().is_some_and(is_str_digit) || rest.starts_with(WILDCARD)
}

/// Template token for a position whose values differ: the prefix is kept when it ends
/// on a separator or when a number or mask follows it in every value, otherwise backed
/// off to its last separator; the suffix starts on a separator.
fn varying_token(prefix: &str, suffix: &str, values: &[String]) -> String {
    let mut prefix = prefix;
    while let Some(last) = prefix
        .chars()
        .next_back()
        .filter(char::is_ascii_alphanumeric)
    {
        let n = char_len(prefix);
        if values.iter().all(|v| starts_variable(skip_chars(v, n))) {
            break;
        }
        prefix = &prefix[..prefix.len() - last.len_utf8()];
    }
    let mut suffix = suffix;
    // `_` glues one identifier, so rdd_<*> / broadcast_<*> is one value, not `<*>_<*>`
    while let Some(first) = suffix
        .chars()
        .next()
        .filter(|c| c.is_ascii_alphanumeric() || "<*>_".contains(*c))
    {
        suffix = &suffix[first.len_utf8()..];
    }
    if prefix.ends_with('<') || prefix.ends_with("<*") {
        if let Some(at) = prefix.rfind('<') {
            prefix = &prefix[..at];
        }
    }
    format!("{prefix}{WILDCARD}{suffix}")
}

/// Python slice bounds `[start:end]` of a sequence of `len` items, negative from the end.
fn py_slice_bounds(start: isize, end: isize, len: usize) -> (usize, usize) {
    let len = len as isize;
    let clamp = |i: isize| if i < 0 { (i + len).max(0) } else { i.min(len) } as usize;
    (clamp(start), clamp(end))
}

fn has_wildcard(chars: &[char], start: isize, end: isize) -> bool {
    let (start, end) = py_slice_bounds(start, end, chars.len());
    start < end && chars[start..end].windows(3).any(|w| w == ['<', '*', '>'])
}

/// The differing middle parts of two tokens, never cutting through a mask.
fn middles(a: &str, b: &str) -> (String, String) {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut start = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    while start > 0 && has_wildcard(&a, start.saturating_sub(2) as isize, start as isize + 2) {
        start -= 1; // back off so that a shared mask stays inside the middle
    }
    let mut end = a[start..]
        .iter()
        .rev()
        .zip(b[start..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (la, lb) = (a.len() as isize, b.len() as isize);
    while end > 0 && has_wildcard(&a, la - end as isize - 2, la - end as isize + 2) {
        end -= 1;
    }
    let end = end as isize;
    let (a0, a1) = py_slice_bounds(start as isize, la - end, a.len());
    let (b0, b1) = py_slice_bounds(start as isize, lb - end, b.len());
    let piece = |chars: &[char], s: usize, e: usize| {
        if s < e {
            chars[s..e].iter().collect()
        } else {
            String::new()
        }
    };
    (piece(&a, a0, a1), piece(&b, b0, b1))
}

fn without_words(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_ascii_alphanumeric())
        .collect()
}

/// Whether two differing tokens differ where a value goes, not in wording: one of them
/// is a bare mask where the other has text or, except for a leading token, both carry
/// masks in the same punctuation skeleton and differ by a word on each side.
pub fn looks_variable(a: &str, b: &str, leading: bool) -> bool {
    let (left, right) = middles(a, b);
    if left == WILDCARD || right == WILDCARD {
        return true;
    }
    if leading
        || left.is_empty()
        || right.is_empty()
        || !a.contains(WILDCARD)
        || !b.contains(WILDCARD)
    {
        return false;
    }
    without_words(a) == without_words(b)
}
