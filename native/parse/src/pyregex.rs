//! Python `re` patterns, translated to the Rust `regex` crate (or `fancy-regex` where a
//! pattern needs backtracking features), with Python's semantics:
//!
//! - `\d`, `\w`, `\s` (and `\b`) are CPython's classes (str.isdecimal, str.isalnum or "_",
//!   str.isspace), from the tables of `polaris_pyunicode`, not the regex crate's
//!   newer Unicode tables;
//! - the VERBOSE flag is applied here (Rust's `x` flag also ignores whitespace inside
//!   classes, Python's does not);
//! - `{` that is not a valid quantifier is a literal, as in Python;
//! - possessive quantifiers become atomic groups (`x*+` is `(?>x*)` by definition);
//! - `$` becomes `\z`: every haystack the parser matches is a single line (the part of a
//!   record before its first "\n"), where Python's `$` can only match at the end.
//!
//! What cannot be honoured exactly (IGNORECASE and MULTILINE in user patterns, conditionals,
//! `\N{...}`, LOCALE) is refused with an error, never approximated.

/// A translated pattern: Rust syntax plus the Python group table.
#[derive(Debug, Clone)]
pub struct Translated {
    pub pattern: String,
    pub needs_fancy: bool,
    /// Python group number (1-based) -> name, for named groups, in pattern order.
    pub named_groups: Vec<(usize, String)>,
    pub group_count: usize,
    /// Whether `|` occurs at the top level.
    pub top_level_alternation: bool,
}

#[derive(Clone, Copy)]
struct Flags {
    verbose: bool,
    dotall: bool,
    ascii: bool,
    ignorecase: bool,
}

struct Translator<'a> {
    chars: Vec<char>,
    pos: usize,
    out: String,
    needs_fancy: bool,
    named_groups: Vec<(usize, String)>,
    group_count: usize,
    allow_ignorecase: bool,
    ascii_haystack: bool,
    top_level_alternation: bool,
    source: &'a str,
}

/// Python's `re` flag values.
pub const IGNORECASE: u32 = 2;
pub const LOCALE: u32 = 4;
pub const MULTILINE: u32 = 8;
pub const DOTALL: u32 = 16;
pub const VERBOSE: u32 = 64;
pub const ASCII: u32 = 256;

/// Translate a pattern compiled in Python with `flags`.  IGNORECASE is accepted only with
/// `allow_ignorecase` (the strptime patterns: ASCII letters are expanded to the characters
/// Python's case-insensitive match admits); user patterns with it are refused.
pub fn translate(source: &str, flags: u32, allow_ignorecase: bool, ascii_haystack: bool) -> Result<Translated, String> {
    let verbose = flags & VERBOSE != 0;
    let ignorecase = flags & IGNORECASE != 0;
    if flags & LOCALE != 0 {
        return Err(format!("regex {source:?}: LOCALE is not supported by the native parser"));
    }
    if flags & MULTILINE != 0 {
        return Err(format!("regex {source:?}: MULTILINE is not supported by the native parser"));
    }
    if ignorecase && !allow_ignorecase {
        return Err(format!("regex {source:?}: IGNORECASE is not supported by the native parser"));
    }
    let mut translator = Translator {
        chars: source.chars().collect(),
        pos: 0,
        out: String::with_capacity(source.len() * 2),
        needs_fancy: false,
        named_groups: Vec::new(),
        group_count: 0,
        allow_ignorecase,
        ascii_haystack,
        top_level_alternation: false,
        source,
    };
    let mut flags = Flags { verbose, dotall: flags & DOTALL != 0, ascii: flags & ASCII != 0, ignorecase };
    translator.global_flags(&mut flags)?;
    translator.alternation(flags, 0)?;
    if translator.pos < translator.chars.len() {
        return Err(translator.error("unbalanced parenthesis"));
    }
    Ok(Translated {
        pattern: translator.out,
        needs_fancy: translator.needs_fancy,
        named_groups: translator.named_groups,
        group_count: translator.group_count,
        top_level_alternation: translator.top_level_alternation,
    })
}

/// Append a class body (ranges, no brackets) for `ranges`.
fn push_ranges(out: &mut String, ranges: &[(u32, u32)]) {
    use std::fmt::Write;
    for &(lo, hi) in ranges {
        if lo == hi {
            let _ = write!(out, "\\x{{{lo:X}}}");
        } else {
            let _ = write!(out, "\\x{{{lo:X}}}-\\x{{{hi:X}}}");
        }
    }
}

const ASCII_DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const ASCII_WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
const ASCII_SPACE: &[(u32, u32)] = &[(0x09, 0x0D), (0x20, 0x20)];
/// The ASCII members of Python's Unicode `\s` (str.isspace also admits \x1c-\x1f).
const UNICODE_SPACE_ASCII_PART: &[(u32, u32)] = &[(0x09, 0x0D), (0x1C, 0x20)];

/// Ranges of `\d`, `\w`, `\s` under the ASCII flag or not; `ascii_haystack`: only the
/// ASCII part is needed (the variant used for ASCII-only text, where it decides the same).
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

/// `ascii_haystack`: the pattern is for ASCII text, compiled as a byte regex without
/// Unicode; a non-ASCII character there is the byte 0xFF, which ASCII text never holds.
fn push_literal(out: &mut String, c: char, ascii_haystack: bool) {
    use std::fmt::Write;
    if ascii_haystack && !c.is_ascii() {
        out.push_str("\\xFF");
    } else if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

impl Translator<'_> {
    fn error(&self, what: &str) -> String {
        format!("regex {:?}: {what} (at position {})", self.source, self.pos)
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

    /// Skip VERBOSE whitespace and comments.
    fn skip_verbose(&mut self, flags: Flags) {
        if !flags.verbose {
            return;
        }
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
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

    /// Leading `(?flags)`: Python 3.11 accepts global flags only at the start.
    fn global_flags(&mut self, flags: &mut Flags) -> Result<(), String> {
        while self.peek() == Some('(') && self.peek_at(1) == Some('?') {
            let mut index = self.pos + 2;
            let mut letters = String::new();
            while let Some(&c) = self.chars.get(index) {
                if c.is_ascii_alphabetic() {
                    letters.push(c);
                    index += 1;
                } else {
                    break;
                }
            }
            if letters.is_empty() || self.chars.get(index) != Some(&')') {
                return Ok(());
            }
            for letter in letters.chars() {
                self.apply_flag(flags, letter, true)?;
            }
            self.pos = index + 1;
        }
        Ok(())
    }

    fn apply_flag(&self, flags: &mut Flags, letter: char, on: bool) -> Result<(), String> {
        match letter {
            'x' => flags.verbose = on,
            's' => flags.dotall = on,
            'a' => flags.ascii = on,
            'u' => {}
            'i' if self.allow_ignorecase || !on => flags.ignorecase = on,
            'i' => return Err(self.error("IGNORECASE is not supported by the native parser")),
            'm' => return Err(self.error("MULTILINE is not supported by the native parser")),
            _ => return Err(self.error(&format!("unsupported flag {letter:?}"))),
        }
        Ok(())
    }

    fn alternation(&mut self, flags: Flags, depth: usize) -> Result<(), String> {
        loop {
            self.sequence(flags, depth)?;
            if self.eat('|') {
                self.out.push('|');
                if depth == 0 {
                    self.top_level_alternation = true;
                }
                continue;
            }
            return Ok(());
        }
    }

    fn sequence(&mut self, flags: Flags, depth: usize) -> Result<(), String> {
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
            let atom_start = self.out.len();
            let quantifiable = self.atom(flags, depth)?;
            self.quantifier(flags, atom_start, quantifiable)?;
        }
    }

    /// One atom; returns whether it may take a quantifier.
    fn atom(&mut self, flags: Flags, depth: usize) -> Result<bool, String> {
        let Some(c) = self.peek() else { return Ok(false) };
        self.pos += 1;
        match c {
            '(' => self.group(flags, depth),
            '[' => {
                self.class(flags)?;
                Ok(true)
            }
            '.' => {
                self.out.push_str(if flags.dotall { "(?s:.)" } else { "[^\\n]" });
                Ok(true)
            }
            '^' => {
                self.out.push_str("\\A");
                Ok(false)
            }
            '$' => {
                self.out.push_str("\\z");
                Ok(false)
            }
            '\\' => self.escape(flags),
            '*' | '+' | '?' => Err(self.error("nothing to repeat")),
            '{' if self.brace_quantifier_len().is_some() => Err(self.error("nothing to repeat")),
            _ => {
                self.literal(flags, c)?;
                Ok(true)
            }
        }
    }

    fn literal(&mut self, flags: Flags, c: char) -> Result<(), String> {
        if flags.ignorecase {
            if c.is_ascii_alphabetic() {
                self.out.push('[');
                for variant in ignorecase_variants(c) {
                    push_literal(&mut self.out, variant, self.ascii_haystack);
                }
                self.out.push(']');
                return Ok(());
            }
            if !c.is_ascii() {
                return Err(self.error("non-ASCII literal under IGNORECASE"));
            }
        }
        push_literal(&mut self.out, c, self.ascii_haystack);
        Ok(())
    }

    fn group(&mut self, flags: Flags, depth: usize) -> Result<bool, String> {
        if !self.eat('?') {
            self.group_count += 1;
            self.out.push('(');
            self.alternation(flags, depth + 1)?;
            return self.close_group();
        }
        let Some(kind) = self.peek() else { return Err(self.error("unexpected end")) };
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
                    self.out.push('(');
                    self.alternation(flags, depth + 1)?;
                    self.close_group()
                } else if self.eat('=') {
                    let name = self.read_until(')')?;
                    let Some(&(index, _)) = self.named_groups.iter().find(|(_, n)| *n == name)
                    else {
                        return Err(self.error(&format!("unknown group name {name:?}")));
                    };
                    self.needs_fancy = true;
                    self.out.push_str(&format!("\\{index}"));
                    Ok(true)
                } else {
                    Err(self.error("unknown extension ?P"))
                }
            }
            ':' => {
                self.out.push_str("(?:");
                self.alternation(flags, depth + 1)?;
                self.close_group()
            }
            '>' => {
                self.needs_fancy = true;
                self.out.push_str("(?>");
                self.alternation(flags, depth + 1)?;
                self.close_group()
            }
            '=' | '!' => {
                self.needs_fancy = true;
                self.out.push_str(if kind == '=' { "(?=" } else { "(?!" });
                self.alternation(flags, depth + 1)?;
                self.close_group()?;
                Ok(false)
            }
            '<' if matches!(self.peek(), Some('=') | Some('!')) => {
                let negative = self.peek() == Some('!');
                self.pos += 1;
                self.needs_fancy = true;
                self.out.push_str(if negative { "(?<!" } else { "(?<=" });
                self.alternation(flags, depth + 1)?;
                self.close_group()?;
                Ok(false)
            }
            '#' => {
                self.read_until(')')?;
                Ok(false)
            }
            '(' => Err(self.error("conditional groups are not supported by the native parser")),
            c if c.is_ascii_alphabetic() || c == '-' => {
                // Scoped flags (?on-off:...)
                self.pos -= 1;
                let mut scoped = flags;
                let mut on = true;
                loop {
                    let Some(letter) = self.peek() else { return Err(self.error("unexpected end")) };
                    self.pos += 1;
                    match letter {
                        ':' => break,
                        '-' if on => on = false,
                        ')' => return Err(self.error("global flags not at the start")),
                        l if l.is_ascii_alphabetic() => self.apply_flag(&mut scoped, l, on)?,
                        _ => return Err(self.error("bad inline flags")),
                    }
                }
                // The scope's dot/flags are applied by this translator, so a plain group does.
                self.out.push_str("(?:");
                self.alternation(scoped, depth + 1)?;
                self.close_group()
            }
            _ => Err(self.error(&format!("unknown extension ?{kind}"))),
        }
    }

    fn close_group(&mut self) -> Result<bool, String> {
        if !self.eat(')') {
            return Err(self.error("missing ), unterminated subpattern"));
        }
        self.out.push(')');
        Ok(true)
    }

    fn read_until(&mut self, end: char) -> Result<String, String> {
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else { return Err(self.error("unterminated name")) };
            self.pos += 1;
            if c == end {
                return Ok(text);
            }
            text.push(c);
        }
    }

    /// Length (in chars) of a `{m}`, `{m,}`, `{,n}`, `{m,n}` quantifier at the cursor (which
    /// is just after the `{`), or None when Python would read the `{` as a literal.
    fn brace_quantifier_len(&self) -> Option<usize> {
        let mut index = self.pos;
        let digits = |index: &mut usize| {
            let start = *index;
            while self.chars.get(*index).is_some_and(|c| c.is_ascii_digit()) {
                *index += 1;
            }
            *index > start
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

    fn quantifier(&mut self, flags: Flags, atom_start: usize, quantifiable: bool) -> Result<(), String> {
        self.skip_verbose(flags);
        let Some(c) = self.peek() else { return Ok(()) };
        let quantifier = match c {
            '*' | '+' | '?' => {
                self.pos += 1;
                c.to_string()
            }
            '{' => {
                self.pos += 1;
                let Some(len) = self.brace_quantifier_len() else {
                    self.pos -= 1;
                    return Ok(());
                };
                let body: String = self.chars[self.pos..self.pos + len - 1].iter().collect();
                self.pos += len;
                let (lo, hi) = match body.split_once(',') {
                    Some((lo, hi)) => (lo.to_string(), Some(hi.to_string())),
                    None => (body.clone(), None),
                };
                let lo_value: u64 = if lo.is_empty() { 0 } else { lo.parse().map_err(|_| self.error("repeat too large"))? };
                match hi {
                    None => format!("{{{lo_value}}}"),
                    Some(hi) if hi.is_empty() => format!("{{{lo_value},}}"),
                    Some(hi) => {
                        let hi_value: u64 = hi.parse().map_err(|_| self.error("repeat too large"))?;
                        if hi_value < lo_value {
                            return Err(self.error("min repeat greater than max repeat"));
                        }
                        format!("{{{lo_value},{hi_value}}}")
                    }
                }
            }
            _ => return Ok(()),
        };
        if !quantifiable {
            return Err(self.error("nothing to repeat"));
        }
        let possessive = if self.eat('?') {
            self.out.insert_str(atom_start, "(?:");
            self.out.push(')');
            self.out.push_str(&quantifier);
            self.out.push('?');
            false
        } else {
            let possessive = self.eat('+');
            self.out.insert_str(atom_start, "(?:");
            self.out.push(')');
            self.out.push_str(&quantifier);
            possessive
        };
        if possessive {
            self.needs_fancy = true;
            self.out.insert_str(atom_start, "(?>");
            self.out.push(')');
        }
        self.skip_verbose(flags);
        if matches!(self.peek(), Some('*' | '+' | '?')) || (self.peek() == Some('{') && {
            self.pos += 1;
            let q = self.brace_quantifier_len().is_some();
            self.pos -= 1;
            q
        }) {
            return Err(self.error("multiple repeat"));
        }
        Ok(())
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
            '\\' => '\\',
            'x' => self.hex_escape(2)?,
            'u' => self.hex_escape(4)?,
            'U' => self.hex_escape(8)?,
            'N' => return Err(self.error("\\N{...} is not supported by the native parser")),
            c if c.is_ascii_alphanumeric() => return Ok(None),
            c => c,
        }))
    }

    fn escape(&mut self, flags: Flags) -> Result<bool, String> {
        let Some(c) = self.peek() else { return Err(self.error("bad escape (end of pattern)")) };
        self.pos += 1;
        match c {
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                self.out.push_str(if c.is_ascii_lowercase() { "[" } else { "[^" });
                push_ranges(&mut self.out, class_ranges(c, flags.ascii, self.ascii_haystack));
                self.out.push(']');
                Ok(true)
            }
            'A' => {
                self.out.push_str("\\A");
                Ok(false)
            }
            'Z' => {
                self.out.push_str("\\z");
                Ok(false)
            }
            'b' | 'B' => {
                // Python's word boundary is over Python's \w.
                let mut word = String::from("[");
                push_ranges(&mut word, class_ranges('w', flags.ascii, self.ascii_haystack));
                word.push(']');
                self.needs_fancy = true;
                if c == 'b' {
                    self.out.push_str(&format!("(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"));
                } else {
                    self.out.push_str(&format!("(?:(?<={word})(?={word})|(?<!{word})(?!{word}))"));
                }
                Ok(false)
            }
            '0' => {
                let ch = self.octal_escape('0', 2)?;
                self.literal(flags, ch)?;
                Ok(true)
            }
            '1'..='9' => {
                // Three octal digits make an octal escape; otherwise a group reference.
                let second = self.peek();
                let third = self.peek_at(1);
                if c <= '7'
                    && second.is_some_and(|d| ('0'..='7').contains(&d))
                    && third.is_some_and(|d| ('0'..='7').contains(&d))
                {
                    let ch = self.octal_escape(c, 2)?;
                    self.literal(flags, ch)?;
                    return Ok(true);
                }
                let mut number = c.to_digit(10).unwrap_or(0) as usize;
                if let Some(d) = second.and_then(|d| d.to_digit(10)) {
                    number = number * 10 + d as usize;
                    self.pos += 1;
                }
                if number > self.group_count {
                    return Err(self.error("invalid group reference"));
                }
                self.needs_fancy = true;
                self.out.push_str(&format!("\\{number}"));
                Ok(true)
            }
            c => match self.char_escape(c)? {
                Some(ch) => {
                    self.literal(flags, ch)?;
                    Ok(true)
                }
                None => Err(self.error(&format!("bad escape \\{c}"))),
            },
        }
    }

    fn class(&mut self, flags: Flags) -> Result<(), String> {
        self.out.push('[');
        if self.eat('^') {
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return Err(self.error("unterminated character set")) };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let start = if c == '\\' {
                match self.class_escape(flags)? {
                    ClassItem::Char(ch) => ch,
                    ClassItem::Set => continue,
                }
            } else {
                c
            };
            // A range "a-z" (a trailing "-" is a literal).
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.pos += 1;
                let Some(next) = self.peek() else { return Err(self.error("unterminated character set")) };
                self.pos += 1;
                let end = if next == '\\' {
                    match self.class_escape(flags)? {
                        ClassItem::Char(ch) => ch,
                        ClassItem::Set => return Err(self.error("bad character range")),
                    }
                } else {
                    next
                };
                if end < start {
                    return Err(self.error("bad character range"));
                }
                if flags.ignorecase && (start.is_alphabetic() || end.is_alphabetic() || start < 'A' && end > 'z') {
                    return Err(self.error("character ranges under IGNORECASE are not supported"));
                }
                if self.ascii_haystack && !end.is_ascii() {
                    // Only the ASCII part of the range can match ASCII text.
                    if start.is_ascii() {
                        push_literal(&mut self.out, start, true);
                        self.out.push('-');
                        push_literal(&mut self.out, '\x7f', true);
                    }
                    push_literal(&mut self.out, end, true);
                } else {
                    push_literal(&mut self.out, start, self.ascii_haystack);
                    self.out.push('-');
                    push_literal(&mut self.out, end, self.ascii_haystack);
                }
            } else {
                self.class_char(flags, start)?;
            }
        }
        self.out.push(']');
        Ok(())
    }

    fn class_char(&mut self, flags: Flags, c: char) -> Result<(), String> {
        if flags.ignorecase && c.is_ascii_alphabetic() {
            for variant in ignorecase_variants(c) {
                push_literal(&mut self.out, variant, self.ascii_haystack);
            }
        } else if flags.ignorecase && !c.is_ascii() {
            return Err(self.error("non-ASCII literal under IGNORECASE"));
        } else {
            push_literal(&mut self.out, c, self.ascii_haystack);
        }
        Ok(())
    }

    fn class_escape(&mut self, flags: Flags) -> Result<ClassItem, String> {
        let Some(c) = self.peek() else { return Err(self.error("unterminated character set")) };
        self.pos += 1;
        match c {
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                self.out.push_str(if c.is_ascii_lowercase() { "[" } else { "[^" });
                push_ranges(&mut self.out, class_ranges(c, flags.ascii, self.ascii_haystack));
                self.out.push(']');
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

enum ClassItem {
    Char(char),
    Set,
}

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

fn compile(source: &str, pattern: &str, needs_fancy: bool, ascii_bytes: bool) -> Result<Compiled, String> {
    Ok(if needs_fancy {
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
        let mut translated = translate(source, flags, allow_ignorecase, false)?;
        let mut ascii = translate(source, flags, allow_ignorecase, true)?;
        let mut rest_group = None;
        if single_line
            && !anchor_end
            && !translated.top_level_alternation
            && !translated.needs_fancy
            && translated.pattern.ends_with(REST)
            && ascii.pattern.ends_with(REST)
        {
            rest_group = Some(translated.group_count);
            translated.pattern.truncate(translated.pattern.len() - REST.len());
            ascii.pattern.truncate(ascii.pattern.len() - REST.len());
        }
        Ok(PyRegex {
            rest_group,
            compiled: compile(source, &wrap(&translated.pattern), translated.needs_fancy, false)?,
            compiled_ascii: if ascii.needs_fancy {
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
