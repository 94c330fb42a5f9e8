"""The mobile client's flows through the public gRPC API, against the real services."""

from __future__ import annotations

import grpc
import pytest

from emotion.v1 import auth_pb2, common_pb2, gateway_pb2, history_pb2
from tests.gateway.helpers import PASSWORD, Mobile, history_rows, photo, unique


def test_account_flow(mobile: Mobile):
    user = mobile.register()
    assert user.role == auth_pb2.ROLE_USER
    login = mobile.login(user.username)
    assert mobile.call("GetProfile", auth_pb2.GetProfileRequest()).user.id == user.id

    updated = mobile.call("UpdateProfile", auth_pb2.UpdateProfileRequest(display_name="Alice A."))
    assert updated.user.display_name == "Alice A."

    refreshed = mobile.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=login.tokens.refresh_token))
    assert refreshed.tokens.access_token
    mobile.stub.Logout(auth_pb2.LogoutRequest(refresh_token=refreshed.tokens.refresh_token))
    with pytest.raises(grpc.RpcError) as error:
        mobile.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=refreshed.tokens.refresh_token))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_calls_need_a_valid_token(mobile: Mobile):
    with pytest.raises(grpc.RpcError) as error:
        mobile.call("ListAnalyses", history_pb2.ListAnalysesRequest())
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    mobile.token = "not.a.token"
    with pytest.raises(grpc.RpcError) as error:
        mobile.call("AnalyzePhoto", gateway_pb2.AnalyzePhotoRequest(image=photo()))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_register_errors_pass_through(mobile: Mobile):
    name = unique()
    mobile.register(name)
    with pytest.raises(grpc.RpcError) as error:
        mobile.register(name)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as error:
        mobile.register(unique(), password="short")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in error.value.details()


def test_analyze_list_get_summary_delete(stack, mobile: Mobile):
    mobile.signed_up()
    response, request_id = mobile.analyze(photo(0))
    assert response.recorded and response.analysis_id
    assert request_id  # generated for the client, and returned in metadata
    assert len(response.faces) >= 1
    face = response.faces[0]
    assert face.box.width > 0 and face.box.height > 0
    assert face.dominant != common_pb2.EXPRESSION_UNSPECIFIED and face.emoji
    assert sum(
        getattr(face.scores, f) for f in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    ) == pytest.approx(1.0, abs=1e-3)
    assert response.dominant != common_pb2.EXPRESSION_UNSPECIFIED and response.emoji
    assert response.image_width > 0 and response.model_version

    second, _ = mobile.analyze(photo(1), source=common_pb2.SOURCE_ALBUM)
    listed = mobile.call("ListAnalyses", history_pb2.ListAnalysesRequest())
    assert [a.id for a in listed.analyses] == [second.analysis_id, response.analysis_id]
    got = mobile.call("GetAnalysis", history_pb2.GetAnalysisRequest(analysis_id=response.analysis_id))
    assert got.analysis.source == common_pb2.SOURCE_CAMERA
    assert got.analysis.request_id == request_id
    assert len(got.analysis.faces) == len(response.faces)

    summary = mobile.call("GetSummary", history_pb2.GetSummaryRequest())
    assert summary.total_analyses == 2

    exported = mobile.call(
        "ExportHistory", history_pb2.ExportHistoryRequest(format=history_pb2.EXPORT_FORMAT_CSV)
    )
    assert response.analysis_id.encode() in exported.content

    mobile.call("DeleteAnalysis", history_pb2.DeleteAnalysisRequest(analysis_id=response.analysis_id))
    with pytest.raises(grpc.RpcError) as error:
        mobile.call("GetAnalysis", history_pb2.GetAnalysisRequest(analysis_id=response.analysis_id))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert [row[0] for row in history_rows(stack.history_database_url, mobile.user.id)] == [
        second.analysis_id
    ]


def test_analysis_is_idempotent_on_request_id(stack, mobile: Mobile):
    mobile.signed_up()
    first, _ = mobile.analyze(photo(2), request_id="photo-42")
    again, used = mobile.analyze(photo(2), request_id="photo-42")
    assert used == "photo-42"
    assert again.analysis_id == first.analysis_id and again.recorded
    assert len(history_rows(stack.history_database_url, mobile.user.id)) == 1


def test_bad_images_are_invalid_argument(mobile: Mobile):
    mobile.signed_up()
    for image in (b"", b"definitely not an image"):
        with pytest.raises(grpc.RpcError) as error:
            mobile.analyze(image)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as error:
        mobile.analyze(photo(), request_id="x" * 129)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_all_analyses_keeps_grants(stack, mobile: Mobile, counselor: str):
    mobile.signed_up()
    mobile.call("ShareWithCounselor", gateway_pb2.ShareWithCounselorRequest(counselor_username=counselor))
    for index in range(3):
        mobile.analyze(photo(index))
    deleted = mobile.call("DeleteAllAnalyses", gateway_pb2.DeleteAllAnalysesRequest())
    assert deleted.deleted_analyses == 3
    assert mobile.call("ListAnalyses", history_pb2.ListAnalysesRequest()).analyses == []
    grants = mobile.call("ListGrants", history_pb2.ListGrantsRequest()).grants
    assert [g.counselor_username for g in grants if not g.HasField("revoked_at")] == [counselor]


def test_counselor_sees_consenting_client_only(stack, counselor: str):
    counselor_name = counselor
    client, other, counselor = (Mobile(stack.gateway_addr) for _ in range(3))
    try:
        client.signed_up()
        other.signed_up()
        shared, _ = client.analyze(photo(3))
        private, _ = other.analyze(photo(4))

        grant = client.call(
            "ShareWithCounselor", gateway_pb2.ShareWithCounselorRequest(counselor_username=counselor_name)
        )
        assert grant.grant.counselor_username == counselor_name
        with pytest.raises(grpc.RpcError) as error:
            client.call(
                "ShareWithCounselor", gateway_pb2.ShareWithCounselorRequest(counselor_username=unique())
            )
        assert error.value.code() == grpc.StatusCode.NOT_FOUND

        counselor.login(counselor_name)
        clients = {c.user_id for c in counselor.call("ListClients", history_pb2.ListClientsRequest()).clients}
        assert client.user.id in clients and other.user.id not in clients
        seen = counselor.call("ListAnalyses", history_pb2.ListAnalysesRequest(user_id=client.user.id))
        assert [a.id for a in seen.analyses] == [shared.analysis_id]
        summary = counselor.call("GetSummary", history_pb2.GetSummaryRequest(user_id=client.user.id))
        assert summary.total_analyses == 1

        with pytest.raises(grpc.RpcError) as error:
            counselor.call("ListAnalyses", history_pb2.ListAnalysesRequest(user_id=other.user.id))
        assert error.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
        with pytest.raises(grpc.RpcError) as error:
            counselor.call(
                "GetAnalysis",
                history_pb2.GetAnalysisRequest(analysis_id=private.analysis_id, user_id=other.user.id),
            )
        assert error.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
        with pytest.raises(grpc.RpcError) as error:
            counselor.analyze(photo())
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

        events = client.call("ListAuditEvents", history_pb2.ListAuditEventsRequest()).events
        assert {e.action for e in events} >= {"ListAnalyses", "GetSummary"}

        client.call("RevokeAccess", history_pb2.RevokeAccessRequest(counselor_id=grant.grant.counselor_id))
        clients = counselor.call("ListClients", history_pb2.ListClientsRequest()).clients
        assert client.user.id not in {c.user_id for c in clients}
    finally:
        for mobile in (client, other, counselor):
            mobile.close()


def test_delete_account_removes_history(stack, mobile: Mobile):
    mobile.signed_up()
    mobile.analyze(photo(5))
    user_id = mobile.user.id
    with pytest.raises(grpc.RpcError) as error:
        mobile.call("DeleteAccount", auth_pb2.DeleteAccountRequest(password="wrong password!"))
    assert error.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    reply = mobile.call("DeleteAccount", auth_pb2.DeleteAccountRequest(password=PASSWORD))
    assert reply.deleted_analyses == 1
    assert history_rows(stack.history_database_url, user_id) == []
