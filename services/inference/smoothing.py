"""Temporal smoothing for live streams: stable track ids and exponentially averaged scores per face.

Each frame's faces are matched to the previous frames' tracks greedily by box overlap (IoU, best pairs
first). A matched track's scores move towards the new ones by `alpha` (EMA), so one odd frame moves a
live bar by at most `alpha` of the jump instead of all of it; an unmatched face starts a new track; a
track unseen for `max_age` frames is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.inference.detect import Face


def iou(a: Face, b: Face) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    face: Face
    scores: np.ndarray
    last_frame: int


class FaceTracker:
    """Per-stream state; not thread-safe (one stream is handled by one task)."""

    def __init__(self, alpha: float = 0.4, min_iou: float = 0.3, max_age: int = 15) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.min_iou = min_iou
        self.max_age = max_age
        self.tracks: list[Track] = []
        self._frame = 0
        self._next_id = 1

    def update(self, faces: list[Face], scores: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(track id, smoothed scores) for each face, in the order given."""
        self._frame += 1
        pairs = sorted(
            (
                (iou(face, track.face), i, j)
                for i, face in enumerate(faces)
                for j, track in enumerate(self.tracks)
            ),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.min_iou:
                break
            if i in assigned or j in used_tracks:
                continue
            assigned[i] = j
            used_tracks.add(j)

        out = []
        for i, face in enumerate(faces):
            if i in assigned:
                track = self.tracks[assigned[i]]
                track.scores = self.alpha * scores[i] + (1.0 - self.alpha) * track.scores
                track.face, track.last_frame = face, self._frame
            else:
                track = Track(self._next_id, face, np.array(scores[i], dtype=np.float64), self._frame)
                self._next_id += 1
                self.tracks.append(track)
            out.append((track.track_id, track.scores / track.scores.sum()))
        self.tracks = [t for t in self.tracks if self._frame - t.last_frame < self.max_age]
        return out
