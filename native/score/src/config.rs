//! `LogScorerConfig` (workers/steps/score_logs.py): the scorer's knobs, read from the JSON
//! object of the dataclass's fields, kept as given so that the state writes them back as
//! Python's `asdict(config)` does (ints stay ints).

use serde_json::{Map, Number, Value};

use crate::ScoreError;

/// Declares the config struct and its field table from one list: the fields of Python's
/// `LogScorerConfig`, in declaration order, with their defaults (the two `max_*` bounds
/// default to ints, everything else to floats, as in the dataclass).
macro_rules! config_fields {
    ($($name:ident: $default:expr,)*) => {
        /// The configuration as the scorer uses it: every field as an `f64`, which is what
        /// Python's arithmetic turns the ints into as well.
        #[derive(Clone, Debug)]
        pub struct LogScorerConfig {
            $(pub $name: f64,)*
            /// The fields as given (or defaulted), in declaration order, for `to_json`.
            as_given: Map<String, Value>,
        }

        const FIELDS: &[(&str, FieldDefault)] = &[$((stringify!($name), $default),)*];

        impl LogScorerConfig {
            /// From the values of `FIELDS`, in that order.
            fn from_values(values: &[f64], as_given: Map<String, Value>) -> Self {
                let mut values = values.iter().copied();
                Self { $($name: values.next().unwrap_or_default(),)* as_given }
            }
        }
    };
}

config_fields! {
    frequency_half_life_lines: FieldDefault::Float(5000.0),
    warmup_lines: FieldDefault::Float(50.0),
    short_half_life_s: FieldDefault::Float(900.0),
    long_half_life_s: FieldDefault::Float(86400.0),
    burst_min_count: FieldDefault::Float(3.0),
    burst_expected_floor: FieldDefault::Float(0.05),
    burst_scale_nats: FieldDefault::Float(4.0),
    max_templates_per_service: FieldDefault::Int(5000),
    max_services: FieldDefault::Int(2000),
    weight_new: FieldDefault::Float(1.0),
    weight_rare: FieldDefault::Float(0.6),
    weight_burst: FieldDefault::Float(0.8),
    weight_error_burst: FieldDefault::Float(0.6),
    weight_content: FieldDefault::Float(0.6),
    weight_level: FieldDefault::Float(0.7),
    unusual_alone: FieldDefault::Float(0.5),
    bad_alone: FieldDefault::Float(0.3),
    min_reason_strength: FieldDefault::Float(0.05),
}

/// Fields that divide (half-lives, scale) or are added to a count that may be 0 before
/// dividing (warmup): Python raises ZeroDivisionError or OverflowError in the middle of an
/// update when they are not positive, so such configs are refused up front.
const POSITIVE_FIELDS: [&str; 5] = [
    "frequency_half_life_lines",
    "warmup_lines",
    "short_half_life_s",
    "long_half_life_s",
    "burst_scale_nats",
];

#[derive(Clone, Copy)]
enum FieldDefault {
    Float(f64),
    Int(i64),
}

impl Default for LogScorerConfig {
    fn default() -> Self {
        Self::from_map(&Map::new()).expect("the defaults are a valid config")
    }
}

impl LogScorerConfig {
    /// From the JSON of `dataclasses.asdict(LogScorerConfig(...))`; missing fields take the
    /// dataclass defaults. Unknown fields, non-numbers, non-finite numbers and non-positive
    /// half-lives, scale or warmup are refused with an error naming the field.
    pub fn from_json(text: &str) -> Result<Self, ScoreError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Self::from_map(&map),
            Ok(_) => Err(ScoreError::new("log scorer config: expected a JSON object")),
            Err(err) => Err(ScoreError::new(format!("log scorer config: invalid JSON: {err}"))),
        }
    }

    pub(crate) fn from_map(map: &Map<String, Value>) -> Result<Self, ScoreError> {
        if let Some(unknown) = map.keys().find(|key| !FIELDS.iter().any(|(name, _)| name == key)) {
            return Err(ScoreError::new(format!("log scorer config: unknown field {unknown:?}")));
        }
        let mut as_given = Map::new();
        let mut values = Vec::with_capacity(FIELDS.len());
        for &(name, default) in FIELDS {
            let number = match map.get(name) {
                Some(Value::Number(number)) => number.clone(),
                Some(other) => {
                    return Err(ScoreError::new(format!(
                        "log scorer config: {name} must be a number, not {other}"
                    )))
                }
                None => match default {
                    FieldDefault::Float(v) => Number::from_f64(v).unwrap_or_else(|| Number::from(0)),
                    FieldDefault::Int(v) => Number::from(v),
                },
            };
            // u64/i64 beyond 2**53 round to the nearest float, as Python's int -> float does.
            let value = number.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                ScoreError::new(format!("log scorer config: {name} must be finite, not {number}"))
            })?;
            if POSITIVE_FIELDS.contains(&name) && value <= 0.0 {
                return Err(ScoreError::new(format!(
                    "log scorer config: {name} must be positive, not {number}"
                )));
            }
            values.push(value);
            as_given.insert(name.to_owned(), Value::Number(number));
        }
        Ok(Self::from_values(&values, as_given))
    }

    /// The fields as `asdict(config)` gives them (declaration order, ints as ints).
    pub fn as_json_map(&self) -> &Map<String, Value> {
        &self.as_given
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.as_given.clone()).to_string()
    }
}
