"""Clients of the gateway for the tests: a mobile app over gRPC and a browser over HTTP."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx

from emotion.v1 import auth_pb2, common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support import SHARED_DATA

PASSWORD = "correct horse battery"
PHOTOS = sorted((SHARED_DATA / "photos" / "images").glob("*.jpg"))


def photo(index: int = 0) -> bytes:
    return PHOTOS[index % len(PHOTOS)].read_bytes()


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Mobile:
    """The mobile app: the public gRPC API with the user's access token."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = gateway_pb2_grpc.EmotionGatewayStub(self.channel)
        self.token = ""
        self.user: auth_pb2.User | None = None
        self.refresh_token = ""

    def close(self) -> None:
        self.channel.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def call(self, method: str, request, timeout: float = 30.0):
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)

    def register(self, username: str | None = None, password: str = PASSWORD) -> auth_pb2.User:
        agreements = self.stub.GetAgreements(auth_pb2.GetAgreementsRequest(), timeout=10)
        reply = self.stub.Register(
            auth_pb2.RegisterRequest(
                username=username or unique(),
                password=password,
                phone="+44 20 7946 0958",
                accepted_privacy_policy_version=agreements.privacy_policy.version,
                accepted_user_agreement_version=agreements.user_agreement.version,
            ),
            timeout=30,
        )
        return reply.user

    def login(self, username: str, password: str = PASSWORD) -> auth_pb2.LoginResponse:
        reply = self.stub.Login(auth_pb2.LoginRequest(username=username, password=password), timeout=30)
        self.token, self.refresh_token, self.user = (
            reply.tokens.access_token,
            reply.tokens.refresh_token,
            reply.user,
        )
        return reply

    def signed_up(self) -> Mobile:
        """Register a fresh user and log in as them."""
        user = self.register()
        self.login(user.username)
        return self

    def analyze(self, image: bytes, request_id: str = "", source=common_pb2.SOURCE_CAMERA):
        """AnalyzePhoto; returns (response, the request id the gateway used)."""
        response, call = self.stub.AnalyzePhoto.with_call(
            gateway_pb2.AnalyzePhotoRequest(image=image, source=source, request_id=request_id),
            metadata=self.metadata,
            timeout=60,
        )
        used = dict(call.initial_metadata()).get("analysis-request-id", "")
        return response, used


class Browser:
    """The web app: the HTTP API with the user's access token."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.token = ""
        self.user: dict = {}

    def close(self) -> None:
        self.http.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(
            method, path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def register(self, username: str | None = None, password: str = PASSWORD) -> httpx.Response:
        agreements = self.http.get("/api/v1/agreements").json()
        return self.http.post(
            "/api/v1/auth/register",
            json={
                "username": username or unique(),
                "password": password,
                "phone": "+44 20 7946 0958",
                "accepted_privacy_policy_version": agreements["privacy_policy"]["version"],
                "accepted_user_agreement_version": agreements["user_agreement"]["version"],
            },
        )

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        response = self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        if response.status_code == 200:
            self.token = response.json()["tokens"]["access_token"]
            self.user = response.json()["user"]
        return response

    def signed_up(self) -> Browser:
        response = self.register()
        assert response.status_code == 200, response.text
        assert self.login(response.json()["user"]["username"]).status_code == 200
        return self

    def analyze(self, image: bytes, **form) -> httpx.Response:
        return self.request(
            "POST", "/api/v1/analyses", files={"image": ("photo.jpg", image, "image/jpeg")}, data=form
        )


def history_rows(database_url: str, user_id: str) -> list[tuple[str, str]]:
    """(id, request_id) of a user's analyses, read straight from history's SQLite database."""
    path = database_url.split(":///", 1)[1]
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, request_id FROM history_analyses WHERE user_id = ? ORDER BY request_id", (user_id,)
        ).fetchall()


def outbox_count(outbox_url: str) -> int:
    path = Path(outbox_url.split(":///", 1)[1])
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM gateway_outbox").fetchone()[0]


def eventually(check: Callable[[], bool], timeout_s: float = 30.0, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
