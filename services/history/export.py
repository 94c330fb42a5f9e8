"""Data-portability exports of a user's whole history: CSV with one row per face
(analysis columns repeated; an analysis without faces gets one row with empty
face columns, so nothing is lost), or JSON with one object per analysis.

Times are ISO 8601 UTC; expressions and sources are lower-case names.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy.engine import Row

from services.history.storage import SCORE_NAMES, decode_faces, row_scores

EXPRESSION_NAMES = ("", *SCORE_NAMES)  # index = Expression enum value
SOURCE_NAMES = ("", "camera", "album", "live")  # index = Source enum value

CSV_COLUMNS = (
    "analysis_id",
    "request_id",
    "captured_at",
    "created_at",
    "source",
    "model_version",
    "dominant",
    *(f"overall_{name}" for name in SCORE_NAMES),
    "face_index",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "face_dominant",
    *(f"face_{name}" for name in SCORE_NAMES),
    "detection_score",
    "track_id",
)


class ExportTooLarge(Exception):
    pass


def _name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else str(value)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class _Buffer:
    """Collects UTF-8 output and refuses to grow beyond `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size = limit, [], 0

    def write(self, text: str) -> None:
        data = text.encode()
        self.size += len(data)
        if self.size > self.limit:
            raise ExportTooLarge(f"export exceeds {self.limit} bytes")
        self.parts.append(data)

    def value(self) -> bytes:
        return b"".join(self.parts)


async def export_csv(batches: AsyncIterator[list[Row]], limit: int) -> bytes:
    out = _Buffer(limit)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")

    def flush() -> None:
        out.write(text.getvalue())
        text.seek(0)
        text.truncate()

    writer.writerow(CSV_COLUMNS)
    async for batch in batches:
        for row in batch:
            analysis = [
                row.id,
                row.request_id,
                _iso(row.captured_at),
                _iso(row.created_at),
                _name(SOURCE_NAMES, row.source),
                row.model_version,
                _name(EXPRESSION_NAMES, row.dominant),
                *(f"{s:.6f}" for s in row_scores(row)),
            ]
            faces = decode_faces(row.faces_json)
            if not faces:
                writer.writerow(analysis + [""] * (len(CSV_COLUMNS) - len(analysis)))
            for index, face in enumerate(faces):
                writer.writerow(
                    analysis
                    + [index, *face.box, _name(EXPRESSION_NAMES, face.dominant)]
                    + [f"{s:.6f}" for s in face.scores]
                    + [f"{face.detection_score:.6f}", face.track_id]
                )
        flush()
    flush()
    return out.value()


def analysis_json(row: Row) -> dict:
    item = {
        "id": row.id,
        "request_id": row.request_id,
        "captured_at": _iso(row.captured_at),
        "created_at": _iso(row.created_at),
        "source": _name(SOURCE_NAMES, row.source),
        "model_version": row.model_version,
        "dominant": _name(EXPRESSION_NAMES, row.dominant),
        "overall": dict(zip(SCORE_NAMES, row_scores(row), strict=True)),
        "faces": [
            {
                "box": dict(zip(("x", "y", "width", "height"), face.box, strict=True)),
                "dominant": _name(EXPRESSION_NAMES, face.dominant),
                "scores": dict(zip(SCORE_NAMES, face.scores, strict=True)),
                "emoji": face.emoji,
                "detection_score": face.detection_score,
                "track_id": face.track_id,
            }
            for face in decode_faces(row.faces_json)
        ],
    }
    if row.thumbnail_jpeg:
        item["thumbnail_jpeg_base64"] = base64.b64encode(row.thumbnail_jpeg).decode()
    return item


async def export_json(
    user_id: str, exported_at: datetime, batches: AsyncIterator[list[Row]], limit: int
) -> bytes:
    """{"user_id", "exported_at", "analyses": [...]}, newest first, written incrementally."""
    out = _Buffer(limit)
    head = {"user_id": user_id, "exported_at": _iso(exported_at)}
    out.write(json.dumps(head)[:-1] + ',"analyses":[')
    first = True
    async for batch in batches:
        for row in batch:
            out.write(("" if first else ",") + json.dumps(analysis_json(row), ensure_ascii=False))
            first = False
    out.write("]}")
    return out.value()
