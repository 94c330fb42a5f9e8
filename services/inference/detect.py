"""Face detection: OpenCV's frontal-face Haar cascade, run offline from the cascade the wheel ships.

Why Haar (bench/detectors.py has the measured numbers, docs/INFERENCE.md the discussion): it ships in
opencv-python-headless<5, needs no network and no extra runtime, and with the two tricks below it finds
the face in every photo of ../shared/data/photos at a few milliseconds per 350x350 photo.

1. Detection runs on a copy scaled so its longer side is `detect_size` pixels (boxes are scaled back).
   A cascade scans every window position at every scale, so its cost grows with the pixel count, while
   the faces our callers send are large; 320 px keeps faces of ~1/10 of the frame findable.
2. The copy is padded with a grey border of `pad_fraction` of its size on each side. A Haar face window
   covers eyebrows to mouth; when a face fills the whole frame (tight crops, selfies) that window
   touches the image edge at the largest scales and the cascade never fires. The border gives it room.

Detector scores: the cascade has no calibrated probability; `numDetections` (how many overlapping
windows voted for the box) is mapped to [0, 1) as n / (n + min_neighbors), so 0.5 is the weakest box the
detector keeps at all and well-supported faces score above 0.8.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Face:
    """A face box in pixels of the decoded image, with the detector's confidence in [0, 1]."""

    x: int
    y: int
    width: int
    height: int
    score: float

    @property
    def area(self) -> int:
        return self.width * self.height


class HaarFaceDetector:
    """Thread-safe wrapper: one CascadeClassifier per thread (OpenCV objects are not shared safely).

    Up to three passes, the later ones only when the earlier found nothing, so the common case costs one:
    1. the image scaled to `detect_size` on its longer side (small images are scaled up: the cascade's
       window is 24 px), faces down to `min_face_fraction` of the frame;
    2. the same copy padded with a grey border (`pad_fraction` per side), looking only for large faces,
       with `min_neighbors` lowered by one: finds faces that fill the frame;
    3. if `fallback_max_side` > 0 and the image is no larger than that and not blank, the whole image is
       returned as the face with score 0.0 ("assumed, not detected"): small images sent to an emotion
       service are face crops (the FER-2013 style), including tilted and downcast faces a frontal
       cascade misses.
    """

    name = "opencv-haar-frontalface-default"

    def __init__(
        self,
        detect_size: int = 192,
        pad_fraction: float = 0.25,
        scale_factor: float = 1.2,
        min_neighbors: int = 4,
        min_face_fraction: float = 0.2,
        fallback_max_side: int = 512,
        cascade: str = HAAR_CASCADE,
    ) -> None:
        self.detect_size = detect_size
        self.pad_fraction = pad_fraction
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        self.fallback_max_side = fallback_max_side
        self._cascade_path = cv2.data.haarcascades + cascade
        self._local = threading.local()
        if self._classifier().empty():
            raise RuntimeError(f"cannot load the Haar cascade {self._cascade_path}")

    def _classifier(self) -> cv2.CascadeClassifier:
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = self._local.classifier = cv2.CascadeClassifier(self._cascade_path)
        return classifier

    def detect(self, grey: np.ndarray) -> list[Face]:
        """All faces in a grey uint8 image, largest first."""
        height, width = grey.shape
        scale = self.detect_size / max(height, width)
        small = cv2.resize(
            grey,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        side = max(small.shape)
        faces = self._scan(
            small, scale, 0, self.min_neighbors, self.min_face_fraction * side, (width, height)
        )
        if not faces and self.pad_fraction > 0:
            pad = round(self.pad_fraction * side)
            padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
            faces = self._scan(
                padded, scale, pad, max(1, self.min_neighbors - 1), 0.4 * side, (width, height)
            )
        if not faces and max(width, height) <= self.fallback_max_side and float(grey.std()) >= 8.0:
            faces = [Face(0, 0, width, height, 0.0)]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _scan(self, image, scale, pad, min_neighbors, min_side, size) -> list[Face]:
        width, height = size
        min_side = max(24, round(min_side))
        boxes, votes = self._classifier().detectMultiScale2(
            image, scaleFactor=self.scale_factor, minNeighbors=min_neighbors, minSize=(min_side, min_side)
        )
        faces = []
        for (bx, by, bw, bh), n in zip(
            np.asarray(boxes).reshape(-1, 4), np.asarray(votes).reshape(-1), strict=True
        ):
            # Back to original pixels, clipped to the image (a box may reach into the padding).
            x0 = max(0.0, (bx - pad) / scale)
            y0 = max(0.0, (by - pad) / scale)
            x1 = min(float(width), (bx - pad + bw) / scale)
            y1 = min(float(height), (by - pad + bh) / scale)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            faces.append(
                Face(
                    round(x0),
                    round(y0),
                    round(x1 - x0),
                    round(y1 - y0),
                    float(n) / (float(n) + min_neighbors),
                )
            )
        return faces


def whole_image_face(width: int, height: int) -> Face:
    """The whole image as one face, for callers that send pre-cropped faces."""
    return Face(0, 0, width, height, 1.0)


def crop_face(grey: np.ndarray, face: Face, margin: float, size: int) -> np.ndarray:
    """Square crop around `face`, grown by `margin` of the box side on each side, resized to size x size.

    FER-2013 faces are loosely cropped (forehead to chin, some background), while a Haar box is tight
    (eyebrows to mouth), so the box is enlarged to match; parts outside the image are filled by
    replicating the edge, as a camera crop of a face at the border would look in the training data.
    """
    side = max(face.width, face.height) * (1.0 + 2.0 * margin)
    cx = face.x + face.width / 2.0
    cy = face.y + face.height / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = max(1, round(side))
    height, width = grey.shape
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + s - width), max(0, y0 + s - height)
    crop = grey[max(0, y0) : min(height, y0 + s), max(0, x0) : min(width, x0 + s)]
    if left or top or right or bottom:
        crop = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)
