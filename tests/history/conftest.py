"""Fixtures of the history tests: one real history process per database per module."""

from __future__ import annotations

import grpc
import pytest

from emotion.v1 import history_pb2_grpc
from services.common.keys import generate_private_pem, public_pem_of
from tests.history.helpers import History, Signer
from tests.support import DATABASES, ServiceProcess, create_database, free_port


@pytest.fixture(scope="session")
def signer() -> Signer:
    private_pem = generate_private_pem()
    return Signer(private_pem, public_pem_of(private_pem))


@pytest.fixture(scope="module", params=DATABASES)
def database_url(request, tmp_path_factory) -> str:
    """A fresh database per module on each real server (the shared fixture is per test)."""
    url, drop = create_database(request.param, tmp_path_factory.mktemp(request.param))
    request.node.database_kind = request.param
    yield url
    drop()


@pytest.fixture(scope="module")
def history(database_url, signer, tmp_path_factory) -> History:
    tmp = tmp_path_factory.mktemp("history")
    public_key = tmp / "jwt-public.pem"
    public_key.write_text(signer.public_pem)
    port = free_port()
    process = ServiceProcess(
        "services.history",
        env={
            "HISTORY_PORT": str(port),
            "HISTORY_METRICS_PORT": "-1",
            "HISTORY_DATABASE_URL": database_url,
            "HISTORY_JWT_PUBLIC_KEY_FILE": str(public_key),
        },
        log_path=tmp / "history.log",
        port=port,
    ).wait_serving(timeout_s=120)  # generous: process start is slow on a saturated machine
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield History(history_pb2_grpc.HistoryServiceStub(channel), signer, database_url.split(":")[0])
    finally:
        channel.close()
        process.stop()
