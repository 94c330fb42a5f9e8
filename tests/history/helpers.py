"""Test helpers for the history service: access tokens minted like auth mints them
(Ed25519, kid header, the agreed claims), and stubs that call as a given principal."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import jwt
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from emotion.v1 import common_pb2, history_pb2, history_pb2_grpc
from services.common.keys import key_id

SCORE_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Signer:
    """Holds the private key the service under test trusts (through its public PEM file)."""

    private_pem: str
    public_pem: str

    def token(self, sub: str, role: str = "user", username: str = "", org: str = "", **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": "emotion-auth",
            "aud": "emotion",
            "sub": sub,
            "role": role,
            "username": username or sub,
            "org": org,
            "sid": uuid.uuid4().hex,
            "typ": "access",
            "iat": now,
            "exp": now + 900,
            **claims,
        }
        return jwt.encode(
            payload, self.private_pem, algorithm="EdDSA", headers={"kid": key_id(self.public_pem)}
        )


class Caller:
    """HistoryService stub whose calls carry one token: `caller.ListAnalyses(request)`."""

    def __init__(self, stub: history_pb2_grpc.HistoryServiceStub, token: str | None, user_id: str) -> None:
        self._stub, self._token, self.user_id = stub, token, user_id

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)
        metadata = (("authorization", f"Bearer {self._token}"),) if self._token else ()

        def call(request=None, **kwargs):
            if request is None:
                request = getattr(history_pb2, f"{name}Request")()
            return method(request, metadata=metadata, timeout=20, **kwargs)

        return call


@dataclass
class History:
    """The running service under test."""

    stub: history_pb2_grpc.HistoryServiceStub
    signer: Signer
    database: str

    def user(self, user_id: str | None = None, username: str = "") -> Caller:
        user_id = user_id or f"u-{uuid.uuid4().hex[:12]}"
        return Caller(self.stub, self.signer.token(user_id, "user", username=username), user_id)

    def counselor(self, user_id: str | None = None, org: str = "Clinic") -> Caller:
        user_id = user_id or f"c-{uuid.uuid4().hex[:12]}"
        return Caller(self.stub, self.signer.token(user_id, "counselor", org=org), user_id)

    def service(self, name: str = "gateway") -> Caller:
        sub = f"service:{name}"
        return Caller(self.stub, self.signer.token(sub, "service"), sub)

    def anonymous(self) -> Caller:
        return Caller(self.stub, None, "")


def ts(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def scores(dominant: int, peak: float = 0.7) -> common_pb2.ExpressionScores:
    """Scores whose highest is expression `dominant` (enum value)."""
    rest = (1.0 - peak) / 6
    return common_pb2.ExpressionScores(
        **{name: (peak if i + 1 == dominant else rest) for i, name in enumerate(SCORE_NAMES)}
    )


def face(dominant: int, x: int = 10, peak: float = 0.7) -> common_pb2.FaceResult:
    return common_pb2.FaceResult(
        box=common_pb2.Box(x=x, y=20, width=48, height=48),
        scores=scores(dominant, peak),
        dominant=dominant,
        emoji="😀",
        detection_score=0.9,
    )


def record_request(
    at: datetime | None = None,
    dominant: int = common_pb2.EXPRESSION_HAPPY,
    source: int = common_pb2.SOURCE_CAMERA,
    request_id: str | None = None,
    faces: int = 1,
    **fields,
) -> history_pb2.RecordAnalysisRequest:
    request = history_pb2.RecordAnalysisRequest(
        request_id=request_id or uuid.uuid4().hex,
        source=source,
        faces=[face(dominant, x=10 * i) for i in range(faces)],
        model_version="test-1",
        **fields,
    )
    if at is not None:
        request.captured_at.CopyFrom(ts(at))
    return request


def assert_status(
    code: grpc.StatusCode, call, *args, match: str = "", what: str = "", **kwargs
) -> grpc.RpcError:
    """Call, expecting a failure with `code` (and `match` in the details); `what` labels a failure."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    got = info.value.code()
    assert got == code, f"{what}: expected {code.name}, got {got.name}: {info.value.details()}"
    if match:
        assert match in info.value.details(), f"{what}: {info.value.details()}"
    return info.value
