"""Browser end-to-end fixtures: the whole stack (tests/stack.py) once per module, headless Debian
Chromium driven by Playwright, and screenshots under test-artifacts/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack
from tests.support import REPO_ROOT, SHARED_DATA

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PHOTOS = SHARED_DATA / "photos"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _chromium_missing() -> str:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is not installed (apt-get install -y chromium fonts-noto-color-emoji)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download needed)"
    return ""


@pytest.fixture(scope="module")
def playwright_instance():
    # Module scope: Playwright's sync API keeps an event loop running in this thread until it stops,
    # which would break every later test that uses asyncio.
    reason = _chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def face_photo() -> Path:
    """A clear single-face photo from the shared data set (labelled happy)."""
    photo = PHOTOS / "images" / "Aitor_Gonzalez_0001.jpg"
    if not photo.is_file():
        pytest.skip(f"shared photos not found at {PHOTOS}")
    return photo


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory, face_photo: Path) -> Path:
    """An MJPEG 'camera' showing the face photo, for Chromium's fake video capture device."""
    from PIL import Image

    frame = Image.new("RGB", (640, 480), (90, 96, 104))
    face = Image.open(face_photo).convert("RGB").resize((420, 420))
    frame.paste(face, (110, 30))
    path = tmp_path_factory.mktemp("camera") / "face.mjpeg"
    jpeg = path.with_suffix(".jpg")
    frame.save(jpeg, quality=90)
    path.write_bytes(jpeg.read_bytes() * 10)  # MJPEG = concatenated JPEG frames
    return path


@pytest.fixture(scope="module")
def browser(playwright_instance, fake_camera: Path):
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            # getUserMedia without a prompt, fed from the MJPEG file instead of a real camera.
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera}",
        ],
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, playwright_instance) -> Iterator[Stack]:
    # Depends on playwright_instance so a machine without Chromium skips before starting services.
    with running_stack(tmp_path_factory.mktemp("e2e-stack")) as running:
        yield running


class BrowserPage:
    """A Playwright page of the web app, recording console errors (CSP violations included)."""

    def __init__(self, page, base_url: str, viewport_name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.viewport_name = viewport_name
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        # Failed API calls the test provokes on purpose log "Failed to load resource"; anything
        # else at error level (a CSP violation, an exception) is a bug.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def goto(self, route: str = "") -> None:
        self.page.goto(f"{self.base_url}/{route}")

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.viewport_name}-{name}.png"
        self.page.wait_for_timeout(150)  # let bar transitions settle
        # From the top, so the sticky header and fixed tab bar sit where a person sees them.
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_app(browser, stack: Stack):
    """open_app("phone" | "desktop") -> a BrowserPage in a fresh context (own session storage)."""
    contexts = []

    def open_page(viewport_name: str = "desktop") -> BrowserPage:
        context = browser.new_context(
            viewport=PHONE if viewport_name == "phone" else DESKTOP,
            is_mobile=viewport_name == "phone",
            has_touch=viewport_name == "phone",
            device_scale_factor=1,
            locale="en-GB",
            timezone_id="Asia/Shanghai",
            permissions=["camera"],
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return BrowserPage(context.new_page(), stack.http_url, viewport_name)

    yield open_page
    for context in contexts:
        context.close()
