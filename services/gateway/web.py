"""Serving the single-page web app: static files with correct types, index.html for the app's own
routes (so a reload of /history works), never anything outside the web folder."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# Types the system tables may lack or get wrong; a module script served as text/plain would not run.
for _type, _ext in (
    ("text/javascript", ".js"),
    ("text/javascript", ".mjs"),
    ("text/css", ".css"),
    ("application/manifest+json", ".webmanifest"),
    ("image/svg+xml", ".svg"),
    ("image/png", ".png"),
    ("image/x-icon", ".ico"),
    ("application/json", ".json"),
    ("font/woff2", ".woff2"),
    ("application/wasm", ".wasm"),
):
    mimetypes.add_type(_type, _ext)

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emotion</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Emotion gateway</h1>
<p>The web app is not installed. The API is at <a href="/docs">/docs</a> (<code>/openapi.json</code>).</p>
</main></body></html>
"""


class SpaStaticFiles(StaticFiles):
    """StaticFiles (which refuses paths escaping its directory) plus the SPA fallback: a missing path
    without a file extension is one of the app's routes, answered with index.html."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not self._is_app_route(path):
                raise
            return await super().get_response("index.html", scope)
        if response.status_code == 404 and self._is_app_route(path):
            return await super().get_response("index.html", scope)
        return response

    @staticmethod
    def _is_app_route(path: str) -> bool:
        parts = Path(path).parts
        return ".." not in parts and "." not in (parts[-1] if parts else "") and not path.startswith("api")


def has_web_app(web_dir: str) -> bool:
    return (Path(web_dir) / "index.html").is_file()


async def placeholder() -> HTMLResponse:
    return HTMLResponse(PLACEHOLDER)
