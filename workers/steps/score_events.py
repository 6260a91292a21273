"""Streaming anomaly scoring for user events (login, view, purchase, ...).

`UserEventScorer.update(user_id, event_type, timestamp) -> EventScore` judges one event:

- bot-like rate: a user's sustained events per second above what a person produces;
- too-regular timing: inter-arrival times with a tiny coefficient of variation (scripts);
- impossible sequence: hard rules (forbidden transitions; events that need a session, such
  as a purchase or a logout without a login) and, data-driven, a transition never (or almost
  never) seen in the global event-type graph once that graph has warmed up;
- volume: an event type's count per time-of-day bucket far from its own baseline. Better
  than the two-sigma daily rule: median/MAD instead of mean/stdev (one past spike does not
  blind it), a baseline per time-of-day slot (night is not compared with noon), a Poisson
  floor on the spread and a minimum absolute deviation (no alerts on 2 vs 0 events).

Pure code, no labels; bounded state (user and type caps, fixed-size histories) that
round-trips through a JSON-safe dict.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from workers.steps.anomaly_common import (
    AnomalyScore,
    Reason,
    clamp01,
    decay,
    decayed_window,
    noisy_or,
    saturate,
)

STATE_VERSION = 1

BOT_RATE = "bot_rate"
REGULAR_TIMING = "regular_timing"
FORBIDDEN_SEQUENCE = "forbidden_sequence"
UNSEEN_TRANSITION = "unseen_transition"
VOLUME = "volume"

_WEIGHTS = {
    BOT_RATE: 0.9,
    REGULAR_TIMING: 0.7,
    FORBIDDEN_SEQUENCE: 1.0,
    UNSEEN_TRANSITION: 0.7,
    VOLUME: 0.8,
}
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True, slots=True)
class EventScorerConfig:
    rate_half_life_s: float = 10.0
    max_human_events_per_s: float = 3.0
    rate_min_events: float = 10.0  # a rate needs this many recent events to be "sustained"
    regularity_gaps: int = 16  # inter-arrival gaps kept per user
    regularity_min_gaps: int = 8
    regularity_max_cv: float = 0.1  # people are bursty (CV ~ 1); a timer loop is not
    forbidden_transitions: tuple[tuple[str, str], ...] = ()
    session_start: tuple[str, ...] = ("login",)
    session_end: tuple[str, ...] = ("logout",)
    requires_session: tuple[str, ...] = ("logout",)  # e.g. add "purchase", "checkout"
    transition_warmup: int = 1000  # transitions seen before unseen ones are judged
    transition_min_from: float = 30.0  # ... and this many out of the previous event type
    rare_transition_share: float = 0.002
    volume_bucket_s: float = 3600.0
    volume_period_s: float = 86400.0  # time-of-day cycle: one baseline per bucket slot
    volume_history: int = 14  # past buckets kept per slot (days, with the defaults)
    volume_min_history: int = 3
    volume_robust_z: float = 3.0
    volume_min_deviation: float = 10.0  # absolute events; smaller deviations never alert
    max_users: int = 100_000
    max_event_types: int = 1000
    transition_count_cap: float = 1e6  # counts halve past this total, so old habits fade


EventScore = AnomalyScore


@dataclass(slots=True)
class _UserState:
    first_time: float
    last_time: float
    last_type: str | None = None
    recent: float = 0.0  # time-decayed event count
    in_session: bool = False
    gaps: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _VolumeState:
    bucket: int  # index of the bucket being counted
    count: float = 0.0
    history: dict[int, list[float]] = field(default_factory=dict)  # slot -> past counts


def robust_z(value: float, history: list[float]) -> tuple[float, float]:
    """(z, median): distance from the median in MAD-sigmas, spread floored at Poisson noise."""
    median = statistics.median(history)
    mad = statistics.median(abs(h - median) for h in history)
    spread = max(_MAD_TO_SIGMA * mad, math.sqrt(median), 1.0)
    return (value - median) / spread, median


class UserEventScorer:
    def __init__(self, config: EventScorerConfig | None = None) -> None:
        self.config = config or EventScorerConfig()
        self._users: dict[str, _UserState] = {}
        self._transitions: dict[str, dict[str, float]] = {}  # previous type -> next -> count
        self._transition_total = 0.0
        self._volumes: dict[str, _VolumeState] = {}
        self._forbidden = {tuple(p) for p in self.config.forbidden_transitions}

    def update(self, user_id: str, event_type: str, timestamp: float) -> EventScore:
        reasons: list[Reason] = []
        user = self._user(user_id, timestamp)
        self._judge_rate(user, timestamp, reasons)
        self._judge_sequence(user, event_type, reasons)
        self._judge_volume(event_type, timestamp, reasons)
        user.last_type = event_type
        user.last_time = max(user.last_time, timestamp)
        score = noisy_or([(_WEIGHTS[r.kind], r.strength) for r in reasons])
        return EventScore(score, tuple(reasons))

    # --- per user: rate and timing -----------------------------------------------------------

    def _judge_rate(self, user: _UserState, timestamp: float, reasons: list[Reason]) -> None:
        cfg = self.config
        has_previous = user.last_type is not None
        gap = max(timestamp - user.last_time, 0.0)
        user.recent = decay(user.recent, gap, cfg.rate_half_life_s) + 1.0
        window = decayed_window(max(timestamp - user.first_time, 0.0), cfg.rate_half_life_s)
        if user.recent >= cfg.rate_min_events and window > 0.0:
            rate = user.recent / window
            if rate > cfg.max_human_events_per_s:
                strength = saturate(math.log2(rate / cfg.max_human_events_per_s), 1.0)
                reasons.append(
                    Reason(
                        BOT_RATE,
                        strength,
                        f"{rate:.1f} events/s sustained over {user.recent:.0f} "
                        f"events (people: <= {cfg.max_human_events_per_s:g})",
                    )
                )
        if not has_previous:
            return
        user.gaps.append(gap)
        del user.gaps[: -cfg.regularity_gaps]
        if len(user.gaps) >= cfg.regularity_min_gaps:
            mean = statistics.fmean(user.gaps)
            if mean > 0.0:
                cv = statistics.pstdev(user.gaps) / mean
                if cv < cfg.regularity_max_cv:
                    reasons.append(
                        Reason(
                            REGULAR_TIMING,
                            1.0 - cv / cfg.regularity_max_cv,
                            f"last {len(user.gaps)} gaps {mean:.3g}s apart, "
                            f"variation {cv:.3f} (people: ~1)",
                        )
                    )

    # --- per user: sequence ------------------------------------------------------------------

    def _judge_sequence(self, user: _UserState, event_type: str, reasons: list[Reason]) -> None:
        cfg = self.config
        previous = user.last_type
        if event_type in cfg.requires_session and not user.in_session:
            reasons.append(Reason(FORBIDDEN_SEQUENCE, 1.0, f"{event_type} without a session"))
        if previous is not None and (previous, event_type) in self._forbidden:
            reasons.append(
                Reason(FORBIDDEN_SEQUENCE, 1.0, f"{previous} -> {event_type} is forbidden")
            )
        if event_type in cfg.session_start:
            user.in_session = True
        elif event_type in cfg.session_end:
            user.in_session = False
        if previous is None:
            return
        outgoing = self._transitions.get(previous)
        from_count = sum(outgoing.values()) if outgoing else 0.0
        if self._transition_total >= cfg.transition_warmup and (
            from_count >= cfg.transition_min_from
        ):
            seen = outgoing.get(event_type, 0.0) if outgoing else 0.0
            share = seen / from_count
            if share < cfg.rare_transition_share:
                strength = 1.0 - share / cfg.rare_transition_share
                what = "never seen" if seen == 0.0 else f"seen {share:.2%} of the time"
                reasons.append(
                    Reason(
                        UNSEEN_TRANSITION,
                        strength,
                        f"{previous} -> {event_type} {what} "
                        f"after {from_count:.0f} {previous} events",
                    )
                )
        self._count_transition(previous, event_type)

    def _count_transition(self, previous: str, event_type: str) -> None:
        outgoing = self._transitions.get(previous)
        if outgoing is None:
            if len(self._transitions) >= self.config.max_event_types:
                return  # bounded graph: new source types beyond the cap are not learned
            outgoing = self._transitions[previous] = {}
        if event_type not in outgoing and len(outgoing) >= self.config.max_event_types:
            return
        outgoing[event_type] = outgoing.get(event_type, 0.0) + 1.0
        self._transition_total += 1.0
        if self._transition_total > self.config.transition_count_cap:
            for targets in self._transitions.values():
                for target in targets:
                    targets[target] /= 2.0
            self._transition_total /= 2.0

    # --- per event type: volume --------------------------------------------------------------

    def _judge_volume(self, event_type: str, timestamp: float, reasons: list[Reason]) -> None:
        cfg = self.config
        bucket = math.floor(timestamp / cfg.volume_bucket_s)
        state = self._volumes.get(event_type)
        if state is None:
            if len(self._volumes) >= cfg.max_event_types:
                return
            state = self._volumes[event_type] = _VolumeState(bucket=bucket)
        if bucket > state.bucket:
            self._close_buckets(event_type, state, bucket, reasons)
        state.count += 1.0  # late events (bucket < current) count toward the current bucket
        # A spike shows before its bucket closes: judge the running count upward only.
        self._judge_bucket(event_type, state, state.bucket, state.count, reasons, rising=True)

    def _close_buckets(
        self, event_type: str, state: _VolumeState, new_bucket: int, reasons: list[Reason]
    ) -> None:
        cfg = self.config
        self._judge_bucket(event_type, state, state.bucket, state.count, reasons, rising=False)
        slots = self._slots()
        # Buckets with no events are zeros; a long silence fills at most one full history.
        first_empty = max(state.bucket + 1, new_bucket - slots * cfg.volume_history)
        self._remember(state, state.bucket, state.count)
        for empty in range(first_empty, new_bucket):
            self._remember(state, empty, 0.0)
        state.bucket, state.count = new_bucket, 0.0

    def _judge_bucket(
        self,
        event_type: str,
        state: _VolumeState,
        bucket: int,
        count: float,
        reasons: list[Reason],
        rising: bool,
    ) -> None:
        cfg = self.config
        history = state.history.get(bucket % self._slots(), [])
        if len(history) < cfg.volume_min_history:
            return
        z, median = robust_z(count, history)
        if rising and z <= 0.0:
            return
        if abs(z) < cfg.volume_robust_z or abs(count - median) < cfg.volume_min_deviation:
            return
        strength = clamp01(0.5 + 0.5 * (abs(z) - cfg.volume_robust_z) / cfg.volume_robust_z)
        when = "so far in this bucket" if rising else "in the bucket just closed"
        reasons.append(
            Reason(
                VOLUME,
                strength,
                f"{event_type}: {count:.0f} {when} vs median {median:.1f} at this "
                f"time of day (robust z {z:+.1f})",
            )
        )

    def _remember(self, state: _VolumeState, bucket: int, count: float) -> None:
        past = state.history.setdefault(bucket % self._slots(), [])
        past.append(count)
        del past[: -self.config.volume_history]

    def _slots(self) -> int:
        return max(1, round(self.config.volume_period_s / self.config.volume_bucket_s))

    def _user(self, user_id: str, timestamp: float) -> _UserState:
        user = self._users.get(user_id)
        if user is None:
            if len(self._users) >= self.config.max_users:
                keep = int(self.config.max_users * 0.9)  # evict a tenth: amortised O(1)
                ranked = sorted(self._users.items(), key=lambda kv: kv[1].last_time)
                self._users = dict(ranked[-keep:])
            user = self._users[user_id] = _UserState(first_time=timestamp, last_time=timestamp)
        return user

    # --- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "users": {
                uid: [u.first_time, u.last_time, u.last_type, u.recent, u.in_session, list(u.gaps)]
                for uid, u in self._users.items()
            },
            "transitions": {src: dict(dst) for src, dst in self._transitions.items()},
            "transition_total": self._transition_total,
            "volumes": {
                etype: {
                    "bucket": v.bucket,
                    "count": v.count,
                    "history": {str(slot): list(h) for slot, h in v.history.items()},
                }
                for etype, v in self._volumes.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserEventScorer:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported event scorer state version {data.get('version')!r}")
        raw = dict(data["config"])
        raw["forbidden_transitions"] = tuple(
            (str(a), str(b)) for a, b in raw["forbidden_transitions"]
        )
        for key in ("session_start", "session_end", "requires_session"):
            raw[key] = tuple(raw[key])
        scorer = cls(EventScorerConfig(**raw))
        for uid, (first, last, last_type, recent, in_session, gaps) in data["users"].items():
            scorer._users[uid] = _UserState(
                float(first),
                float(last),
                last_type,
                float(recent),
                bool(in_session),
                [float(g) for g in gaps],
            )
        scorer._transitions = {
            src: {dst: float(n) for dst, n in targets.items()}
            for src, targets in data["transitions"].items()
        }
        scorer._transition_total = float(data["transition_total"])
        for etype, v in data["volumes"].items():
            scorer._volumes[etype] = _VolumeState(
                bucket=int(v["bucket"]),
                count=float(v["count"]),
                history={int(s): [float(x) for x in h] for s, h in v["history"].items()},
            )
        return scorer
