"""Client side of the standard gRPC health service: used by `make run`, the
container health check and the tests."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


def check(target: str, service: str = "", timeout_s: float = 1.0) -> str:
    """The health status name of `service` at `target` ("SERVING", "NOT_SERVING", or the gRPC error code)."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            return exc.code().name


def wait_serving(target: str, timeout_s: float = 60.0, is_alive=lambda: True) -> None:
    """Block until `target` reports SERVING.

    Raises TimeoutError, or RuntimeError as soon as `is_alive()` turns false.
    """
    deadline = time.monotonic() + timeout_s
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"{target}: process exited before serving")
        status = check(target)
        if status == "SERVING":
            return
        time.sleep(0.2)
    raise TimeoutError(f"{target} not SERVING after {timeout_s:.0f}s (last: {status})")


def main() -> None:
    """`python -m services.common.health HOST:PORT`: exit 0 when SERVING (container HEALTHCHECK)."""
    import sys

    status = check(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051", timeout_s=3.0)
    print(status)
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
