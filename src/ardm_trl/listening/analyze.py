"""Turn the answers of a CMOS test into a CMOS with a confidence interval.

Score convention: every rating is un-swapped with the key and read from the point of view of the system under test,
+2 (system much better than the baseline) ... 0 (no preference) ... -2 (baseline much better). The CMOS is the mean
over all ratings (items x listeners), and its confidence interval is the Student-t interval of that mean,
`mean ± t_{(1+c)/2, n-1} * s / sqrt(n)` with `s` the sample standard deviation of the n ratings; the paper reports
such means as `CMOS ± half-width` (e.g. "0.05 ± 0.13").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answers import CHOICE_VALUES, load_answers, validate_submission
from .build import ANSWERS_FILE, load_key
from .page import TEST_TYPES

__all__ = ["CMOSResult", "analyze_cmos", "cmos_scores", "cmos_table", "t_confidence_interval"]


@dataclass
class CMOSResult:
    """CMOS of a system under test against a baseline.

    Attributes:
        cmos: mean score (positive: the system under test is preferred).
        ci_low, ci_high: the confidence interval of the mean (NaN with fewer than two ratings).
        half_width: `(ci_high - ci_low) / 2`, the "±" of the paper's tables.
        std: sample standard deviation of the ratings.
        num_ratings, num_items, num_listeners: what the mean is over.
        per_listener: each listener's mean score.
        scores: the ratings, as `{"listener", "item", "score"}` rows.
    """

    test_type: str
    system_name: str
    baseline_name: str
    cmos: float
    ci_low: float
    ci_high: float
    half_width: float
    std: float
    confidence: float
    num_ratings: int
    num_items: int
    num_listeners: int
    per_listener: dict[str, float] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return f"{self.cmos:.2f} ± {self.half_width:.2f}"


def t_confidence_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """`(mean, half_width, std)` of the Student-t confidence interval of the mean of `values`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    n = len(values)
    if n == 0:
        raise ValueError("No ratings to average.")
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    try:
        from scipy.stats import t as student_t
    except ImportError as error:  # pragma: no cover - scipy ships with the `speech` extra
        raise ImportError("The CMOS confidence interval needs scipy: `pip install scipy` (or ardm_trl[speech]).") \
            from error
    return mean, float(student_t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n), std


def cmos_scores(submissions: Sequence[dict[str, Any]], key: dict[str, Any]) -> list[dict[str, Any]]:
    """Un-swap the answers with the key: one `{"listener", "item", "score"}` row per rating, scored for the system
    under test. A listener who submitted more than once counts once, with their last submission."""
    sides = {item["id"]: item["system_side"] for item in key["items"]}
    latest: dict[str, dict[str, Any]] = {}
    for number, submission in enumerate(submissions, start=1):
        validate_submission(submission, key, source=f"submission {number}")
        latest[submission["listener"].strip()] = submission
    rows = []
    for listener, submission in latest.items():
        for answer in submission["answers"]:
            preference_for_a = CHOICE_VALUES[answer["choice"]]
            score = preference_for_a if sides[answer["item"]] == "A" else -preference_for_a
            rows.append({"listener": listener, "item": answer["item"], "score": score})
    return rows


def analyze_cmos(
    test_dir: str | Path, confidence: float = 0.95, answers_path: str | Path | None = None
) -> CMOSResult:
    """CMOS of a test folder's answers.

    Args:
        test_dir (`str` or `Path`):
            A folder made by [`build_cmos_test`] (its `key.json` says which side was which system).
        confidence (`float`, *optional*, defaults to `0.95`):
            Level of the Student-t confidence interval.
        answers_path (`str` or `Path`, *optional*):
            The answers file; defaults to `test_dir/answers.jsonl`.

    Raises:
        `ValueError`: no answers, answers of another build, or answers of unknown items.
    """
    key = load_key(test_dir)
    answers_path = Path(answers_path) if answers_path is not None else Path(test_dir) / ANSWERS_FILE
    rows = cmos_scores(load_answers(answers_path), key)
    if not rows:
        raise ValueError(f"{answers_path} holds no answers.")
    scores = [row["score"] for row in rows]
    mean, half_width, std = t_confidence_interval(scores, confidence)
    listeners: dict[str, list[int]] = {}
    for row in rows:
        listeners.setdefault(row["listener"], []).append(row["score"])
    return CMOSResult(
        test_type=key["test_type"], system_name=key["system_name"], baseline_name=key["baseline_name"],
        cmos=mean, ci_low=mean - half_width, ci_high=mean + half_width, half_width=half_width, std=std,
        confidence=confidence, num_ratings=len(rows), num_items=len({row["item"] for row in rows}),
        num_listeners=len(listeners), per_listener={k: sum(v) / len(v) for k, v in listeners.items()}, scores=rows,
    )


def cmos_table(results: Sequence[CMOSResult]) -> str:
    """A markdown table with one row per result, in the paper's `CMOS ± half-width` form."""
    lines = ["| Test | System | Baseline | CMOS | CI | Ratings | Items | Listeners |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        interval = f"[{r.ci_low:.2f}, {r.ci_high:.2f}] ({r.confidence:.0%})"
        lines.append(f"| {TEST_TYPES[r.test_type].short} | {r.system_name} | {r.baseline_name} | {r} | {interval} | "
                     f"{r.num_ratings} | {r.num_items} | {r.num_listeners} |")
    return "\n".join(lines)
