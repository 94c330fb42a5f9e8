"""Account deletion reaching the history service, without ever being lost.

DeleteAccount removes the user's rows and records a pending history deletion
in the same transaction, then calls HistoryService.DeleteAllForUser with a
service token. If history is unreachable the account is still gone and the
pending row is retried in the background (with backoff) until history
confirms. After the first success one more sweep runs once every access token
the user held has expired, removing anything written with a token still live
at deletion time (e.g. an analysis in flight). Only then is the row dropped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc

from emotion.v1 import history_pb2, history_pb2_grpc
from services.auth.storage import Storage
from services.auth.tokens import Clock, TokenMinter
from services.common.clients import bearer, connect

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)


class HistoryEraser:
    def __init__(
        self,
        storage: Storage,
        minter: TokenMinter,
        history_addr: str,
        clock: Clock,
        retry_interval: timedelta,
        timeout_s: float = 5.0,
    ) -> None:
        self.storage = storage
        self.minter = minter
        self.history_addr = history_addr
        self.clock = clock
        self.retry_interval = retry_interval
        self.timeout_s = timeout_s

    async def erase(self, user_id: str) -> int | None:
        """One attempt for a pending deletion: the number of analyses history deleted, or None
        when history could not be reached (the deletion stays queued)."""
        # A channel per attempt: deletions are rare, and a fresh channel connects at once instead of
        # waiting out gRPC's reconnect backoff from an earlier outage.
        try:
            async with connect(self.history_addr, timeout_s=self.timeout_s) as channel:
                reply = await history_pb2_grpc.HistoryServiceStub(channel).DeleteAllForUser(
                    history_pb2.DeleteAllForUserRequest(user_id=user_id),
                    metadata=bearer(self.minter.service_token("auth").token),
                    timeout=self.timeout_s,
                )
        except grpc.aio.AioRpcError as exc:
            await self._failed(user_id, f"{exc.code().name}: {exc.details()}")
            return None
        await self._succeeded(user_id)
        return reply.deleted_analyses

    async def _failed(self, user_id: str, error: str) -> None:
        now = self.clock()
        async with self.storage.transaction() as db:
            pending = await self.storage.pending_deletion(db, user_id)
            if pending is None:
                return
            attempts = pending.attempts + 1
            backoff = min(self.retry_interval * 2 ** (attempts - 1), MAX_BACKOFF)
            await self.storage.reschedule_deletion(db, user_id, now + backoff, attempts, error)
        log.warning(
            "history deletion failed; will retry",
            extra={
                "user_id": user_id,
                "attempts": attempts,
                "error": error,
                "retry_in_s": backoff.total_seconds(),
            },
        )

    async def _succeeded(self, user_id: str) -> None:
        now = self.clock()
        async with self.storage.transaction() as db:
            pending = await self.storage.pending_deletion(db, user_id)
            if pending is None:
                return
            if now >= pending.final_sweep_at:
                await self.storage.finish_deletion(db, user_id)
                log.info("history deletion complete", extra={"user_id": user_id})
            else:
                await self.storage.reschedule_deletion(db, user_id, pending.final_sweep_at, 0, "")

    async def run_due(self) -> int:
        """Attempts every pending deletion that is due; returns how many succeeded."""
        async with self.storage.transaction() as db:
            due = [p.user_id for p in await self.storage.due_deletions(db, self.clock())]
        done = 0
        for user_id in due:
            if await self.erase(user_id) is not None:
                done += 1
        return done
