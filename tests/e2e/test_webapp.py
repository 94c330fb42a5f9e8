"""The web app in headless Chromium against the real services: registration and login, recognising a
photo (upload, camera capture, live mode), the emotion centre, and the counsellor view.

Each step writes a screenshot to test-artifacts/screenshots/<viewport>-<page>.png.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import BrowserPage

PASSWORD = "violet-harbour-lantern-42"
EMOJI = set("😠🤢😨😀😢😲😐")

pytestmark = pytest.mark.timeout(300)  # the first test also starts the stack


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def api_register(base_url: str, username: str, photo=None) -> str:
    """Create an account through the HTTP API (quicker than the UI); returns an access token."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        agreements = client.get("/api/v1/agreements").raise_for_status().json()
        client.post(
            "/api/v1/auth/register",
            json={
                "username": username,
                "password": PASSWORD,
                "phone": "+8613812345678",
                "accepted_privacy_policy_version": agreements["privacy_policy"]["version"],
                "accepted_user_agreement_version": agreements["user_agreement"]["version"],
            },
        ).raise_for_status()
        tokens = (
            client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            .raise_for_status()
            .json()["tokens"]
        )
        if photo is not None:
            client.post(
                "/api/v1/analyses",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
                files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                data={"source": "SOURCE_ALBUM"},
            ).raise_for_status()
        return tokens["access_token"]


def nav(page, name: str):
    """A link of the main navigation."""
    return page.locator("#app-nav").get_by_role("link", name=name)


def log_in(app: BrowserPage, username: str, password: str = PASSWORD) -> None:
    page = app.page
    expect(page.locator("#login-username")).to_be_visible()
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.get_by_role("button", name="Log in").click()


def expect_seven_bars_and_an_emoji(app: BrowserPage) -> None:
    page = app.page
    rows = page.locator("#result .score-bars .bar-row")
    expect(rows).to_have_count(7)
    for value in rows.locator(".bar-value").all_text_contents():
        assert re.fullmatch(r"\d{1,3}%", value.strip()), value
    expect(page.locator("#result")).to_contain_text("Apparent expression")
    assert page.locator("#result-emoji").text_content().strip() in EMOJI


# Wraps fetch to keep the text fields of the FormData bodies the app sends.
UPLOAD_FIELDS_RECORDER = """() => {
  const send = window.fetch;
  window.uploadFields = null;
  window.fetch = (url, init = {}) => {
    if (init.body instanceof FormData) {
      window.uploadFields = Object.fromEntries([...init.body].filter(([, v]) => typeof v === "string"));
    }
    return send(url, init);
  };
}"""


def test_register_log_in_recognise_and_delete_on_a_phone(open_app, face_photo):
    app = open_app("phone")
    page = app.page
    username = unique("mia")

    app.goto()
    expect(page).to_have_url(re.compile(r"#/login$"))
    app.shot("login")

    # Installable and offline-capable: a manifest, and the service worker serves the shell offline.
    manifest = page.evaluate("fetch('manifest.webmanifest').then((r) => r.json())")
    assert manifest["display"] == "standalone"
    assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.context.set_offline(True)
    page.reload()
    expect(page.locator("#login-username")).to_be_visible()
    page.context.set_offline(False)

    # Registration: field-level messages before anything is sent.
    page.get_by_role("link", name="Create an account").click()
    expect(page.locator("#reg-privacy-policy")).to_be_visible()  # agreements loaded
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#reg-username-error")).to_have_text("Enter a username.")
    expect(page.locator("#reg-password-error")).to_have_text("Enter a password.")
    expect(page.locator("#reg-phone-error")).to_have_text("Enter your phone number.")
    expect(page.locator("#reg-accept-error")).to_contain_text("accept the privacy policy")
    expect(page.locator("#reg-username")).to_have_attribute("aria-invalid", "true")
    page.fill("#reg-username", "a!")
    page.fill("#reg-password", "short")
    page.fill("#reg-phone", "13812345678")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#reg-username-error")).to_contain_text("3–32 letters")
    expect(page.locator("#reg-password-error")).to_have_text("Use at least 10 characters.")
    expect(page.locator("#reg-phone-error")).to_contain_text("choose the phone region")
    page.locator("#reg-privacy-policy summary").click()
    expect(page.locator("#reg-privacy-policy .agreement-text")).to_be_visible()
    app.shot("register-errors")

    page.fill("#reg-username", username)
    page.fill("#reg-password", PASSWORD)
    page.fill("#reg-password2", PASSWORD)
    page.select_option("#reg-region", "CN")
    page.check("#reg-accept")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#choose-photo")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/recognise$"))

    # Log out from the personal centre, then log in again.
    nav(page, "Me").click()
    expect(page.locator("#profile-username")).to_have_text(username)
    expect(page.locator("#profile-phone")).to_have_value("+8613812345678")
    app.shot("personal-centre")
    page.locator("#logout").click()
    expect(page.locator(".notice")).to_have_text("You are logged out.")
    # Keyboard only: the heading has focus after the route change; Tab, type, Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "login-username"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password 123")
    page.keyboard.press("Enter")
    expect(page.locator(".form-message")).not_to_be_empty()
    log_in(app, username)
    expect(page.locator("#choose-photo")).to_be_visible()

    # Recognise a photo from the "album", with the careful analysis (TTA) the user opts in to.
    careful = page.locator("#careful-analysis")
    expect(careful).not_to_be_checked()
    careful.check()
    page.evaluate(UPLOAD_FIELDS_RECORDER)  # Playwright does not expose multipart bodies with files
    page.set_input_files("#photo-file", str(face_photo))
    expect_seven_bars_and_an_emoji(app)
    assert page.evaluate("window.uploadFields")["test_time_augmentation"] == "true"
    expect(page.locator("#result canvas.photo")).to_be_visible()
    app.shot("recognise")

    # It is in the emotion centre, with the trend; open it, delete it, and it is gone.
    nav(page, "Emotion centre").click()
    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Album")
    assert items.first.locator(".item-emoji").text_content().strip() in EMOJI
    expect(page.locator("svg.trend-chart")).to_be_visible()
    app.shot("emotion-centre")

    items.first.locator("a").click()
    expect(page.locator("#delete-analysis")).to_be_visible()
    expect(page.locator(".score-bars .bar-row")).to_have_count(7)
    app.shot("analysis")
    page.locator("#delete-analysis").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    app.shot("confirm-delete")
    page.locator("#confirm-ok").click()
    expect(page).to_have_url(re.compile(r"#/history$"))
    expect(page.locator("#history-list .history-item")).to_have_count(0)
    expect(page.locator(".list-footer")).to_contain_text("No analyses in this range")
    app.shot("emotion-centre-empty")

    assert app.errors == []


def test_camera_capture_and_live_mode_on_a_desktop(open_app, stack):
    username = unique("leo")
    api_register(stack.http_url, username)
    app = open_app("desktop")
    page = app.page
    app.goto()
    log_in(app, username)

    # A still from the (fake) camera.
    page.locator("#open-camera").click()
    page.locator("#capture").click()
    expect_seven_bars_and_an_emoji(app)
    app.shot("recognise-camera")

    # Live mode: bars follow the face, stopping saves one summary.
    page.locator("#open-live").click()
    expect(page.locator("#live-record")).to_be_checked()
    page.locator("#start-live").click()
    expect(page.locator(".camera-panel .hint")).to_contain_text("face(s)", timeout=30_000)
    expect(page.locator(".camera-panel .score-bars .bar-row")).to_have_count(7)
    app.shot("live")
    page.locator("#stop-live").click()
    expect(page.locator("#live-saved")).to_be_visible(timeout=20_000)

    nav(page, "Emotion centre").click()
    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="Live")).to_have_count(1)
    expect(items.filter(has_text="Camera")).to_have_count(1)
    expect(page.locator("svg.trend-chart rect").first).to_be_visible()
    app.shot("emotion-centre")
    page.select_option("#filter-source", "SOURCE_LIVE")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Live")
    page.select_option("#filter-source", "")
    expect(items).to_have_count(2)

    # Export downloads a file.
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    assert download.value.suggested_filename.endswith(".csv")

    # An expired access token is refreshed transparently (the reload reads it from sessionStorage).
    page.evaluate("sessionStorage.setItem('emotion.access_token', 'expired.token.value')")
    page.reload()
    expect(page.locator("#history-list .history-item")).to_have_count(2)

    # Personal centre: edit the profile, change the password, delete the account.
    nav(page, "Me").click()
    expect(page.locator("#profile-username")).to_have_text(username)
    page.fill("#profile-display-name", "Leo Example")
    page.fill("#profile-phone", "+44 20 7946 0018")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".form-message-success")).to_have_text("Profile saved.")
    expect(page.locator("#profile-phone")).to_have_value("+442079460018")
    page.locator("#user-agreement summary").click()
    expect(page.locator("#user-agreement .agreement-text")).to_be_visible()
    new_password = PASSWORD + "-new"
    page.fill("#pw-current", PASSWORD)
    page.fill("#pw-new", new_password)
    page.fill("#pw-repeat", new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("form .form-message-success").last).to_contain_text("Password changed")
    app.shot("personal-centre")

    page.locator("#delete-account").click()
    page.fill("#delete-password", "not my password 1")
    page.locator("#confirm-ok").click()
    expect(page.locator("#status")).to_contain_text("not correct")
    expect(page.locator("#profile-username")).to_have_text(username)  # still logged in
    page.locator("#delete-account").click()
    page.fill("#delete-password", new_password)
    app.shot("delete-account")
    page.locator("#confirm-ok").click()
    expect(page.locator(".notice")).to_contain_text("Your account was deleted, with 2 analyses")
    log_in(app, username, new_password)
    expect(page.locator(".form-message")).not_to_be_empty()
    assert app.errors == []


def test_counsellor_sees_a_consenting_client_and_not_another(open_app, stack, face_photo):
    counsellor = unique("dr")
    sharing_client, private_client = unique("ana"), unique("ben")
    # The operator command is a separate process: let it run while the clients sign up.
    with ThreadPoolExecutor(max_workers=1) as pool:
        created = pool.submit(stack.create_counselor, counsellor, PASSWORD, organization="Campus Care")
        api_register(stack.http_url, sharing_client, photo=face_photo)
        api_register(stack.http_url, private_client, photo=face_photo)
        created.result()

    # The client shares with the counsellor from the emotion centre.
    client_app = open_app("desktop")
    client_page = client_app.page
    client_app.goto()
    log_in(client_app, sharing_client)
    nav(client_page, "Emotion centre").click()
    client_page.fill("#share-username", counsellor)
    client_page.get_by_role("button", name="Share", exact=True).click()
    expect(client_page.locator("#grants")).to_contain_text(counsellor)
    expect(client_page.locator("#grants")).to_contain_text("Campus Care")

    # The counsellor sees that client only, with their history and trend, read-only.
    counsellor_app = open_app("desktop")
    page = counsellor_app.page
    counsellor_app.goto()
    log_in(counsellor_app, counsellor)
    expect(page).to_have_url(re.compile(r"#/clients$"))
    clients = page.locator("#client-list .history-item")
    expect(clients).to_have_count(1)
    expect(clients.first).to_contain_text(sharing_client)
    expect(page.locator("#client-list")).not_to_contain_text(private_client)
    expect(nav(page, "Recognise")).to_be_hidden()
    counsellor_app.shot("clients")

    clients.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text(sharing_client)
    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(1)
    expect(page.locator("svg.trend-chart")).to_be_visible()
    expect(page.locator("#delete-all")).to_have_count(0)
    counsellor_app.shot("client")
    items.first.locator("a").click()
    expect(page.locator(".score-bars .bar-row")).to_have_count(7)
    expect(page.locator("#delete-analysis")).to_have_count(0)
    counsellor_app.shot("client-analysis")

    # The client sees those reads in the access log, then revokes access.
    client_page.reload()
    expect(client_page.locator("#audit-log")).to_contain_text(counsellor)
    client_app.shot("sharing-audit")
    client_page.locator("#grants").get_by_role("button", name="Revoke").click()
    client_page.locator("#confirm-ok").click()
    expect(client_page.locator("#grants")).to_contain_text("revoked")

    nav(page, "Clients").click()
    expect(page.locator(".empty")).to_contain_text("No client has shared")
    nav(page, "Me").click()
    expect(page.locator(".facts")).to_contain_text("Counsellor, Campus Care")
    counsellor_app.shot("counsellor-personal-centre")

    assert client_app.errors == []
    assert counsellor_app.errors == []
