//! The scorer's state as JSON: the same document as Python's `to_dict()` / `from_dict()`, so
//! that either implementation restores the other's state and continues identically.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::config::LogScorerConfig;
use crate::scorer::{IndexMap, LogScorer, ServiceStats, TemplateStats};
use crate::ScoreError;

/// `STATE_VERSION` of workers/steps/score_logs.py.
const STATE_VERSION: i64 = 1;

impl LogScorer {
    /// `json.dumps(scorer.to_dict())`, up to number spelling: `json.loads` of it equals
    /// Python's `to_dict()`, in the same key order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&StateDocument(self)).unwrap_or_default()
    }

    /// `LogAnomalyScorer.from_dict(json.loads(text))`. Besides what Python checks, refuses
    /// values no scorer produces and Python would fail on later (non-finite numbers, negative
    /// counts, a template updated after its service's last line).
    pub fn from_json(text: &str) -> Result<Self, ScoreError> {
        let data: Value = serde_json::from_str(text)
            .map_err(|err| ScoreError::new(format!("log scorer state: invalid JSON: {err}")))?;
        let data =
            data.as_object().ok_or_else(|| ScoreError::new("log scorer state: expected a JSON object"))?;
        let version = data.get("version");
        if version.and_then(Value::as_f64) != Some(STATE_VERSION as f64) {
            let shown = version.map_or_else(|| "None".to_owned(), Value::to_string);
            return Err(ScoreError::new(format!("unsupported log scorer state version {shown}")));
        }
        let config = match field(data, "config", "state")? {
            Value::Object(map) => LogScorerConfig::from_map(map)?,
            _ => return Err(ScoreError::new("log scorer state: config must be an object")),
        };
        let mut scorer = LogScorer::new(config);
        scorer.tick = int_of(field(data, "tick", "state")?, "tick")?;
        let services = field(data, "services", "state")?
            .as_object()
            .ok_or_else(|| ScoreError::new("log scorer state: services must be an object"))?;
        for (name, value) in services {
            let svc = service_from(value).map_err(|err| err.context(&format!("service {name:?}")))?;
            scorer.services.insert(name.clone(), svc);
        }
        Ok(scorer)
    }
}

fn service_from(value: &Value) -> Result<ServiceStats, ScoreError> {
    let s = value.as_object().ok_or_else(|| ScoreError::new("must be an object"))?;
    let error = field(s, "error", "service")?
        .as_array()
        .filter(|e| e.len() == 3)
        .ok_or_else(|| ScoreError::new("error must be [short, long, time]"))?;
    let lines = int_of(field(s, "lines", "service")?, "lines")?;
    let templates_json = field(s, "templates", "service")?
        .as_object()
        .ok_or_else(|| ScoreError::new("templates must be an object"))?;
    let mut templates = IndexMap::with_capacity_and_hasher(templates_json.len(), Default::default());
    for (id, v) in templates_json {
        let stats = template_from(v, lines).map_err(|err| err.context(&format!("template {id:?}")))?;
        templates.insert(id.clone(), stats);
    }
    Ok(ServiceStats {
        first_time: float_of(field(s, "first_time", "service")?, "first_time")?,
        last_seen_tick: int_of(field(s, "last_seen_tick", "service")?, "last_seen_tick")?,
        lines,
        total: count_of(field(s, "total", "service")?, "total")?,
        error_short: count_of(&error[0], "error short count")?,
        error_long: count_of(&error[1], "error long count")?,
        error_time: float_of(&error[2], "error time")?,
        templates,
    })
}

/// `_TemplateStats.from_list`: [frequency, frequency_at, short, long, last_time].
fn template_from(value: &Value, service_lines: i64) -> Result<TemplateStats, ScoreError> {
    let v = value
        .as_array()
        .filter(|v| v.len() >= 5)
        .ok_or_else(|| ScoreError::new("must be [frequency, frequency_at, short, long, last_time]"))?;
    let frequency_at = int_of(&v[1], "frequency_at")?;
    if !(0..=service_lines).contains(&frequency_at) {
        return Err(ScoreError::new(format!(
            "frequency_at {frequency_at} is not within the service's {service_lines} lines"
        )));
    }
    Ok(TemplateStats {
        frequency: count_of(&v[0], "frequency")?,
        frequency_at,
        short: count_of(&v[2], "short count")?,
        long: count_of(&v[3], "long count")?,
        last_time: float_of(&v[4], "last_time")?,
    })
}

fn field<'a>(map: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, ScoreError> {
    map.get(key).ok_or_else(|| ScoreError::new(format!("log scorer state: {what} has no {key:?}")))
}

/// Python's `float(x)` of a JSON number, which must be finite.
fn float_of(value: &Value, what: &str) -> Result<f64, ScoreError> {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ScoreError::new(format!("{what} must be a finite number, not {value}")))
}

/// A decayed count: finite and not negative.
fn count_of(value: &Value, what: &str) -> Result<f64, ScoreError> {
    let count = float_of(value, what)?;
    if count < 0.0 {
        return Err(ScoreError::new(format!("{what} must not be negative, not {value}")));
    }
    Ok(count)
}

/// Python's `int(x)` of a JSON number (a float is truncated), which must fit an i64.
fn int_of(value: &Value, what: &str) -> Result<i64, ScoreError> {
    if let Some(v) = value.as_i64() {
        return Ok(v);
    }
    match value.as_f64() {
        Some(v) if v.is_finite() && v.trunc().abs() < 9.2e18 => Ok(v.trunc() as i64),
        _ => Err(ScoreError::new(format!("{what} must be an integer, not {value}"))),
    }
}

/// The state document, written straight from the scorer (no intermediate `Value`).
struct StateDocument<'a>(&'a LogScorer);
struct ServicesView<'a>(&'a IndexMap<String, ServiceStats>);
struct ServiceView<'a>(&'a ServiceStats);
struct TemplatesView<'a>(&'a IndexMap<String, TemplateStats>);

impl Serialize for StateDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("version", &STATE_VERSION)?;
        map.serialize_entry("config", self.0.config.as_json_map())?;
        map.serialize_entry("tick", &self.0.tick)?;
        map.serialize_entry("services", &ServicesView(&self.0.services))?;
        map.end()
    }
}

impl Serialize for ServicesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, svc) in self.0 {
            map.serialize_entry(name, &ServiceView(svc))?;
        }
        map.end()
    }
}

impl Serialize for ServiceView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("first_time", &s.first_time)?;
        map.serialize_entry("last_seen_tick", &s.last_seen_tick)?;
        map.serialize_entry("lines", &s.lines)?;
        map.serialize_entry("total", &s.total)?;
        map.serialize_entry("error", &[s.error_short, s.error_long, s.error_time])?;
        map.serialize_entry("templates", &TemplatesView(&s.templates))?;
        map.end()
    }
}

impl Serialize for TemplatesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (id, t) in self.0 {
            map.serialize_entry(id, &TemplateList(t))?;
        }
        map.end()
    }
}

/// `_TemplateStats.to_list()`: frequency_at as a float, as Python writes it.
struct TemplateList<'a>(&'a TemplateStats);

impl Serialize for TemplateList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut seq = serializer.serialize_seq(Some(5))?;
        seq.serialize_element(&t.frequency)?;
        seq.serialize_element(&(t.frequency_at as f64))?;
        seq.serialize_element(&t.short)?;
        seq.serialize_element(&t.long)?;
        seq.serialize_element(&t.last_time)?;
        seq.end()
    }
}
