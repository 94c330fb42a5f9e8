"""Container health check for `docker run` and Compose (Kubernetes uses its native gRPC probes instead).

    healthcheck.py grpc AUTH_PORT 50051      # standard grpc.health.v1 Check on 127.0.0.1:$AUTH_PORT
    healthcheck.py http http://127.0.0.1:8080/ping

Exits 0 when the server reports SERVING (gRPC) or answers 2xx (HTTP), 1 otherwise, so Docker marks the
container unhealthy while a service is still migrating or loading its model and again while it drains.
The port comes from the same environment variable the service reads, so overriding it moves both.
"""

from __future__ import annotations

import os
import sys
import urllib.request

TIMEOUT_S = 3.0


def grpc_serving(port_env: str, default_port: str) -> bool:
    import grpc  # only the Python service images have grpcio; TorchServe's uses the HTTP mode
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"127.0.0.1:{os.environ.get(port_env) or default_port}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            print(f"{target}: {error.code().name}", file=sys.stderr)
            return False
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"{target}: {status}", file=sys.stderr)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (fixed local URL)
            return 200 <= response.status < 300
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "grpc":
        return 0 if grpc_serving(argv[1], argv[2]) else 1
    if len(argv) == 2 and argv[0] == "http":
        return 0 if http_ok(argv[1]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
