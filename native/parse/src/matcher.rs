//! Python `re` patterns compiled for the parser (translated by `polaris_pyregex`), matched
//! at the start of the haystack like Python's `re.match`: the plain `regex` engine where it
//! suffices (a byte regex without Unicode for ASCII text), else fancy-regex.

use polaris_pyregex::{translate, Classes, Dollar, Options};

/// A compiled pattern, matched at the start of the haystack like Python's `re.match`.
pub enum Compiled {
    Plain(regex::Regex),
    /// The ASCII-text variant: bytes, no Unicode (byte classes, small automata).
    AsciiBytes(regex::bytes::Regex),
    Fancy(fancy_regex::Regex),
}

/// Group spans (byte offsets) of one match; index 0 is the whole match.
pub type Spans = Vec<Option<(usize, usize)>>;

pub struct PyRegex {
    /// A last group `(?P<g>.*)` at the top level (no top-level `|`) is not matched by the
    /// engine: on a single line `.*` takes the whole rest whatever the prefix matched, so
    /// the first match of the prefix is the first match of the pattern and the group is
    /// (prefix end, end of line).  This spares the capture engine walking every message.
    rest_group: Option<usize>,
    /// For any text.
    pub compiled: Compiled,
    /// The same pattern with ASCII-only classes, for ASCII text (far smaller automata).
    pub compiled_ascii: Compiled,
    pub named_groups: Vec<(usize, String)>,
    pub group_count: usize,
}

/// Why a match could not be decided natively (fancy-regex gave up backtracking).
#[derive(Debug)]
pub struct MatchUndecided;

/// Reusable capture slots of one PyRegex (for the Unicode and the ASCII variant).
#[derive(Default)]
pub struct Locations {
    unicode: Option<regex::CaptureLocations>,
    ascii: Option<regex::bytes::CaptureLocations>,
}

fn compile(source: &str, pattern: &str, needs_backtracking: bool, ascii_bytes: bool) -> Result<Compiled, String> {
    Ok(if needs_backtracking {
        Compiled::Fancy(fancy_regex::RegexBuilder::new(pattern).build().map_err(|e| format!("regex {source:?}: {e}"))?)
    } else if ascii_bytes {
        Compiled::AsciiBytes(
            regex::bytes::RegexBuilder::new(pattern)
                .unicode(false)
                .size_limit(64 << 20)
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|e| format!("regex {source:?} (ASCII variant): {e}"))?,
        )
    } else {
        Compiled::Plain(
            regex::RegexBuilder::new(pattern)
                .size_limit(64 << 20)
                .dfa_size_limit(64 << 20)
                .build()
                .map_err(|e| format!("regex {source:?}: {e}"))?,
        )
    })
}

impl PyRegex {
    /// `anchor_end`: the match must also reach the end (re.fullmatch).
    /// `single_line`: haystacks never hold "\n" (the parser matches record headers), which
    /// allows the rest-of-line group shortcut.
    pub fn new(source: &str, flags: u32, allow_ignorecase: bool, anchor_end: bool) -> Result<Self, String> {
        Self::build(source, flags, allow_ignorecase, anchor_end, false)
    }

    pub fn new_single_line(source: &str, flags: u32) -> Result<Self, String> {
        Self::build(source, flags, false, false, true)
    }

    fn build(source: &str, flags: u32, allow_ignorecase: bool, anchor_end: bool, single_line: bool) -> Result<Self, String> {
        const REST: &str = "((?:[^\\n])*)";
        let wrap = |body: &str| if anchor_end { format!("\\A(?:{body})\\z") } else { format!("\\A(?:{body})") };
        // `$` is the end of the text: every haystack the parser matches is a single line (the
        // part of a record before its first "\n"), where Python's `$` can only match at the end.
        let options = |classes| Options { classes, allow_ignorecase, allow_multiline: false, dollar: Dollar::EndOfText };
        let mut translated = translate(source, flags, options(Classes::Unicode))?;
        let mut ascii = translate(source, flags, options(Classes::AsciiHaystack))?;
        let mut rest_group = None;
        if single_line
            && !anchor_end
            && !translated.top_level_alternation
            && !translated.needs_backtracking
            && translated.pattern.ends_with(REST)
            && ascii.pattern.ends_with(REST)
        {
            rest_group = Some(translated.group_count);
            translated.pattern.truncate(translated.pattern.len() - REST.len());
            ascii.pattern.truncate(ascii.pattern.len() - REST.len());
        }
        Ok(PyRegex {
            rest_group,
            compiled: compile(source, &wrap(&translated.pattern), translated.needs_backtracking, false)?,
            compiled_ascii: if ascii.needs_backtracking {
                // fancy-regex has no byte mode: the Unicode form serves ASCII text too.
                compile(source, &wrap(&translated.pattern), true, false)?
            } else {
                compile(source, &wrap(&ascii.pattern), false, true)?
            },
            named_groups: translated.named_groups,
            group_count: translated.group_count,
        })
    }

    fn spans(&self, get: impl Fn(usize) -> Option<(usize, usize)>, len: usize) -> Spans {
        let mut spans: Spans = (0..=self.group_count).map(|i| if Some(i) == self.rest_group { None } else { get(i) }).collect();
        if let (Some(group), Some((_, end))) = (self.rest_group, spans[0]) {
            spans[group] = Some((end, len));
            spans[0] = Some((0, len));
        }
        spans
    }

    /// Match at the start of `haystack` (`ascii`: the haystack is ASCII); spans per group.
    pub fn match_start(&self, haystack: &str, ascii: bool, locations: &mut Locations) -> Result<Option<Spans>, MatchUndecided> {
        let compiled = if ascii { &self.compiled_ascii } else { &self.compiled };
        match compiled {
            Compiled::Plain(regex) => {
                let locs = locations.unicode.get_or_insert_with(|| regex.capture_locations());
                if regex.captures_read(locs, haystack).is_none() {
                    return Ok(None);
                }
                Ok(Some(self.spans(|i| locs.get(i), haystack.len())))
            }
            Compiled::AsciiBytes(regex) => {
                let locs = locations.ascii.get_or_insert_with(|| regex.capture_locations());
                if regex.captures_read(locs, haystack.as_bytes()).is_none() {
                    return Ok(None);
                }
                Ok(Some(self.spans(|i| locs.get(i), haystack.len())))
            }
            Compiled::Fancy(regex) => match regex.captures(haystack) {
                Ok(None) => Ok(None),
                Ok(Some(captures)) => Ok(Some(
                    (0..=self.group_count).map(|i| captures.get(i).map(|m| (m.start(), m.end()))).collect(),
                )),
                Err(_) => Err(MatchUndecided),
            },
        }
    }
}
