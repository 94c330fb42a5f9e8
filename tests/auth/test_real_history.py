"""Account deletion against the real history service process: the user's analyses are gone."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from emotion.v1 import auth_pb2, common_pb2, history_pb2, history_pb2_grpc
from tests.auth.conftest import PASSWORD, bearer_md, running_auth, settings_for
from tests.support import ServiceProcess, free_port

pytestmark = pytest.mark.asyncio


def analysis(request_id: str) -> history_pb2.RecordAnalysisRequest:
    scores = common_pb2.ExpressionScores(happy=0.7, neutral=0.3)
    face = common_pb2.FaceResult(
        box=common_pb2.Box(x=1, y=2, width=48, height=48),
        scores=scores,
        dominant=common_pb2.EXPRESSION_HAPPY,
        detection_score=1.0,
    )
    return history_pb2.RecordAnalysisRequest(
        request_id=request_id, source=common_pb2.SOURCE_CAMERA, faces=[face], model_version="test"
    )


async def test_delete_account_removes_history_in_the_real_service(database_url, tmp_path):
    history_port = free_port()
    settings = settings_for(database_url, tmp_path, history_addr=f"127.0.0.1:{history_port}")
    async with running_auth(settings) as auth:
        history = ServiceProcess(
            "services.history",
            {
                "HISTORY_DATABASE_URL": database_url,  # one database, separate tables and version tables
                "HISTORY_PORT": str(history_port),
                "HISTORY_METRICS_PORT": "-1",
                "HISTORY_AUTH_ADDR": auth.address,  # keys fetched from this auth's GetPublicKeys
            },
            tmp_path / "history.log",
            history_port,
        )
        try:
            await asyncio.to_thread(history.wait_serving)
            await auth.register("alice")
            await auth.register("bob")
            alice = bearer_md((await auth.login("alice")).tokens.access_token)
            bob = bearer_md((await auth.login("bob")).tokens.access_token)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{history_port}") as channel:
                stub = history_pb2_grpc.HistoryServiceStub(channel)
                for i in range(2):
                    await stub.RecordAnalysis(analysis(f"alice-{i}"), metadata=alice)
                await stub.RecordAnalysis(analysis("bob-0"), metadata=bob)

                reply = await auth.stub.DeleteAccount(
                    auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=alice
                )
                assert reply.deleted_analyses == 2

                # Alice's token is still unexpired, and shows nothing left; bob's history is untouched.
                left = await stub.ListAnalyses(history_pb2.ListAnalysesRequest(), metadata=alice)
                assert list(left.analyses) == []
                bobs = await stub.ListAnalyses(history_pb2.ListAnalysesRequest(), metadata=bob)
                assert [a.request_id for a in bobs.analyses] == ["bob-0"]
        finally:
            assert await asyncio.to_thread(history.stop) == 0, history.log()
