//! `polaris_native.LogChain`: the whole log chain of `workers.pipeline.LogEnricher` for one
//! batch in one call — decode, parse, redact, entities, template, classify, score — giving
//! each record as the JSON `LogRecord.model_dump_json()` gives, so no per-line Python
//! object is made on the hot path.
//!
//! What the native steps cannot decide exactly goes back to a Python `reference` object
//! (`workers.pipeline_native.Reference`), whose methods are the Python steps themselves:
//! `parse(text)` for a line the native parser defers, `redact(text)` and
//! `secret_field_kind(name)` for non-ASCII text, `plan(shapes)` for entity shapes not yet
//! planned (spaCy), and `classify(template, level, labels)` once per new combination.
use std::collections::HashMap;

/// Per-batch lookups of short keys: foldhash, not SipHash (no key here is chosen by an attacker
/// who could also see the seed).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use polaris_chain::{decode, log_record_json, record_id_for, LogRecordParts};
use polaris_entities::{BatchError, Candidate, Check, EntityPlans, Labels};
use polaris_miner::TemplateMiner;
use polaris_parse::{CatalogSpec, LineParser, Scratch};
use polaris_redact::{FieldKind, Redaction, Redactor};
use polaris_score::{round_score, LogScorer, LogScorerConfig, Reasons};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// A parsed, redacted line, waiting for its entities.
struct Line {
    index: usize,
    format: String,
    timestamp_us: Option<i64>,
    level: Option<String>,
    host: Option<String>,
    service: Option<String>,
    message: String,
    fields: Vec<(String, String)>,
    redacted: Vec<String>,
}

/// What became of one input: its record, or why it is dead-lettered.
enum Outcome {
    Record { record_id: String, json: Vec<u8> },
    Rejected { reason: String, keep_value: bool },
}

/// The `processing_error` reason of `workers.pipeline.processing_error`.
fn processing_error(class: &str, message: &str) -> String {
    let mut reason = format!("processing_error: {class}: {message}");
    if let Some((cut, _)) = reason.char_indices().nth(500) {
        reason.truncate(cut);
    }
    reason
}

fn py_processing_error(py: Python<'_>, error: &PyErr) -> String {
    let class = error.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    processing_error(&class, &error.value(py).to_string())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// One raw record to enrich, read from its `RawLine`.
struct Input<'py> {
    origin: Bound<'py, PyAny>,
    source: usize,
    offset: i64,
    timestamp_ms: Option<i64>,
    value: Option<PyBackedBytes>,
    value_object: Bound<'py, PyAny>,
}

/// A source partition seen in the batch.
struct Source {
    topic: String,
    partition: i64,
    key: String,
    last_seen: i64,
    last_record: Option<i64>,
}

/// `object.__getattribute__(obj, name)`: what a pydantic model's attribute lookup does first,
/// without its detour through the model's `__getattr__` hook (that detour was a fifth of
/// the glue's cost). Origin's fields live in its instance `__dict__`, where this finds them.
fn field<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: both pointers are live for the call; the result is a new reference or NULL
    // with an exception set, which from_owned_ptr_or_err turns into a PyErr.
    unsafe { Bound::from_owned_ptr_or_err(obj.py(), pyo3::ffi::PyObject_GenericGetAttr(obj.as_ptr(), name.as_ptr())) }
}

/// The raws not yet applied (`workers.pipeline.not_applied`), and their source partitions.
fn read_raws<'py>(raws: &Bound<'py, PyList>, last_offsets: &Bound<'py, PyDict>) -> PyResult<(Vec<Input<'py>>, Vec<Source>)> {
    let py = raws.py();
    let (origin_name, value_name, timestamp_name) = (intern!(py, "origin"), intern!(py, "value"), intern!(py, "timestamp_ms"));
    let (topic_name, partition_name, offset_name) = (intern!(py, "topic"), intern!(py, "partition"), intern!(py, "offset"));
    let mut inputs = Vec::with_capacity(raws.len());
    let mut sources: Vec<Source> = Vec::new();
    let mut current: Option<(Bound<'py, PyAny>, i64, usize)> = None; // topic object, partition, source
    for raw in raws.iter() {
        let origin = field(&raw, origin_name)?;
        let topic = field(&origin, topic_name)?;
        let partition: i64 = field(&origin, partition_name)?.extract()?;
        let offset: i64 = field(&origin, offset_name)?.extract()?;
        let source = match &current {
            // a batch is usually one partition: the same topic object and partition as before
            Some((last_topic, last_partition, index)) if *last_partition == partition && (last_topic.is(&topic) || last_topic.eq(&topic)?) => *index,
            _ => {
                let topic_text: String = topic.extract()?;
                let index = match sources.iter().position(|s| s.partition == partition && s.topic == topic_text) {
                    Some(index) => index,
                    None => {
                        let key = format!("{topic_text}/{partition}");
                        let last_seen = match last_offsets.get_item(&key)? {
                            Some(offset) => offset.extract()?,
                            None => -1,
                        };
                        sources.push(Source { topic: topic_text, partition, key, last_seen, last_record: None });
                        sources.len() - 1
                    }
                };
                current = Some((topic, partition, index));
                index
            }
        };
        if offset <= sources[source].last_seen {
            continue; // applied before: a replay after a crash or a rebalance
        }
        sources[source].last_seen = offset;
        let value_object = field(&raw, value_name)?;
        let value = if value_object.is_none() { None } else { Some(value_object.extract::<PyBackedBytes>()?) };
        let timestamp_ms: Option<i64> = field(&raw, timestamp_name)?.extract()?;
        inputs.push(Input { origin, source, offset, timestamp_ms, value, value_object });
    }
    Ok((inputs, sources))
}

/// An enriched log record already written as `LogRecord.model_dump_json()` bytes, with the
/// origin of its raw record (`workers.pipeline_native.EncodedLogRecord`).
#[pyclass(frozen, module = "polaris_native", name = "EncodedLogRecord")]
pub struct EncodedLogRecord {
    #[pyo3(get)]
    origin: PyObject,
    #[pyo3(get)]
    record_id: Py<PyString>,
    #[pyo3(get)]
    json: Py<PyBytes>,
}

#[pymethods]
impl EncodedLogRecord {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("EncodedLogRecord(origin={}, record_id={:?})", self.origin.bind(py).repr()?, self.record_id.bind(py).to_str()?))
    }
}

#[pyclass(name = "LogChain", module = "polaris_native", unsendable)]
pub struct PyLogChain {
    parser: LineParser,
    scratch: Scratch,
    redactor: Redactor,
    miner: TemplateMiner,
    scorer: LogScorer,
    entities: EntityPlans,
    /// (template id, level, entity labels) -> (category, severity), as LogEnricher._classes.
    classes: Map<String, (String, Option<i64>)>,
    reference: PyObject,
}

impl PyLogChain {
    fn redact_text(&self, py: Python<'_>, text: String, kinds: &mut Vec<String>) -> PyResult<String> {
        match self.redactor.redact(&text) {
            Redaction::Unchanged => Ok(text),
            Redaction::Redacted { text, kinds: found } => {
                kinds.extend(found.into_iter().map(|kind| self.redactor.kinds()[kind].clone()));
                Ok(text)
            }
            Redaction::Reference => {
                let (text, found): (String, Vec<String>) =
                    self.reference.bind(py).call_method1("redact", (text,))?.extract()?;
                kinds.extend(found);
                Ok(text)
            }
        }
    }

    fn field_kind(&self, py: Python<'_>, name: &str) -> PyResult<Option<String>> {
        Ok(match self.redactor.secret_field_kind(name) {
            FieldKind::Secret(kind) => Some(self.redactor.kinds()[kind].clone()),
            FieldKind::NotSecret => None,
            FieldKind::Reference => self.reference.bind(py).call_method1("secret_field_kind", (name,))?.extract()?,
        })
    }

    /// Parse and redact one decoded text (what `LogEnricher.enrich`'s first loop does).
    fn prepare(&mut self, py: Python<'_>, index: usize, text: &str, reference_us: i64) -> PyResult<Line> {
        let mut line = match self.parser.parse(text, None, reference_us, &mut self.scratch) {
            Ok(parsed) => Line {
                index,
                format: self.parser.format_name(parsed.format).to_string(),
                timestamp_us: parsed.timestamp_micros,
                level: parsed.level,
                host: parsed.host,
                service: parsed.service,
                message: parsed.message,
                fields: parsed.fields.into_iter().collect(),
                redacted: Vec::new(),
            },
            Err(_defer) => {
                type Deferred = (String, Option<i64>, Option<String>, Option<String>, Option<String>, String, Option<Vec<(String, String)>>);
                let (format, timestamp_us, level, host, service, message, fields): Deferred =
                    self.reference.bind(py).call_method1("parse", (text,))?.extract()?;
                Line { index, format, timestamp_us, level, host, service, message, fields: fields.unwrap_or_default(), redacted: Vec::new() }
            }
        };
        let mut kinds = Vec::new();
        line.message = self.redact_text(py, std::mem::take(&mut line.message), &mut kinds)?;
        let fields = std::mem::take(&mut line.fields);
        for (name, value) in fields {
            let value = match self.field_kind(py, &name)? {
                Some(kind) if !value.is_empty() => {
                    let marker = format!("[REDACTED:{kind}]");
                    kinds.push(kind);
                    marker
                }
                _ => self.redact_text(py, value, &mut kinds)?,
            };
            line.fields.push((name, value));
        }
        // distinct kinds, sorted (one kind stays as it is)
        kinds.sort();
        kinds.dedup();
        line.redacted = kinds;
        Ok(line)
    }

}

/// The class of a (template, level, labels) combination: cached, else the reference's.
fn class_of(
    classes: &mut Map<String, (String, Option<i64>)>,
    reference: &Bound<'_, PyAny>,
    key: &str,
    template: &str,
    level: Option<&str>,
    labels: &[&str],
) -> PyResult<(String, Option<i64>)> {
    if let Some(found) = classes.get(key) {
        return Ok(found.clone());
    }
    let found: (String, Option<i64>) =
        reference.call_method1("classify", (template, level, PyTuple::new(reference.py(), labels)?))?.extract()?;
    if classes.len() > 50_000 {
        classes.clear();
    }
    classes.insert(key.to_string(), found.clone());
    Ok(found)
}

fn value_error(message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(message.to_string())
}

#[pymethods]
impl PyLogChain {
    /// LogChain(catalog_json, redaction_json, scorer_config_json, word_values,
    ///          entity_priority, entity_cache_size, reference)
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        catalog_json: &str,
        redaction_json: &str,
        scorer_config_json: &str,
        word_values: i64,
        entity_priority: &Bound<'_, PyDict>,
        entity_cache_size: i64,
        reference: PyObject,
    ) -> PyResult<Self> {
        let spec: CatalogSpec = serde_json::from_str(catalog_json).map_err(value_error)?;
        let parser = LineParser::new(spec).map_err(value_error)?;
        let scratch = parser.scratch();
        let redactor = Redactor::from_json(redaction_json).map_err(|e| value_error(e.0))?;
        let scorer = LogScorer::new(LogScorerConfig::from_json(scorer_config_json).map_err(value_error)?);
        let mut ranked = Vec::with_capacity(entity_priority.len());
        for (label, rank) in entity_priority.iter() {
            ranked.push((label.extract::<String>()?, rank.extract::<i64>()?));
        }
        let labels = Labels::new(ranked.iter().map(|(label, rank)| (label.as_str(), *rank))).map_err(value_error)?;
        let max_str_digits = py.import("sys")?.call_method0("get_int_max_str_digits")?.extract::<usize>()?;
        Ok(PyLogChain {
            parser,
            scratch,
            redactor,
            miner: TemplateMiner::new(word_values),
            scorer,
            entities: EntityPlans::new(labels, entity_cache_size, max_str_digits),
            classes: Map::default(),
            reference,
        })
    }

    /// enrich(raws, received_us, last_offsets) -> list[EncodedLogRecord | Rejected]
    ///
    /// `NativeLogEnricher.enrich`: `raws` are `workers.pipeline.RawLine`s, in offset order
    /// within each source partition. A raw at or below the offset `last_offsets`
    /// ("topic/partition" -> offset) says was applied is skipped (a replay); every other
    /// raw gives its record, or a `Rejected` (made by `reference.rejected`) when it is
    /// dead-lettered, and `last_offsets` moves to each partition's last record. A failure
    /// before any state moved (parse, redact, entities) raises; one after (template, class,
    /// score) is that record's `processing_error`, as in LogEnricher.
    fn enrich<'py>(
        &mut self,
        py: Python<'py>,
        raws: &Bound<'py, PyList>,
        received_us: i64,
        last_offsets: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (inputs, mut sources) = read_raws(raws, last_offsets)?;
        let mut outcomes: Vec<Option<Outcome>> = (0..inputs.len()).map(|_| None).collect();
        let mut lines = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            match decode(input.value.as_deref()) {
                Ok(text) => lines.push(self.prepare(py, index, text, received_us)?),
                Err(rejection) => {
                    outcomes[index] = Some(Outcome::Rejected { reason: rejection.reason, keep_value: rejection.keep_value })
                }
            }
        }
        let messages: Vec<&str> = lines.iter().map(|line| line.message.as_str()).collect();
        let reference = self.reference.bind(py);
        let plan_shapes = |shapes: &[String]| -> PyResult<Vec<Vec<Candidate>>> {
            let planned: Vec<Vec<(String, usize, usize, String)>> = reference.call_method1("plan", (PyList::new(py, shapes)?,))?.extract()?;
            planned
                .into_iter()
                .map(|tuples| {
                    tuples
                        .into_iter()
                        .map(|(label, start, end, check)| Ok(Candidate { label, start, end, check: check.parse::<Check>().map_err(value_error)? }))
                        .collect()
                })
                .collect()
        };
        let found = match self.entities.extract_batch(&messages, plan_shapes) {
            Ok(found) => found,
            Err(BatchError::Planner(error)) => return Err(error),
            Err(BatchError::Entity(error)) => return Err(value_error(error)),
        };

        // From here on the miner and the scorer move: a line that fails is dead-lettered alone.
        let mut reasons = Reasons::new();
        let mut explanation = String::new();
        let mut class_key = String::new();
        for (line, range) in lines.iter().zip(&found.lines) {
            let entities: Vec<(&str, &str)> = found.found[range.clone()]
                .iter()
                .map(|f| (self.entities.labels().name(f.label), &line.message[f.bytes.0..f.bytes.1]))
                .collect();
            let (template, template_id) = match self.miner.add(&line.message) {
                Ok(matched) => (matched.template.to_string(), matched.template_id.to_string()),
                Err(error) => {
                    let reason = processing_error("RuntimeError", &error.to_string());
                    outcomes[line.index] = Some(Outcome::Rejected { reason, keep_value: true });
                    continue;
                }
            };
            let mut labels: Vec<&str> = entities.iter().map(|(label, _)| *label).collect();
            labels.sort_unstable();
            labels.dedup();
            class_key.clear();
            class_key.push_str(&template_id);
            class_key.push('\0');
            match &line.level {
                Some(level) => {
                    class_key.push('+');
                    class_key.push_str(level);
                }
                None => class_key.push('-'),
            }
            for label in &labels {
                class_key.push('\0');
                class_key.push_str(label);
            }
            let class = class_of(&mut self.classes, self.reference.bind(py), &class_key, &template, line.level.as_deref(), &labels);
            let (category, severity) = match class {
                Ok(class) => class,
                Err(error) => {
                    outcomes[line.index] = Some(Outcome::Rejected { reason: py_processing_error(py, &error), keep_value: true });
                    continue;
                }
            };
            let input = &inputs[line.index];
            let source = &sources[input.source];
            let timestamp_us = line.timestamp_us.unwrap_or_else(|| match input.timestamp_ms {
                Some(ms) if ms != 0 => ms * 1000,
                _ => received_us,
            });
            let service = non_empty(&line.service).or(non_empty(&line.host)).unwrap_or("unknown");
            // datetime.timestamp(): whole microseconds over 10**6, correctly rounded
            let seconds = timestamp_us as f64 / 1e6;
            let score = self.scorer.update(service, &template_id, line.level.as_deref(), &line.message, seconds, &mut reasons);
            explanation.clear();
            if !reasons.is_empty() {
                reasons.write_explanation(&mut explanation);
            }
            let offset = input.offset;
            let record_id = record_id_for(&source.topic, source.partition, offset);
            let json = log_record_json(&LogRecordParts {
                record_id: &record_id,
                topic: &source.topic,
                partition: source.partition,
                offset,
                timestamp_us,
                format: &line.format,
                level: line.level.as_deref(),
                host: line.host.as_deref(),
                service: line.service.as_deref(),
                message: &line.message,
                fields: &line.fields,
                template: Some(&template),
                template_id: Some(&template_id),
                entities: &entities,
                category: Some(&category),
                severity,
                redacted: &line.redacted,
                anomaly_score: round_score(score),
                anomaly_reason: (!reasons.is_empty()).then_some(explanation.as_str()),
            });
            outcomes[line.index] = Some(Outcome::Record { record_id, json });
        }
        let out = PyList::empty(py);
        let reference = self.reference.bind(py);
        for (input, outcome) in inputs.into_iter().zip(outcomes) {
            match outcome {
                Some(Outcome::Record { record_id, json }) => {
                    let source = &mut sources[input.source];
                    source.last_record = Some(input.offset);
                    let record = EncodedLogRecord {
                        origin: input.origin.unbind(),
                        record_id: PyString::new(py, &record_id).unbind(),
                        json: PyBytes::new(py, &json).unbind(),
                    };
                    out.append(Bound::new(py, record)?)?
                }
                Some(Outcome::Rejected { reason, keep_value }) => {
                    let value = if keep_value { input.value_object } else { py.None().into_bound(py) };
                    out.append(reference.call_method1(intern!(py, "rejected"), (input.origin, reason, value))?)?
                }
                None => return Err(value_error("enrich: an input had no outcome")),
            }
        }
        for source in &sources {
            if let Some(offset) = source.last_record {
                last_offsets.set_item(&source.key, offset)?;
            }
        }
        Ok(out)
    }

    /// The miner's state: `json.loads` of it equals `TemplateMiner.to_dict()`.
    fn miner_json(&self) -> String {
        self.miner.to_json()
    }

    /// The scorer's state: `json.loads` of it equals `LogAnomalyScorer.to_dict()`.
    fn scorer_json(&self) -> String {
        self.scorer.to_json()
    }

    /// Replace the miner's and the scorer's state (from either implementation's JSON).
    fn restore(&mut self, miner_json: &str, scorer_json: &str) -> PyResult<()> {
        let miner = TemplateMiner::from_json(miner_json).map_err(value_error)?;
        let scorer = LogScorer::from_json(scorer_json).map_err(value_error)?;
        self.miner = miner;
        self.scorer = scorer;
        Ok(())
    }

    #[getter]
    fn entity_cache_hits(&self) -> u64 {
        self.entities.cache_hits
    }

    #[getter]
    fn entity_cache_misses(&self) -> u64 {
        self.entities.cache_misses
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EncodedLogRecord>()?;
    m.add_class::<PyLogChain>()
}
