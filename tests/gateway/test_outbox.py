"""The outbox: with history down, analyses are still acknowledged, and once history is back every one
of them is recorded exactly once, even across a gateway restart."""

from __future__ import annotations

import time

import httpx

from tests.gateway.helpers import Mobile, eventually, history_rows, outbox_count, photo


def test_analyses_survive_history_outage_exactly_once(stack):
    mobile = Mobile(stack.gateway_addr).signed_up()
    user_id, username = mobile.user.id, mobile.user.username
    request_ids = [f"offline-{i}" for i in range(4)]
    acknowledged = []
    stack.stop_service("history")
    try:
        for index, request_id in enumerate(request_ids):
            response, used = mobile.analyze(photo(index), request_id=request_id)
            assert used == request_id
            assert not response.recorded and response.analysis_id
            acknowledged.append(response.analysis_id)
            assert response.faces, "the user still gets the result"
        retried, _ = mobile.analyze(photo(0), request_id=request_ids[0])  # a client retry while down
        assert not retried.recorded and retried.analysis_id == acknowledged[0]
        assert outbox_count(stack.outbox_url) == len(request_ids)

        # Backend failures are 503 with a clear message, never 500.
        reply = httpx.get(
            f"{stack.http_url}/api/v1/analyses",
            headers={"Authorization": f"Bearer {mobile.token}"},
            timeout=30,
        )
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "UNAVAILABLE"
        assert "history" in reply.json()["error"]["message"]

        # The queue is durable: the entries outlive the gateway process that wrote them.
        mobile.close()
        stack.stop_service("gateway")
        assert outbox_count(stack.outbox_url) == len(request_ids)
    finally:
        # A new gateway process replays the old entries once history is back.
        stack.start_services(*(name for name in ("gateway", "history") if name not in stack.processes))

    eventually(
        lambda: len(history_rows(stack.history_database_url, user_id)) == len(request_ids), timeout_s=45
    )
    eventually(lambda: outbox_count(stack.outbox_url) == 0, timeout_s=15)
    time.sleep(1.0)  # nothing is replayed twice
    rows = history_rows(stack.history_database_url, user_id)
    assert [request_id for _, request_id in rows] == request_ids
    # Each queued analysis was acknowledged with the id it now has in the emotion centre.
    assert [analysis_id for analysis_id, _ in rows] == acknowledged

    # A retry after the replay gets the recorded analysis, stored once.
    mobile = Mobile(stack.gateway_addr)
    mobile.login(username)
    again, _ = mobile.analyze(photo(0), request_id=request_ids[0])
    assert again.recorded and again.analysis_id == rows[0][0]
    assert len(history_rows(stack.history_database_url, user_id)) == len(request_ids)
    mobile.close()
