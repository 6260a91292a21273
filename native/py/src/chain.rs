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

use polaris_chain::{decode, log_record_json, record_id_for, LogRecordParts};
use polaris_entities::{BatchError, Candidate, Check, EntityPlans, Labels};
use polaris_miner::TemplateMiner;
use polaris_parse::{CatalogSpec, LineParser, Scratch};
use polaris_redact::{FieldKind, Redaction, Redactor};
use polaris_score::{round_score, LogScorer, LogScorerConfig, Reasons};
use pyo3::exceptions::PyValueError;
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

#[pyclass(name = "LogChain", module = "polaris_native", unsendable)]
pub struct PyLogChain {
    parser: LineParser,
    scratch: Scratch,
    redactor: Redactor,
    miner: TemplateMiner,
    scorer: LogScorer,
    entities: EntityPlans,
    /// (template id, level, entity labels) -> (category, severity), as LogEnricher._classes.
    classes: HashMap<String, (String, Option<i64>)>,
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
    classes: &mut HashMap<String, (String, Option<i64>)>,
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
            classes: HashMap::new(),
            reference,
        })
    }

    /// enrich(values, topic, partition, offsets, timestamps_ms, received_us)
    ///     -> list[tuple[str, bytes] | tuple[None, str, bool]]
    ///
    /// One source partition's batch, in offset order. Per input: `(record_id, json)` of its
    /// record, or `(None, reason, keep_value)` when it is dead-lettered. A failure before any
    /// state moved (parse, redact, entities) raises; one after (template, class, score) is
    /// that record's `processing_error`, as in LogEnricher.
    #[allow(clippy::too_many_arguments)]
    fn enrich<'py>(
        &mut self,
        py: Python<'py>,
        values: Vec<Option<PyBackedBytes>>,
        topic: &str,
        partition: i64,
        offsets: Vec<i64>,
        timestamps_ms: Vec<Option<i64>>,
        received_us: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        if offsets.len() != values.len() || timestamps_ms.len() != values.len() {
            return Err(value_error("enrich: values, offsets and timestamps_ms differ in length"));
        }
        let mut outcomes: Vec<Option<Outcome>> = (0..values.len()).map(|_| None).collect();
        let mut lines = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            match decode(value.as_deref()) {
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
            let timestamp_us = line.timestamp_us.unwrap_or_else(|| match timestamps_ms[line.index] {
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
            let offset = offsets[line.index];
            let record_id = record_id_for(topic, partition, offset);
            let json = log_record_json(&LogRecordParts {
                record_id: &record_id,
                topic,
                partition,
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
        for outcome in outcomes {
            match outcome {
                Some(Outcome::Record { record_id, json }) => {
                    out.append((PyString::new(py, &record_id), PyBytes::new(py, &json)))?
                }
                Some(Outcome::Rejected { reason, keep_value }) => out.append((py.None(), reason, keep_value))?,
                None => return Err(value_error("enrich: an input had no outcome")),
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
    m.add_class::<PyLogChain>()
}
