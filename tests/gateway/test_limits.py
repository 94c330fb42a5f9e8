"""Rate limits, message size limits and CORS, on a second gateway process with strict settings in front
of the same backends."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import threading
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from emotion.v1 import auth_pb2, gateway_pb2, history_pb2
from tests.gateway.helpers import Mobile, photo
from tests.stack import wait_http
from tests.support import ServiceProcess, free_port

ALLOWED_ORIGIN = "https://app.example"


@contextlib.contextmanager
def second_gateway(stack, tmp: Path, **settings: str):
    """Another gateway process in front of the stack's backends, with `settings` (GATEWAY_ env) on top;
    yields (gRPC address, HTTP base URL)."""
    grpc_port, http_port = free_port(), free_port()
    env = {
        **stack.envs["gateway"],
        "GATEWAY_PORT": str(grpc_port),
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_OUTBOX_URL": f"sqlite:///{tmp / 'outbox.db'}",
        **settings,
    }
    process = ServiceProcess("services.gateway", env, tmp / "gateway.log", grpc_port).wait_serving()
    try:
        wait_http(f"http://127.0.0.1:{http_port}/readyz")
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def strict(stack, tmp_path_factory):
    """(gRPC address, HTTP base URL) of a gateway with tight limits and CORS for one origin."""
    with second_gateway(
        stack,
        tmp_path_factory.mktemp("strict-gateway"),
        GATEWAY_RATE_LIMIT_USER_PER_S="0.2",
        GATEWAY_RATE_LIMIT_USER_BURST="3",
        GATEWAY_RATE_LIMIT_ADDRESS_PER_S="0.5",
        GATEWAY_RATE_LIMIT_ADDRESS_BURST="20",
        GATEWAY_MAX_MESSAGE_BYTES=str(1024 * 1024),
        GATEWAY_CORS_ORIGINS=ALLOWED_ORIGIN,
    ) as addresses:
        yield addresses


def test_per_user_rate_limit(stack, strict):
    account = Mobile(stack.gateway_addr).signed_up()  # tokens from the normal gateway
    limited = Mobile(strict[0])
    limited.token = account.token
    try:
        for _ in range(3):
            limited.call("GetProfile", auth_pb2.GetProfileRequest())
        with pytest.raises(grpc.RpcError) as error:
            limited.call("GetProfile", auth_pb2.GetProfileRequest())
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(error.value.trailing_metadata())["retry-after"]) >= 1
    finally:
        account.close()
        limited.close()


def test_grpc_message_size_limit(stack, strict):
    account = Mobile(stack.gateway_addr).signed_up()
    limited = Mobile(strict[0])
    limited.token = account.token
    try:
        with pytest.raises(grpc.RpcError) as error:
            limited.call("AnalyzePhoto", gateway_pb2.AnalyzePhotoRequest(image=b"\xff" * (2 * 1024 * 1024)))
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        account.close()
        limited.close()


def test_cors_allows_only_the_configured_origin(strict):
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{strict[1]}/api/v1/profile",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    allowed = preflight(ALLOWED_ORIGIN)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers


def test_per_address_rate_limit(strict):
    with httpx.Client(base_url=strict[1]) as http:
        for _ in range(40):
            response = http.get("/api/v1/agreements")
            if response.status_code == 429:
                break
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        assert int(response.headers["retry-after"]) >= 1


@pytest.fixture(scope="module")
def narrow(stack, tmp_path_factory):
    """gRPC address of a gateway that runs at most one photo analysis at a time (rate limits off)."""
    with second_gateway(
        stack,
        tmp_path_factory.mktemp("narrow-gateway"),
        GATEWAY_RATE_LIMIT_USER_PER_S="0",
        GATEWAY_RATE_LIMIT_ADDRESS_PER_S="0",
        GATEWAY_MAX_INFLIGHT_ANALYSES="1",
    ) as (grpc_address, _):
        yield grpc_address


def test_analyses_past_capacity_are_refused_at_once(stack, narrow):
    """Eight photos sent together to a gateway with room for one: the rest are refused with
    RESOURCE_EXHAUSTED and a Retry-After hint while the first is still being analysed, and nothing
    refused is recorded."""
    account = Mobile(stack.gateway_addr).signed_up()
    client = Mobile(narrow)
    client.token = account.token
    # A large photo keeps the admitted analysis busy long enough for the others to arrive.
    canvas = Image.new("RGB", (2400, 2400), (128, 128, 128))
    canvas.paste(Image.open(io.BytesIO(photo(0))).convert("RGB").resize((1200, 1200)), (600, 600))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    image = buffer.getvalue()
    start = threading.Barrier(8)

    def send(_):
        start.wait()
        try:
            return client.analyze(image)[0]
        except grpc.RpcError as error:
            return error

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, range(8)))
        refused = [r for r in results if isinstance(r, grpc.RpcError)]
        admitted = [r for r in results if not isinstance(r, grpc.RpcError)]
        assert admitted and refused, results
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert "too many analyses in progress" in error.details()
            assert int(dict(error.trailing_metadata())["retry-after"]) >= 1
        assert all(r.faces for r in admitted)
        recorded = client.call("ListAnalyses", history_pb2.ListAnalysesRequest(page_size=50))
        assert len(recorded.analyses) == len(admitted)
    finally:
        account.close()
        client.close()
