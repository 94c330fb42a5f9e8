"""Consented sharing with counsellors and the audit trail, and every access rule, against a
real history process on every database. Identities come only from the verified token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc

from emotion.v1 import history_pb2
from tests.history.helpers import assert_status, record_request, utc

DENIED, NOT_FOUND, INVALID = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
)


def grant(client, counselor, **fields) -> history_pb2.Grant:
    return client.GrantAccess(
        history_pb2.GrantAccessRequest(
            counselor_id=counselor.user_id, counselor_username="dr-lee", organization="Campus Care", **fields
        )
    ).grant


def reads(counselor, client, analysis_id: str) -> dict:
    """The three counsellor reads of `client`'s history, as callables."""
    return {
        "ListAnalyses": lambda: counselor.ListAnalyses(
            history_pb2.ListAnalysesRequest(user_id=client.user_id)
        ),
        "GetAnalysis": lambda: counselor.GetAnalysis(
            history_pb2.GetAnalysisRequest(user_id=client.user_id, analysis_id=analysis_id)
        ),
        "GetSummary": lambda: counselor.GetSummary(history_pb2.GetSummaryRequest(user_id=client.user_id)),
    }


def test_counselor_without_grant_is_refused(history):
    client, counselor = history.user(), history.counselor()
    analysis = client.RecordAnalysis(record_request()).analysis
    for name, read in reads(counselor, client, analysis.id).items():
        assert_status(DENIED, read, match="not granted", what=name)
    assert not client.ListAuditEvents().events
    assert_status(INVALID, counselor.ListAnalyses, history_pb2.ListAnalysesRequest(), match="user_id")


def test_granted_counselor_reads_and_every_read_is_audited(history):
    client, counselor = history.user(username="sam"), history.counselor()
    first = client.RecordAnalysis(record_request(utc(2026, 10, 1, 9))).analysis
    latest = client.RecordAnalysis(record_request(utc(2026, 10, 2, 9))).analysis
    granted = grant(client, counselor, client_username="ignored-when-the-token-names-the-user")
    assert granted.counselor_id == counselor.user_id and granted.organization == "Campus Care"
    assert granted.counselor_username == "dr-lee" and not granted.HasField("revoked_at")

    listed = counselor.ListAnalyses(history_pb2.ListAnalysesRequest(user_id=client.user_id))
    assert [a.id for a in listed.analyses] == [latest.id, first.id]
    got = counselor.GetAnalysis(history_pb2.GetAnalysisRequest(user_id=client.user_id, analysis_id=first.id))
    assert got.analysis == first
    assert counselor.GetSummary(history_pb2.GetSummaryRequest(user_id=client.user_id)).total_analyses == 2

    events = client.ListAuditEvents().events
    assert [e.action for e in events] == ["GetSummary", "GetAnalysis", "ListAnalyses"]  # newest first
    assert {e.counselor_id for e in events} == {counselor.user_id}
    assert [e.analysis_id for e in events] == ["", first.id, ""]
    assert all(abs(e.occurred_at.ToDatetime(UTC) - datetime.now(UTC)) < timedelta(minutes=1) for e in events)

    (entry,) = counselor.ListClients().clients
    assert entry.user_id == client.user_id and entry.username == "sam" and entry.analyses == 2
    assert entry.last_analysis_at.ToDatetime(UTC) == utc(2026, 10, 2, 9)
    assert entry.granted_at == granted.granted_at


def test_revoked_grant_is_refused_at_once_and_can_be_renewed(history):
    client, counselor = history.user(), history.counselor()
    analysis = client.RecordAnalysis(record_request()).analysis
    grant(client, counselor)
    counselor.GetSummary(history_pb2.GetSummaryRequest(user_id=client.user_id))
    client.RevokeAccess(history_pb2.RevokeAccessRequest(counselor_id=counselor.user_id))
    client.RevokeAccess(history_pb2.RevokeAccessRequest(counselor_id=counselor.user_id))  # idempotent
    for read in reads(counselor, client, analysis.id).values():
        assert_status(DENIED, read)
    (revoked,) = client.ListGrants().grants
    assert revoked.HasField("revoked_at") and revoked.revoked_at.ToDatetime(
        UTC
    ) >= revoked.granted_at.ToDatetime(UTC)
    assert not counselor.ListClients().clients
    assert len(client.ListAuditEvents().events) == 1  # refused reads are not reads

    renewed = grant(client, counselor)
    assert not renewed.HasField("revoked_at")
    assert len(counselor.ListAnalyses(history_pb2.ListAnalysesRequest(user_id=client.user_id)).analyses) == 1
    assert len(client.ListGrants().grants) == 1 and len(counselor.ListClients().clients) == 1


def test_a_grant_covers_only_the_client_who_gave_it(history):
    client, stranger, counselor, other_counselor = (
        history.user(),
        history.user(),
        history.counselor(),
        history.counselor(),
    )
    strangers_analysis = stranger.RecordAnalysis(record_request()).analysis
    grant(client, counselor)
    grant(stranger, other_counselor)
    # Not granted by the stranger: refused, even though the counsellor has another client.
    for read in reads(counselor, stranger, strangers_analysis.id).values():
        assert_status(DENIED, read)
    # The stranger's analysis id looked up under the granting client: does not exist there.
    assert_status(
        NOT_FOUND,
        counselor.GetAnalysis,
        history_pb2.GetAnalysisRequest(user_id=client.user_id, analysis_id=strangers_analysis.id),
    )
    assert [c.user_id for c in counselor.ListClients().clients] == [client.user_id]
    assert not stranger.ListAuditEvents().events


def test_counselors_cannot_write(history):
    client, counselor = history.user(), history.counselor()
    analysis = client.RecordAnalysis(record_request()).analysis
    grant(client, counselor)
    writes = {
        "RecordAnalysis": lambda: counselor.RecordAnalysis(record_request(user_id=client.user_id)),
        "RecordAnalysis (own)": lambda: counselor.RecordAnalysis(record_request()),
        "DeleteAnalysis": lambda: counselor.DeleteAnalysis(
            history_pb2.DeleteAnalysisRequest(analysis_id=analysis.id)
        ),
        "DeleteAllForUser": lambda: counselor.DeleteAllForUser(
            history_pb2.DeleteAllForUserRequest(user_id=client.user_id)
        ),
        "ExportHistory": lambda: counselor.ExportHistory(
            history_pb2.ExportHistoryRequest(format=history_pb2.EXPORT_FORMAT_JSON)
        ),
        "GrantAccess": lambda: counselor.GrantAccess(
            history_pb2.GrantAccessRequest(counselor_id=client.user_id)
        ),
        "RevokeAccess": lambda: counselor.RevokeAccess(history_pb2.RevokeAccessRequest(counselor_id="x")),
        "ListGrants": counselor.ListGrants,
        "ListAuditEvents": counselor.ListAuditEvents,
    }
    for name, write in writes.items():
        assert_status(DENIED, write, what=name)
    assert client.GetAnalysis(history_pb2.GetAnalysisRequest(analysis_id=analysis.id)).analysis == analysis


def test_users_cannot_read_other_users(history):
    alice, bob = history.user(), history.user()
    bobs = bob.RecordAnalysis(record_request()).analysis
    assert_status(
        DENIED, alice.ListAnalyses, history_pb2.ListAnalysesRequest(user_id=bob.user_id), match="user_id"
    )
    assert_status(
        DENIED, alice.GetSummary, history_pb2.GetSummaryRequest(user_id=bob.user_id), match="user_id"
    )
    assert_status(
        DENIED, alice.GetAnalysis, history_pb2.GetAnalysisRequest(user_id=bob.user_id, analysis_id=bobs.id)
    )
    assert_status(NOT_FOUND, alice.GetAnalysis, history_pb2.GetAnalysisRequest(analysis_id=bobs.id))
    assert_status(DENIED, alice.ListClients, match="counsellors")
    # A user naming themselves is fine.
    assert alice.ListAnalyses(history_pb2.ListAnalysesRequest(user_id=alice.user_id)).analyses == []
    # Services write for users but do not read their history.
    assert_status(
        DENIED, history.service().ListAnalyses, history_pb2.ListAnalysesRequest(user_id=bob.user_id)
    )


def test_grant_arguments(history):
    alice, counselor = history.user(), history.counselor()
    assert_status(INVALID, alice.GrantAccess, history_pb2.GrantAccessRequest(), match="counselor_id")
    assert_status(
        INVALID,
        alice.GrantAccess,
        history_pb2.GrantAccessRequest(counselor_id=alice.user_id),
        match="yourself",
    )
    assert_status(
        INVALID,
        alice.GrantAccess,
        history_pb2.GrantAccessRequest(counselor_id=counselor.user_id, organization="x" * 201),
        match="organization",
    )
    assert_status(
        NOT_FOUND, alice.RevokeAccess, history_pb2.RevokeAccessRequest(counselor_id=counselor.user_id)
    )
    assert_status(INVALID, alice.RevokeAccess, history_pb2.RevokeAccessRequest(), match="counselor_id")
    first, again = grant(alice, counselor), grant(alice, counselor)  # granting twice keeps one grant
    assert first.granted_at == again.granted_at and len(alice.ListGrants().grants) == 1


def test_audit_events_page_newest_first(history):
    client, counselor = history.user(), history.counselor()
    grant(client, counselor)
    for _ in range(5):
        counselor.GetSummary(history_pb2.GetSummaryRequest(user_id=client.user_id))
    seen, token = [], ""
    while True:
        page = client.ListAuditEvents(history_pb2.ListAuditEventsRequest(page_size=2, page_token=token))
        seen.extend(page.events)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len({e.id for e in seen}) == 5
    times = [e.occurred_at.ToDatetime(UTC) for e in seen]
    assert times == sorted(times, reverse=True)
    assert_status(
        INVALID, client.ListAuditEvents, history_pb2.ListAuditEventsRequest(page_size=500), match="page_size"
    )
