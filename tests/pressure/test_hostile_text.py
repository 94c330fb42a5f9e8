"""Hostile text in every string field of the HTTP API (SQL metacharacters, control characters, very long,
Unicode look-alikes, bidi overrides...) and raw non-UTF-8 bytes where the transport carries bytes (JSON
bodies, query strings, paths, gRPC string fields): only documented 4xx errors or success, never 5xx, and
nothing stored that breaks reading it back."""

from __future__ import annotations

import collections
import http.client as http_client
import urllib.parse

import grpc
import httpx
import pytest

from emotion.v1 import auth_pb2, auth_pb2_grpc, gateway_pb2_grpc, history_pb2_grpc
from tests.pressure.api import Account, login, registration
from tests.pressure.hostile_corpus import hostile_strings, non_utf8_bytes

DOCUMENTED = {200, 400, 401, 403, 404, 409, 412, 413, 429}
# A hostile id with "/" in it (decoded from %2F) names no route, and only GET serves static files there.
PATH_DOCUMENTED = DOCUMENTED | {405}
URL_SAFE_LIMIT = 4000  # longer values go in bodies only; long URLs are tested on their own


def _check(
    reply: httpx.Response, label: str, failures: list, statuses: collections.Counter, allowed=DOCUMENTED
) -> None:
    statuses[reply.status_code] += 1
    if reply.status_code not in allowed:
        failures.append((label, reply.status_code, reply.text[:160]))
        return
    if reply.status_code >= 400:
        try:
            error = reply.json()["error"]
            assert error["code"] and isinstance(error["message"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            failures.append(
                (label, reply.status_code, f"error body not in the documented form: {reply.text[:160]}")
            )


def _probe(
    http: httpx.Client,
    method: str,
    url: str,
    label: str,
    failures: list,
    statuses,
    allowed=DOCUMENTED,
    **kwargs,
) -> httpx.Response | None:
    """One request; a dropped connection counts as a failure (the server must answer)."""
    try:
        reply = http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        statuses["dropped"] += 1
        failures.append((label, "connection dropped", repr(exc)[:160]))
        return None
    _check(reply, label, failures, statuses, allowed)
    return reply


def _json_fields(account: Account, versions) -> dict[str, tuple[str, str, dict, str]]:
    """field label -> (method, path, base JSON body, field name)."""
    reg = registration("hostile" + account.username[-6:], "a sound password 9", versions)
    return {
        **{f"register.{k}": ("POST", "/api/v1/auth/register", reg, k) for k in reg},
        "register.phone_region": ("POST", "/api/v1/auth/register", reg, "phone_region"),
        "login.username": ("POST", "/api/v1/auth/login", {"username": "x", "password": "y"}, "username"),
        "login.password": (
            "POST",
            "/api/v1/auth/login",
            {"username": account.username, "password": "y"},
            "password",
        ),
        "refresh.refresh_token": ("POST", "/api/v1/auth/refresh", {"refresh_token": ""}, "refresh_token"),
        "logout.refresh_token": ("POST", "/api/v1/auth/logout", {"refresh_token": ""}, "refresh_token"),
        "profile.display_name": ("PATCH", "/api/v1/profile", {}, "display_name"),
        "profile.phone": ("PATCH", "/api/v1/profile", {}, "phone"),
        "profile.phone_region": ("PATCH", "/api/v1/profile", {"phone": "13812345678"}, "phone_region"),
        "password.current_password": (
            "POST",
            "/api/v1/profile/password",
            {"new_password": "another password 7"},
            "current_password",
        ),
        "delete.password": ("POST", "/api/v1/profile/delete", {}, "password"),
        "shares.counselor_username": ("POST", "/api/v1/shares", {}, "counselor_username"),
    }


QUERY_FIELDS = {
    "/api/v1/analyses": (
        "page_token",
        "user_id",
        "start_time",
        "end_time",
        "source",
        "dominant",
        "page_size",
    ),
    "/api/v1/summary": ("time_zone", "bucket_size", "start_time", "end_time", "user_id"),
    "/api/v1/export": ("format",),
    "/api/v1/audit": ("page_token", "page_size"),
}
PATH_TEMPLATES = (
    ("GET", "/api/v1/analyses/{}"),
    ("DELETE", "/api/v1/analyses/{}"),
    ("DELETE", "/api/v1/shares/{}"),
)


def test_hostile_strings_in_json_bodies(stack, http, account, versions):
    failures, statuses = [], collections.Counter()
    for label, (method, path, body, field) in _json_fields(account, versions).items():
        for name, value in hostile_strings():
            reply = _probe(
                http,
                method,
                path,
                f"{label}={name}",
                failures,
                statuses,
                json={**body, field: value},
                headers=account.headers,
            )
            if label == "profile.display_name" and reply is not None and reply.status_code == 200:
                # Accepted means stored exactly: it must read back unchanged (no truncation, no re-encoding).
                profile = http.get("/api/v1/profile", headers=account.headers).json()["user"]
                assert profile["display_name"] == value, (name, profile["display_name"][:50])
        # Unknown and hostile *field names*, and wrong JSON types for the field.
        for name, value in hostile_strings()[2:8]:
            _probe(
                http,
                method,
                path,
                f"{label} key={name}",
                failures,
                statuses,
                json={**body, value or "_": "x"},
                headers=account.headers,
            )
        for name, value in (
            ("number", 12345),
            ("list", ["a"]),
            ("object", {"$ne": None}),
            ("null", None),
            ("bool", True),
            ("huge_number", 10**400),
        ):
            _probe(
                http,
                method,
                path,
                f"{label} type={name}",
                failures,
                statuses,
                json={**body, field: value},
                headers=account.headers,
            )
    print(f"\nJSON field probes -> {dict(statuses)}")
    assert not failures, failures[:25]


def test_hostile_strings_in_queries_and_paths(stack, http, account):
    failures, statuses = [], collections.Counter()
    for name, value in hostile_strings():
        if len(value) > URL_SAFE_LIMIT:
            continue
        for path, fields in QUERY_FIELDS.items():
            for field in fields:
                _probe(
                    http,
                    "GET",
                    path,
                    f"{path}?{field}={name}",
                    failures,
                    statuses,
                    params={field: value},
                    headers=account.headers,
                )
        for method, template in PATH_TEMPLATES:
            if not value.strip():
                continue  # an empty id names the collection, not an item
            _probe(
                http,
                method,
                template.format(urllib.parse.quote(value, safe="")),
                f"{method} {template}:{name}",
                failures,
                statuses,
                allowed=PATH_DOCUMENTED,
                headers=account.headers,
            )
    print(f"\nquery/path probes -> {dict(statuses)}")
    assert not failures, failures[:25]


def test_very_long_urls_and_headers_are_refused_not_crashed(stack, http, account):
    host, port = stack.http_url.removeprefix("http://").split(":")
    outcomes = []
    for size in (8_000, 100_000, 1_000_000):
        for kind in ("query", "header"):
            connection = http_client.HTTPConnection(host, int(port), timeout=30)
            try:
                path = "/api/v1/analyses" + (f"?page_token={'A' * size}" if kind == "query" else "")
                connection.putrequest("GET", path)
                connection.putheader("Authorization", f"Bearer {account.access}")
                if kind == "header":
                    connection.putheader("X-Junk", "A" * size)
                connection.endheaders()
                status = connection.getresponse().status
                outcomes.append((kind, size, status))
                assert status < 500, (kind, size, status)
            except (ConnectionError, http_client.HTTPException):
                outcomes.append((kind, size, "connection closed"))  # the HTTP parser's own limit: acceptable
            finally:
                connection.close()
    print(f"\nlong URL/header -> {outcomes}")
    assert http.get("/healthz").status_code == 200


def test_non_utf8_bytes_in_bodies_queries_and_paths(stack, http, account):
    failures, statuses = [], collections.Counter()
    for name, raw in non_utf8_bytes():
        body = b'{"username": "' + raw + b'", "password": "' + raw + b'"}'
        for path in ("/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"):
            _probe(
                http,
                "POST",
                path,
                f"POST {path} body={name}",
                failures,
                statuses,
                content=body,
                headers={"Content-Type": "application/json"},
            )
        _probe(
            http,
            "PATCH",
            "/api/v1/profile",
            f"PATCH profile latin-1 {name}",
            failures,
            statuses,
            content=b'{"display_name": "' + raw + b'"}',
            headers={**account.headers, "Content-Type": "application/json; charset=latin-1"},
        )
        escaped = urllib.parse.quote_from_bytes(raw)
        for url in (
            f"/api/v1/analyses?page_token={escaped}",
            f"/api/v1/summary?time_zone={escaped}",
            f"/api/v1/analyses/{escaped}",
            f"/api/v1/analyses?user_id={escaped}",
        ):
            _probe(http, "GET", url, f"GET {url}", failures, statuses, headers=account.headers)
    for junk in (
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"a":' * 10_000,
        b"[" * 100_000,
        b"\x00" * 100,
        b'{"username": "a", "username": "b"}',
    ):
        _probe(
            http,
            "POST",
            "/api/v1/auth/login",
            f"junk JSON {junk[:20]!r}",
            failures,
            statuses,
            content=junk,
            headers={"Content-Type": "application/json"},
        )
    print(f"\nnon-UTF-8 probes -> {dict(statuses)}")
    assert not failures, failures[:25]


def _raw_login_request(raw_username: bytes) -> bytes:
    """A LoginRequest on the wire whose `username` (field 1, a proto3 string) is not valid UTF-8;
    the Python protobuf library refuses to build one, so it is encoded by hand."""
    password = b"whatever password"
    return b"\x0a" + bytes([len(raw_username)]) + raw_username + b"\x12" + bytes([len(password)]) + password


@pytest.mark.parametrize("target", ["gateway", "auth"])
def test_non_utf8_in_grpc_string_fields(stack, target):
    addr = stack.addr(target)
    service = "emotion.v1.EmotionGateway" if target == "gateway" else "emotion.v1.AuthService"
    outcomes = {}
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary(
            f"/{service}/Login",
            request_serializer=lambda raw: raw,
            response_deserializer=auth_pb2.LoginResponse.FromString,
        )
        for name, raw in non_utf8_bytes():
            try:
                call(_raw_login_request(raw), timeout=20)
                outcomes[name] = "OK"
            except grpc.RpcError as exc:
                outcomes[name] = exc.code().name
        # Plain garbage that is not a protobuf message at all.
        for name, raw in (("garbage", b"\xff" * 64), ("truncated_varint", b"\x0a\xff\xff\xff\xff\x0f")):
            try:
                call(raw, timeout=20)
                outcomes[name] = "OK"
            except grpc.RpcError as exc:
                outcomes[name] = exc.code().name
        stub = (
            auth_pb2_grpc.AuthServiceStub(channel)
            if target == "auth"
            else gateway_pb2_grpc.EmotionGatewayStub(channel)
        )
        stub.GetAgreements(auth_pb2.GetAgreementsRequest(), timeout=20)  # still serving
    print(f"\n{target} non-UTF-8 gRPC -> {outcomes}")
    bad = {
        name: code for name, code in outcomes.items() if code not in ("INVALID_ARGUMENT", "UNAUTHENTICATED")
    }
    assert not bad, bad


def test_history_grpc_survives_hostile_ids(stack, account):
    """History directly (as a signed-in user would call it through the gateway): hostile ids and tokens."""
    from emotion.v1 import history_pb2

    metadata = (("authorization", f"Bearer {account.access}"),)
    codes = collections.Counter()
    with grpc.insecure_channel(stack.addr("history")) as channel:
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        for name, value in hostile_strings():
            for request, method in (
                (history_pb2.GetAnalysisRequest(analysis_id=value), stub.GetAnalysis),
                (history_pb2.DeleteAnalysisRequest(analysis_id=value), stub.DeleteAnalysis),
                (history_pb2.ListAnalysesRequest(page_token=value), stub.ListAnalyses),
                (history_pb2.GetSummaryRequest(time_zone=value), stub.GetSummary),
                (history_pb2.RevokeAccessRequest(counselor_id=value), stub.RevokeAccess),
            ):
                try:
                    method(request, metadata=metadata, timeout=20)
                    codes["OK"] += 1
                except grpc.RpcError as exc:
                    codes[exc.code().name] += 1
                    assert exc.code() in (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.NOT_FOUND,
                        grpc.StatusCode.PERMISSION_DENIED,
                    ), (name, type(request).__name__, exc.code(), exc.details())
    print(f"\nhistory hostile ids -> {dict(codes)}")


def test_account_still_usable_after_the_barrage(stack, http, account):
    fresh = login(http, stack.http_url, Account(account.username, account.password))
    assert http.get("/api/v1/profile", headers=fresh.headers).status_code == 200
