//! Python's notion of characters and whitespace, for code that must split, classify and
//! match text exactly as the Python reference does (with `polaris_pyunicode`'s classes).
use polaris_pyunicode::{is_str_space, DECIMAL, SPACE, WORD};

/// `text.split()`: the words between runs of Python whitespace.
pub fn split_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_str_space).filter(|word| !word.is_empty())
}

/// Length in code points, as Python's `len(str)`.
pub fn char_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// `text[n:]` with Python's slicing by code points (empty past the end).
pub fn skip_chars(text: &str, n: usize) -> &str {
    if text.is_ascii() {
        return text.get(n..).unwrap_or("");
    }
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[at..],
        None => "",
    }
}

/// Byte length of the common prefix of two strings, on a character boundary.
pub fn common_prefix_len(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Byte length of the common suffix of two strings, on a character boundary.
pub fn common_suffix_len(a: &str, b: &str) -> usize {
    let mut n = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    while !a.is_char_boundary(a.len() - n) {
        n -= 1;
    }
    n
}

/// A `re`-syntax class body (no brackets) listing the characters of a table.
fn class_body(table: &[(u32, u32)]) -> String {
    let mut body = String::new();
    for &(low, high) in table {
        if low == high {
            body.push_str(&format!("\\x{{{low:x}}}"));
        } else {
            body.push_str(&format!("\\x{{{low:x}}}-\\x{{{high:x}}}"));
        }
    }
    body
}

/// Which texts a translated pattern will be run on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Texts {
    /// Any text: Python's classes in full (bigger, slower automata).
    Unicode,
    /// ASCII-only texts, where Python's classes reduce to their ASCII members.
    Ascii,
}

/// Translates a Python `re` pattern (str, no flags) into `fancy_regex` syntax with the same
/// meaning on `texts`: `\w \d \s \b` (and their negations) become Python's classes, `$`
/// also matches before a final newline, and class syntax that Rust reads differently
/// (nested `[`, `&&`, `~~`, `--`) is escaped. Constructs with no faithful translation are
/// errors.
pub fn translate_pattern(pattern: &str, texts: Texts) -> Result<String, String> {
    let (word, decimal, space) = match texts {
        Texts::Unicode => (class_body(WORD), class_body(DECIMAL), class_body(SPACE)),
        Texts::Ascii => (
            "0-9A-Z_a-z".to_string(),
            "0-9".to_string(),
            "\\t-\\r\\x{1c}- ".to_string(),
        ),
    };
    let (boundary, non_boundary) = match texts {
        // on ASCII text, the regex crate's Unicode-aware boundaries are Python's
        Texts::Ascii => ("\\b".to_string(), "\\B".to_string()),
        Texts::Unicode => (
            format!("(?:(?<=[{word}])(?![{word}])|(?<![{word}])(?=[{word}]))"),
            format!("(?:(?<=[{word}])(?=[{word}])|(?<![{word}])(?![{word}]))"),
        ),
    };
    let mut out = String::with_capacity(pattern.len() * 4);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false; // just after `[` or `[^`: a `]` here is literal
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else {
                    return Err("pattern ends with a lone backslash".into());
                };
                let class_of = |body: &str, negated: bool| {
                    if in_class {
                        body.to_string()
                    } else if negated {
                        format!("[^{body}]")
                    } else {
                        format!("[{body}]")
                    }
                };
                match escaped {
                    'w' => out.push_str(&class_of(&word, false)),
                    'd' => out.push_str(&class_of(&decimal, false)),
                    's' => out.push_str(&class_of(&space, false)),
                    'W' | 'D' | 'S' if in_class => {
                        return Err(format!(
                            "\\{escaped} inside a character class is not supported"
                        ))
                    }
                    'W' => out.push_str(&class_of(&word, true)),
                    'D' => out.push_str(&class_of(&decimal, true)),
                    'S' => out.push_str(&class_of(&space, true)),
                    'b' if in_class => out.push_str("\\x{8}"),
                    'b' => out.push_str(&boundary),
                    'B' if !in_class => out.push_str(&non_boundary),
                    'A' if !in_class => out.push_str("\\A"),
                    'Z' if !in_class => out.push_str("\\z"),
                    'n' | 't' | 'r' | 'f' | 'v' | 'a' | 'x' | 'u' | 'U' | '0'..='9' => {
                        out.push('\\');
                        out.push(escaped);
                    }
                    c if c.is_ascii_alphanumeric() => {
                        return Err(format!("unsupported escape \\{c}"));
                    }
                    c => {
                        out.push('\\');
                        out.push(c);
                    }
                }
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                continue;
            }
            ']' if in_class && class_start => out.push_str("\\]"),
            ']' if in_class => {
                out.push(']');
                in_class = false;
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => {
                return Err("`--` inside a character class is ambiguous".into());
            }
            '$' if !in_class => out.push_str("(?:\\z|(?=\\n\\z))"),
            c => out.push(c),
        }
        class_start = false;
    }
    if in_class {
        return Err("unterminated character class".into());
    }
    Ok(out)
}
