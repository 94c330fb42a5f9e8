"""The real `python -m services.auth` process: migrate and create-counselor commands, then the served
service over real gRPC, with keys other services verify, and account deletion reaching history."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import jwt
import pytest

from emotion.v1 import auth_pb2, auth_pb2_grpc
from services.common.config import ServiceSettings
from services.common.tokens import verifier_from_settings
from tests.auth.conftest import (
    FAST_ARGON2,
    GATEWAY_SECRET,
    PASSWORD,
    bearer_md,
    recording_history,
    registration,
)
from tests.support import REPO_ROOT, ServiceProcess, free_port

pytestmark = pytest.mark.asyncio


def auth_env(database_url: str, tmp_path, port: int, history_port: int) -> dict[str, str]:
    return {
        "AUTH_DATABASE_URL": database_url,
        "AUTH_PORT": str(port),
        "AUTH_METRICS_PORT": "-1",
        "AUTH_GRACE_SECONDS": "1",
        "AUTH_DEV_SIGNING_KEY_FILE": str(tmp_path / "keys" / "auth_signing_key.pem"),
        "AUTH_HISTORY_ADDR": f"127.0.0.1:{history_port}",
        "AUTH_SERVICE_SECRETS": f"gateway={GATEWAY_SECRET}",
        **{f"AUTH_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }


def command(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.auth", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_operator_commands_and_served_service(database_url, tmp_path):
    port, history_port = free_port(), free_port()
    env = auth_env(database_url, tmp_path, port, history_port)

    created = await asyncio.to_thread(
        command,
        env,
        "create-counselor",
        "--username",
        "DrWu",
        "--organization",
        "Harbour Clinic",
        "--phone",
        "138 0013 8000",
        "--phone-region",
        "CN",
        "--display-name",
        "Dr. Wu",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created counsellor DrWu (Harbour Clinic)" in created.stdout

    service = ServiceProcess("services.auth", env, tmp_path / "auth.log", port)
    try:
        await asyncio.to_thread(service.wait_serving)
        key_file = tmp_path / "keys" / "auth_signing_key.pem"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert "development signing key" in service.log()

        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            recording_history(f"127.0.0.1:{port}", history_port) as (calls, _),
        ):
            stub = auth_pb2_grpc.AuthServiceStub(channel)

            # The operator-created counsellor: found by users, logs in with the counsellor role.
            found = await stub.LookupCounselor(auth_pb2.LookupCounselorRequest(username="drwu"))
            assert (found.display_name, found.organization) == ("Dr. Wu", "Harbour Clinic")
            counselor = await stub.Login(auth_pb2.LoginRequest(username="DrWu", password=PASSWORD))
            assert counselor.user.role == auth_pb2.ROLE_COUNSELOR and counselor.user.phone == "+8613800138000"

            # A user, verified by another service exactly as it would: keys fetched from GetPublicKeys.
            user = (await stub.Register(registration("alice"))).user
            tokens = (await stub.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))).tokens
            verifier = verifier_from_settings(ServiceSettings(auth_addr=f"127.0.0.1:{port}"))
            principal = await verifier.verify(tokens.access_token)
            assert (principal.subject, principal.role) == (user.id, "user")
            org = (await verifier.verify(counselor.tokens.access_token)).organization
            assert org == "Harbour Clinic"
            assert jwt.get_unverified_header(tokens.access_token)["kid"] in {
                k.kid for k in (await stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())).keys
            }

            rotated = (await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))).tokens
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetProfile(auth_pb2.GetProfileRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

            fresh = (await stub.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))).tokens
            deleted = await stub.DeleteAccount(
                auth_pb2.DeleteAccountRequest(password=PASSWORD), metadata=bearer_md(fresh.access_token)
            )
            assert deleted.deleted_analyses == 3
            assert calls.deleted == [(user.id, "service:auth", "service")]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=rotated.refresh_token))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

            # Lockout over the wire: RESOURCE_EXHAUSTED with retry-after in the trailing metadata.
            for _ in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Login(auth_pb2.LoginRequest(username="DrWu", password="wrong password!"))
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Login(auth_pb2.LoginRequest(username="DrWu", password=PASSWORD))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            retry_after = int(dict(caught.value.trailing_metadata())["retry-after"])
            assert 15 * 60 - 30 <= retry_after <= 15 * 60
    finally:
        assert await asyncio.to_thread(service.stop) == 0, service.log()
