"""GetSummary: distribution, counts, means and the per-day / per-week trend in the user's
time zone, DST changes included, against a real history process on every database."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from emotion.v1 import common_pb2, history_pb2
from tests.history.helpers import assert_status, record_request, scores, ts, utc

HAPPY, SAD, NEUTRAL = common_pb2.EXPRESSION_HAPPY, common_pb2.EXPRESSION_SAD, common_pb2.EXPRESSION_NEUTRAL
DAY, WEEK = history_pb2.BUCKET_SIZE_DAY, history_pb2.BUCKET_SIZE_WEEK


def summary(caller, zone: str = "", bucket: int = 0, start=None, end=None) -> history_pb2.GetSummaryResponse:
    request = history_pb2.GetSummaryRequest(time_zone=zone, bucket_size=bucket)
    if start is not None:
        request.time_range.start_time.CopyFrom(ts(start))
    if end is not None:
        request.time_range.end_time.CopyFrom(ts(end))
    return caller.GetSummary(request)


def trend(reply) -> list[tuple[str, int]]:
    return [(b.start_date, b.analyses) for b in reply.trend]


def record_at(caller, *instants, dominant=HAPPY) -> None:
    for at in instants:
        caller.RecordAnalysis(record_request(at, dominant))


def test_daily_buckets_follow_the_zone_across_spring_forward(history):
    alice = history.user()
    # Berlin springs forward on 2026-03-29 at 01:00 UTC (02:00 CET -> 03:00 CEST): 23-hour day.
    record_at(
        alice,
        utc(2026, 3, 28, 22, 30),  # 23:30 CET, 28 March
        utc(2026, 3, 28, 23, 30),  # 00:30 CET, 29 March (still 28 March in UTC)
        utc(2026, 3, 29, 21, 30),  # 23:30 CEST, 29 March (+01:00 would say 22:30, still the 29th)
        utc(2026, 3, 29, 22, 30),  # 00:30 CEST, 30 March (+01:00 would wrongly say the 29th)
    )
    reply = summary(alice, "Europe/Berlin", DAY)
    assert reply.time_zone == "Europe/Berlin"
    assert trend(reply) == [("2026-03-28", 1), ("2026-03-29", 2), ("2026-03-30", 1)]
    assert trend(summary(alice)) == [("2026-03-28", 2), ("2026-03-29", 2)]  # UTC by default
    assert summary(alice).time_zone == "UTC"


def test_daily_buckets_follow_the_zone_across_fall_back(history):
    alice = history.user()
    # New York falls back on 2026-11-01 at 06:00 UTC (02:00 EDT -> 01:00 EST): 25-hour day.
    record_at(
        alice,
        utc(2026, 11, 1, 3, 30),  # 23:30 EDT, 31 October
        utc(2026, 11, 1, 4, 30),  # 00:30 EDT, 1 November
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, 1 November
        utc(2026, 11, 1, 6, 30),  # 01:30 EST, 1 November (the repeated hour)
        utc(2026, 11, 2, 4, 30),  # 23:30 EST, 1 November (-04:00 would say 00:30 on the 2nd)
        utc(2026, 11, 2, 5, 30),  # 00:30 EST, 2 November
    )
    assert trend(summary(alice, "America/New_York")) == [
        ("2026-10-31", 1),
        ("2026-11-01", 4),
        ("2026-11-02", 1),
    ]


def test_half_hour_zone_and_range_bounds(history):
    alice = history.user()
    # Kolkata is +05:30 all year: 18:29 UTC is 23:59 local, 18:30 UTC is the next day.
    record_at(alice, utc(2026, 1, 10, 18, 29), utc(2026, 1, 10, 18, 30), utc(2026, 1, 12, 3))
    assert trend(summary(alice, "Asia/Kolkata")) == [("2026-01-10", 1), ("2026-01-11", 1), ("2026-01-12", 1)]
    # The range is [start, end): the 18:30 record starts it, the 03:00 one is outside it.
    bounded = summary(alice, "Asia/Kolkata", start=utc(2026, 1, 10, 18, 30), end=utc(2026, 1, 12, 3))
    assert bounded.total_analyses == 1 and trend(bounded) == [("2026-01-11", 1)]


def test_weekly_buckets_start_on_monday_in_the_zone(history):
    alice = history.user()
    record_at(
        alice,
        utc(2026, 3, 23, 8),  # Monday 23 March
        utc(2026, 3, 29, 21, 30),  # Sunday 29 March 23:30 CEST: same week in Berlin...
        utc(2026, 3, 29, 22, 30),  # ...but 00:30 Monday 30 March in Berlin: next week
        utc(2026, 4, 5, 12),  # Sunday 5 April
    )
    assert trend(summary(alice, "Europe/Berlin", WEEK)) == [("2026-03-23", 2), ("2026-03-30", 2)]
    assert trend(summary(alice, "UTC", WEEK)) == [("2026-03-23", 3), ("2026-03-30", 1)]
    # 1 January 2021 is a Friday of ISO week 53 of 2020, which starts on 28 December.
    bob = history.user()
    record_at(bob, utc(2021, 1, 1, 12))
    assert trend(summary(bob, bucket=WEEK)) == [("2020-12-28", 1)]


def test_counts_means_most_frequent_and_faces(history):
    alice = history.user()
    day = utc(2026, 9, 1, 12)
    alice.RecordAnalysis(record_request(day, HAPPY, faces=2))
    alice.RecordAnalysis(record_request(day + timedelta(hours=1), HAPPY))
    alice.RecordAnalysis(record_request(day + timedelta(days=1), SAD))
    live = record_request(day + timedelta(days=1, hours=1), faces=0, overall=scores(NEUTRAL, 0.4))
    alice.RecordAnalysis(live)
    alice.RecordAnalysis(record_request(day + timedelta(days=1, hours=2), faces=0))  # no face at all

    reply = summary(alice)
    assert reply.total_analyses == 5 and reply.total_faces == 4
    assert (reply.counts.happy, reply.counts.sad, reply.counts.neutral, reply.counts.angry) == (2, 1, 1, 0)
    assert reply.most_frequent == HAPPY
    # Means over the four analyses that found an expression (the faceless one has no scores).
    expected_happy = (0.7 + 0.7 + 0.05 + 0.1) / 4
    assert reply.mean_scores.happy == pytest.approx(expected_happy, abs=1e-5)
    first, second = reply.trend
    assert (first.start_date, first.analyses, first.counts.happy) == ("2026-09-01", 2, 2)
    assert first.mean_scores.happy == pytest.approx(0.7, abs=1e-5)
    assert (second.start_date, second.analyses, second.counts.sad, second.counts.neutral) == (
        "2026-09-02",
        3,
        1,
        1,
    )
    assert second.mean_scores.neutral == pytest.approx((0.05 + 0.4) / 2, abs=1e-5)


def test_empty_summary(history):
    reply = summary(history.user(), "Asia/Shanghai", WEEK)
    assert reply.total_analyses == 0 and not reply.trend
    assert reply.most_frequent == common_pb2.EXPRESSION_UNSPECIFIED
    assert reply.time_zone == "Asia/Shanghai"


def test_bad_summary_arguments(history):
    alice = history.user()
    for zone in ("Mars/Olympus_Mons", "../etc/passwd", "Europe/"):
        assert_status(grpc.StatusCode.INVALID_ARGUMENT, summary, alice, zone, match="time_zone")
    assert_status(grpc.StatusCode.INVALID_ARGUMENT, summary, alice, bucket=7, match="bucket_size")
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        summary,
        alice,
        start=utc(2026, 2, 1),
        end=utc(2026, 1, 1),
        match="time_range",
    )
