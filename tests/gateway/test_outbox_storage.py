"""The outbox table on each database the gateway may use for it (SQLite, MariaDB, PostgreSQL)."""

from __future__ import annotations

from emotion.v1 import common_pb2, history_pb2
from services.gateway.outbox import Outbox


def record(user_id: str, request_id: str) -> history_pb2.RecordAnalysisRequest:
    return history_pb2.RecordAnalysisRequest(
        user_id=user_id,
        request_id=request_id,
        source=common_pb2.SOURCE_CAMERA,
        faces=[common_pb2.FaceResult(dominant=common_pb2.EXPRESSION_HAPPY)],
    )


async def test_queue_replay_and_purge(database_url):
    outbox = Outbox(database_url)
    await outbox.start()
    try:
        assert await outbox.add(record("u1", "r1"))
        assert not await outbox.add(record("u1", "r1")), "a retry is queued once"
        assert await outbox.add(record("u1", "r2"))
        assert await outbox.add(record("u2", "r1"))
        due = await outbox.due()
        assert [(e.user_id, e.request_id) for e in due] == [("u1", "r1"), ("u1", "r2"), ("u2", "r1")]
        assert due[0].request() == record("u1", "r1")

        await outbox.postpone(due[0].id, "UNAVAILABLE: history down", delay_s=3600)
        await outbox.postpone(due[1].id, "INVALID_ARGUMENT: bad", delay_s=0, dead=True)
        assert [e.request_id for e in await outbox.due()] == ["r1"]  # u2's; u1/r1 later, u1/r2 dead
        assert (await outbox.find("u1", "r1")).attempts == 1
        assert await outbox.pending_count() == 2

        await outbox.remove(due[2].id)
        assert await outbox.purge_user("u1") == 2
        assert await outbox.pending_count() == 0
    finally:
        await outbox.close()
