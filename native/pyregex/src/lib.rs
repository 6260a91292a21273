//! Python `re` patterns read the way CPython 3.11's `re` reads them, translated to the
//! syntax of the Rust `regex` crate (or of `fancy-regex` where a pattern needs backtracking:
//! lookarounds, backreferences, atomic groups), keeping Python's semantics:
//!
//! - `\d`, `\w`, `\s` and `\b` are Python's classes: CPython's tables (str.isdecimal,
//!   str.isalnum or "_", str.isspace) from `polaris_pyunicode` ([`Classes::Unicode`]), or
//!   their ASCII part for haystacks known to be ASCII ([`Classes::AsciiHaystack`]: far
//!   smaller automata, a plain `\b`, non-ASCII pattern characters become `\xFF`, which
//!   ASCII text never holds, so the output also compiles as a non-Unicode byte regex);
//! - VERBOSE is applied here (Rust's `x` flag also ignores whitespace inside classes,
//!   Python's does not), and so are DOTALL and the ASCII flag;
//! - `{` that is not a valid quantifier is a literal; a quantifier after a comment applies
//!   to the item before it; possessive quantifiers become atomic groups (`x*+` is `(?>x*)`);
//! - IGNORECASE: for Unicode text, each ASCII letter becomes the class of the characters
//!   Python's case-insensitive match admits (i/İ/ı, k/K, s/ſ); for ASCII text the engine's
//!   `(?i)` decides the same. Either way a non-ASCII character under it is refused;
//! - `$` as [`Options::dollar`] says: Python's "end or before a final newline", or the end
//!   of the text for haystacks that never hold "\n".
//!
//! What cannot be honoured exactly (conditionals, `\N{...}`, LOCALE, a backreference under
//! IGNORECASE, and IGNORECASE or MULTILINE where the caller does not accept them) is refused with an error, never
//! approximated. Patterns are expected to be valid Python patterns (compiled by Python
//! first); invalid ones are refused, but not always with Python's message.
//!
//! Besides the exact pattern, the translator gives a "relaxed" plain-`regex` superset
//! (lookarounds dropped, atomic groups made plain) for finding candidate positions, and the
//! lookbehinds every match must satisfy at its start.

use std::fmt::Write;

/// Python's `re` flag values.
pub const IGNORECASE: u32 = 2;
pub const LOCALE: u32 = 4;
pub const MULTILINE: u32 = 8;
pub const DOTALL: u32 = 16;
pub const VERBOSE: u32 = 64;
pub const ASCII: u32 = 256;

/// The class semantics of the translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classes {
    /// Any text: Python's Unicode tables.
    Unicode,
    /// The haystacks are ASCII: only the ASCII part of each class is emitted.
    AsciiHaystack,
}

/// How `$` (without MULTILINE) is translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dollar {
    /// Python's `$`: at the end or before a final "\n" (a lookahead, so backtracking).
    Python,
    /// The end of the text: exact for haystacks that never hold "\n".
    EndOfText,
}

/// What a caller needs from the translation.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub classes: Classes,
    /// Accept IGNORECASE (in the flags or inline); else it is refused.
    pub allow_ignorecase: bool,
    /// Accept MULTILINE (in the flags or inline); else it is refused.
    pub allow_multiline: bool,
    pub dollar: Dollar,
}

/// A Python pattern rewritten for the Rust engines.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The pattern with Python's semantics: `regex` syntax, or `fancy-regex` syntax when
    /// `needs_backtracking`. Every group is unnamed: Python's group numbers are kept.
    pub pattern: String,
    /// Plain `regex` syntax for a superset of `pattern`'s matches at each start position:
    /// lookarounds become empty and atomic groups plain ones. Backreferences become empty
    /// too, so it is a superset only when `has_backref` is false.
    pub relaxed: String,
    /// Whether `pattern` needs fancy-regex's backtracking VM.
    pub needs_backtracking: bool,
    pub has_backref: bool,
    /// Python group number (1-based) -> name, for named groups, in pattern order.
    pub named_groups: Vec<(usize, String)>,
    pub group_count: usize,
    /// Whether `|` occurs at the top level.
    pub top_level_alternation: bool,
    /// Lookbehinds every match must satisfy at its start (the pattern opens with them and
    /// has no top-level alternation), with plain bodies: a cheap pre-check.
    pub leading_lookbehinds: Vec<LeadingLookbehind>,
}

impl Translated {
    /// The number of the group named `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.named_groups
            .iter()
            .find(|(_, n)| n == name)
            .map(|&(index, _)| index)
    }
}

#[derive(Debug, Clone)]
pub struct LeadingLookbehind {
    pub negated: bool,
    /// Plain `regex` syntax (with the case flag in effect).
    pub body: String,
}

/// Translate `source`, compiled in Python with `flags` (the `re` flag values above).
pub fn translate(source: &str, flags: u32, options: Options) -> Result<Translated, String> {
    let mut translator = Translator {
        chars: source.chars().collect(),
        pos: 0,
        options,
        out: String::with_capacity(source.len() * 2),
        relaxed: String::with_capacity(source.len() * 2),
        relaxed_muted: 0,
        needs_backtracking: false,
        backtracking_constructs: 0,
        has_backref: false,
        named_groups: Vec::new(),
        group_count: 0,
        top_level_alternation: false,
        leading_open: true,
        leading_lookbehinds: Vec::new(),
        source,
    };
    if flags & LOCALE != 0 {
        return Err(translator.error("the LOCALE flag is not supported"));
    }
    let mut flags = Flags {
        verbose: flags & VERBOSE != 0,
        dotall: flags & DOTALL != 0,
        ascii: flags & ASCII != 0,
        ignorecase: flags & IGNORECASE != 0,
        multiline: flags & MULTILINE != 0,
    };
    translator.check_flags(flags)?;
    translator.global_flags(&mut flags)?;
    if flags.ignorecase && translator.engine_case() {
        translator.emit("(?i)");
    }
    translator.alternation(flags, 0)?;
    if translator.pos < translator.chars.len() {
        return Err(translator.error("unbalanced parenthesis"));
    }
    Ok(Translated {
        pattern: translator.out,
        relaxed: translator.relaxed,
        needs_backtracking: translator.needs_backtracking,
        has_backref: translator.has_backref,
        named_groups: translator.named_groups,
        group_count: translator.group_count,
        top_level_alternation: translator.top_level_alternation,
        leading_lookbehinds: if translator.top_level_alternation {
            Vec::new()
        } else {
            translator.leading_lookbehinds
        },
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flags {
    verbose: bool,
    dotall: bool,
    ascii: bool,
    ignorecase: bool,
    multiline: bool,
}

/// What an item of a sequence was, for the quantifier that may follow it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Nothing yet, or an anchor (`^`, `$`, `\b`, ...): a quantifier is an error.
    Unrepeatable,
    /// An atom starting at these offsets of the exact and relaxed output; `leading`: a
    /// lookbehind opening the pattern.
    Atom {
        exact: usize,
        relaxed: usize,
        leading: bool,
    },
    /// A quantified atom: another quantifier is "multiple repeat".
    Repeated,
}

/// What `atom` read.
enum Atom {
    Repeatable {
        leading: bool,
    },
    Anchor,
    /// A `(?#...)` comment: no item (a quantifier after it applies to the item before).
    Comment,
}

struct Translator<'a> {
    chars: Vec<char>,
    pos: usize,
    options: Options,
    out: String,
    relaxed: String,
    /// Depth of lookarounds being copied to `out` only.
    relaxed_muted: usize,
    needs_backtracking: bool,
    backtracking_constructs: usize,
    has_backref: bool,
    named_groups: Vec<(usize, String)>,
    group_count: usize,
    top_level_alternation: bool,
    /// Nothing but lookbehinds (and comments) at the top level so far.
    leading_open: bool,
    leading_lookbehinds: Vec<LeadingLookbehind>,
    source: &'a str,
}

const ASCII_DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const ASCII_WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
const ASCII_SPACE: &[(u32, u32)] = &[(0x09, 0x0D), (0x20, 0x20)];
/// The ASCII members of Python's Unicode `\s` (str.isspace also admits \x1c-\x1f).
const UNICODE_SPACE_ASCII_PART: &[(u32, u32)] = &[(0x09, 0x0D), (0x1C, 0x20)];
/// Whitespace that verbose mode skips between items (Python's `_parser.WHITESPACE`).
const VERBOSE_SPACE: &[char] = &[' ', '\t', '\n', '\r', '\x0B', '\x0C'];

/// Ranges of `\d`, `\w`, `\s` under the ASCII flag or not; `ascii_haystack`: only the
/// ASCII part is needed (it decides the same on ASCII text).
fn class_ranges(kind: char, ascii: bool, ascii_haystack: bool) -> &'static [(u32, u32)] {
    match (kind.to_ascii_lowercase(), ascii, ascii_haystack) {
        ('d', false, false) => polaris_pyunicode::DECIMAL,
        ('w', false, false) => polaris_pyunicode::WORD,
        ('s', false, false) => polaris_pyunicode::SPACE,
        ('s', false, true) => UNICODE_SPACE_ASCII_PART,
        ('d', _, _) => ASCII_DIGIT,
        ('w', _, _) => ASCII_WORD,
        _ => ASCII_SPACE,
    }
}

/// Append a class body (ranges, no brackets) for `ranges`.
fn push_ranges(out: &mut String, ranges: &[(u32, u32)]) {
    for &(lo, hi) in ranges {
        if lo == hi {
            let _ = write!(out, "\\x{{{lo:X}}}");
        } else {
            let _ = write!(out, "\\x{{{lo:X}}}-\\x{{{hi:X}}}");
        }
    }
}

/// The characters Python's IGNORECASE lets an ASCII letter match (sre lowercases both sides
/// and adds the equivalences i/ı and s/ſ; U+0130 and U+212A lowercase to i and k).
fn ignorecase_variants(c: char) -> Vec<char> {
    let lower = c.to_ascii_lowercase();
    let mut variants = vec![lower, lower.to_ascii_uppercase()];
    match lower {
        'i' => variants.extend(['\u{130}', '\u{131}']),
        'k' => variants.push('\u{212A}'),
        's' => variants.push('\u{17F}'),
        _ => {}
    }
    variants
}

/// A character as a literal in both engines' syntax, in or out of a class.
/// `ascii_haystack`: a non-ASCII character is the byte 0xFF, which ASCII text never holds
/// (so the pattern also compiles as a byte regex without Unicode).
fn push_literal(out: &mut String, c: char, ascii_haystack: bool) {
    if ascii_haystack && !c.is_ascii() {
        out.push_str("\\xFF");
    } else if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

enum ClassItem {
    Char(char),
    Set,
}

impl Translator<'_> {
    fn error(&self, what: &str) -> String {
        format!("regex {:?}: {what} (at position {})", self.source, self.pos)
    }

    fn ascii_haystack(&self) -> bool {
        self.options.classes == Classes::AsciiHaystack
    }

    /// IGNORECASE left to the engine's `(?i)` (ASCII text, where it decides as Python
    /// does), rather than expanded letter by letter.
    fn engine_case(&self) -> bool {
        self.ascii_haystack()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn emit(&mut self, text: &str) {
        self.emit_each(text, text);
    }

    fn emit_each(&mut self, exact: &str, relaxed: &str) {
        self.out.push_str(exact);
        if self.relaxed_muted == 0 {
            self.relaxed.push_str(relaxed);
        }
    }

    fn mark_backtracking(&mut self) {
        self.needs_backtracking = true;
        self.backtracking_constructs += 1;
    }

    fn check_flags(&self, flags: Flags) -> Result<(), String> {
        if flags.ignorecase && !self.options.allow_ignorecase {
            return Err(self.error("IGNORECASE is not supported here"));
        }
        if flags.multiline && !self.options.allow_multiline {
            return Err(self.error("MULTILINE is not supported here"));
        }
        Ok(())
    }

    /// Skip VERBOSE whitespace and comments.
    fn skip_verbose(&mut self, flags: Flags) {
        if !flags.verbose {
            return;
        }
        while let Some(c) = self.peek() {
            if VERBOSE_SPACE.contains(&c) {
                self.pos += 1;
            } else if c == '#' {
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// `(?#...)` after its `(?#`: Python reads escapes as pairs, so `\)` does not close it.
    fn skip_comment(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                None => return Err(self.error("missing ), unterminated comment")),
                Some(')') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Global `(?flags)`: Python 3.11 accepts them only before any item (comments and
    /// verbose whitespace aside), and they apply to the whole pattern.
    fn global_flags(&mut self, flags: &mut Flags) -> Result<(), String> {
        loop {
            self.skip_verbose(*flags);
            if self.peek() != Some('(') || self.peek_at(1) != Some('?') {
                return Ok(());
            }
            if self.peek_at(2) == Some('#') {
                self.pos += 3;
                self.skip_comment()?;
                continue;
            }
            let mut index = self.pos + 2;
            while self
                .chars
                .get(index)
                .is_some_and(|c| c.is_ascii_alphabetic())
            {
                index += 1;
            }
            if index == self.pos + 2 || self.chars.get(index) != Some(&')') {
                return Ok(());
            }
            self.pos += 2;
            while self.pos < index {
                let letter = self.chars[self.pos];
                self.apply_flag(flags, letter, true)?;
                self.pos += 1;
            }
            self.pos += 1;
        }
    }

    fn apply_flag(&self, flags: &mut Flags, letter: char, on: bool) -> Result<(), String> {
        match letter {
            'x' => flags.verbose = on,
            's' => flags.dotall = on,
            'i' => flags.ignorecase = on,
            'm' => flags.multiline = on,
            'a' if on => flags.ascii = true,
            'u' if on => {}
            'L' => return Err(self.error("the LOCALE flag is not supported")),
            _ => return Err(self.error(&format!("unknown flag {letter:?}"))),
        }
        self.check_flags(*flags)
    }

    fn alternation(&mut self, flags: Flags, depth: usize) -> Result<(), String> {
        loop {
            self.sequence(flags, depth)?;
            if self.eat('|') {
                self.emit("|");
                if depth == 0 {
                    self.top_level_alternation = true;
                }
                continue;
            }
            return Ok(());
        }
    }

    fn sequence(&mut self, flags: Flags, depth: usize) -> Result<(), String> {
        let mut last = Item::Unrepeatable;
        loop {
            self.skip_verbose(flags);
            let Some(c) = self.peek() else { return Ok(()) };
            if c == '|' {
                return Ok(());
            }
            if c == ')' {
                if depth == 0 {
                    return Err(self.error("unbalanced parenthesis"));
                }
                return Ok(());
            }
            if let Some(quantifier) = self.quantifier()? {
                match last {
                    Item::Unrepeatable => return Err(self.error("nothing to repeat")),
                    Item::Repeated => return Err(self.error("multiple repeat")),
                    Item::Atom {
                        exact,
                        relaxed,
                        leading,
                    } => {
                        if leading {
                            // A quantified lookbehind is optional.
                            self.leading_lookbehinds.clear();
                        }
                        self.repeat(exact, relaxed, &quantifier);
                        last = Item::Repeated;
                    }
                }
                continue;
            }
            let (exact, relaxed) = (self.out.len(), self.relaxed.len());
            match self.atom(flags, depth)? {
                Atom::Repeatable { leading } => {
                    if depth == 0 && !leading {
                        self.leading_open = false;
                    }
                    last = Item::Atom {
                        exact,
                        relaxed,
                        leading,
                    };
                }
                Atom::Anchor => {
                    if depth == 0 {
                        self.leading_open = false;
                    }
                    last = Item::Unrepeatable;
                }
                Atom::Comment => {}
            }
        }
    }

    /// A quantifier at the cursor, consumed: `*`, `+`, `?` or `{m,n}` (in `regex` syntax),
    /// and whether it is lazy or possessive.
    fn quantifier(&mut self) -> Result<Option<Quantifier>, String> {
        let repeat = match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.pos += 1;
                c.to_string()
            }
            Some('{') => {
                let Some(len) = self.brace_quantifier_len() else {
                    return Ok(None);
                };
                let body: String = self.chars[self.pos + 1..self.pos + len - 1]
                    .iter()
                    .collect();
                self.pos += len;
                let (lo, hi) = match body.split_once(',') {
                    Some((lo, hi)) => (lo.to_string(), Some(hi.to_string())),
                    None => (body.clone(), None),
                };
                let count = |digits: &str| {
                    digits
                        .parse::<u64>()
                        .map_err(|_| self.error("repeat count too large"))
                };
                let lo_value = if lo.is_empty() { 0 } else { count(&lo)? };
                match hi {
                    None => format!("{{{lo_value}}}"),
                    Some(hi) if hi.is_empty() => format!("{{{lo_value},}}"),
                    Some(hi) => {
                        let hi_value = count(&hi)?;
                        if hi_value < lo_value {
                            return Err(self.error("min repeat greater than max repeat"));
                        }
                        format!("{{{lo_value},{hi_value}}}")
                    }
                }
            }
            _ => return Ok(None),
        };
        let lazy = self.eat('?');
        let possessive = !lazy && self.eat('+');
        Ok(Some(Quantifier {
            repeat,
            lazy,
            possessive,
        }))
    }

    /// Length (in chars, braces included) of a `{m}`, `{m,}`, `{,n}`, `{m,n}` quantifier at
    /// the cursor (on its `{`), or None when Python reads the `{` as a literal.
    fn brace_quantifier_len(&self) -> Option<usize> {
        let mut index = self.pos + 1;
        let digits = |index: &mut usize| {
            while self.chars.get(*index).is_some_and(|c| c.is_ascii_digit()) {
                *index += 1;
            }
        };
        if self.chars.get(index) == Some(&'}') {
            return None;
        }
        digits(&mut index);
        if self.chars.get(index) == Some(&',') {
            index += 1;
            digits(&mut index);
        }
        (self.chars.get(index) == Some(&'}')).then_some(index + 1 - self.pos)
    }

    /// Quantify the atom at these output offsets: `(?:atom)q`, in an atomic group when
    /// possessive (a plain one in the relaxed form).
    fn repeat(&mut self, exact: usize, relaxed: usize, quantifier: &Quantifier) {
        let suffix = format!(
            "){}{}",
            quantifier.repeat,
            if quantifier.lazy { "?" } else { "" }
        );
        // The repeated item starts at `at`: wrap it, and for a possessive quantifier wrap the
        // whole repetition again in `outer` (atomic in the pattern, plain in the relaxed one).
        let wrap = |text: &mut String, at: usize, outer: &str| {
            text.insert_str(at, if quantifier.possessive { outer } else { "(?:" });
            text.push_str(&suffix);
            if quantifier.possessive {
                text.push(')');
            }
        };
        if quantifier.possessive {
            self.mark_backtracking();
        }
        wrap(&mut self.out, exact, "(?>(?:");
        if self.relaxed_muted == 0 {
            wrap(&mut self.relaxed, relaxed, "(?:(?:");
        }
    }

    fn atom(&mut self, flags: Flags, depth: usize) -> Result<Atom, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end"));
        };
        self.pos += 1;
        match c {
            '(' => self.group(flags, depth),
            '[' => {
                self.class(flags)?;
                Ok(Atom::Repeatable { leading: false })
            }
            '.' => {
                self.emit(if flags.dotall { "(?s:.)" } else { "[^\\n]" });
                Ok(Atom::Repeatable { leading: false })
            }
            '^' => {
                self.emit(if flags.multiline { "(?m:^)" } else { "\\A" });
                Ok(Atom::Anchor)
            }
            '$' => {
                if flags.multiline {
                    self.emit("(?m:$)");
                } else if self.options.dollar == Dollar::Python {
                    self.mark_backtracking();
                    self.emit_each("(?=\\n?\\z)", "(?:)");
                } else {
                    self.emit("\\z");
                }
                Ok(Atom::Anchor)
            }
            '\\' => self.escape(flags),
            _ => {
                self.literal(flags, c)?;
                Ok(Atom::Repeatable { leading: false })
            }
        }
    }

    fn check_case_folding(&self, flags: Flags, c: char) -> Result<(), String> {
        if flags.ignorecase && !c.is_ascii() {
            return Err(self.error(&format!(
                "non-ASCII character {c:?} under IGNORECASE (Python's case folding differs from Rust's)"
            )));
        }
        Ok(())
    }

    fn literal(&mut self, flags: Flags, c: char) -> Result<(), String> {
        self.check_case_folding(flags, c)?;
        let mut text = String::new();
        if flags.ignorecase && !self.engine_case() && c.is_ascii_alphabetic() {
            text.push('[');
            for variant in ignorecase_variants(c) {
                push_literal(&mut text, variant, false);
            }
            text.push(']');
        } else {
            push_literal(&mut text, c, self.ascii_haystack());
        }
        self.emit(&text);
        Ok(())
    }

    fn group(&mut self, flags: Flags, depth: usize) -> Result<Atom, String> {
        if !self.eat('?') {
            self.group_count += 1;
            self.emit("(");
            self.alternation(flags, depth + 1)?;
            self.close_group()?;
            return Ok(Atom::Repeatable { leading: false });
        }
        let Some(kind) = self.peek() else {
            return Err(self.error("unexpected end"));
        };
        self.pos += 1;
        match kind {
            'P' => {
                if self.eat('<') {
                    let name = self.read_until('>')?;
                    if name.is_empty() || self.named_groups.iter().any(|(_, n)| *n == name) {
                        return Err(self.error(&format!("bad or repeated group name {name:?}")));
                    }
                    self.group_count += 1;
                    self.named_groups.push((self.group_count, name));
                    self.emit("(");
                    self.alternation(flags, depth + 1)?;
                    self.close_group()?;
                } else if self.eat('=') {
                    let name = self.read_until(')')?;
                    let Some(&(index, _)) = self.named_groups.iter().find(|(_, n)| *n == name)
                    else {
                        return Err(self.error(&format!("unknown group name {name:?}")));
                    };
                    self.backref(flags, index)?;
                } else {
                    return Err(self.error("unknown extension ?P"));
                }
            }
            ':' => {
                self.emit("(?:");
                self.alternation(flags, depth + 1)?;
                self.close_group()?;
            }
            '>' => {
                self.mark_backtracking();
                self.emit_each("(?>", "(?:");
                self.alternation(flags, depth + 1)?;
                self.close_group()?;
            }
            '=' | '!' => {
                self.lookaround(flags, depth, if kind == '=' { "(?=" } else { "(?!" })?;
            }
            '<' if matches!(self.peek(), Some('=' | '!')) => {
                let negated = self.peek() == Some('!');
                self.pos += 1;
                let leading = depth == 0 && self.leading_open;
                let opener = if negated { "(?<!" } else { "(?<=" };
                let (body_start, constructs) = (
                    self.out.len() + opener.len(),
                    self.backtracking_constructs + 1,
                );
                self.lookaround(flags, depth, opener)?;
                if leading && constructs == self.backtracking_constructs {
                    let case = if flags.ignorecase && self.engine_case() {
                        "(?i)"
                    } else {
                        ""
                    };
                    let body = format!("{case}{}", &self.out[body_start..self.out.len() - 1]);
                    self.leading_lookbehinds
                        .push(LeadingLookbehind { negated, body });
                }
                return Ok(Atom::Repeatable { leading });
            }
            '#' => {
                self.skip_comment()?;
                return Ok(Atom::Comment);
            }
            '(' => return Err(self.error("conditional groups (?(...)...) are not supported")),
            c if c.is_ascii_alphabetic() || c == '-' => {
                // Scoped flags (?on-off:...); global ones were read at the start.
                self.pos -= 1;
                let mut scoped = flags;
                let mut on = true;
                loop {
                    let Some(letter) = self.peek() else {
                        return Err(self.error("unexpected end"));
                    };
                    self.pos += 1;
                    match letter {
                        ':' => break,
                        '-' if on => on = false,
                        ')' if on => {
                            return Err(
                                self.error("global flags not at the start of the expression")
                            )
                        }
                        l if l.is_ascii_alphabetic() => self.apply_flag(&mut scoped, l, on)?,
                        _ => return Err(self.error("bad inline flags")),
                    }
                }
                // The flags are applied by this translator; only the engine's case flag
                // needs saying.
                let opener = match (self.engine_case(), flags.ignorecase, scoped.ignorecase) {
                    (true, false, true) => "(?i:",
                    (true, true, false) => "(?-i:",
                    _ => "(?:",
                };
                self.emit(opener);
                self.alternation(scoped, depth + 1)?;
                self.close_group()?;
            }
            _ => return Err(self.error(&format!("unknown extension ?{kind}"))),
        }
        Ok(Atom::Repeatable { leading: false })
    }

    /// A lookaround after its opener: in the exact pattern only (empty in the relaxed one).
    fn lookaround(&mut self, flags: Flags, depth: usize, opener: &str) -> Result<(), String> {
        self.mark_backtracking();
        self.emit_each(opener, "(?:)");
        self.relaxed_muted += 1;
        self.alternation(flags, depth + 1)?;
        self.close_group()?;
        self.relaxed_muted -= 1;
        Ok(())
    }

    fn backref(&mut self, flags: Flags, number: usize) -> Result<(), String> {
        if flags.ignorecase {
            // fancy-regex compares a backreference's text case-sensitively; Python does not
            return Err(self.error("a backreference under IGNORECASE (fancy-regex compares it case-sensitively)"));
        }
        self.has_backref = true;
        self.mark_backtracking();
        self.emit_each(&format!("(?:\\{number})"), "(?:)");
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), String> {
        if !self.eat(')') {
            return Err(self.error("missing ), unterminated subpattern"));
        }
        self.out.push(')');
        if self.relaxed_muted == 0 {
            self.relaxed.push(')');
        }
        Ok(())
    }

    fn read_until(&mut self, end: char) -> Result<String, String> {
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("missing group name terminator"));
            };
            self.pos += 1;
            if c == end {
                return Ok(text);
            }
            text.push(c);
        }
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, String> {
        let text: String = self.chars.iter().skip(self.pos).take(digits).collect();
        if text.chars().count() != digits || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error("incomplete escape"));
        }
        self.pos += digits;
        let value = u32::from_str_radix(&text, 16).map_err(|_| self.error("bad escape"))?;
        char::from_u32(value).ok_or_else(|| self.error("bad escape (surrogate or out of range)"))
    }

    fn octal_escape(&mut self, first: char, max_more: usize) -> Result<char, String> {
        let mut value = first.to_digit(8).unwrap_or(0);
        let mut taken = 0;
        while taken < max_more {
            match self.peek().and_then(|c| c.to_digit(8)) {
                Some(d) => {
                    value = value * 8 + d;
                    self.pos += 1;
                    taken += 1;
                }
                None => break,
            }
        }
        if value > 0o377 {
            return Err(self.error("octal escape value outside of range 0-0o377"));
        }
        char::from_u32(value).ok_or_else(|| self.error("bad octal escape"))
    }

    /// Escapes valid both inside and outside classes that denote one character.
    fn char_escape(&mut self, c: char) -> Result<Option<char>, String> {
        Ok(Some(match c {
            'a' => '\x07',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            'x' => self.hex_escape(2)?,
            'u' => self.hex_escape(4)?,
            'U' => self.hex_escape(8)?,
            'N' => return Err(self.error("\\N{...} named escapes are not supported")),
            c if c.is_ascii_alphanumeric() => return Ok(None),
            c => c,
        }))
    }

    fn class_escape_set(&self, out: &mut String, c: char, flags: Flags) {
        out.push_str(if c.is_ascii_lowercase() { "[" } else { "[^" });
        push_ranges(out, class_ranges(c, flags.ascii, self.ascii_haystack()));
        out.push(']');
    }

    fn escape(&mut self, flags: Flags) -> Result<Atom, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("bad escape (end of pattern)"));
        };
        self.pos += 1;
        match c {
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                let mut class = String::new();
                self.class_escape_set(&mut class, c, flags);
                self.emit(&class);
            }
            'A' => {
                self.emit("\\A");
                return Ok(Atom::Anchor);
            }
            'Z' => {
                self.emit("\\z");
                return Ok(Atom::Anchor);
            }
            'b' | 'B' if self.ascii_haystack() => {
                // On ASCII text the engine's boundary is Python's.
                self.emit(if c == 'b' { "\\b" } else { "\\B" });
                return Ok(Atom::Anchor);
            }
            'b' | 'B' => {
                // Python's word boundary is over Python's \w.
                let mut word = String::from("[");
                push_ranges(&mut word, class_ranges('w', flags.ascii, false));
                word.push(']');
                let boundary = if c == 'b' {
                    format!("(?:(?<={word})(?!{word})|(?<!{word})(?={word}))")
                } else {
                    format!("(?:(?<={word})(?={word})|(?<!{word})(?!{word}))")
                };
                self.mark_backtracking();
                self.emit_each(&boundary, "(?:)");
                return Ok(Atom::Anchor);
            }
            '0' => {
                let ch = self.octal_escape('0', 2)?;
                self.literal(flags, ch)?;
            }
            '1'..='9' => {
                // Three octal digits make an octal escape; otherwise a group reference.
                let second = self.peek();
                let third = self.peek_at(1);
                let octal = |d: Option<char>| d.is_some_and(|d| ('0'..='7').contains(&d));
                if c <= '7' && octal(second) && octal(third) {
                    let ch = self.octal_escape(c, 2)?;
                    self.literal(flags, ch)?;
                    return Ok(Atom::Repeatable { leading: false });
                }
                let mut number = c.to_digit(10).unwrap_or(0) as usize;
                if let Some(d) = second.and_then(|d| d.to_digit(10)) {
                    number = number * 10 + d as usize;
                    self.pos += 1;
                }
                if number > self.group_count {
                    return Err(self.error("invalid group reference"));
                }
                self.backref(flags, number)?;
            }
            c => match self.char_escape(c)? {
                Some(ch) => self.literal(flags, ch)?,
                None => return Err(self.error(&format!("bad escape \\{c}"))),
            },
        }
        Ok(Atom::Repeatable { leading: false })
    }

    fn class(&mut self, flags: Flags) -> Result<(), String> {
        let ascii_haystack = self.ascii_haystack();
        let mut out = String::from("[");
        if self.eat('^') {
            out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated character set"));
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let start = if c == '\\' {
                match self.class_escape(&mut out, flags)? {
                    ClassItem::Char(ch) => ch,
                    ClassItem::Set => continue,
                }
            } else {
                c
            };
            // A range "a-z" (a trailing "-" is a literal).
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.pos += 1;
                let Some(next) = self.peek() else {
                    return Err(self.error("unterminated character set"));
                };
                self.pos += 1;
                let end = if next == '\\' {
                    match self.class_escape(&mut String::new(), flags)? {
                        ClassItem::Char(ch) => ch,
                        ClassItem::Set => return Err(self.error("bad character range")),
                    }
                } else {
                    next
                };
                if end < start {
                    return Err(self.error("bad character range"));
                }
                self.check_case_folding(flags, start)?;
                self.check_case_folding(flags, end)?;
                if flags.ignorecase
                    && !self.engine_case()
                    && (start.is_alphabetic() || end.is_alphabetic() || start < 'A' && end > 'z')
                {
                    return Err(self.error("character ranges under IGNORECASE are not supported"));
                }
                if ascii_haystack && !end.is_ascii() {
                    // Only the ASCII part of the range can match ASCII text.
                    if start.is_ascii() {
                        push_literal(&mut out, start, true);
                        out.push('-');
                        push_literal(&mut out, '\x7f', true);
                    }
                    push_literal(&mut out, end, true);
                } else {
                    push_literal(&mut out, start, ascii_haystack);
                    out.push('-');
                    push_literal(&mut out, end, ascii_haystack);
                }
            } else {
                self.check_case_folding(flags, start)?;
                if flags.ignorecase && !self.engine_case() && start.is_ascii_alphabetic() {
                    for variant in ignorecase_variants(start) {
                        push_literal(&mut out, variant, false);
                    }
                } else {
                    push_literal(&mut out, start, ascii_haystack);
                }
            }
        }
        out.push(']');
        self.emit(&out);
        Ok(())
    }

    /// An escape in a class (after its `\`): one character, or a class escape appended to
    /// `out` as a nested class.
    fn class_escape(&mut self, out: &mut String, flags: Flags) -> Result<ClassItem, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("unterminated character set"));
        };
        self.pos += 1;
        match c {
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                self.class_escape_set(out, c, flags);
                Ok(ClassItem::Set)
            }
            'b' => Ok(ClassItem::Char('\x08')),
            '0'..='7' => Ok(ClassItem::Char(self.octal_escape(c, 2)?)),
            c => match self.char_escape(c)? {
                Some(ch) => Ok(ClassItem::Char(ch)),
                None => Err(self.error(&format!("bad escape \\{c}"))),
            },
        }
    }
}

struct Quantifier {
    /// `*`, `+`, `?` or `{m,n}` in `regex` syntax.
    repeat: String,
    lazy: bool,
    possessive: bool,
}

#[cfg(test)]
mod tests;
