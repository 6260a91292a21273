//! Translation of Python `re` pattern syntax into fancy-regex syntax.
//!
//! The translation is exact for ASCII haystacks only (the redactor hands any other text to
//! the Python reference): there Python's Unicode `\w \d \b` agree with ASCII ones, so the
//! remaining differences are syntax (verbose mode, classes, escapes) and a few semantics
//! (`$`, `\Z`, `\s` including `\x1c-\x1f`), all rewritten here. Constructs that cannot be
//! honoured exactly are refused with an error.

use std::fmt::Write;

/// Python's `re` flags that change how a pattern is read or matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub ignore_case: bool,
    pub dot_all: bool,
    pub multi_line: bool,
    pub verbose: bool,
}

/// A Python pattern rewritten for the Rust engines.
#[derive(Debug)]
pub struct Translated {
    /// fancy-regex syntax with the Python semantics (lookarounds, backreferences kept).
    pub exact: String,
    /// Plain `regex` syntax for a superset of `exact`'s matches at each start position:
    /// lookarounds become empty and atomic groups plain ones. Backreferences become
    /// empty too, so it is a superset only when `has_backref` is false.
    pub relaxed: String,
    pub has_backref: bool,
    /// Whether `exact` needs fancy-regex's backtracking VM (lookaround or backreference).
    pub needs_backtracking: bool,
    /// Lookbehinds every match must satisfy at its start (the pattern opens with them
    /// and has no top-level alternation), with plain bodies: a cheap pre-check.
    pub leading_lookbehinds: Vec<LeadingLookbehind>,
}

#[derive(Debug, Clone)]
pub struct LeadingLookbehind {
    pub negated: bool,
    /// Plain `regex` syntax (with the case flag in effect).
    pub body: String,
}

/// Python's `\s` for ASCII text: `str.isspace()` includes the separators \x1c-\x1f.
const SPACE_MEMBERS: &str = r"\t\n\x0B\x0C\r\x1C-\x1F\x20";
const WORD_MEMBERS: &str = "0-9A-Za-z_";
const DIGIT_MEMBERS: &str = "0-9";
/// Whitespace that verbose mode skips between tokens (Python's `_parser.WHITESPACE`).
const VERBOSE_SPACE: &[char] = &[' ', '\t', '\n', '\r', '\x0B', '\x0C'];

pub fn translate(pattern: &str, flags: Flags) -> Result<Translated, String> {
    let mut translator = Translator {
        chars: pattern.chars().collect(),
        pos: 0,
        flags,
        frames: Vec::new(),
        exact: String::with_capacity(pattern.len() * 2),
        relaxed: String::with_capacity(pattern.len() * 2),
        relaxed_muted: 0,
        emitted_token: false,
        backtracking_constructs: 0,
        leading_open: true,
        top_level_alternation: false,
        leading_lookbehinds: Vec::new(),
        has_backref: false,
        needs_backtracking: false,
    };
    if flags.ignore_case {
        translator.emit("(?i)");
    }
    translator.run()?;
    Ok(Translated {
        exact: translator.exact,
        relaxed: translator.relaxed,
        has_backref: translator.has_backref,
        needs_backtracking: translator.needs_backtracking,
        leading_lookbehinds: if translator.top_level_alternation {
            Vec::new()
        } else {
            translator.leading_lookbehinds
        },
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    Plain,
    Lookahead,
    Lookbehind,
}

struct Frame {
    outer_flags: Flags,
    kind: GroupKind,
    negated: bool,
    /// A lookbehind opening the pattern: where its body starts in `exact`, and the
    /// count of backtracking constructs before it (its body must add none).
    leading: Option<(usize, usize)>,
}

/// One member of a bracketed class.
enum ClassItem {
    Char(char),
    Range(char, char),
    /// Members of a class escape (`\d`, `\w`, `\s`), and whether it is negated.
    Set(&'static str, bool),
}

struct Translator {
    chars: Vec<char>,
    pos: usize,
    flags: Flags,
    frames: Vec<Frame>,
    exact: String,
    relaxed: String,
    /// Depth of lookarounds being copied to `exact` only.
    relaxed_muted: usize,
    emitted_token: bool,
    backtracking_constructs: usize,
    /// Nothing but lookbehinds (and global flags) at the top level so far.
    leading_open: bool,
    top_level_alternation: bool,
    leading_lookbehinds: Vec<LeadingLookbehind>,
    has_backref: bool,
    needs_backtracking: bool,
}

impl Translator {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
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
        self.exact.push_str(exact);
        if self.relaxed_muted == 0 {
            self.relaxed.push_str(relaxed);
        }
    }

    fn emit_literal(&mut self, c: char) -> Result<(), String> {
        self.check_case_folding(c)?;
        let mut text = String::new();
        push_char(&mut text, c);
        self.emit(&text);
        Ok(())
    }

    /// Python folds some non-ASCII letters onto ASCII ones that Rust does not (U+0130
    /// and U+0131 onto "i"), so case-insensitive patterns are kept to ASCII.
    fn check_case_folding(&self, c: char) -> Result<(), String> {
        if self.flags.ignore_case && !c.is_ascii() {
            return Err(format!(
                "non-ASCII character {c:?} in a case-insensitive pattern (Python's case folding differs from Rust's)"
            ));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.next() {
            if self.flags.verbose {
                if VERBOSE_SPACE.contains(&c) {
                    continue;
                }
                if c == '#' {
                    while let Some(skipped) = self.next() {
                        if skipped == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            let was_flags_group = c == '(' && self.is_global_flags_group();
            let was_comment = c == '(' && self.chars[self.pos..].starts_with(&['?', '#']);
            let top_level = self.frames.is_empty();
            match c {
                '\\' => self.escape()?,
                '[' => self.class()?,
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '|' => self.emit("|"),
                '*' | '+' | '?' => {
                    self.emit(&c.to_string());
                    self.repeat_suffix()?;
                }
                '{' => self.brace()?,
                '.' => self.emit(if self.flags.dot_all {
                    "(?s:.)"
                } else {
                    r"[^\n]"
                }),
                '^' => self.emit(if self.flags.multi_line {
                    "(?m:^)"
                } else {
                    r"\A"
                }),
                '$' => {
                    if self.flags.multi_line {
                        self.emit("(?m:$)");
                    } else {
                        // Python's `$` also matches before a final newline.
                        self.mark_backtracking();
                        self.emit_each(r"(?=\n?\z)", "(?:)");
                    }
                }
                other => self.emit_literal(other)?,
            }
            if !was_flags_group {
                self.emitted_token = true;
            }
            if top_level {
                if c == '|' {
                    self.top_level_alternation = true;
                }
                if self.leading_open && matches!(c, '*' | '+' | '?' | '{') {
                    self.leading_lookbehinds.clear(); // a quantified lookbehind is optional
                }
                let opened_leading =
                    c == '(' && self.frames.last().is_some_and(|f| f.leading.is_some());
                if !(opened_leading || was_flags_group || was_comment) {
                    self.leading_open = false;
                }
            }
        }
        if !self.frames.is_empty() {
            return Err("missing ), unterminated subpattern".into());
        }
        Ok(())
    }

    fn is_global_flags_group(&self) -> bool {
        let rest = &self.chars[self.pos..];
        if rest.first() != Some(&'?') {
            return false;
        }
        let letters = rest[1..]
            .iter()
            .take_while(|c| "aiLmsux".contains(**c))
            .count();
        letters > 0 && rest.get(1 + letters) == Some(&')')
    }

    /// After `*`, `+`, `?` or `{m,n}`: a lazy `?` is copied, a possessive `+` refused.
    fn repeat_suffix(&mut self) -> Result<(), String> {
        if self.eat('?') {
            self.emit("?");
        } else if self.peek() == Some('+') {
            return Err("possessive quantifiers are not supported".into());
        }
        Ok(())
    }

    /// `{m,n}` as Python reads it: anything else is a literal `{`.
    fn brace(&mut self) -> Result<(), String> {
        let start = self.pos;
        if self.peek() == Some('}') {
            return self.emit_literal('{');
        }
        let low = self.digits();
        let high = if self.eat(',') {
            self.digits()
        } else {
            low.clone()
        };
        if !self.eat('}') {
            self.pos = start;
            return self.emit_literal('{');
        }
        let min: u32 = if low.is_empty() {
            0
        } else {
            parse_count(&low)?
        };
        let quantifier = if high.is_empty() {
            format!("{{{min},}}")
        } else {
            let max = parse_count(&high)?;
            if max < min {
                return Err("min repeat greater than max repeat".into());
            }
            format!("{{{min},{max}}}")
        };
        self.emit(&quantifier);
        self.repeat_suffix()
    }

    fn digits(&mut self) -> String {
        let mut digits = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.pos += 1;
        }
        digits
    }

    fn hex_escape(&mut self, letter: char, count: usize) -> Result<char, String> {
        let mut value: u32 = 0;
        for _ in 0..count {
            let digit = self
                .peek()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| format!("incomplete escape \\{letter}"))?;
            value = value * 16 + digit;
            self.pos += 1;
        }
        char::from_u32(value).ok_or_else(|| format!("bad escape \\{letter}{value:x}"))
    }

    fn octal_digits(&mut self, first: u32, max_more: usize) -> u32 {
        let mut value = first;
        for _ in 0..max_more {
            match self.peek().and_then(|c| c.to_digit(8)) {
                Some(digit) => {
                    value = value * 8 + digit;
                    self.pos += 1;
                }
                None => break,
            }
        }
        value
    }

    /// A character escape shared by both contexts (`\n`, `\x41`, ...), if `letter` is one.
    fn char_escape(&mut self, letter: char) -> Result<Option<char>, String> {
        Ok(Some(match letter {
            'a' => '\x07',
            'f' => '\x0C',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0B',
            'x' => self.hex_escape('x', 2)?,
            'u' => self.hex_escape('u', 4)?,
            'U' => self.hex_escape('U', 8)?,
            'N' => return Err(r"\N{...} named escapes are not supported".into()),
            _ => return Ok(None),
        }))
    }

    fn escape(&mut self) -> Result<(), String> {
        let letter = self.next().ok_or("bad escape (end of pattern)")?;
        if let Some(c) = self.char_escape(letter)? {
            return self.emit_literal(c);
        }
        match letter {
            'A' => self.emit(r"\A"),
            'Z' => self.emit(r"\z"),
            'b' => self.emit(r"\b"),
            'B' => self.emit(r"\B"),
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                let (members, negated) = class_escape_members(letter);
                let class = format!("[{}{members}]", if negated { "^" } else { "" });
                self.emit(&class);
            }
            '0' => {
                let value = self.octal_digits(0, 2);
                self.emit_literal(char::from_u32(value).unwrap_or('\0'))?;
            }
            '1'..='9' => {
                // Octal with three octal digits, else a group reference (Python's rule).
                let mut number = letter.to_string();
                if let Some(second) = self.peek().filter(char::is_ascii_digit) {
                    let third = self.chars.get(self.pos + 1).copied();
                    let octal = |c: char| ('0'..='7').contains(&c);
                    if octal(letter) && octal(second) && third.is_some_and(octal) {
                        let value = self.octal_digits(letter as u32 - '0' as u32, 2);
                        if value > 0o377 {
                            return Err("octal escape value outside of range 0-0o377".into());
                        }
                        return self.emit_literal(char::from_u32(value).unwrap_or('\0'));
                    }
                    number.push(second);
                    self.pos += 1;
                }
                self.emit_backref(&format!(r"(?:\{number})"));
            }
            c if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c}")),
            c => self.emit_literal(c)?,
        }
        Ok(())
    }

    fn class_escape(&mut self) -> Result<ClassItem, String> {
        let letter = self.next().ok_or("unterminated character set")?;
        if let Some(c) = self.char_escape(letter)? {
            return Ok(ClassItem::Char(c));
        }
        Ok(match letter {
            'b' => ClassItem::Char('\x08'),
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                let (members, negated) = class_escape_members(letter);
                ClassItem::Set(members, negated)
            }
            '0'..='7' => {
                let value = self.octal_digits(letter as u32 - '0' as u32, 2);
                if value > 0o377 {
                    return Err("octal escape value outside of range 0-0o377".into());
                }
                ClassItem::Char(char::from_u32(value).unwrap_or('\0'))
            }
            c if c.is_ascii_alphanumeric() => return Err(format!("bad escape \\{c} in a class")),
            c => ClassItem::Char(c),
        })
    }

    fn class(&mut self) -> Result<(), String> {
        let negated = self.eat('^');
        let mut items: Vec<ClassItem> = Vec::new();
        loop {
            let c = self.next().ok_or("unterminated character set")?;
            if c == ']' && !items.is_empty() {
                break;
            }
            let first = if c == '\\' {
                self.class_escape()?
            } else {
                ClassItem::Char(c)
            };
            if self.eat('-') {
                let c2 = self.next().ok_or("unterminated character set")?;
                if c2 == ']' {
                    items.push(first);
                    items.push(ClassItem::Char('-'));
                    break;
                }
                let second = if c2 == '\\' {
                    self.class_escape()?
                } else {
                    ClassItem::Char(c2)
                };
                match (first, second) {
                    (ClassItem::Char(low), ClassItem::Char(high)) if low <= high => {
                        items.push(ClassItem::Range(low, high));
                    }
                    _ => return Err("bad character range".into()),
                }
            } else {
                items.push(first);
            }
        }
        let mut class = String::from(if negated { "[^" } else { "[" });
        for item in &items {
            match *item {
                ClassItem::Char(c) => {
                    self.check_case_folding(c)?;
                    push_char(&mut class, c);
                }
                ClassItem::Range(low, high) => {
                    self.check_case_folding(low)?;
                    self.check_case_folding(high)?;
                    push_char(&mut class, low);
                    class.push('-');
                    push_char(&mut class, high);
                }
                ClassItem::Set(members, false) => class.push_str(members),
                ClassItem::Set(members, true) => {
                    // A nested class (supported by both engines) for the complement.
                    let _ = write!(class, "[^{members}]");
                }
            }
        }
        class.push(']');
        self.emit(&class);
        Ok(())
    }

    fn group_name(&mut self, terminator: char) -> Result<String, String> {
        let mut name = String::new();
        loop {
            match self.next() {
                Some(c) if c == terminator => break,
                Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                Some(c) => return Err(format!("group name with {c:?} is not supported")),
                None => return Err("missing group name terminator".into()),
            }
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad group name {name:?}"));
        }
        Ok(name)
    }

    fn push_frame(&mut self, kind: GroupKind) {
        self.frames.push(Frame {
            outer_flags: self.flags,
            kind,
            negated: false,
            leading: None,
        });
    }

    fn mark_backtracking(&mut self) {
        self.needs_backtracking = true;
        self.backtracking_constructs += 1;
    }

    fn emit_backref(&mut self, exact: &str) {
        self.has_backref = true;
        self.mark_backtracking();
        self.emit_each(exact, "(?:)");
    }

    fn open_group(&mut self) -> Result<(), String> {
        if !self.eat('?') {
            self.push_frame(GroupKind::Plain);
            self.emit("(");
            return Ok(());
        }
        let kind = self.next().ok_or("unexpected end of pattern")?;
        match kind {
            ':' => {
                self.push_frame(GroupKind::Plain);
                self.emit("(?:");
            }
            'P' => {
                if self.eat('<') {
                    let name = self.group_name('>')?;
                    self.push_frame(GroupKind::Plain);
                    self.emit(&format!("(?P<{name}>"));
                } else if self.eat('=') {
                    let name = self.group_name(')')?;
                    self.emit_backref(&format!(r"(?:\k<{name}>)"));
                } else {
                    return Err("unknown extension ?P".into());
                }
            }
            '#' => loop {
                match self.next() {
                    Some(')') => break,
                    Some(_) => {}
                    None => return Err("missing ), unterminated comment".into()),
                }
            },
            '=' | '!' => self.open_lookaround(&format!("(?{kind}"), GroupKind::Lookahead),
            '<' => match self.next() {
                Some(direction @ ('=' | '!')) => {
                    self.open_lookaround(&format!("(?<{direction}"), GroupKind::Lookbehind)
                }
                _ => return Err("unknown extension ?<".into()),
            },
            '>' => {
                self.push_frame(GroupKind::Plain);
                self.mark_backtracking();
                self.emit_each("(?>", "(?:");
            }
            '(' => return Err("conditional groups (?(...)...) are not supported".into()),
            _ => {
                self.pos -= 1;
                self.flags_group()?;
            }
        }
        Ok(())
    }

    fn open_lookaround(&mut self, opener: &str, kind: GroupKind) {
        let leading = kind == GroupKind::Lookbehind && self.frames.is_empty() && self.leading_open;
        self.mark_backtracking();
        self.emit_each(opener, "(?:)");
        self.push_frame(kind);
        if let Some(frame) = self.frames.last_mut() {
            frame.negated = opener.ends_with('!');
            if leading {
                frame.leading = Some((self.exact.len(), self.backtracking_constructs));
            }
        }
        self.relaxed_muted += 1;
    }

    /// `(?aiLmsux)` at the start, or a scoped `(?aiLmsux-imsx:...)`.
    fn flags_group(&mut self) -> Result<(), String> {
        let mut added = Flags::default();
        let mut removed = Flags::default();
        let mut removing = false;
        loop {
            let c = self.next().ok_or("missing flag")?;
            let target = if removing { &mut removed } else { &mut added };
            match c {
                'i' => target.ignore_case = true,
                's' => target.dot_all = true,
                'm' => target.multi_line = true,
                'x' => target.verbose = true,
                // ASCII-only classes change nothing on the ASCII text handled here.
                'a' | 'u' if !removing => {}
                'L' => return Err("the LOCALE flag is not supported".into()),
                '-' if !removing => removing = true,
                ')' if !removing => {
                    if self.emitted_token || !self.frames.is_empty() {
                        return Err("global flags not at the start of the expression".into());
                    }
                    if added.ignore_case && !self.flags.ignore_case {
                        self.emit("(?i)");
                    }
                    self.flags = merge(self.flags, added, Flags::default());
                    return Ok(());
                }
                ':' => {
                    self.push_frame(GroupKind::Plain);
                    let inner = merge(self.flags, added, removed);
                    let opener = match (self.flags.ignore_case, inner.ignore_case) {
                        (false, true) => "(?i:",
                        (true, false) => "(?-i:",
                        _ => "(?:",
                    };
                    self.emit(opener);
                    self.flags = inner;
                    return Ok(());
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
    }

    fn close_group(&mut self) -> Result<(), String> {
        let frame = self.frames.pop().ok_or("unbalanced parenthesis")?;
        self.flags = frame.outer_flags;
        match frame.kind {
            GroupKind::Plain => self.emit(")"),
            GroupKind::Lookahead => {
                self.relaxed_muted -= 1;
                self.emit_each(")", "");
            }
            GroupKind::Lookbehind => {
                if let Some((body_start, constructs)) = frame.leading {
                    if constructs == self.backtracking_constructs {
                        let case = if frame.outer_flags.ignore_case {
                            "(?i)"
                        } else {
                            ""
                        };
                        let body = format!("{case}{}", &self.exact[body_start..]);
                        self.leading_lookbehinds.push(LeadingLookbehind {
                            negated: frame.negated,
                            body,
                        });
                    }
                }
                self.relaxed_muted -= 1;
                self.emit_each(")", "");
            }
        }
        Ok(())
    }
}

fn merge(base: Flags, added: Flags, removed: Flags) -> Flags {
    let apply = |on: bool, add: bool, remove: bool| (on || add) && !remove;
    Flags {
        ignore_case: apply(base.ignore_case, added.ignore_case, removed.ignore_case),
        dot_all: apply(base.dot_all, added.dot_all, removed.dot_all),
        multi_line: apply(base.multi_line, added.multi_line, removed.multi_line),
        verbose: apply(base.verbose, added.verbose, removed.verbose),
    }
}

fn class_escape_members(letter: char) -> (&'static str, bool) {
    let members = match letter.to_ascii_lowercase() {
        'd' => DIGIT_MEMBERS,
        'w' => WORD_MEMBERS,
        _ => SPACE_MEMBERS,
    };
    (members, letter.is_ascii_uppercase())
}

fn parse_count(digits: &str) -> Result<u32, String> {
    digits
        .parse()
        .map_err(|_| format!("repeat count {digits} is too large"))
}

/// A character as a literal in both engines' syntax, in or out of a class.
fn push_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '_' {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(pattern: &str, flags: Flags) -> String {
        translate(pattern, flags)
            .map(|t| t.exact)
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn verbose_keeps_class_spaces() {
        let verbose = Flags {
            verbose: true,
            ..Flags::default()
        };
        assert_eq!(exact("[A ]* a # c\n b", verbose), r"[A\x{20}]*ab");
    }

    #[test]
    fn dollar_and_z() {
        assert_eq!(exact(r"a$\Z", Flags::default()), r"a(?=\n?\z)\z");
    }

    #[test]
    fn braces() {
        assert_eq!(
            exact("a{,3}b{2}c{x}", Flags::default()),
            r"a{0,3}b{2,2}c\x{7B}x\x{7D}"
        );
    }

    #[test]
    fn leading_lookbehinds() {
        let card = translate(r"(?<![\w.])\d{3}(?!-)", Flags::default()).unwrap();
        assert_eq!(card.leading_lookbehinds.len(), 1);
        assert!(card.leading_lookbehinds[0].negated);
        assert_eq!(card.relaxed, r"(?:)[0-9]{3,3}(?:)");
        let alternation = translate(r"(?<!a)b|c", Flags::default()).unwrap();
        assert!(alternation.leading_lookbehinds.is_empty());
        let quantified = translate(r"(?<!a)*b", Flags::default()).unwrap();
        assert!(quantified.leading_lookbehinds.is_empty());
        let backref = translate(r"(a)\1", Flags::default()).unwrap();
        assert!(backref.has_backref && backref.needs_backtracking);
    }

    #[test]
    fn refuses() {
        assert!(exact("(?(1)a)", Flags::default()).starts_with("ERR"));
        assert!(exact("a*+", Flags::default()).starts_with("ERR"));
        let ci = Flags {
            ignore_case: true,
            ..Flags::default()
        };
        assert!(exact("é", ci).starts_with("ERR"));
    }
}
