//! `LogAnomalyScorer` (workers/steps/score_logs.py): streaming, unsupervised anomaly scoring
//! of log lines keyed per (service, template). Every float is computed with the operations
//! of the Python hot path in the same order, so scores and reasons are bit-identical.

use foldhash::fast::RandomState;

use crate::config::LogScorerConfig;
use crate::content::{
    error_words, error_words_in, error_words_strength, level_severity, ERROR_LEVEL_MIN_SEVERITY,
};
use crate::pyfloat::{clamp01, pow2, push_fixed};

/// Maps keep Python's dict order; foldhash because SipHash showed in profiles.
pub(crate) type IndexMap<K, V> = indexmap::IndexMap<K, V, RandomState>;

/// What a piece of evidence is about (Python's reason kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonKind {
    NewTemplate,
    RareTemplate,
    TemplateBurst,
    ErrorRateBurst,
    ErrorContent,
    SevereLevel,
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewTemplate => "new_template",
            Self::RareTemplate => "rare_template",
            Self::TemplateBurst => "template_burst",
            Self::ErrorRateBurst => "error_rate_burst",
            Self::ErrorContent => "error_content",
            Self::SevereLevel => "severe_level",
        }
    }
}

/// One piece of evidence behind a score: what, how strong (0..1), and by how much.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reason<'a> {
    pub kind: ReasonKind,
    pub strength: f64,
    pub detail: &'a str,
}

impl Reason<'_> {
    /// `str(reason)`: "kind (0.42): detail".
    fn push_to(&self, out: &mut String) {
        out.push_str(self.kind.as_str());
        out.push_str(" (");
        push_fixed(out, self.strength, 2);
        out.push_str("): ");
        out.push_str(self.detail);
    }
}

/// The reasons behind one score, in the order Python lists them. Reused from line to line:
/// the details share one text buffer, so a line costs no allocation once it has warmed up.
#[derive(Clone, Debug, Default)]
pub struct Reasons {
    entries: Vec<(ReasonKind, f64, std::ops::Range<usize>)>,
    text: String,
}

impl Reasons {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Reason<'_>> {
        self.entries.iter().map(|(kind, strength, range)| Reason {
            kind: *kind,
            strength: *strength,
            detail: &self.text[range.clone()],
        })
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
    }

    /// Adds a reason whose detail `write_detail` appends to the given buffer.
    fn push(&mut self, kind: ReasonKind, strength: f64, write_detail: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write_detail(&mut self.text);
        self.entries.push((kind, strength, start..self.text.len()));
    }

    /// Appends `AnomalyScore.explanation`: "nothing unusual" for no reason, else the reasons
    /// strongest first (a stable sort, as Python's `sorted`), joined by "; ".
    pub fn write_explanation(&self, out: &mut String) {
        match self.entries.len() {
            0 => out.push_str("nothing unusual"),
            1 => self.iter().for_each(|reason| reason.push_to(out)),
            _ => {
                let mut ranked: Vec<Reason<'_>> = self.iter().collect();
                ranked
                    .sort_by(|a, b| b.strength.partial_cmp(&a.strength).unwrap_or(std::cmp::Ordering::Equal));
                for (i, reason) in ranked.iter().enumerate() {
                    if i > 0 {
                        out.push_str("; ");
                    }
                    reason.push_to(out);
                }
            }
        }
    }

    /// `AnomalyScore.explanation` as a new string.
    pub fn explanation(&self) -> String {
        let mut out = String::new();
        self.write_explanation(&mut out);
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TemplateStats {
    pub(crate) frequency: f64,    // decayed on the service's line clock
    pub(crate) frequency_at: i64, // service line index of the last frequency update
    pub(crate) short: f64,        // time-decayed count, short half-life
    pub(crate) long: f64,         // time-decayed count, long half-life
    pub(crate) last_time: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceStats {
    pub(crate) first_time: f64,
    pub(crate) last_seen_tick: i64, // global tick, for least-recently-used eviction
    pub(crate) lines: i64,          // the service's line clock
    pub(crate) total: f64,          // decayed line count on the same clock as template frequencies
    pub(crate) error_short: f64,
    pub(crate) error_long: f64,
    pub(crate) error_time: f64,
    /// In Python's dict order (insertion, or rank after an eviction): it decides ties when
    /// evicting and the order of the saved state.
    pub(crate) templates: IndexMap<String, TemplateStats>,
}

impl ServiceStats {
    fn new(timestamp: f64, tick: i64) -> Self {
        Self {
            first_time: timestamp,
            last_seen_tick: tick,
            lines: 0,
            total: 0.0,
            error_short: 0.0,
            error_long: 0.0,
            error_time: timestamp,
            templates: IndexMap::default(),
        }
    }
}

/// Python's `LogAnomalyScorer`.
#[derive(Clone, Debug)]
pub struct LogScorer {
    pub(crate) config: LogScorerConfig,
    pub(crate) services: IndexMap<String, ServiceStats>,
    pub(crate) tick: i64,
    // Derived from the config once, computed as Python's __init__ computes them.
    line_decay: f64,
    full_short: f64,
    full_long: f64,
    bad_share: f64,
}

/// The evidence of an error-rate burst, before it is weighted.
struct ErrorBurst {
    strength: f64,
    recent: f64,
    expected: f64,
}

impl LogScorer {
    pub fn new(config: LogScorerConfig) -> Self {
        let ln2 = std::hint::black_box(2.0f64).ln(); // math.log(2.0), at run time as in Python
        Self {
            line_decay: pow2(-1.0 / config.frequency_half_life_lines),
            full_short: config.short_half_life_s / ln2,
            full_long: config.long_half_life_s / ln2,
            bad_share: 1.0 - config.unusual_alone,
            config,
            services: IndexMap::default(),
            tick: 0,
        }
    }

    pub fn config(&self) -> &LogScorerConfig {
        &self.config
    }

    /// Score one line: `LogAnomalyScorer.update(...)`. The reasons are written into `reasons`
    /// (cleared first). The timestamp must be finite (see `check_timestamp`).
    pub fn update(
        &mut self,
        service: &str,
        template_id: &str,
        level: Option<&str>,
        message: &str,
        timestamp: f64,
        reasons: &mut Reasons,
    ) -> f64 {
        reasons.clear();
        let cfg = &self.config;
        self.tick += 1;
        let tick = self.tick;
        let service_index = match self.services.get_index_of(service) {
            Some(index) => {
                let svc = &mut self.services[index];
                svc.last_seen_tick = tick;
                if timestamp < svc.first_time {
                    svc.first_time = timestamp;
                }
                index
            }
            None => {
                if self.services.len() as f64 >= cfg.max_services {
                    evict_services(&mut self.services, cfg.max_services);
                }
                // `_service`: also sets last_seen_tick and first_time = min(first_time, timestamp),
                // which the new stats already hold.
                self.services.insert_full(service.to_owned(), ServiceStats::new(timestamp, tick)).0
            }
        };
        let svc = &mut self.services[service_index];
        let elapsed_service = timestamp - svc.first_time;
        let (window_short, window_long) = if elapsed_service <= 0.0 {
            (0.0, 0.0)
        } else {
            (
                self.full_short * (1.0 - pow2(-elapsed_service / cfg.short_half_life_s)),
                self.full_long * (1.0 - pow2(-elapsed_service / cfg.long_half_life_s)),
            )
        };
        let min_strength = cfg.min_reason_strength;
        let mut keep_unusual = 1.0; // running noisy-OR of how unlike this service's history
        let mut keep_bad = 1.0; // running noisy-OR of how much the line itself says "trouble"

        // Frequency evidence, measured before this line is counted.
        let seen_lines = svc.total;
        let lines = svc.lines;
        let template_index = match svc.templates.get_index_of(template_id) {
            None => {
                let maturity = seen_lines / (seen_lines + cfg.warmup_lines);
                let weighted = cfg.weight_new * maturity;
                keep_unusual *= 1.0 - clamp01(weighted);
                if weighted >= min_strength {
                    reasons.push(ReasonKind::NewTemplate, maturity, |detail| {
                        detail.push_str("template never seen for ");
                        detail.push_str(service);
                        detail.push_str(" in ");
                        push_fixed(detail, seen_lines, 0);
                        detail.push_str(" recent lines");
                    });
                }
                let stats = TemplateStats {
                    frequency: 0.0,
                    frequency_at: lines,
                    short: 0.0,
                    long: 0.0,
                    last_time: timestamp,
                };
                svc.templates.insert_full(template_id.to_owned(), stats).0
            }
            Some(index) => {
                let stats = &mut svc.templates[index];
                let count = stats.frequency * self.line_decay.powf((lines - stats.frequency_at) as f64);
                // Normalised surprisal: 1 for a one-off in a long history, 0 for "every line".
                let rarity = ((seen_lines + 1.0) / (count + 1.0)).ln() / (seen_lines + 2.0).ln();
                let strength = if rarity < 0.0 { 0.0 } else { rarity };
                let weighted = cfg.weight_rare * strength;
                keep_unusual *= 1.0 - clamp01(weighted);
                if weighted >= min_strength {
                    reasons.push(ReasonKind::RareTemplate, strength, |detail| {
                        push_fixed(detail, count, 1);
                        detail.push_str(" of ");
                        push_fixed(detail, seen_lines, 0);
                        detail.push_str(" recent lines");
                    });
                }
                stats.frequency = count;
                index
            }
        };
        let stats = &mut svc.templates[template_index];

        // Rate evidence: the template's recent count against its own long-run rate.
        let last_time = stats.last_time;
        let dt = timestamp - last_time;
        let (long_decayed, short_decayed) = if dt <= 0.0 {
            (stats.long, stats.short)
        } else {
            (stats.long * pow2(-dt / cfg.long_half_life_s), stats.short * pow2(-dt / cfg.short_half_life_s))
        };
        if timestamp > last_time {
            stats.last_time = timestamp;
        }
        let baseline_rate = long_decayed / (if window_long < 1e-9 { 1e-9 } else { window_long });
        let short = short_decayed + 1.0;
        stats.short = short;
        stats.long = long_decayed + 1.0;
        if short >= cfg.burst_min_count {
            let expected = baseline_rate * window_short + cfg.burst_expected_floor;
            let strength = saturate(poisson_excess_nats(short, expected), cfg.burst_scale_nats);
            let weighted = cfg.weight_burst * strength;
            keep_unusual *= 1.0 - clamp01(weighted);
            if weighted >= min_strength {
                reasons.push(ReasonKind::TemplateBurst, strength, |detail| {
                    push_fixed(detail, short, 1);
                    detail.push_str(" recent vs ");
                    push_fixed(detail, expected, 2);
                    detail.push_str(" expected");
                });
            }
        }

        let severity = level_severity(level);
        if severity >= ERROR_LEVEL_MIN_SEVERITY {
            if let Some(burst) = update_error_rate(svc, cfg, timestamp, window_short, window_long) {
                let weighted = cfg.weight_error_burst * burst.strength;
                keep_unusual *= 1.0 - clamp01(weighted);
                if weighted >= min_strength {
                    reasons.push(ReasonKind::ErrorRateBurst, burst.strength, |detail| {
                        push_fixed(detail, burst.recent, 1);
                        detail.push_str(" recent error-level lines vs ");
                        push_fixed(detail, burst.expected, 2);
                        detail.push_str(" expected");
                    });
                }
            }
        }

        let words = error_words_in(message);
        if words != 0 {
            let content = error_words_strength(words);
            let weighted = cfg.weight_content * content;
            keep_bad *= 1.0 - clamp01(weighted);
            if weighted >= min_strength {
                reasons.push(ReasonKind::ErrorContent, content, |detail| {
                    detail.push_str("words: ");
                    for (i, word) in error_words(words).enumerate() {
                        if i > 0 {
                            detail.push_str(", ");
                        }
                        detail.push_str(word);
                    }
                });
            }
        }
        if severity > 0.0 {
            let weighted = cfg.weight_level * severity;
            keep_bad *= 1.0 - clamp01(weighted);
            if weighted >= min_strength {
                reasons.push(ReasonKind::SevereLevel, severity, |detail| {
                    detail.push_str("level ");
                    detail.push_str(level.unwrap_or_default()); // a positive severity has a level
                });
            }
        }

        // Count the line.
        let stats = &mut svc.templates[template_index];
        stats.frequency += 1.0;
        stats.frequency_at = lines + 1;
        svc.total = seen_lines * self.line_decay + 1.0;
        svc.lines = lines + 1;
        if svc.templates.len() as f64 > cfg.max_templates_per_service {
            evict_templates(svc, cfg.max_templates_per_service, self.line_decay);
        }
        let unusual = clamp01(1.0 - keep_unusual);
        let bad = clamp01(1.0 - keep_bad);
        self.fuse(unusual, bad)
    }

    /// Unusual-and-bad outranks either alone: Python's `_fuse`, the same operations in the
    /// same order.
    fn fuse(&self, unusual: f64, bad: f64) -> f64 {
        let gated = unusual * (self.config.unusual_alone + self.bad_share * bad);
        let weighted = 1.0 * gated;
        let mut keep = 1.0 - clamp01(weighted);
        let weighted = self.config.bad_alone * bad;
        keep *= 1.0 - clamp01(weighted);
        clamp01(1.0 - keep)
    }
}

/// Count an error-level line; the error-rate burst evidence, if any (`_update_error_rate`).
fn update_error_rate(
    svc: &mut ServiceStats,
    cfg: &LogScorerConfig,
    timestamp: f64,
    window_short: f64,
    window_long: f64,
) -> Option<ErrorBurst> {
    let dt = py_max(timestamp - svc.error_time, 0.0);
    let baseline_rate = decay(svc.error_long, dt, cfg.long_half_life_s) / py_max(window_long, 1e-9);
    svc.error_short = decay(svc.error_short, dt, cfg.short_half_life_s) + 1.0;
    svc.error_long = decay(svc.error_long, dt, cfg.long_half_life_s) + 1.0;
    svc.error_time = py_max(svc.error_time, timestamp);
    let expected = baseline_rate * window_short + cfg.burst_expected_floor;
    if svc.error_short < cfg.burst_min_count {
        return None;
    }
    let surprise = poisson_excess_nats(svc.error_short, expected);
    Some(ErrorBurst { strength: saturate(surprise, cfg.burst_scale_nats), recent: svc.error_short, expected })
}

/// Python's two-argument `max(a, b)`: `b` only when `b > a`.
#[inline]
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// `decay`: exponential decay of a count after `elapsed` (same unit as `half_life`).
#[inline]
fn decay(value: f64, elapsed: f64, half_life: f64) -> f64 {
    if elapsed <= 0.0 {
        return value;
    }
    value * pow2(-elapsed / half_life)
}

/// `poisson_excess_nats`: Chernoff bound on -ln P(X >= observed) for X ~ Poisson(expected).
#[inline]
fn poisson_excess_nats(observed: f64, expected: f64) -> f64 {
    if observed <= expected || observed <= 0.0 {
        return 0.0;
    }
    let expected = py_max(expected, 1e-9);
    observed * (observed / expected).ln() - observed + expected
}

/// `saturate`: 1 - exp(-value / scale), 0 for non-positive values.
#[inline]
fn saturate(value: f64, scale: f64) -> f64 {
    if value <= 0.0 {
        return 0.0;
    }
    1.0 - (-value / scale).exp()
}

/// `int(bound * 0.9)` entries survive an eviction, taken as Python's `ranked[:keep]` takes
/// them (a negative `keep` counts from the end).
fn kept_after_eviction(len: usize, bound: f64) -> usize {
    let keep = (bound * 0.9).trunc();
    if keep >= 0.0 {
        len.min(keep as usize)
    } else {
        len.saturating_sub((-keep) as usize)
    }
}

/// `_evict_services`: keep the most recently seen, most recent first.
fn evict_services(services: &mut IndexMap<String, ServiceStats>, max_services: f64) {
    let keep = kept_after_eviction(services.len(), max_services);
    // A stable sort, most recent first, as `sorted(..., reverse=True)`.
    services.sort_by(|_, a, _, b| b.last_seen_tick.cmp(&a.last_seen_tick));
    services.truncate(keep);
}

/// `_evict_templates`: drop the least frequent tenth in one go, so eviction is amortised
/// O(1) per line; the survivors are kept most frequent first.
fn evict_templates(svc: &mut ServiceStats, max_templates: f64, line_decay: f64) {
    let keep = kept_after_eviction(svc.templates.len(), max_templates);
    let lines = svc.lines;
    let mut ranked: Vec<(f64, String, TemplateStats)> = std::mem::take(&mut svc.templates)
        .into_iter()
        .map(|(id, s)| (s.frequency * line_decay.powf((lines - s.frequency_at) as f64), id, s))
        .collect();
    // Stable and descending, as `sorted(..., key=current, reverse=True)`.
    ranked.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    ranked.truncate(keep);
    svc.templates = ranked.into_iter().map(|(_, id, s)| (id, s)).collect();
}
