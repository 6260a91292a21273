//! Python bindings of the score step: `polaris_native.LogScorer`, the native counterpart of
//! `workers.steps.score_logs.LogAnomalyScorer` (same scores, reasons and state document).
use polaris_score::{
    check_timestamp, error_content_strength, level_severity, round_score, LogScorer, LogScorerConfig,
    Reasons, ScoreError,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyFloat, PyList, PyString, PyTuple};

/// A reason as Python sees it: `(kind, strength, detail)`, the fields of `Reason`.
type ReasonTuple = (&'static str, f64, String);

fn value_error(error: ScoreError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// Streaming log anomaly scorer. `LogScorer(config_json)` takes the JSON of
/// `dataclasses.asdict(LogScorerConfig(...))` (missing fields take the defaults).
#[pyclass(name = "LogScorer", module = "polaris_native")]
pub struct PyLogScorer {
    inner: LogScorer,
}

#[pymethods]
impl PyLogScorer {
    #[new]
    #[pyo3(signature = (config_json = None))]
    fn new(config_json: Option<&str>) -> PyResult<Self> {
        let config = match config_json {
            Some(text) => LogScorerConfig::from_json(text).map_err(value_error)?,
            None => LogScorerConfig::default(),
        };
        Ok(PyLogScorer { inner: LogScorer::new(config) })
    }

    /// The config as `json.dumps(dataclasses.asdict(config))` would give it.
    #[getter]
    fn config_json(&self) -> String {
        self.inner.config().to_json()
    }

    /// Scores the lines in order: for each, `(round(score, 4), explanation or None)`, as the
    /// enricher stores them (None when there is no reason). Timestamps are checked first:
    /// a non-finite one fails the whole batch before any line is counted.
    fn update_batch<'py>(
        &mut self,
        py: Python<'py>,
        services: Vec<PyBackedStr>,
        template_ids: Vec<PyBackedStr>,
        levels: Vec<Option<PyBackedStr>>,
        messages: Vec<PyBackedStr>,
        timestamps: Vec<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = services.len();
        if [template_ids.len(), levels.len(), messages.len(), timestamps.len()].iter().any(|&len| len != n) {
            return Err(PyValueError::new_err(
                "update_batch: services, template_ids, levels, messages and timestamps differ in length",
            ));
        }
        for &timestamp in &timestamps {
            check_timestamp(timestamp).map_err(value_error)?;
        }
        // Scored without the GIL; the explanations go into one buffer, sliced afterwards.
        let scorer = &mut self.inner;
        let (scores, explanations) = py.allow_threads(|| {
            let mut reasons = Reasons::new();
            let mut scores = Vec::with_capacity(n);
            let mut explanations = String::new();
            for i in 0..n {
                let score = scorer.update(
                    &services[i],
                    &template_ids[i],
                    levels[i].as_deref(),
                    &messages[i],
                    timestamps[i],
                    &mut reasons,
                );
                let explanation = (!reasons.is_empty()).then(|| {
                    let start = explanations.len();
                    reasons.write_explanation(&mut explanations);
                    start..explanations.len()
                });
                scores.push((round_score(score), explanation));
            }
            (scores, explanations)
        });
        let out = PyList::empty(py);
        for (score, explanation) in scores {
            let reason = match explanation {
                Some(range) => PyString::new(py, &explanations[range]).into_any(),
                None => py.None().into_bound(py),
            };
            out.append(PyTuple::new(py, [PyFloat::new(py, score).into_any(), reason])?)?;
        }
        Ok(out)
    }

    /// Scores one line: `(score, [(kind, strength, detail), ...])`, unrounded, the reasons in
    /// the order `LogScore.reasons` holds them.
    #[pyo3(signature = (service, template_id, level, message, timestamp))]
    fn update(
        &mut self,
        service: &str,
        template_id: &str,
        level: Option<&str>,
        message: &str,
        timestamp: f64,
    ) -> PyResult<(f64, Vec<ReasonTuple>)> {
        check_timestamp(timestamp).map_err(value_error)?;
        let mut reasons = Reasons::new();
        let score = self.inner.update(service, template_id, level, message, timestamp, &mut reasons);
        Ok((score, reasons.iter().map(|r| (r.kind.as_str(), r.strength, r.detail.to_owned())).collect()))
    }

    /// The state: `json.loads(to_json())` equals Python's `LogAnomalyScorer.to_dict()`.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Restores a state from `to_json()` or `json.dumps(LogAnomalyScorer.to_dict())`.
    #[staticmethod]
    fn from_json(state: &str) -> PyResult<Self> {
        Ok(PyLogScorer { inner: LogScorer::from_json(state).map_err(value_error)? })
    }
}

/// `workers.steps.score_logs.error_content_strength`: (strength, sorted error words).
#[pyfunction]
fn log_error_content_strength(message: &str) -> (f64, Vec<&'static str>) {
    error_content_strength(message)
}

/// `workers.steps.score_logs.level_severity`.
#[pyfunction]
#[pyo3(signature = (level))]
fn log_level_severity(level: Option<&str>) -> f64 {
    level_severity(level)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLogScorer>()?;
    m.add_function(wrap_pyfunction!(log_error_content_strength, m)?)?;
    m.add_function(wrap_pyfunction!(log_level_severity, m)?)?;
    Ok(())
}
