"""Summaries: the distribution of expressions and a per-day or per-week trend
in the user's own time zone.

Buckets are calendar days (or ISO weeks starting Monday) of the user's wall
clock, found by converting each UTC instant with zoneinfo, so days that are 23
or 25 hours long around DST changes, and zones offset by half or quarter
hours, come out right. That conversion is why the bucketing happens here and
not in SQL: the database returns only the few columns needed (time, dominant,
face count, seven scores), which for a year of one user's history is fast
(see docs/HISTORY.md for the measurement).

Means are over analyses that found a face: an analysis without faces has no
scores and would only pull every mean towards zero. It still counts in the
analysis totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

EXPRESSIONS = 7
DAY, WEEK = "day", "week"


@dataclass
class Tally:
    analyses: int = 0
    faces: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * EXPRESSIONS)
    score_sums: list[float] = field(default_factory=lambda: [0.0] * EXPRESSIONS)

    @property
    def scored(self) -> int:
        """Analyses with a dominant expression: the denominator of the means."""
        return sum(self.counts)

    def merge(self, other: Tally) -> None:
        self.analyses += other.analyses
        self.faces += other.faces
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.score_sums = [a + b for a, b in zip(self.score_sums, other.score_sums, strict=True)]

    @property
    def mean_scores(self) -> list[float]:
        scored = self.scored
        return [s / scored for s in self.score_sums] if scored else [0.0] * EXPRESSIONS

    @property
    def most_frequent(self) -> int:
        """Expression enum value with the highest count; ties go to the earlier FER-2013 label."""
        if not self.scored:
            return 0
        return max(range(EXPRESSIONS), key=lambda i: (self.counts[i], -i)) + 1


@dataclass
class Summary:
    total: Tally
    buckets: list[tuple[date, Tally]]  # in time order, only buckets with analyses


def bucket_start(local_day: date, bucket: str) -> date:
    return local_day - timedelta(days=local_day.weekday()) if bucket == WEEK else local_day


def summarise(rows: Iterable[tuple], zone: ZoneInfo, bucket: str) -> Summary:
    """`rows` are (captured_at UTC, dominant, face_count, seven scores...) tuples, in any order."""
    # Per local day, one flat accumulator: [analyses, faces, count of dominant 0..7, 7 score sums].
    # This loop is the whole per-row cost, so it stays flat. Faceless analyses have dominant 0
    # and all-zero scores: they count as analyses and add nothing to the score sums.
    days: dict[date, list] = {}
    for captured_at, dominant, face_count, angry, disgust, fear, happy, sad, surprise, neutral in rows:
        day = captured_at.astimezone(zone).date()
        acc = days.get(day)
        if acc is None:
            acc = days[day] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        acc[0] += 1
        acc[1] += face_count
        acc[2 + dominant] += 1
        acc[10] += angry
        acc[11] += disgust
        acc[12] += fear
        acc[13] += happy
        acc[14] += sad
        acc[15] += surprise
        acc[16] += neutral
    if bucket == WEEK:
        buckets: dict[date, Tally] = {}
        for day, acc in days.items():
            tally = Tally(acc[0], acc[1], acc[3:10], acc[10:17])
            start = bucket_start(day, bucket)
            if start in buckets:
                buckets[start].merge(tally)
            else:
                buckets[start] = tally
    else:
        buckets = {day: Tally(acc[0], acc[1], acc[3:10], acc[10:17]) for day, acc in days.items()}
    # Column sums over all days at once, rather than merging bucket by bucket.
    columns = [sum(column) for column in zip(*days.values(), strict=True)] or [0] * 17
    total = Tally(columns[0], columns[1], columns[3:10], columns[10:17])
    return Summary(total, sorted(buckets.items()))
