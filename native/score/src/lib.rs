//! The score step: Rust port of the streaming log anomaly scorer
//! (`workers.steps.score_logs.LogAnomalyScorer`, with workers/steps/anomaly_common.py).
//!
//! The Python code stays the specification. This port gives bit-identical scores, the same
//! reason texts, and the same state document (`to_json` / `from_json` interoperate with
//! Python's `to_dict` / `from_dict`): the same float operations in the same order, the same
//! libm functions (`pow`, `log`, `exp`), Python's decimal rounding, and Python's `re`
//! semantics for the error words (see `content`).
//!
//! Where Python would go wrong in the middle of an update (raise, or fill the state with
//! NaN), this port refuses up front instead, with an error saying why: configs with
//! non-positive half-lives, scale or warmup, or non-finite values; states with non-finite or
//! negative counts; non-finite timestamps. Every state a Python scorer with such a config
//! produces from finite timestamps is accepted.

mod config;
mod content;
mod pyfloat;
mod scorer;
mod state;

pub use config::LogScorerConfig;
pub use content::{error_content_strength, level_severity};
pub use scorer::{LogScorer, Reason, ReasonKind, Reasons};

/// Python's `round(score, 4)`, as the enricher stores a score.
pub fn round_score(score: f64) -> f64 {
    pyfloat::round4(score)
}

/// A refused config or state, or an input Python would not score the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreError(String);

impl ScoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    fn context(self, what: &str) -> Self {
        Self(format!("log scorer state: {what}: {}", self.0))
    }
}

impl std::fmt::Display for ScoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScoreError {}

/// Timestamps must be finite: Python would score a NaN or infinite time into NaN counts
/// (or raise), which no state document can hold.
pub fn check_timestamp(timestamp: f64) -> Result<(), ScoreError> {
    if timestamp.is_finite() {
        Ok(())
    } else {
        Err(ScoreError::new(format!("log scorer: timestamp must be finite, not {timestamp}")))
    }
}
