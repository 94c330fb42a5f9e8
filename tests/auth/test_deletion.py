"""Account deletion: re-authentication, local rows gone, history reached with a service token,
and a history outage that delays but never loses the deletion."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import select

from emotion.v1 import auth_pb2
from services.auth.storage import LoginFailure, PendingHistoryDeletion, RefreshToken, Session, User
from tests.auth.conftest import PASSWORD, bearer_md, recording_history, running_auth, settings_for
from tests.support import free_port

pytestmark = pytest.mark.asyncio


async def rows(auth, model) -> int:
    async with auth.app.storage.transaction() as db:
        return await auth.app.storage.count(db, model)


async def test_delete_account_reaches_history_and_leaves_nothing(database_url, tmp_path):
    history_port = free_port()
    settings = settings_for(database_url, tmp_path, history_addr=f"127.0.0.1:{history_port}")
    async with running_auth(settings) as auth, recording_history(auth.address, history_port) as (calls, _):
        user = await auth.register("alice")
        await auth.register("bob")
        await rpc_error(auth.login("alice", "wrong password 1"))
        tokens = (await auth.login()).tokens
        md = bearer_md(tokens.access_token)

        wrong = await rpc_error(
            auth.stub.DeleteAccount(auth_pb2.DeleteAccountRequest(password="nope nope"), metadata=md)
        )
        assert wrong.code() == grpc.StatusCode.PERMISSION_DENIED
        assert calls.deleted == [] and await rows(auth, User) == 2

        call = auth.stub.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=md)
        reply = await call
        assert reply.deleted_analyses == 3
        assert ("history-deletion", "pending") not in tuple(await call.trailing_metadata())
        # History saw one deletion, for alice, by auth's service identity, and accepted its token.
        assert calls.deleted == [(user.id, "service:auth", "service")] and calls.refusals == []

        assert await rows(auth, User) == 1  # bob remains
        assert await rows(auth, Session) == 0 and await rows(auth, RefreshToken) == 0
        async with auth.app.storage.transaction() as db:  # failures by address stay; by username go
            scopes = (await db.execute(select(LoginFailure.scope))).scalars().all()
        assert sorted(scopes) == ["address", "address"]
        assert (await rpc_error(auth.login())).code() == grpc.StatusCode.UNAUTHENTICATED
        for request in (auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=md),):
            assert (await rpc_error(request)).code() == grpc.StatusCode.UNAUTHENTICATED
        refresh = auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))
        assert (await rpc_error(refresh)).code() == grpc.StatusCode.UNAUTHENTICATED

        # One final sweep once every access token alice held has expired, then nothing is pending.
        assert await rows(auth, PendingHistoryDeletion) == 1
        await auth.app.maintain_once()
        assert len(calls.deleted) == 1  # not due yet
        auth.clock.advance(minutes=16, seconds=1)
        await auth.app.maintain_once()
        assert [c[0] for c in calls.deleted] == [user.id, user.id]
        assert await rows(auth, PendingHistoryDeletion) == 0

        # The username is free again.
        assert (await auth.register("alice")).id != user.id


async def test_history_outage_queues_the_deletion_until_history_returns(database_url, tmp_path):
    history_port = free_port()
    settings = settings_for(database_url, tmp_path, history_addr=f"127.0.0.1:{history_port}")
    async with running_auth(settings) as auth:
        user = await auth.register("alice")
        md = bearer_md((await auth.login()).tokens.access_token)

        call = auth.stub.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=md)
        reply = await call
        assert reply.deleted_analyses == 0
        assert ("history-deletion", "pending") in tuple(await call.trailing_metadata())
        assert await rows(auth, User) == 0  # the account itself is gone at once
        async with auth.app.storage.transaction() as db:
            pending = await auth.app.storage.pending_deletion(db, user.id)
        assert pending.attempts == 1 and "UNAVAILABLE" in pending.last_error

        # Still down: retried with backoff, never dropped.
        auth.clock.advance(hours=1)
        await auth.app.maintain_once()
        async with auth.app.storage.transaction() as db:
            assert (await auth.app.storage.pending_deletion(db, user.id)).attempts == 2

        async with recording_history(auth.address, history_port) as (calls, _):
            auth.clock.advance(hours=2)  # past the backoff and the final-sweep time
            await auth.app.maintain_once()
            assert calls.deleted == [(user.id, "service:auth", "service")]
            assert await rows(auth, PendingHistoryDeletion) == 0


async def test_pending_deletions_survive_a_restart(database_url, tmp_path):
    history_port = free_port()
    settings = settings_for(database_url, tmp_path, history_addr=f"127.0.0.1:{history_port}")
    async with running_auth(settings) as auth:
        user = await auth.register("alice")
        md = bearer_md((await auth.login()).tokens.access_token)
        await auth.stub.DeleteAccount(auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=md)
    clock = auth.clock
    clock.advance(hours=3)
    async with (
        running_auth(settings, clock) as auth,
        recording_history(auth.address, history_port) as (calls, _),
    ):
        await auth.app.maintain_once()
        assert [c[0] for c in calls.deleted] == [user.id]
        assert await rows(auth, PendingHistoryDeletion) == 0


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value
