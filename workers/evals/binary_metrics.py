"""Ranking metrics for a score against binary labels: ROC-AUC and the best F1 over thresholds.

Both treat tied scores as one threshold step: lines with equal scores are always flagged
together, so no metric can profit from the order in which ties happen to arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a random positive > that of a random negative), ties counting one half.

    Mann-Whitney U with mid-ranks for tied scores. None when a class is empty.
    """
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    positive_rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        mid_rank = (start + end) / 2.0 + 1.0  # ranks are 1-based
        positive_rank_sum += mid_rank * sum(1 for i in order[start : end + 1] if labels[i])
        start = end + 1
    u = positive_rank_sum - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


@dataclass(frozen=True, slots=True)
class F1Point:
    f1: float | None
    precision: float | None
    recall: float | None
    threshold: float | None  # flag lines with score >= threshold


def best_f1(scores: Sequence[float], labels: Sequence[bool]) -> F1Point:
    """The highest F1 over every threshold 'score >= t', t ranging over the distinct scores."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    positives = sum(1 for y in labels if y)
    if positives == 0:
        return F1Point(None, None, None, None)
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    best = F1Point(0.0, 0.0, 0.0, None)
    true_pos = flagged = 0
    start = 0
    while start < len(order):
        threshold = scores[order[start]]
        end = start
        while end < len(order) and scores[order[end]] == threshold:
            true_pos += 1 if labels[order[end]] else 0
            flagged += 1
            end += 1
        precision = true_pos / flagged
        recall = true_pos / positives
        f1 = 2 * precision * recall / (precision + recall) if true_pos else 0.0
        if best.f1 is None or f1 > best.f1:
            best = F1Point(f1, precision, recall, threshold)
        start = end
    return best
