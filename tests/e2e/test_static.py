"""Static checks of the web app's files (no browser): CSP-safe markup, nothing fetched from outside,
the manifest's icons exist, and the service worker caches every module the app loads."""

from __future__ import annotations

import json
import re

from PIL import Image

from tests.support import REPO_ROOT

WEB = REPO_ROOT / "services" / "gateway" / "web"
TEXT_FILES = [*WEB.glob("*.html"), *WEB.glob("*.js"), *WEB.glob("*.css"), *WEB.glob("js/**/*.js")]


def test_markup_has_no_inline_scripts_or_handlers():
    html = (WEB / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script: {tag}"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler attribute"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"


def test_nothing_is_fetched_from_another_origin_and_nothing_is_evaluated():
    for path in TEXT_FILES:
        text = path.read_text()
        # Code and markup name no other origin (XML namespace identifiers are names, never fetched).
        text_without_namespaces = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"""["'(]\s*(https?:)?//[a-z0-9.-]+""", text_without_namespaces, re.I), path
        assert "@import" not in text and "@font-face" not in text, path
        if path.suffix == ".js":
            assert not re.search(r"\beval\(|new Function\(|\.innerHTML\s*=", text), path


def test_manifest_icons_exist_with_their_declared_sizes():
    manifest = json.loads((WEB / "manifest.webmanifest").read_text())
    assert manifest["display"] == "standalone" and manifest["start_url"].startswith("/")
    for icon in manifest["icons"]:
        width, height = (int(n) for n in icon["sizes"].split("x"))
        with Image.open(WEB / icon["src"]) as image:
            assert image.size == (width, height), icon
        assert (WEB / icon["src"]).stat().st_size < 64 * 1024, f"{icon['src']} is not small"


def test_service_worker_precaches_every_module():
    worker = (WEB / "sw.js").read_text()
    shell = set(re.findall(r'"([^"]+\.(?:js|css|html|png|webmanifest))"', worker))
    modules = {str(p.relative_to(WEB)) for p in WEB.glob("js/**/*.js")}
    modules |= {"app.js", "styles.css", "index.html"}
    assert modules <= shell, f"missing from sw.js SHELL: {sorted(modules - shell)}"
    assert all((WEB / name).is_file() for name in shell), "sw.js lists a file that does not exist"
