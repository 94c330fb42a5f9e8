"""Rate limits, message size limits and CORS, on a second gateway process with strict settings in front
of the same backends."""

from __future__ import annotations

import grpc
import httpx
import pytest

from emotion.v1 import auth_pb2, gateway_pb2
from tests.gateway.helpers import Mobile
from tests.stack import wait_http
from tests.support import ServiceProcess, free_port

ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def strict(stack, tmp_path_factory):
    """(gRPC address, HTTP base URL) of a gateway with tight limits and CORS for one origin."""
    tmp = tmp_path_factory.mktemp("strict-gateway")
    grpc_port, http_port = free_port(), free_port()
    env = {
        **stack.envs["gateway"],
        "GATEWAY_PORT": str(grpc_port),
        "GATEWAY_HTTP_PORT": str(http_port),
        "GATEWAY_OUTBOX_URL": f"sqlite:///{tmp / 'outbox.db'}",
        "GATEWAY_RATE_LIMIT_USER_PER_S": "0.2",
        "GATEWAY_RATE_LIMIT_USER_BURST": "3",
        "GATEWAY_RATE_LIMIT_ADDRESS_PER_S": "0.5",
        "GATEWAY_RATE_LIMIT_ADDRESS_BURST": "20",
        "GATEWAY_MAX_MESSAGE_BYTES": str(1024 * 1024),
        "GATEWAY_CORS_ORIGINS": ALLOWED_ORIGIN,
    }
    process = ServiceProcess("services.gateway", env, tmp / "gateway.log", grpc_port).wait_serving()
    try:
        wait_http(f"http://127.0.0.1:{http_port}/readyz")
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    finally:
        process.stop()


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
