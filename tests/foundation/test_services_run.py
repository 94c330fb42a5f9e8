"""Every service as a real process: health, reflection, metrics, graceful SIGTERM."""

from __future__ import annotations

import signal
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from emotion.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    gateway_pb2_grpc,
    history_pb2,
    history_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
)
from services.common.health import check
from tests.support import ServiceProcess, free_port

GRACE_S = 3.0

# service -> (module, env prefix, full service name, a call to make through its stub)
SERVICES = {
    "auth": (
        "services.auth",
        "AUTH",
        "emotion.v1.AuthService",
        lambda ch: auth_pb2_grpc.AuthServiceStub(ch).GetAgreements(
            auth_pb2.GetAgreementsRequest(), timeout=5
        ),
        "GetAgreements",
    ),
    "history": (
        "services.history",
        "HISTORY",
        "emotion.v1.HistoryService",
        lambda ch: history_pb2_grpc.HistoryServiceStub(ch).ListAnalyses(
            history_pb2.ListAnalysesRequest(), timeout=5
        ),
        "ListAnalyses",
    ),
    "inference": (
        "services.inference",
        "INFERENCE",
        "emotion.v1.InferenceService",
        lambda ch: inference_pb2_grpc.InferenceServiceStub(ch).GetModelInfo(
            inference_pb2.GetModelInfoRequest(), timeout=5
        ),
        "GetModelInfo",
    ),
    "gateway": (
        "services.gateway",
        "GATEWAY",
        "emotion.v1.EmotionGateway",
        lambda ch: gateway_pb2_grpc.EmotionGatewayStub(ch).GetAgreements(
            auth_pb2.GetAgreementsRequest(), timeout=5
        ),
        "GetAgreements",
    ),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """All four services on free ports with SQLite databases in a temp dir."""
    tmp = tmp_path_factory.mktemp("stack")
    ports = {name: (free_port(), free_port()) for name in SERVICES}
    secret = "test-secret"
    env = {
        "AUTH_SERVICE_SECRETS": f"gateway={secret}",
        "GATEWAY_SERVICE_SECRET": secret,
        "AUTH_SIGNING_KEY_FILE": "",
        "GATEWAY_HTTP_PORT": str(free_port()),
    }
    for name, (_, prefix, *_rest) in SERVICES.items():
        grpc_port, metrics_port = ports[name]
        env[f"{prefix}_PORT"] = str(grpc_port)
        env[f"{prefix}_METRICS_PORT"] = str(metrics_port)
        env[f"{prefix}_GRACE_SECONDS"] = str(GRACE_S)
        env[f"{prefix}_DATABASE_URL"] = f"sqlite:///{tmp / (name + '.db')}"
        for other, (_, other_prefix, *_r) in SERVICES.items():
            env[f"{prefix}_{other_prefix}_ADDR"] = f"127.0.0.1:{ports[other][0]}"
    env["AUTH_KEYS_DIR"] = str(tmp / "keys")
    procs = {
        name: ServiceProcess(module, env, tmp / f"{name}.log", ports[name][0])
        for name, (module, *_rest) in SERVICES.items()
    }
    for proc in procs.values():
        proc.wait_serving(90)
    yield procs, ports
    for proc in procs.values():
        proc.stop()


@pytest.mark.parametrize("name", list(SERVICES))
def test_health_reflection_and_metrics(stack, name):
    procs, ports = stack
    grpc_port, metrics_port = ports[name]
    _, _, full_name, call, method = SERVICES[name]
    target = f"127.0.0.1:{grpc_port}"

    assert check(target) == "SERVING"
    assert check(target, full_name) == "SERVING"

    with grpc.insecure_channel(target) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert full_name in services and "grpc.health.v1.Health" in services
        try:
            call(channel)
        except grpc.RpcError as exc:  # any status counts: the call must be measured either way
            code = exc.code().name
        else:
            code = "OK"

    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    line = next(
        (
            ln
            for ln in body.splitlines()
            if ln.startswith("grpc_server_handled_total{")
            and f'grpc_method="{method}"' in ln
            and f'grpc_code="{code}"' in ln
        ),
        None,
    )
    assert line is not None and float(line.rsplit(" ", 1)[1]) >= 1, f"{method} {code} missing from /metrics"
    latency = f'grpc_server_handling_seconds_count{{grpc_method="{method}",grpc_service="{full_name}"}}'
    assert latency in body, f"no latency histogram for {method}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_sigterm_exits_cleanly_within_grace(stack, name):
    """SIGTERM: health watchers see NOT_SERVING first (so balancers drain), then a clean exit."""
    procs, ports = stack
    proc = procs[name]
    with grpc.insecure_channel(f"127.0.0.1:{ports[name][0]}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=GRACE_S + 10
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        statuses = []
        try:
            for reply in watch:
                statuses.append(reply.status)
        except grpc.RpcError:
            pass  # the stream ends when the server stops
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    code = proc.proc.wait(GRACE_S + 10)
    assert code == 0, proc.log()
    assert time.monotonic() - started < GRACE_S + 10
    assert '"message": "stopped"' in proc.log()
