"""Recording, reading, paging, filtering, deleting and exporting analyses, against a real
history process on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from emotion.v1 import common_pb2, history_pb2
from services.common.ids import analysis_id
from tests.history.helpers import assert_status, face, record_request, scores, ts, utc

HAPPY, SAD, NEUTRAL, ANGRY = (
    common_pb2.EXPRESSION_HAPPY,
    common_pb2.EXPRESSION_SAD,
    common_pb2.EXPRESSION_NEUTRAL,
    common_pb2.EXPRESSION_ANGRY,
)
CAMERA, ALBUM, LIVE = common_pb2.SOURCE_CAMERA, common_pb2.SOURCE_ALBUM, common_pb2.SOURCE_LIVE
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"


def list_all(caller, **fields) -> list[history_pb2.Analysis]:
    items, token = [], ""
    while True:
        reply = caller.ListAnalyses(history_pb2.ListAnalysesRequest(page_token=token, **fields))
        items.extend(reply.analyses)
        token = reply.next_page_token
        if not token:
            return items


def test_record_stores_faces_overall_and_dominant(history):
    alice = history.user()
    at = utc(2026, 5, 4, 12, 30, 15, 123456)
    request = record_request(at, faces=0, source=ALBUM)
    request.faces.extend([face(HAPPY, x=5, peak=0.9), face(SAD, x=100, peak=0.5)])
    stored = alice.RecordAnalysis(request)
    assert stored.created
    analysis = stored.analysis
    uuid.UUID(analysis.id)
    assert analysis.user_id == alice.user_id and analysis.request_id == request.request_id
    assert analysis.captured_at.ToDatetime(UTC) == at  # microseconds survive every database
    assert abs(analysis.created_at.ToDatetime(UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert analysis.source == ALBUM and analysis.model_version == "test-1"
    assert [f.dominant for f in analysis.faces] == [HAPPY, SAD]
    assert [f.box.x for f in analysis.faces] == [5, 100]
    assert analysis.faces[0].emoji == "😀" and abs(analysis.faces[0].detection_score - 0.9) < 1e-6
    assert abs(analysis.faces[1].scores.sad - 0.5) < 1e-6
    # Overall unset: the mean of the faces; its dominant is the highest mean score.
    assert abs(analysis.overall.happy - (0.9 + 0.5 / 6) / 2) < 1e-6
    assert analysis.dominant == HAPPY
    assert analysis.thumbnail_jpeg == b""
    assert alice.GetAnalysis(history_pb2.GetAnalysisRequest(analysis_id=analysis.id)).analysis == analysis


def test_explicit_overall_no_faces_and_thumbnail(history):
    alice = history.user()
    live = record_request(faces=0, source=LIVE, overall=scores(NEUTRAL, 0.6), thumbnail_jpeg=JPEG)
    stored = alice.RecordAnalysis(live).analysis
    assert stored.dominant == NEUTRAL and not stored.faces and stored.thumbnail_jpeg == JPEG
    nothing = alice.RecordAnalysis(record_request(faces=0)).analysis
    assert nothing.dominant == common_pb2.EXPRESSION_UNSPECIFIED and nothing.overall.happy == 0
    # captured_at unset: the server's clock.
    assert abs(nothing.captured_at.ToDatetime(UTC) - datetime.now(UTC)) < timedelta(minutes=1)


def test_record_is_idempotent_per_user(history):
    alice, bob = history.user(), history.user()
    first = alice.RecordAnalysis(record_request(request_id="retry-1"))
    again = alice.RecordAnalysis(record_request(request_id="retry-1", dominant=SAD))
    assert first.created and not again.created
    assert again.analysis == first.analysis  # the stored record, not the retried content
    other = bob.RecordAnalysis(record_request(request_id="retry-1"))
    assert other.created and other.analysis.id != first.analysis.id
    assert len(list_all(alice)) == 1
    # The id is derived from (user, request id), so the gateway can name a record it has queued.
    assert first.analysis.id == analysis_id(first.analysis.user_id, "retry-1")


def test_concurrent_duplicates_resolve_to_one_row(history):
    alice = history.user()
    request = record_request()
    barrier, replies, errors = threading.Barrier(8), [], []

    def record() -> None:
        barrier.wait()
        try:
            replies.append(alice.RecordAnalysis(request))
        except grpc.RpcError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, [e.details() for e in errors]
    assert sum(r.created for r in replies) == 1
    assert len({r.analysis.id for r in replies}) == 1
    assert len(list_all(alice)) == 1


def test_service_records_for_any_user(history):
    service, carol = history.service(), history.user()
    stored = service.RecordAnalysis(record_request(user_id=carol.user_id)).analysis
    assert stored.user_id == carol.user_id
    assert [a.id for a in list_all(carol)] == [stored.id]
    assert_status(grpc.StatusCode.INVALID_ARGUMENT, service.RecordAnalysis, record_request(), match="user_id")


def test_user_cannot_record_for_someone_else(history):
    alice, bob = history.user(), history.user()
    assert_status(
        grpc.StatusCode.PERMISSION_DENIED,
        alice.RecordAnalysis,
        record_request(user_id=bob.user_id),
        match="user_id",
    )
    assert list_all(bob) == []


def test_record_rejects_bad_arguments_naming_the_field(history):
    alice = history.user()
    bad_face = record_request(faces=0)
    bad_face.faces.append(common_pb2.FaceResult(scores=common_pb2.ExpressionScores(happy=1.5)))
    cases = {
        "request_id": record_request(request_id="x" * 129),
        "source": record_request(source=common_pb2.SOURCE_UNSPECIFIED),
        "faces[0].scores": bad_face,
        "thumbnail_jpeg": record_request(thumbnail_jpeg=b"\xff\xd8\xff" + b"\x00" * (64 * 1024)),
        "captured_at": record_request(at=datetime.now(UTC) + timedelta(days=3)),
        "overall": record_request(overall=common_pb2.ExpressionScores(sad=-0.1)),
    }
    no_request_id = record_request()
    no_request_id.request_id = ""
    cases["request_id: required"] = no_request_id
    not_jpeg = record_request(thumbnail_jpeg=b"\x89PNG\r\n")
    for field, request in cases.items():
        assert_status(grpc.StatusCode.INVALID_ARGUMENT, alice.RecordAnalysis, request, match=field)
    assert_status(grpc.StatusCode.INVALID_ARGUMENT, alice.RecordAnalysis, not_jpeg, match="not a JPEG")
    assert list_all(alice) == []


def test_paging_has_no_gaps_or_repeats_while_records_arrive(history):
    alice = history.user()
    base = utc(2026, 6, 1, 8)
    # 23 analyses, with runs of identical capture times so the id tie-break is exercised.
    originals = [
        alice.RecordAnalysis(record_request(base + timedelta(minutes=i // 3))).analysis.id for i in range(23)
    ]
    seen, token, page_sizes = [], "", []
    while True:
        reply = alice.ListAnalyses(history_pb2.ListAnalysesRequest(page_size=5, page_token=token))
        seen.extend(reply.analyses)
        page_sizes.append(len(reply.analyses))
        # Newer records (and one at the newest existing time) arrive between pages.
        alice.RecordAnalysis(record_request(datetime.now(UTC)))
        alice.RecordAnalysis(record_request(base + timedelta(minutes=7)))
        token = reply.next_page_token
        if not token:
            break
    assert page_sizes == [5, 5, 5, 5, 3]
    ids = [a.id for a in seen]
    assert len(ids) == len(set(ids)) == 23 and set(ids) == set(originals)
    keys = [(a.captured_at.ToDatetime(UTC), a.id) for a in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id


def test_page_size_and_token_rules(history):
    alice = history.user()
    for _ in range(22):
        alice.RecordAnalysis(record_request())
    first = alice.ListAnalyses(history_pb2.ListAnalysesRequest())
    assert len(first.analyses) == 20 and first.next_page_token
    assert len(alice.ListAnalyses(history_pb2.ListAnalysesRequest(page_size=100)).analyses) == 22
    for size in (-1, 101):
        assert_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            alice.ListAnalyses,
            history_pb2.ListAnalysesRequest(page_size=size),
            match="page_size",
        )
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.ListAnalyses,
        history_pb2.ListAnalysesRequest(page_token="not-a-token"),
        match="page_token",
    )
    # A token only continues the query it came from.
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.ListAnalyses,
        history_pb2.ListAnalysesRequest(page_token=first.next_page_token, source=CAMERA),
        match="page_token",
    )
    bob = history.user()
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        bob.ListAnalyses,
        history_pb2.ListAnalysesRequest(page_token=first.next_page_token),
        match="page_token",
    )


def test_filters_by_time_range_source_and_dominant(history):
    alice = history.user()
    day = utc(2026, 7, 1)
    made = {
        "camera-happy-0": alice.RecordAnalysis(record_request(day, HAPPY, CAMERA)).analysis.id,
        "album-sad-1": alice.RecordAnalysis(record_request(day + timedelta(hours=1), SAD, ALBUM)).analysis.id,
        "live-happy-2": alice.RecordAnalysis(
            record_request(day + timedelta(hours=2), HAPPY, LIVE)
        ).analysis.id,
        "camera-sad-3": alice.RecordAnalysis(
            record_request(day + timedelta(hours=3), SAD, CAMERA)
        ).analysis.id,
    }

    def names(**fields) -> list[str]:
        by_id = {v: k for k, v in made.items()}
        return [by_id[a.id] for a in list_all(alice, **fields)]

    window = common_pb2.TimeRange(
        start_time=ts(day + timedelta(hours=1)), end_time=ts(day + timedelta(hours=3))
    )
    assert names(time_range=window) == ["live-happy-2", "album-sad-1"]  # [start, end)
    assert names(time_range=common_pb2.TimeRange(start_time=ts(day + timedelta(hours=2)))) == [
        "camera-sad-3",
        "live-happy-2",
    ]
    assert names(time_range=common_pb2.TimeRange(end_time=ts(day + timedelta(hours=1)))) == ["camera-happy-0"]
    assert names(source=CAMERA) == ["camera-sad-3", "camera-happy-0"]
    assert names(dominant=HAPPY) == ["live-happy-2", "camera-happy-0"]
    assert names(dominant=SAD, source=ALBUM) == ["album-sad-1"]
    assert names(dominant=ANGRY) == []
    backwards = common_pb2.TimeRange(start_time=ts(day + timedelta(hours=3)), end_time=ts(day))
    for request in (
        history_pb2.ListAnalysesRequest(time_range=backwards),
        history_pb2.ListAnalysesRequest(source=9),
        history_pb2.ListAnalysesRequest(dominant=42),
    ):
        assert_status(grpc.StatusCode.INVALID_ARGUMENT, alice.ListAnalyses, request)


def test_get_and_delete_only_own_analyses(history):
    alice, bob = history.user(), history.user()
    mine = alice.RecordAnalysis(record_request()).analysis
    theirs = bob.RecordAnalysis(record_request()).analysis
    get = history_pb2.GetAnalysisRequest
    assert_status(grpc.StatusCode.NOT_FOUND, alice.GetAnalysis, get(analysis_id=theirs.id))
    assert_status(
        grpc.StatusCode.NOT_FOUND,
        alice.DeleteAnalysis,
        history_pb2.DeleteAnalysisRequest(analysis_id=theirs.id),
    )
    assert bob.GetAnalysis(get(analysis_id=theirs.id)).analysis == theirs  # untouched
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT, alice.GetAnalysis, get(analysis_id="nope"), match="analysis_id"
    )
    assert_status(grpc.StatusCode.INVALID_ARGUMENT, alice.GetAnalysis, get(), match="analysis_id")

    alice.DeleteAnalysis(history_pb2.DeleteAnalysisRequest(analysis_id=mine.id))
    assert_status(grpc.StatusCode.NOT_FOUND, alice.GetAnalysis, get(analysis_id=mine.id))
    assert_status(
        grpc.StatusCode.NOT_FOUND,
        alice.DeleteAnalysis,
        history_pb2.DeleteAnalysisRequest(analysis_id=mine.id),
    )
    assert list_all(alice) == []
    # The request id is free again after deletion.
    assert alice.RecordAnalysis(record_request(request_id=mine.request_id)).created


def test_delete_all_for_user(history):
    alice, bob, counselor = history.user(), history.user(), history.counselor()
    for _ in range(3):
        alice.RecordAnalysis(record_request())
    kept = bob.RecordAnalysis(record_request()).analysis
    alice.GrantAccess(history_pb2.GrantAccessRequest(counselor_id=counselor.user_id))
    counselor.ListAnalyses(history_pb2.ListAnalysesRequest(user_id=alice.user_id))
    assert_status(
        grpc.StatusCode.PERMISSION_DENIED,
        alice.DeleteAllForUser,
        history_pb2.DeleteAllForUserRequest(user_id=bob.user_id),
    )
    reply = alice.DeleteAllForUser(history_pb2.DeleteAllForUserRequest())
    assert reply.deleted_analyses == 3
    assert list_all(alice) == []
    assert not alice.ListGrants().grants and not alice.ListAuditEvents().events
    assert not counselor.ListClients().clients
    assert [a.id for a in list_all(bob)] == [kept.id]
    # Account deletion goes through a service token, for any user.
    assert (
        history.service("auth")
        .DeleteAllForUser(history_pb2.DeleteAllForUserRequest(user_id=bob.user_id))
        .deleted_analyses
        == 1
    )
    assert list_all(bob) == []


def test_delete_all_removes_a_counselors_grants_and_audit_trail(history):
    client, counselor = history.user(), history.counselor()
    client.RecordAnalysis(record_request())
    client.GrantAccess(history_pb2.GrantAccessRequest(counselor_id=counselor.user_id))
    counselor.GetSummary(history_pb2.GetSummaryRequest(user_id=client.user_id))
    history.service("auth").DeleteAllForUser(history_pb2.DeleteAllForUserRequest(user_id=counselor.user_id))
    assert not client.ListGrants().grants and not client.ListAuditEvents().events
    assert len(list_all(client)) == 1


def test_export_csv_one_row_per_face_and_json(history):
    alice = history.user()
    two_faces = alice.RecordAnalysis(record_request(utc(2026, 8, 1, 9), faces=2)).analysis
    no_face = alice.RecordAnalysis(record_request(utc(2026, 8, 2, 9), faces=0, source=ALBUM)).analysis
    with_thumb = alice.RecordAnalysis(record_request(utc(2026, 8, 3, 9), thumbnail_jpeg=JPEG)).analysis

    exported = alice.ExportHistory(history_pb2.ExportHistoryRequest(format=history_pb2.EXPORT_FORMAT_CSV))
    assert exported.content_type == "text/csv" and exported.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [r["analysis_id"] for r in rows] == [with_thumb.id, no_face.id, two_faces.id, two_faces.id]
    assert [r["face_index"] for r in rows] == ["0", "", "0", "1"]
    assert rows[1]["source"] == "album" and rows[1]["dominant"] == ""
    assert rows[2]["captured_at"] == "2026-08-01T09:00:00Z" and rows[2]["face_dominant"] == "happy"
    assert rows[3]["box_x"] == "10" and float(rows[3]["face_happy"]) == 0.7

    exported = alice.ExportHistory(history_pb2.ExportHistoryRequest(format=history_pb2.EXPORT_FORMAT_JSON))
    assert exported.content_type == "application/json" and exported.filename.endswith(".json")
    document = json.loads(exported.content)
    assert document["user_id"] == alice.user_id
    analyses = document["analyses"]
    assert [a["id"] for a in analyses] == [with_thumb.id, no_face.id, two_faces.id]
    assert analyses[2]["dominant"] == "happy" and len(analyses[2]["faces"]) == 2
    assert analyses[2]["faces"][1]["box"] == {"x": 10, "y": 20, "width": 48, "height": 48}
    assert "thumbnail_jpeg_base64" in analyses[0] and "thumbnail_jpeg_base64" not in analyses[1]
    assert_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.ExportHistory,
        history_pb2.ExportHistoryRequest(),
        match="format",
    )


def test_unauthenticated_calls_are_refused(history, signer):
    from services.common.keys import generate_private_pem, public_pem_of
    from tests.history.helpers import Caller, Signer

    other_key = generate_private_pem()
    forged = Signer(other_key, public_pem_of(other_key))
    tokens = {
        "no token": None,
        "garbage": "not.a.jwt",
        "unknown key": forged.token("mallory"),
        "expired": signer.token("alice", exp=1_000_000_000, iat=999_999_000),
        "refresh token": signer.token("alice", typ="refresh"),
        "wrong audience": signer.token("alice", aud="someone-else"),
    }
    for name, token in tokens.items():
        caller = Caller(history.stub, token, "alice")
        error = assert_status(grpc.StatusCode.UNAUTHENTICATED, caller.ListAnalyses)
        assert error.details(), name
        assert_status(grpc.StatusCode.UNAUTHENTICATED, caller.RecordAnalysis, record_request())
