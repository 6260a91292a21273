//! The redact step (see workers/steps/redact.py for the Python reference): remove secrets
//! and personal data from log text, reporting the KINDS redacted, never the values.
//!
//! Rules are data, passed in as the parsed rule specs of redaction.yaml (JSON); their
//! Python `re` patterns are translated by `polaris_pyregex`. The translation is exact for ASCII
//! text, so [`Redactor::redact`] answers [`Redaction::Reference`] for any other text and the
//! caller applies the Python reference to it (log lines are nearly always ASCII); likewise
//! for the rare text the native engines cannot answer for.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;

use aho_corasick::AhoCorasick;
use serde::Deserialize;

use polaris_pyregex::{Classes, Dollar, LeadingLookbehind, Options, Translated};

/// The index of a kind in [`Redactor::kinds`].
pub type KindId = usize;

/// One rule as written in redaction.yaml (the same keys, the same defaults).
#[derive(Clone, Debug, Deserialize)]
pub struct RuleSpec {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub trigger: Vec<String>,
    #[serde(default)]
    pub trigger_regex: Option<String>,
    pub pattern: String,
    #[serde(default)]
    pub flags: Vec<String>,
    pub action: String,
}

/// One entry of redaction.yaml's `field_names`.
#[derive(Clone, Debug, Deserialize)]
pub struct FieldNameSpec {
    pub pattern: String,
    pub kind: String,
}

/// The rule document: redaction.yaml's `rules` (already filtered and extended by the
/// caller) and `field_names`.
#[derive(Clone, Debug, Deserialize)]
pub struct RuleDocument {
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub field_names: Vec<FieldNameSpec>,
}

/// A rule set that is malformed or that cannot be honoured natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The native engines cannot answer for a text: the backtracking VM hit its stack or
/// backtrack limit (Python's `re` has neither), or the reference raises on it (a
/// `replace_value` match without its `value` group). The text goes to the reference.
struct NeedsReference;

#[derive(Debug, PartialEq, Eq)]
pub enum Redaction {
    /// Nothing redacted: the text is returned as it came.
    Unchanged,
    /// The redacted text and the distinct kinds redacted, in first-seen order.
    Redacted { text: String, kinds: Vec<KindId> },
    /// Apply the Python reference instead: the text is not ASCII (or, rarely, the native
    /// engines cannot answer for it, see `NeedsReference`).
    Reference,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FieldKind {
    Secret(KindId),
    NotSecret,
    /// Ask the Python reference (a non-ASCII name).
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Replace,
    ReplaceValue,
    MaskEmail,
    LuhnCard,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "replace" => Action::Replace,
            "replace_value" => Action::ReplaceValue,
            "mask_email" => Action::MaskEmail,
            "luhn_card" => Action::LuhnCard,
            _ => return None,
        })
    }
}

/// The spans of a match's groups (group 0 the whole match); ASCII text, so byte offsets.
type GroupSpans = Vec<Option<Range<usize>>>;

/// A translated pattern, compiled: the plain `regex` engine where it suffices, else
/// fancy-regex's backtracking VM (lookarounds, backreferences).
enum Matcher {
    Plain(regex::Regex),
    Backtracking(Box<Backtracking>),
}

struct Backtracking {
    /// The pattern, searching from a start position (used with a backreference only,
    /// where there is no prefilter).
    exact: fancy_regex::Regex,
    /// The pattern tried at one start position only.
    anchored: AnchoredProgram,
    /// Finds the positions where `exact` could match, so the VM runs at those only
    /// instead of walking every position. None with a backreference.
    prefilter: Option<Prefilter>,
    /// The lookbehinds a match must satisfy at its start, checked before the VM runs.
    lookbehinds: Vec<LookbehindCheck>,
}

/// fancy-regex's VM program for the pattern WITHOUT its `.*?` search prefix (built
/// through fancy-regex's `internal` API): a failed attempt costs that attempt only,
/// never a walk over the rest of the text.
struct AnchoredProgram {
    program: fancy_regex::internal::Prog,
}

impl AnchoredProgram {
    fn compile(pattern: &str) -> Result<AnchoredProgram, String> {
        let error = |e: fancy_regex::Error| {
            format!("cannot compile the translated pattern {pattern:?}: {e}")
        };
        let mut tree = fancy_regex::Expr::parse_tree(pattern).map_err(error)?;
        // Group 0 around the pattern records the match bounds, as Regex::new does.
        let pattern_expr = std::mem::replace(&mut tree.expr, fancy_regex::Expr::Empty);
        tree.expr = fancy_regex::Expr::Group(Box::new(pattern_expr));
        let info = fancy_regex::internal::analyze(&tree).map_err(error)?;
        let program = fancy_regex::internal::compile(&info).map_err(error)?;
        Ok(AnchoredProgram { program })
    }

    /// The match starting exactly at `start`, if any.
    fn attempt(&self, text: &str, start: usize) -> Result<Option<GroupSpans>, NeedsReference> {
        let saves = fancy_regex::internal::run_default(&self.program, text, start)
            .map_err(|_| NeedsReference)?;
        Ok(saves.map(|saves| {
            saves
                .chunks_exact(2)
                .map(|slot| (slot[0] != usize::MAX).then(|| slot[0]..slot[1]))
                .collect()
        }))
    }
}

fn fancy(pattern: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(pattern)
        .map_err(|e| format!("cannot compile the translated pattern {pattern:?}: {e}"))
}

/// A leading `(?<=body)` / `(?<!body)` with a plain, fixed-width body.
struct LookbehindCheck {
    negated: bool,
    /// The body's width: on ASCII text, the byte length of any match of it.
    width: usize,
    body: regex_automata::meta::Regex,
}

impl LookbehindCheck {
    fn compile(lookbehind: &LeadingLookbehind) -> Option<LookbehindCheck> {
        let hir = regex_syntax::Parser::new().parse(&lookbehind.body).ok()?;
        let width = hir.properties().minimum_len()?;
        let body = regex_automata::meta::Regex::new(&lookbehind.body).ok()?;
        Some(LookbehindCheck {
            negated: lookbehind.negated,
            width,
            body,
        })
    }

    /// Whether the lookbehind holds at `at` (look-arounds of the body see all of `text`).
    fn holds(&self, text: &str, at: usize) -> bool {
        let matched = at >= self.width && {
            let input = regex_automata::Input::new(text)
                .span(at - self.width..at)
                .anchored(regex_automata::Anchored::Yes);
            self.body
                .search_half(&input)
                .is_some_and(|end| end.offset() == at)
        };
        matched != self.negated
    }
}

impl Matcher {
    fn compile(translated: &Translated) -> Result<Matcher, String> {
        if !translated.needs_backtracking {
            return regex::Regex::new(&translated.pattern)
                .map(Matcher::Plain)
                .map_err(|e| {
                    format!(
                        "cannot compile the translated pattern {:?}: {e}",
                        translated.pattern
                    )
                });
        }
        let prefilter = if translated.has_backref {
            None
        } else {
            Some(Prefilter::compile(translated)?)
        };
        Ok(Matcher::Backtracking(Box::new(Backtracking {
            exact: fancy(&translated.pattern)?,
            anchored: AnchoredProgram::compile(&translated.pattern)?,
            prefilter,
            lookbehinds: translated
                .leading_lookbehinds
                .iter()
                .filter_map(LookbehindCheck::compile)
                .collect(),
        })))
    }

    fn is_match(&self, text: &str) -> Result<bool, NeedsReference> {
        match self {
            Matcher::Plain(regex) => Ok(regex.is_match(text)),
            Matcher::Backtracking(_) => Ok(self.find_from(text, 0, false)?.is_some()),
        }
    }

    /// The leftmost match at or after `pos`, as Python's `search(text, pos)` finds it;
    /// with every group's span when `groups`, else the whole match's only.
    fn find_from(
        &self,
        text: &str,
        pos: usize,
        groups: bool,
    ) -> Result<Option<GroupSpans>, NeedsReference> {
        match self {
            Matcher::Plain(regex) => Ok(if groups {
                regex
                    .captures_at(text, pos)
                    .map(|captures| captures.iter().map(|m| m.map(|m| m.range())).collect())
            } else {
                regex.find_at(text, pos).map(|m| vec![Some(m.range())])
            }),
            Matcher::Backtracking(backtracking) => backtracking.find_from(text, pos),
        }
    }
}

/// Candidate start positions of a pattern needing backtracking.
struct Prefilter {
    /// The relaxed pattern (lookarounds dropped): it matches wherever the pattern does.
    relaxed: regex::Regex,
    /// When the pattern opens with a one-character class lookbehind: the relaxed pattern
    /// after the character that lookbehind requires (`(?<![c])x` -> `[^c]x`), so runs
    /// of positions the lookbehind rules out cost no VM run (digits inside a long
    /// number for the card rule).
    after_char: Option<AfterChar>,
}

struct AfterChar {
    /// `[c]relaxed` or `[^c]relaxed`: a candidate starts one character after its match.
    regex: regex::Regex,
    /// For a negative lookbehind, also a candidate at the very start: `\A(?:relaxed)`.
    at_start: Option<regex::Regex>,
}

impl Prefilter {
    fn compile(translated: &Translated) -> Result<Prefilter, String> {
        let compile = |pattern: &str| {
            regex::Regex::new(pattern)
                .map_err(|e| format!("cannot compile the relaxed pattern {pattern:?}: {e}"))
        };
        let relaxed = compile(&translated.relaxed)?;
        let after_char = match translated
            .leading_lookbehinds
            .iter()
            .find_map(one_char_class)
        {
            Some((class, negated)) => Some(AfterChar {
                regex: compile(&format!("{class}(?:{})", translated.relaxed))?,
                at_start: if negated {
                    Some(compile(&format!(r"\A(?:{})", translated.relaxed))?)
                } else {
                    None
                },
            }),
            None => None,
        };
        Ok(Prefilter {
            relaxed,
            after_char,
        })
    }

    /// The first position at or after `from` where the pattern could match.
    fn next_candidate(&self, text: &str, from: usize) -> Option<usize> {
        let Some(after_char) = &self.after_char else {
            return self.relaxed.find_at(text, from).map(|m| m.start());
        };
        if from == 0
            && after_char
                .at_start
                .as_ref()
                .is_some_and(|at_start| at_start.is_match(text))
        {
            return Some(0);
        }
        // The character before the candidate is ASCII (so one byte) and at `from - 1` or later.
        after_char
            .regex
            .find_at(text, from.saturating_sub(1))
            .map(|m| m.start() + 1)
    }
}

/// The character class a leading lookbehind requires (complemented for a negative one)
/// when its body is a single class, in plain regex syntax; and whether it was negative.
fn one_char_class(lookbehind: &LeadingLookbehind) -> Option<(String, bool)> {
    let hir = regex_syntax::Parser::new().parse(&lookbehind.body).ok()?;
    let regex_syntax::hir::HirKind::Class(class) = hir.kind() else {
        return None;
    };
    let mut class = class.clone();
    if lookbehind.negated {
        class.negate();
    }
    Some((
        regex_syntax::hir::Hir::class(class).to_string(),
        lookbehind.negated,
    ))
}

impl Backtracking {
    fn find_from(&self, text: &str, pos: usize) -> Result<Option<GroupSpans>, NeedsReference> {
        let Some(prefilter) = &self.prefilter else {
            let captures = self
                .exact
                .captures_from_pos(text, pos)
                .map_err(|_| NeedsReference)?;
            return Ok(
                captures.map(|captures| captures.iter().map(|m| m.map(|m| m.range())).collect())
            );
        };
        let mut from = pos;
        while from <= text.len() {
            let Some(start) = prefilter.next_candidate(text, from) else {
                break;
            };
            from = start + 1;
            if !self
                .lookbehinds
                .iter()
                .all(|lookbehind| lookbehind.holds(text, start))
            {
                continue;
            }
            if let Some(spans) = self.anchored.attempt(text, start)? {
                return Ok(Some(spans));
            }
        }
        Ok(None)
    }
}

struct Rule {
    kind: KindId,
    action: Action,
    trigger_regex: Option<Matcher>,
    /// Plain regex syntax matching wherever `trigger_regex` could (None: no such regex).
    trigger_superset: Option<String>,
    pattern: Matcher,
    /// Capture group indexes: `value` (replace_value), `first` and `domain` (mask_email).
    value_group: usize,
    first_group: usize,
    domain_group: usize,
}

struct FieldNameRule {
    pattern: Matcher,
    kind: KindId,
}

/// Field names are few; the cache stays bounded regardless (as in the reference).
const FIELD_KIND_CACHE_LIMIT: usize = 4096;
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// An ordered, compiled rule set; immutable after construction (but for a cache).
pub struct Redactor {
    rules: Vec<Rule>,
    kinds: Vec<String>,
    markers: Vec<String>,
    /// All ASCII trigger literals, matched ASCII-case-insensitively (equal to Python's
    /// `literal in text.lower()` on ASCII text); pattern i announces `literal_rules[i]`.
    literals: Option<AhoCorasick>,
    literal_rules: Vec<Vec<usize>>,
    /// One pass saying whether any trigger (literal or regex) may be in a text: most
    /// texts hold none. None when some trigger cannot be folded in (then every text
    /// gets the full check).
    any_trigger: Option<regex::Regex>,
    /// Rules that run on every text (an empty trigger literal is in every text).
    always_triggered: Vec<usize>,
    regex_triggered: Vec<usize>,
    field_names: Vec<FieldNameRule>,
    field_kinds: Mutex<HashMap<String, Option<KindId>, foldhash::fast::RandomState>>,
}

impl Redactor {
    pub fn from_json(json: &str) -> Result<Redactor, ConfigError> {
        let document: RuleDocument = serde_json::from_str(json)
            .map_err(|e| ConfigError(format!("bad redaction rule document: {e}")))?;
        Redactor::new(&document.rules, &document.field_names)
    }

    pub fn new(specs: &[RuleSpec], field_names: &[FieldNameSpec]) -> Result<Redactor, ConfigError> {
        let mut kinds: Vec<String> = Vec::new();
        let mut kind_id = |kind: &str| match kinds.iter().position(|k| k == kind) {
            Some(id) => id,
            None => {
                kinds.push(kind.to_string());
                kinds.len() - 1
            }
        };
        let mut rules = Vec::with_capacity(specs.len());
        let mut literal_ids: HashMap<String, usize> = HashMap::new();
        let mut literal_texts: Vec<String> = Vec::new();
        let mut literal_rules: Vec<Vec<usize>> = Vec::new();
        let mut always_triggered = Vec::new();
        let mut regex_triggered = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let rule = compile_rule(spec, kind_id(&spec.kind))
                .map_err(|e| ConfigError(format!("redaction rule {:?}: {e}", spec.name)))?;
            for literal in &spec.trigger {
                let literal = literal.to_lowercase();
                if literal.is_empty() {
                    always_triggered.push(index);
                } else if literal.is_ascii() {
                    // A non-ASCII literal is never in ASCII text, the only text run here.
                    let id = *literal_ids.entry(literal.clone()).or_insert_with(|| {
                        literal_texts.push(literal);
                        literal_rules.push(Vec::new());
                        literal_texts.len() - 1
                    });
                    literal_rules[id].push(index);
                }
            }
            if rule.trigger_regex.is_some() {
                regex_triggered.push(index);
            }
            rules.push(rule);
        }
        let literals = if literal_texts.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(&literal_texts)
                    .map_err(|e| ConfigError(format!("cannot build the trigger automaton: {e}")))?,
            )
        };
        let any_trigger = any_trigger_regex(&literal_texts, &rules, &always_triggered)?;
        let field_names = field_names
            .iter()
            .map(|spec| {
                let translated = translate(&spec.pattern, 0)
                    .and_then(|t| Matcher::compile(&t))
                    .map_err(|e| {
                        ConfigError(format!("field name pattern {:?}: {e}", spec.pattern))
                    })?;
                Ok(FieldNameRule {
                    pattern: translated,
                    kind: kind_id(&spec.kind),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let markers = kinds
            .iter()
            .map(|kind| format!("[REDACTED:{kind}]"))
            .collect();
        Ok(Redactor {
            rules,
            kinds,
            markers,
            literals,
            literal_rules,
            any_trigger,
            always_triggered,
            regex_triggered,
            field_names,
            field_kinds: Mutex::new(HashMap::default()),
        })
    }

    /// The kind names, indexed by [`KindId`].
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// "[REDACTED:<kind>]"
    pub fn marker(&self, kind: KindId) -> &str {
        &self.markers[kind]
    }

    /// The indexes of the rules whose trigger the (ASCII) text holds, in rule order;
    /// empty for most texts, without allocating.
    fn triggered(&self, text: &str) -> Result<Vec<usize>, NeedsReference> {
        if let Some(any_trigger) = &self.any_trigger {
            if !any_trigger.is_match(text) {
                return Ok(Vec::new());
            }
        }
        let mut hit: Vec<usize> = self.always_triggered.clone();
        if let Some(literals) = &self.literals {
            if literals.is_match(text) {
                for found in literals.find_overlapping_iter(text) {
                    hit.extend_from_slice(&self.literal_rules[found.pattern().as_usize()]);
                }
                hit.sort_unstable();
                hit.dedup();
            }
        }
        for &index in &self.regex_triggered {
            if hit.binary_search(&index).is_ok() {
                continue;
            }
            let rule = &self.rules[index];
            let Some(trigger) = &rule.trigger_regex else {
                continue;
            };
            if trigger.is_match(text)? {
                let at = hit.partition_point(|&i| i < index);
                hit.insert(at, index);
            }
        }
        Ok(hit)
    }

    /// `redact(text)` of the reference: the redacted text and the kinds redacted.
    pub fn redact(&self, text: &str) -> Redaction {
        if text.is_empty() {
            return Redaction::Unchanged;
        }
        if !text.is_ascii() {
            return Redaction::Reference;
        }
        self.redact_ascii(text).unwrap_or(Redaction::Reference)
    }

    fn redact_ascii(&self, text: &str) -> Result<Redaction, NeedsReference> {
        // Triggers are checked once on the original text, as in the reference.
        let triggered = self.triggered(text)?;
        if triggered.is_empty() {
            return Ok(Redaction::Unchanged);
        }
        let mut current: Option<String> = None;
        let mut found: Vec<KindId> = Vec::new();
        for index in triggered {
            let rule = &self.rules[index];
            let source = current.as_deref().unwrap_or(text);
            if let Some(replaced) = self.apply(rule, source, &mut found)? {
                current = Some(replaced);
            }
        }
        Ok(match current {
            Some(text) if !found.is_empty() => Redaction::Redacted { text, kinds: found },
            _ => Redaction::Unchanged,
        })
    }

    /// `rule.pattern.sub(replacer, text)`: the new text if any match was replaced.
    fn apply(
        &self,
        rule: &Rule,
        text: &str,
        found: &mut Vec<KindId>,
    ) -> Result<Option<String>, NeedsReference> {
        let needs_groups = matches!(rule.action, Action::ReplaceValue | Action::MaskEmail);
        let mut out: Option<String> = None;
        let mut copied_to = 0;
        let mut pos = 0;
        while pos <= text.len() {
            let Some(groups) = rule.pattern.find_from(text, pos, needs_groups)? else {
                break;
            };
            let Some(whole) = groups.first().cloned().flatten() else {
                break;
            };
            if let Some(replacement) = self.replacement(rule, text, whole.clone(), &groups)? {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
                out.push_str(&text[copied_to..whole.start]);
                out.push_str(&replacement);
                copied_to = whole.end;
                note_kind(found, rule.kind);
            }
            // Patterns never match empty (refused at construction), so this advances.
            pos = whole.end.max(pos + 1);
        }
        Ok(out.map(|mut out| {
            out.push_str(&text[copied_to..]);
            out
        }))
    }

    /// What the reference's replacer callback returns; None where it keeps the match.
    fn replacement(
        &self,
        rule: &Rule,
        text: &str,
        whole: Range<usize>,
        groups: &GroupSpans,
    ) -> Result<Option<String>, NeedsReference> {
        let group = |index: usize| groups.get(index).cloned().flatten();
        let marker = self.marker(rule.kind);
        Ok(Some(match rule.action {
            Action::Replace => marker.to_string(),
            Action::ReplaceValue => {
                // Without its `value` group the reference raises (TypeError) on the text.
                let value = group(rule.value_group).ok_or(NeedsReference)?;
                // Text is ASCII, so byte offsets are Python's code point offsets; a group
                // in a lookaround may lie outside the match, sliced as Python would.
                let whole_text = &text[whole.clone()];
                let offset = whole.start as isize;
                let before = py_slice(whole_text, None, Some(value.start as isize - offset));
                let after = py_slice(whole_text, Some(value.end as isize - offset), None);
                let mut quote = match text[value].as_bytes() {
                    [first @ (b'\'' | b'"'), _, ..] => Some(*first as char),
                    _ => None,
                };
                if quote.is_none() && ends_as_json_key(before) {
                    quote = Some('"'); // a JSON number/literal value: keep valid JSON
                }
                let mut out = String::with_capacity(before.len() + marker.len() + after.len() + 2);
                out.push_str(before);
                out.extend(quote);
                out.push_str(marker);
                out.extend(quote);
                out.push_str(after);
                out
            }
            Action::MaskEmail => {
                // The reference formats an absent group as "None".
                let text_of = |index: usize| group(index).map_or("None", |span| &text[span]);
                format!(
                    "{}***@{}",
                    text_of(rule.first_group),
                    text_of(rule.domain_group)
                )
            }
            Action::LuhnCard => {
                let digits: Vec<char> = text[whole]
                    .chars()
                    .filter(|&c| c != ' ' && c != '-')
                    .collect();
                if !CARD_DIGITS.contains(&digits.len()) || !luhn_valid(&digits) {
                    return Ok(None); // an ordinary long number, not a card
                }
                marker.to_string()
            }
        }))
    }

    /// `secret_field_kind(name)` of the reference: the kind of the first field-name rule
    /// found in `name`.
    pub fn secret_field_kind(&self, name: &str) -> FieldKind {
        if !name.is_ascii() {
            return FieldKind::Reference;
        }
        let to_field_kind =
            |kind: Option<KindId>| kind.map_or(FieldKind::NotSecret, FieldKind::Secret);
        if let Ok(cache) = self.field_kinds.lock() {
            if let Some(&kind) = cache.get(name) {
                return to_field_kind(kind);
            }
        }
        let mut kind = None;
        for field_rule in &self.field_names {
            match field_rule.pattern.is_match(name) {
                Ok(true) => {
                    kind = Some(field_rule.kind);
                    break;
                }
                Ok(false) => {}
                Err(NeedsReference) => return FieldKind::Reference,
            }
        }
        if let Ok(mut cache) = self.field_kinds.lock() {
            if cache.len() >= FIELD_KIND_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(name.to_string(), kind);
        }
        to_field_kind(kind)
    }
}

/// `(?i-u:literal|...)|trigger_regex|...` over all rules, if every trigger can be folded in.
fn any_trigger_regex(
    literals: &[String],
    rules: &[Rule],
    always_triggered: &[usize],
) -> Result<Option<regex::Regex>, ConfigError> {
    if !always_triggered.is_empty() {
        return Ok(None);
    }
    let mut alternatives: Vec<String> = Vec::new();
    if !literals.is_empty() {
        let escaped: Vec<String> = literals
            .iter()
            .map(|literal| regex::escape(literal))
            .collect();
        alternatives.push(format!("(?i-u:{})", escaped.join("|")));
    }
    for rule in rules.iter().filter(|rule| rule.trigger_regex.is_some()) {
        match &rule.trigger_superset {
            Some(superset) => alternatives.push(format!("(?:{superset})")),
            None => return Ok(None),
        }
    }
    if alternatives.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&alternatives.join("|"))
        .map(Some)
        .map_err(|e| ConfigError(format!("cannot build the trigger prefilter: {e}")))
}

fn note_kind(found: &mut Vec<KindId>, kind: KindId) {
    if !found.contains(&kind) {
        found.push(kind);
    }
}

/// A Python pattern as the redactor matches it: on ASCII text only, with Python's `$`.
fn translate(pattern: &str, flags: u32) -> Result<Translated, String> {
    let options = Options {
        classes: Classes::AsciiHaystack,
        allow_ignorecase: true,
        allow_multiline: true,
        dollar: Dollar::Python,
    };
    polaris_pyregex::translate(pattern, flags, options)
}

fn compile_rule(spec: &RuleSpec, kind: KindId) -> Result<Rule, String> {
    let mut flags = polaris_pyregex::VERBOSE;
    for flag in &spec.flags {
        flags |= match flag.as_str() {
            "IGNORECASE" => polaris_pyregex::IGNORECASE,
            "DOTALL" => polaris_pyregex::DOTALL,
            "MULTILINE" => polaris_pyregex::MULTILINE,
            other => return Err(format!("unknown flag {other:?}")),
        };
    }
    let translated = translate(&spec.pattern, flags)?;
    let pattern = Matcher::compile(&translated)?;
    let (trigger_regex, trigger_superset) = match spec.trigger_regex.as_deref() {
        Some(raw) if !raw.is_empty() => {
            let translated = translate(raw, 0).map_err(|e| format!("trigger_regex: {e}"))?;
            let matcher =
                Matcher::compile(&translated).map_err(|e| format!("trigger_regex: {e}"))?;
            let superset = match (translated.needs_backtracking, translated.has_backref) {
                (false, _) => Some(translated.pattern),
                (true, false) => Some(translated.relaxed),
                (true, true) => None,
            };
            (Some(matcher), superset)
        }
        _ => (None, None),
    };
    if spec.trigger.is_empty() && trigger_regex.is_none() {
        return Err("needs a trigger or a trigger_regex".into());
    }
    let action = Action::parse(&spec.action).ok_or_else(|| {
        format!(
            "action {:?} not in ('replace', 'replace_value', 'mask_email', 'luhn_card')",
            spec.action
        )
    })?;
    // `re.sub` treats empty matches specially; no redaction rule needs one.
    let hir = regex_syntax::Parser::new()
        .parse(&translated.relaxed)
        .map_err(|e| format!("cannot analyse the pattern: {e}"))?;
    if hir.properties().minimum_len().unwrap_or(1) == 0 {
        return Err("the pattern can match an empty string".into());
    }
    let group = |name: &str| translated.group_index(name);
    let value_group = group("value");
    let (first_group, domain_group) = (group("first"), group("domain"));
    if action == Action::ReplaceValue && value_group.is_none() {
        return Err("replace_value needs a (?P<value>...) group".into());
    }
    if action == Action::MaskEmail && (first_group.is_none() || domain_group.is_none()) {
        return Err("mask_email needs groups 'first' and 'domain'".into());
    }
    Ok(Rule {
        kind,
        action,
        trigger_regex,
        trigger_superset,
        pattern,
        value_group: value_group.unwrap_or(usize::MAX),
        first_group: first_group.unwrap_or(usize::MAX),
        domain_group: domain_group.unwrap_or(usize::MAX),
    })
}

/// The Luhn checksum every payment card number carries, computed as the reference does
/// (`ord(char) - 48` for any character).
pub fn luhn_valid(digits: &[char]) -> bool {
    let mut total: i64 = 0;
    for (position, &c) in digits.iter().rev().enumerate() {
        let mut value = c as i64 - 48;
        if position % 2 == 1 {
            value = if value > 4 { value * 2 - 9 } else { value * 2 };
        }
        total += value;
    }
    total % 10 == 0
}

/// Python's `\s` on ASCII text.
fn is_py_space(byte: u8) -> bool {
    matches!(
        byte,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | 0x1C..=0x1F
    )
}

/// The reference's `re.search(r'"\s*:\s*$', before)`.
fn ends_as_json_key(before: &str) -> bool {
    let trimmed = before.trim_end_matches(|c: char| c.is_ascii() && is_py_space(c as u8));
    let Some(key_end) = trimmed.strip_suffix(':') else {
        return false;
    };
    key_end
        .trim_end_matches(|c: char| c.is_ascii() && is_py_space(c as u8))
        .ends_with('"')
}

/// `text[start:end]` with Python's slice rules (negative indexes count from the end,
/// out-of-range ones are clamped); `text` is ASCII, so bytes are characters.
fn py_slice(text: &str, start: Option<isize>, end: Option<isize>) -> &str {
    let len = text.len() as isize;
    let clamp = |index: isize| {
        let index = if index < 0 { index + len } else { index };
        index.clamp(0, len) as usize
    };
    let start = start.map_or(0, clamp);
    let end = end.map_or(text.len(), clamp);
    if start >= end {
        ""
    } else {
        &text[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        let digits = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(luhn_valid(&digits("4242424242424242")));
        assert!(!luhn_valid(&digits("4242424242424241")));
    }

    #[test]
    fn json_key_end() {
        assert!(ends_as_json_key("{\"pin\" : "));
        assert!(!ends_as_json_key("pin: "));
    }

    #[test]
    fn slices() {
        assert_eq!(py_slice("abcdef", None, Some(-2)), "abcd");
        assert_eq!(py_slice("abcdef", Some(9), None), "");
    }
}
