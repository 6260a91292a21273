use super::*;

/// As the redactor translates (ASCII text, Python's `$`, every flag it accepts).
const REDACT: Options = Options {
    classes: Classes::AsciiHaystack,
    allow_ignorecase: true,
    allow_multiline: true,
    dollar: Dollar::Python,
};

/// As the parser translates user patterns (any text, single lines, no IGNORECASE).
const PARSE: Options = Options {
    classes: Classes::Unicode,
    allow_ignorecase: false,
    allow_multiline: false,
    dollar: Dollar::EndOfText,
};

fn exact(pattern: &str, flags: u32, options: Options) -> String {
    translate(pattern, flags, options)
        .map(|t| t.pattern)
        .unwrap_or_else(|e| format!("ERR {e}"))
}

fn fancy_match(pattern: &str, flags: u32, options: Options, text: &str) -> Option<String> {
    let translated = translate(pattern, flags, options).unwrap();
    let regex = fancy_regex::Regex::new(&translated.pattern).unwrap();
    regex.find(text).unwrap().map(|m| m.as_str().to_string())
}

#[test]
fn verbose_keeps_class_spaces() {
    assert_eq!(
        exact("[A ]* a # c\n b", VERBOSE, REDACT),
        r"(?:[A\x{20}])*ab"
    );
    assert_eq!(exact("a (?#c) * b", VERBOSE, PARSE), r"(?:a)*b");
}

#[test]
fn dollar_and_z() {
    assert_eq!(exact(r"a$\Z", 0, REDACT), r"a(?=\n?\z)\z");
    assert_eq!(exact(r"a$\Z", 0, PARSE), r"a\z\z");
    assert_eq!(exact(r"a$", MULTILINE, REDACT), r"a(?m:$)");
    assert!(exact(r"a$", MULTILINE, PARSE).starts_with("ERR"));
}

#[test]
fn braces() {
    assert_eq!(
        exact("a{,3}b{2}c{x}d{}", 0, REDACT),
        r"(?:a){0,3}(?:b){2}c\x{7B}x\x{7D}d\x{7B}\x{7D}"
    );
    assert_eq!(exact("a{2,}?", 0, PARSE), r"(?:a){2,}?");
    assert!(exact("a{3,2}", 0, PARSE).starts_with("ERR"));
    assert!(exact("a**", 0, PARSE).starts_with("ERR"));
    assert!(exact("*a", 0, PARSE).starts_with("ERR"));
}

#[test]
fn possessive_is_atomic() {
    let translated = translate("a*+b", 0, REDACT).unwrap();
    assert_eq!(translated.pattern, "(?>(?:a)*)b");
    assert_eq!(translated.relaxed, "(?:(?:a)*)b");
    assert!(translated.needs_backtracking);
    assert_eq!(fancy_match("a*+a", 0, PARSE, "aaa"), None);
}

#[test]
fn leading_lookbehinds() {
    let card = translate(r"(?<![\w.])\d{3}(?!-)", 0, REDACT).unwrap();
    assert_eq!(card.leading_lookbehinds.len(), 1);
    assert!(card.leading_lookbehinds[0].negated);
    assert_eq!(
        card.leading_lookbehinds[0].body,
        r"[[\x{30}-\x{39}\x{41}-\x{5A}\x{5F}\x{61}-\x{7A}]\x{2E}]"
    );
    assert_eq!(card.relaxed, r"(?:)(?:[\x{30}-\x{39}]){3}(?:)");
    let alternation = translate(r"(?<!a)b|c", 0, REDACT).unwrap();
    assert!(alternation.leading_lookbehinds.is_empty());
    let quantified = translate(r"(?<!a)*b", 0, REDACT).unwrap();
    assert!(quantified.leading_lookbehinds.is_empty());
    let case = translate(r"(?i)(?#c)(?<=k)x", 0, REDACT).unwrap();
    assert_eq!(case.pattern, "(?i)(?<=k)x");
    assert_eq!(case.leading_lookbehinds[0].body, "(?i)k");
    let backref = translate(r"(a)\1", 0, REDACT).unwrap();
    assert!(backref.has_backref && backref.needs_backtracking);
    assert_eq!(backref.pattern, r"(a)(?:\1)");
}

#[test]
fn named_groups() {
    let translated = translate(r"(?P<first>a)(b)(?P<rest>.*)(?P=first)", 0, PARSE).unwrap();
    assert_eq!(
        translated.named_groups,
        vec![(1, "first".to_string()), (3, "rest".to_string())]
    );
    assert_eq!(translated.group_count, 3);
    assert_eq!(translated.group_index("rest"), Some(3));
    assert!(translated.pattern.ends_with(r"((?:[^\n])*)(?:\1)"));
}

#[test]
fn class_semantics() {
    // Python's Unicode \s holds \x1c-\x1f; under the ASCII flag it does not.
    assert_eq!(exact(r"\s", 0, REDACT), r"[\x{9}-\x{D}\x{1C}-\x{20}]");
    assert_eq!(exact(r"(?a)\s", 0, REDACT), r"[\x{9}-\x{D}\x{20}]");
    assert_eq!(fancy_match(r"\d+", 0, PARSE, "x١٢3"), Some("١٢3".into()));
    assert_eq!(fancy_match(r"\bé", 0, PARSE, "aé é"), Some("é".into()));
    assert_eq!(exact(r"\b", 0, REDACT), r"\b");
    // Non-ASCII characters never match ASCII text.
    assert_eq!(exact("é[^é][a-é]", 0, REDACT), r"\xFF[^\xFF][a-\x{7F}\xFF]");
}

#[test]
fn ignorecase() {
    let strptime = Options {
        allow_ignorecase: true,
        ..PARSE
    };
    assert_eq!(exact("k1", IGNORECASE, strptime), "[kK\\x{212A}]1");
    assert!(exact("[a-z]", IGNORECASE, strptime).starts_with("ERR"));
    assert!(exact("a", IGNORECASE, PARSE).starts_with("ERR"));
    assert!(exact("(?i:a)", 0, PARSE).starts_with("ERR"));
    assert_eq!(exact("a(?-i:b)", IGNORECASE, REDACT), "(?i)a(?-i:b)");
    assert_eq!(exact("[a-z]", IGNORECASE, REDACT), "(?i)[a-z]");
    assert!(exact("é", IGNORECASE, REDACT).starts_with("ERR"));
}

#[test]
fn escapes() {
    assert_eq!(exact(r"\x41\101\0\n\.", 0, PARSE), r"AA\x{0}\x{A}\x{2E}");
    assert_eq!(exact(r"[\b\-]", 0, PARSE), r"[\x{8}\x{2D}]");
    assert!(exact(r"\q", 0, PARSE).starts_with("ERR"));
    assert!(exact(r"\N{BULLET}", 0, PARSE).starts_with("ERR"));
}

#[test]
fn global_flags() {
    assert_eq!(exact("(?s).", 0, PARSE), "(?s:.)");
    assert_eq!(exact(" (?#c) (?x) a b", VERBOSE, PARSE), "ab");
    assert!(exact("a(?s).", 0, PARSE).starts_with("ERR"));
    assert!(exact("(?L)a", 0, REDACT).starts_with("ERR"));
}

#[test]
fn refuses() {
    assert!(exact("(?(1)a)", 0, REDACT).starts_with("ERR"));
    assert!(exact("(", 0, REDACT).starts_with("ERR"));
    assert!(exact(")", 0, REDACT).starts_with("ERR"));
    assert!(exact("a", LOCALE, REDACT).starts_with("ERR"));
}

#[test]
fn plain_output_compiles() {
    for pattern in [
        r"(?<![\w.])\d{3}(?!-)",
        r"a$",
        r"[^\W\d]+\s*(?P<v>x)?",
        r"(?>a|b)c",
    ] {
        let translated = translate(pattern, 0, REDACT).unwrap();
        regex::Regex::new(&translated.relaxed).unwrap();
        fancy_regex::Regex::new(&translated.pattern).unwrap();
    }
}
