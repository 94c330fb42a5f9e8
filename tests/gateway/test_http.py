"""The HTTP/JSON API (docs/API.md): the same flows as the mobile app, error mapping, security headers,
the OpenAPI document, and the web app's static files."""

from __future__ import annotations

import socket

import pytest

from tests.gateway.helpers import PASSWORD, Browser, photo, unique

CONTRACT_PATHS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/agreements"),
    ("get", "/api/v1/profile"),
    ("patch", "/api/v1/profile"),
    ("post", "/api/v1/profile/password"),
    ("post", "/api/v1/profile/delete"),
    ("post", "/api/v1/analyses"),
    ("get", "/api/v1/analyses"),
    ("get", "/api/v1/analyses/{analysis_id}"),
    ("delete", "/api/v1/analyses/{analysis_id}"),
    ("delete", "/api/v1/analyses"),
    ("get", "/api/v1/summary"),
    ("get", "/api/v1/export"),
    ("post", "/api/v1/shares"),
    ("get", "/api/v1/shares"),
    ("delete", "/api/v1/shares/{counselor_id}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/clients"),
}


def test_account_flow(browser: Browser):
    name = unique()
    registered = browser.register(name)
    assert registered.status_code == 200, registered.text
    assert registered.json()["user"]["role"] == "ROLE_USER"
    assert browser.register(name).status_code == 409

    login = browser.login(name)
    assert login.status_code == 200
    assert set(login.json()["tokens"]) >= {"access_token", "refresh_token", "access_expires_at"}
    profile = browser.request(
        "PATCH", "/api/v1/profile", json={"display_name": "Bo", "phone": "+8613812345678"}
    )
    assert profile.status_code == 200 and profile.json()["user"]["phone"] == "+8613812345678"
    assert browser.request("GET", "/api/v1/profile").json()["user"]["display_name"] == "Bo"

    refreshed = browser.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["tokens"]["refresh_token"]}
    )
    assert refreshed.status_code == 200
    changed = browser.request(
        "POST",
        "/api/v1/profile/password",
        json={"current_password": PASSWORD, "new_password": "another long secret"},
    )
    assert changed.status_code == 200
    assert browser.login(name).status_code == 401
    assert browser.login(name, "another long secret").status_code == 200
    assert browser.http.post("/api/v1/auth/logout", json={"refresh_token": "nope"}).status_code in (200, 401)


def test_analysis_flow(browser: Browser):
    browser.signed_up()
    created = browser.analyze(photo(8), source="SOURCE_CAMERA", request_id="web-1")
    assert created.status_code == 200, created.text
    body = created.json()
    assert created.headers["x-analysis-request-id"] == "web-1"
    assert body["recorded"] is True and body["analysis_id"]
    assert body["faces"] and len(body["faces"][0]["scores"]) == 7
    assert body["dominant"].startswith("EXPRESSION_") and body["emoji"]

    listed = browser.request("GET", "/api/v1/analyses", params={"page_size": 10, "source": "SOURCE_CAMERA"})
    assert [a["id"] for a in listed.json()["analyses"]] == [body["analysis_id"]]
    assert (
        browser.request("GET", "/api/v1/analyses", params={"source": "SOURCE_ALBUM"}).json()["analyses"] == []
    )
    got = browser.request("GET", f"/api/v1/analyses/{body['analysis_id']}")
    assert got.json()["analysis"]["request_id"] == "web-1"

    summary = browser.request(
        "GET", "/api/v1/summary", params={"time_zone": "Asia/Shanghai", "start_time": "2020-01-01T00:00:00Z"}
    )
    assert summary.status_code == 200 and summary.json()["total_analyses"] == "1"
    assert summary.json()["trend"]

    exported = browser.request("GET", "/api/v1/export", params={"format": "json"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    csv = browser.request("GET", "/api/v1/export", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and body["analysis_id"] in csv.text

    assert browser.request("DELETE", f"/api/v1/analyses/{body['analysis_id']}").status_code == 200
    assert browser.request("GET", f"/api/v1/analyses/{body['analysis_id']}").status_code == 404
    browser.analyze(photo(9))
    assert browser.request("DELETE", "/api/v1/analyses").json() == {"deleted_analyses": "1"}


def test_analysis_options_reach_inference(browser: Browser):
    """AnalyzeOptions as form fields: TTA changes the scores, a pre-cropped face is the whole image, and a
    bad value is a 400 naming the field, with nothing recorded."""
    browser.signed_up()
    plain = browser.analyze(photo(3)).json()
    steadier = browser.analyze(photo(3), test_time_augmentation="true")
    assert steadier.status_code == 200, steadier.text
    assert steadier.json()["faces"][0]["scores"] != plain["faces"][0]["scores"]
    whole = browser.analyze(photo(3), whole_image_as_face="true", max_faces="1").json()
    box = whole["faces"][0]["box"]
    assert (box.get("x", 0), box.get("y", 0), box["width"], box["height"]) == (
        0,
        0,
        whole["image_width"],
        whole["image_height"],
    )
    for field, value in (("max_faces", "-1"), ("max_faces", str(2**31)), ("test_time_augmentation", "maybe")):
        refused = browser.analyze(photo(3), **{field: value})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
    listed = browser.request("GET", "/api/v1/analyses", params={"page_size": 10}).json()["analyses"]
    assert len(listed) == 3


def test_sharing_and_counselor_views(stack, browser: Browser, counselor: str):
    counselor_name = counselor
    browser.signed_up()
    browser.analyze(photo(10))
    share = browser.request("POST", "/api/v1/shares", json={"counselor_username": counselor_name})
    assert share.status_code == 200, share.text
    counselor_id = share.json()["grant"]["counselor_id"]
    assert [g["counselor_username"] for g in browser.request("GET", "/api/v1/shares").json()["grants"]] == [
        counselor_name
    ]

    counselor = Browser(stack.http_url)
    try:
        counselor.login(counselor_name)
        clients = counselor.request("GET", "/api/v1/clients").json()["clients"]
        assert browser.user["id"] in [c["user_id"] for c in clients]
        seen = counselor.request("GET", "/api/v1/analyses", params={"user_id": browser.user["id"]})
        assert len(seen.json()["analyses"]) == 1
        assert counselor.analyze(photo()).status_code == 403
        audit = browser.request("GET", "/api/v1/audit").json()["events"]
        assert audit and audit[0]["counselor_id"] == counselor_id

        assert browser.request("DELETE", f"/api/v1/shares/{counselor_id}").status_code == 200
        clients = counselor.request("GET", "/api/v1/clients").json()["clients"]
        assert browser.user["id"] not in [c["user_id"] for c in clients]
        hidden = counselor.request("GET", "/api/v1/analyses", params={"user_id": browser.user["id"]})
        assert hidden.status_code in (403, 404)
    finally:
        counselor.close()


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("GET", "/api/v1/profile", {}, 401, "UNAUTHENTICATED"),
        ("GET", "/api/v1/analyses", {"headers": {"Authorization": "Bearer x.y.z"}}, 401, "UNAUTHENTICATED"),
        ("POST", "/api/v1/auth/login", {"content": b"{not json"}, 400, "INVALID_ARGUMENT"),
        ("POST", "/api/v1/auth/login", {"json": {"username": "a", "surprise": 1}}, 400, "INVALID_ARGUMENT"),
        ("POST", "/api/v1/auth/login", {"json": {"username": 5}}, 400, "INVALID_ARGUMENT"),
        (
            "POST",
            "/api/v1/auth/login",
            {"json": {"username": "nobody", "password": "x" * 12}},
            401,
            "UNAUTHENTICATED",
        ),
        ("GET", "/api/v1/nothing-here", {}, 404, "NOT_FOUND"),
    ],
)
def test_errors_are_mapped(browser: Browser, method, path, kwargs, status, code):
    response = browser.http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer" or path.endswith("login")


def test_field_level_errors(browser: Browser):
    response = browser.register(unique(), password="short")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "password"
    browser.signed_up()
    bad_query = browser.request("GET", "/api/v1/analyses", params={"page_size": 1000})
    assert bad_query.status_code == 400 and bad_query.json()["error"]["field"] == "page_size"
    assert browser.request("GET", "/api/v1/analyses", params={"source": "SOURCE_MARS"}).status_code == 400
    for path in ("/api/v1/analyses", "/api/v1/summary"):
        for not_rfc3339 in ("0.5", "1700000000", "yesterday", "2026-13"):
            response = browser.request("GET", path, params={"start_time": not_rfc3339})
            assert response.status_code == 400, (path, not_rfc3339, response.text)
            assert response.json()["error"]["field"] == "start_time"
        for rfc3339 in ("2026-11-22T08:00:00Z", "2026-11-22T08:00:00.5+08:00", "2026-11-22"):
            assert browser.request("GET", path, params={"end_time": rfc3339}).status_code == 200, rfc3339
    not_image = browser.analyze(b"GIF89a but not really")
    assert not_image.status_code == 400 and not_image.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert browser.request("GET", "/api/v1/analyses/00000000-0000-0000-0000-000000000000").status_code == 404


def test_body_limit(browser: Browser):
    response = browser.http.post("/api/v1/auth/login", content=b"x" * (11 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_security_headers(browser: Browser):
    for path in ("/", "/api/v1/agreements", "/api/v1/profile"):
        headers = browser.http.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "http" not in csp.replace("https://", "!!") and "*" not in csp  # no external origins
        assert "access-control-allow-origin" not in headers  # CORS is off by default
    preflight = browser.http.options(
        "/api/v1/profile", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_openapi_document(browser: Browser):
    document = browser.http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    operations = {(m, p) for p, item in document["paths"].items() for m in item}
    assert CONTRACT_PATHS <= operations
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], (method, path)
            assert {"200", "400", "401", "503", "504"} <= set(operation["responses"]), (method, path)


def test_responses_match_the_openapi_schemas(browser: Browser):
    jsonschema = pytest.importorskip("jsonschema")
    document = browser.http.get("/openapi.json").json()
    browser.signed_up()
    analysis = browser.analyze(photo(11)).json()
    samples = {
        "AnalyzePhotoResponse": analysis,
        "ListAnalysesResponse": browser.request("GET", "/api/v1/analyses").json(),
        "GetSummaryResponse": browser.request("GET", "/api/v1/summary").json(),
        "GetProfileResponse": browser.request("GET", "/api/v1/profile").json(),
        "GetAgreementsResponse": browser.request("GET", "/api/v1/agreements").json(),
        "Error": browser.request("GET", "/api/v1/analyses/nope").json(),
    }
    for name, sample in samples.items():
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        jsonschema.validate(sample, schema)


def test_web_app_is_served(stack, browser: Browser):
    index = browser.http.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    route = browser.http.get("/history")  # an app route: the SPA's index.html
    assert route.status_code == 200 and route.text == index.text
    assert browser.http.get("/missing.js").status_code == 404
    manifest = browser.http.get("/manifest.webmanifest")
    if manifest.status_code == 200:
        assert manifest.headers["content-type"].startswith("application/manifest+json")
    script = browser.http.get("/app.js")
    if script.status_code == 200:
        assert script.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "raw_path",
    [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
        "/static/../../../etc/passwd",
        "//etc/passwd",
    ],
)
def test_static_path_traversal_is_refused(stack, raw_path):
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=10) as conn:
        conn.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    status = int(response.split(b" ", 2)[1])
    assert b"root:" not in response
    # Refused, or (for a path that stays inside the web folder once normalised) the app's own index.html.
    assert status in (400, 404) or (status == 200 and b"<!doctype html" in response.lower()), response[:300]
    if ".." in raw_path or "%2e" in raw_path:
        assert status in (400, 404), response[:300]
