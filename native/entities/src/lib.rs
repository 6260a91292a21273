//! The warm path of the entities step (workers/steps/entities.py): line shapes, the
//! shape -> plan cache, and applying a cached plan to a real line (value checks, overlap
//! resolution). Planning a new shape needs spaCy and stays in Python: `extract_batch`
//! hands the unknown shapes of a batch to a planner callback and gets their candidates.
//!
//! All offsets that cross the API are code points, as in Python.

mod checks;
mod lru;
mod shape;
mod shared;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

pub use checks::{python_int, Check, IntError, ValueCheck};
pub use shape::{shape_into, shape_of};
pub use shared::SharedValues;

use checks::split_suffix_len;
use lru::LruMap;

/// Per plan, at most this many outcomes of its value checks keep their resolved spans
/// (`_MAX_OUTCOMES_PER_SHAPE`).
const MAX_OUTCOMES_PER_SHAPE: usize = 256;

/// Index of a label in `Labels`.
pub type LabelId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntityError {
    /// A check name the reference does not know (`KeyError` in `_ShapePlan`).
    UnknownCheck(String),
    /// An `after_slash` / `k8s_namespace_pod` candidate without "/" (`str.index` fails).
    NoSlash { check: &'static str, text: String },
    /// A span's label has no priority (`KeyError` in `_resolve_overlaps`).
    NoPriority(String),
    /// Two labels share a priority: the reference's order would depend on set iteration.
    SharedPriority(String, String),
    /// `int()` raised in a value check.
    Int(IntError),
    /// The planner returned a different number of plans than shapes asked for.
    PlanCount { shapes: usize, plans: usize },
}

impl fmt::Display for EntityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityError::UnknownCheck(name) => write!(f, "unknown entity check {name:?} (known: url, after_slash, k8s_namespace_pod, ipv4, port, http_status)"),
            EntityError::NoSlash { check, text } => write!(f, "check {check:?}: no \"/\" in candidate {text:?}"),
            EntityError::NoPriority(label) => write!(f, "entity label {label:?} has no priority"),
            EntityError::SharedPriority(a, b) => write!(f, "entity labels {a:?} and {b:?} have the same priority"),
            EntityError::Int(error) => error.fmt(f),
            EntityError::PlanCount { shapes, plans } => write!(f, "planner returned {plans} plans for {shapes} shapes"),
        }
    }
}

impl std::error::Error for EntityError {}

impl From<IntError> for EntityError {
    fn from(error: IntError) -> Self {
        EntityError::Int(error)
    }
}

/// The labels seen so far, with the priority of those that have one (lower wins a tie).
#[derive(Default)]
pub struct Labels {
    names: Vec<String>,
    priorities: Vec<Option<i64>>,
    ids: HashMap<String, LabelId>,
}

impl Labels {
    /// `priority`: label -> rank, as `EntityExtractor._priority`.
    pub fn new<'a>(priority: impl IntoIterator<Item = (&'a str, i64)>) -> Result<Self, EntityError> {
        let mut labels = Labels::default();
        let mut ranked: HashMap<i64, LabelId> = HashMap::new();
        for (name, rank) in priority {
            let id = labels.intern(name);
            if let Some(&other) = ranked.get(&rank) {
                if other != id {
                    return Err(EntityError::SharedPriority(labels.names[other].clone(), name.to_owned()));
                }
            }
            ranked.insert(rank, id);
            labels.priorities[id] = Some(rank);
        }
        Ok(labels)
    }

    pub fn intern(&mut self, name: &str) -> LabelId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.names.push(name.to_owned());
        self.priorities.push(None);
        self.ids.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    pub fn name(&self, id: LabelId) -> &str {
        &self.names[id]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn priority(&self, id: LabelId) -> Result<i64, EntityError> {
        self.priorities[id].ok_or_else(|| EntityError::NoPriority(self.names[id].clone()))
    }
}

/// A match of the patterns on a shape, in code points (`Candidate` in the reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub label: String,
    pub start: usize,
    pub end: usize,
    pub check: Check,
}

/// An entity span in code points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub label: LabelId,
    pub start: usize,
    pub end: usize,
}

/// An entity found on a line: its span in code points and in bytes of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    pub label: LabelId,
    pub start: usize,
    pub end: usize,
    pub bytes: (usize, usize),
}

/// Code point offsets of a line -> byte offsets (identity for ASCII, the common case).
pub struct CodePoints<'a> {
    text: &'a str,
    /// Byte offset of every code point, plus the length; empty for an ASCII line.
    byte_offsets: Vec<usize>,
}

impl<'a> CodePoints<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut points = CodePoints { text, byte_offsets: Vec::new() };
        points.reset(text);
        points
    }

    /// Reuses the offset buffer for another line.
    pub fn reset(&mut self, text: &'a str) {
        self.text = text;
        self.byte_offsets.clear();
        if !text.is_ascii() {
            self.byte_offsets.extend(text.char_indices().map(|(offset, _)| offset));
            self.byte_offsets.push(text.len());
        }
    }

    pub fn len(&self) -> usize {
        if self.byte_offsets.is_empty() { self.text.len() } else { self.byte_offsets.len() - 1 }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Byte offset of code point `index`, clamped to the end like a Python slice bound.
    pub fn byte(&self, index: usize) -> usize {
        match self.byte_offsets.get(index) {
            Some(&offset) => offset,
            None if self.byte_offsets.is_empty() => index.min(self.text.len()),
            None => self.text.len(),
        }
    }

    /// `text[start:end]` with Python's slice semantics (non-negative bounds).
    pub fn slice(&self, start: usize, end: usize) -> &'a str {
        let (start, end) = (self.byte(start), self.byte(end));
        if start < end { &self.text[start..end] } else { "" }
    }

    /// Code point index of byte offset `byte` (a character boundary) of the text.
    fn index_of_byte(&self, byte: usize) -> usize {
        if self.byte_offsets.is_empty() { byte } else { self.byte_offsets.partition_point(|&offset| offset < byte) }
    }
}

/// What a shape's candidates become (`_ShapePlan`): spans fixed once per shape, spans whose
/// value check runs per line, and the resolved spans per outcome of those checks.
pub struct ShapePlan {
    fixed: Vec<Span>,
    checked: Vec<(Span, ValueCheck)>,
    /// Outcome bitmask (bit i: checked[i] passed) -> resolved spans; only with <= 64 checks.
    resolved: Vec<(u64, Box<[Span]>)>,
}

impl ShapePlan {
    /// Runs the reshaping checks on the shape, as `_ShapePlan.__init__`.
    pub fn new(shape: &str, candidates: &[Candidate], labels: &mut Labels) -> Result<Self, EntityError> {
        let points = CodePoints::new(shape);
        let mut plan = ShapePlan { fixed: Vec::new(), checked: Vec::new(), resolved: Vec::new() };
        for candidate in candidates {
            let &Candidate { ref label, start, end, check } = candidate;
            let label = labels.intern(label);
            let text = points.slice(start, end);
            let slash = |check: &'static str| {
                text.find('/')
                    .map(|byte| start + CodePoints::new(text).index_of_byte(byte))
                    .ok_or_else(|| EntityError::NoSlash { check, text: text.to_owned() })
            };
            match check {
                Check::None => plan.fixed.push(Span { label, start, end }),
                Check::Url => plan.fixed.push(Span { label, start, end: end - split_suffix_len(text) }),
                Check::AfterSlash => plan.fixed.push(Span { label, start: slash("after_slash")? + 1, end }),
                Check::K8sNamespacePod => {
                    let slash = slash("k8s_namespace_pod")?;
                    plan.fixed.push(Span { label: labels.intern("K8S_NAMESPACE"), start, end: slash });
                    plan.fixed.push(Span { label: labels.intern("K8S_POD"), start: slash + 1, end });
                }
                Check::Value(value_check) => plan.checked.push((Span { label, start, end }, value_check)),
            }
        }
        Ok(plan)
    }

    /// The non-empty, non-overlapping spans of `line` in text order, appended to `out`
    /// (`_ShapePlan.spans`).
    pub fn spans(&mut self, line: &CodePoints<'_>, labels: &Labels, max_str_digits: usize, out: &mut Vec<Span>) -> Result<(), EntityError> {
        if self.checked.len() > 64 {
            // Too many checks for a bitmask key: resolve without caching (same result).
            let mut passed = self.fixed.clone();
            for &(span, check) in &self.checked {
                if check.passes(line.slice(span.start, span.end), max_str_digits)? {
                    passed.push(span);
                }
            }
            out.extend(resolve_overlaps(passed, labels)?.into_iter().filter(|span| span.end > span.start));
            return Ok(());
        }
        let mut outcome = 0u64;
        for (bit, &(span, check)) in self.checked.iter().enumerate() {
            if check.passes(line.slice(span.start, span.end), max_str_digits)? {
                outcome |= 1 << bit;
            }
        }
        if let Some((_, spans)) = self.resolved.iter().find(|(known, _)| *known == outcome) {
            out.extend_from_slice(spans);
            return Ok(());
        }
        let mut candidates = self.fixed.clone();
        candidates.extend(self.checked.iter().enumerate().filter(|(bit, _)| outcome >> bit & 1 == 1).map(|(_, &(span, _))| span));
        let spans: Box<[Span]> = resolve_overlaps(candidates, labels)?.into_iter().filter(|span| span.end > span.start).collect();
        out.extend_from_slice(&spans);
        if self.resolved.len() < MAX_OUTCOMES_PER_SHAPE {
            self.resolved.push((outcome, spans));
        }
        Ok(())
    }
}

/// Longest span wins; equal length -> the label of higher priority; then the earlier span.
/// Kept spans come back in text order (`_resolve_overlaps`).
pub fn resolve_overlaps(mut spans: Vec<Span>, labels: &Labels) -> Result<Vec<Span>, EntityError> {
    let mut keyed = Vec::with_capacity(spans.len());
    for span in spans.drain(..) {
        let rank = labels.priority(span.label)?;
        keyed.push(((span.start as i64 - span.end as i64, rank, span.start), span));
    }
    // The key orders equal spans next to each other (ranks are unique per label), so
    // sorting then dropping repeats is the reference's set() then sorted().
    keyed.sort_by_key(|&(key, _)| key);
    keyed.dedup_by_key(|&mut (_, span)| span);
    let mut kept: Vec<Span> = Vec::new();
    for (_, span) in keyed {
        if kept.iter().all(|other| span.end <= other.start || span.start >= other.end) {
            kept.push(span);
        }
    }
    kept.sort_by_key(|span| (span.start, span.end)); // stable, like Python's sorted
    Ok(kept)
}

/// The entities of a batch: `lines[i]` is the range of line i's entities in `found`.
#[derive(Default)]
pub struct BatchEntities {
    pub found: Vec<Found>,
    pub lines: Vec<Range<usize>>,
}

/// Why a batch failed: the planner's own error, or one of ours.
#[derive(Debug)]
pub enum BatchError<E> {
    Planner(E),
    Entity(EntityError),
}

impl<E> From<EntityError> for BatchError<E> {
    fn from(error: EntityError) -> Self {
        BatchError::Entity(error)
    }
}

/// The shape -> plan cache and the per-line application of plans (the warm path of
/// `EntityExtractor.extract_batch`).
pub struct EntityPlans {
    labels: Labels,
    /// `None`: caching off (`cache_size <= 0`), every shape is planned.
    cache: Option<LruMap<ShapePlan>>,
    max_str_digits: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl EntityPlans {
    /// `max_str_digits`: `sys.get_int_max_str_digits()` (0: no limit), for `int()` parity.
    pub fn new(labels: Labels, cache_size: i64, max_str_digits: usize) -> Self {
        let cache = usize::try_from(cache_size).ok().filter(|&size| size > 0).map(LruMap::new);
        EntityPlans { labels, cache, max_str_digits, cache_hits: 0, cache_misses: 0 }
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, LruMap::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        self.cache_hits = 0;
        self.cache_misses = 0;
    }

    /// Whether `shape` has a cached plan (without touching its recency).
    pub fn contains(&self, shape: &str) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.contains(shape.as_bytes()))
    }

    /// Caches the plan of `shape` from its candidates, as the most recently used.
    pub fn insert(&mut self, shape: &str, candidates: &[Candidate]) -> Result<(), EntityError> {
        let plan = ShapePlan::new(shape, candidates, &mut self.labels)?;
        if let Some(cache) = &mut self.cache {
            if let Some(cached) = cache.get_mut(shape.as_bytes()) {
                *cached = plan;
            } else {
                cache.insert_new(shape.as_bytes(), plan);
            }
        }
        Ok(())
    }

    /// The entities of each text. Shapes without a cached plan are passed once each (in
    /// order of first appearance) to `planner`, which returns their candidates, in order;
    /// as in `EntityExtractor._lookup`, hits become the most recently used in batch order,
    /// then the new plans are cached in that order, evicting the least recently used.
    pub fn extract_batch<E>(
        &mut self,
        texts: &[&str],
        planner: impl FnOnce(&[String]) -> Result<Vec<Vec<Candidate>>, E>,
    ) -> Result<BatchEntities, BatchError<E>> {
        let mut batch = BatchEntities { found: Vec::new(), lines: vec![0..0; texts.len()] };
        let mut shape = Vec::new();
        let mut points = CodePoints::new("");
        let mut spans = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut missing_index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut waiting: Vec<(usize, usize)> = Vec::new(); // (line, index in `missing`)

        for (line, text) in texts.iter().enumerate() {
            shape_into(text, &mut shape);
            let plan = self.cache.as_mut().and_then(|cache| cache.get_mut(&shape));
            match plan {
                Some(plan) => {
                    points.reset(text);
                    spans.clear();
                    plan.spans(&points, &self.labels, self.max_str_digits, &mut spans)?;
                    batch.lines[line] = push_found(&mut batch.found, &spans, &points);
                }
                None => {
                    let index = match missing_index.get(&shape) {
                        Some(&index) => index,
                        None => {
                            missing_index.insert(shape.clone(), missing.len());
                            missing.push(shape_of(text));
                            missing.len() - 1
                        }
                    };
                    waiting.push((line, index));
                }
            }
        }
        // Counted as the reference does: a repeat of a new shape in the batch is a hit;
        // without a cache every line is a miss.
        if self.cache.is_some() {
            self.cache_hits += (texts.len() - missing.len()) as u64;
            self.cache_misses += missing.len() as u64;
        } else {
            self.cache_misses += texts.len() as u64;
        }
        if missing.is_empty() {
            return Ok(batch);
        }

        let candidates = planner(&missing).map_err(BatchError::Planner)?;
        if candidates.len() != missing.len() {
            return Err(EntityError::PlanCount { shapes: missing.len(), plans: candidates.len() }.into());
        }
        let mut plans = Vec::with_capacity(missing.len());
        for (shape, candidates) in missing.iter().zip(&candidates) {
            plans.push(ShapePlan::new(shape, candidates, &mut self.labels)?);
        }
        for (line, index) in waiting {
            points.reset(texts[line]);
            spans.clear();
            plans[index].spans(&points, &self.labels, self.max_str_digits, &mut spans)?;
            batch.lines[line] = push_found(&mut batch.found, &spans, &points);
        }
        if let Some(cache) = &mut self.cache {
            for (shape, plan) in missing.iter().zip(plans) {
                cache.insert_new(shape.as_bytes(), plan);
            }
        }
        Ok(batch)
    }
}

fn push_found(found: &mut Vec<Found>, spans: &[Span], points: &CodePoints<'_>) -> Range<usize> {
    let first = found.len();
    found.extend(spans.iter().map(|span| Found {
        label: span.label,
        start: span.start,
        end: span.end,
        bytes: (points.byte(span.start), points.byte(span.end)),
    }));
    first..found.len()
}
