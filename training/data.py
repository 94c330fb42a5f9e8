"""FER-2013 loading, cleaning and caching.

The Kaggle CSV has a header `emotion,pixels,Usage`; each row is a 48x48 grey face as 2,304
space-separated ints, a label 0..6 and a split name (Training / PublicTest / PrivateTest).

Cleaning follows the seed paper: a row is dropped if its label is not an int in 0..6 or it does not
hold exactly 2,304 pixel values. We additionally drop rows whose pixels are not ints in 0..255 or whose
Usage is unknown, because they cannot be fed to the model meaningfully. Every drop is counted by reason
and reported, so a silently shrinking dataset is visible.

Normalisation contract (must match inference exactly):
    x = pixels_uint8 / 255.0            # min-max of the 8-bit range -> [0, 1]
    x = (x - mean) / std                # scalar mean/std of the Training split, stored in checkpoints
"""

import csv
import functools
import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared/data/fer2013/fer2013_training_publictest.csv.gz"
DEFAULT_CACHE = REPO_ROOT / "var/cache"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGES = ["Training", "PublicTest", "PrivateTest"]
IMG = 48
NPIX = IMG * IMG
CACHE_VERSION = 2  # bump when parsing/cleaning rules change so stale caches are ignored


@dataclass
class FERData:
    """Cleaned dataset. Images stay uint8 (N,48,48) to keep memory small; normalise at batch time."""

    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,)
    usage: np.ndarray  # int8 (N,) index into USAGES
    rows: np.ndarray  # int64 (N,) 0-based data-row index in the source CSV (for FER+ alignment)
    report: dict = field(default_factory=dict)

    def mask(self, name):
        return self.usage == USAGES.index(name)

    def split(self, name):
        m = self.mask(name)
        return self.images[m], self.labels[m]

    def subset(self, mask):
        return FERData(
            self.images[mask], self.labels[mask], self.usage[mask], self.rows[mask], dict(self.report)
        )


def _open_text(path):
    path = str(path)
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def parse_csv(path, usages=None, max_rows=None):
    """Parse and clean a Kaggle-format CSV. Returns FERData with a `report` of what was dropped and why.

    usages: keep only these splits (others are skipped before pixel parsing - fast, and not counted as
    dropped); max_rows: stop after this many data rows (quick tests)."""
    images, labels, usage, rows = [], [], [], []
    dropped = {"bad_label": 0, "bad_pixel_count": 0, "bad_pixel_value": 0, "unknown_usage": 0}
    n_rows = 0
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        try:
            ie, ip = header.index("emotion"), header.index("pixels")
        except ValueError:
            raise ValueError(f"{path}: expected header with 'emotion' and 'pixels', got {header}") from None
        iu = header.index("Usage") if "Usage" in header else None
        for i, rec in enumerate(reader):
            if max_rows is not None and i >= max_rows:
                break
            if usages is not None and iu is not None and iu < len(rec) and rec[iu].strip() not in usages:
                continue
            n_rows += 1
            try:
                lab = int(rec[ie].strip())
                if not 0 <= lab <= 6:
                    raise ValueError
            except (ValueError, IndexError):
                dropped["bad_label"] += 1
                continue
            try:
                px = rec[ip].split()
            except IndexError:
                px = []
            if len(px) != NPIX:
                dropped["bad_pixel_count"] += 1
                continue
            try:
                arr = np.array(px, dtype=np.float64)
            except ValueError:
                dropped["bad_pixel_value"] += 1
                continue
            if not (np.all(arr >= 0) and np.all(arr <= 255) and np.all(arr == np.round(arr))):
                dropped["bad_pixel_value"] += 1
                continue
            # A CSV without a Usage column is treated as all-Training (user-supplied data).
            u = rec[iu].strip() if iu is not None and iu < len(rec) else "Training"
            if u not in USAGES:
                dropped["unknown_usage"] += 1
                continue
            images.append(arr.astype(np.uint8).reshape(IMG, IMG))
            labels.append(lab)
            usage.append(USAGES.index(u))
            rows.append(i)
    images = np.stack(images) if images else np.zeros((0, IMG, IMG), np.uint8)
    usage = np.array(usage, np.int8)
    report = {
        "source": str(path),
        "rows_read": n_rows,
        "rows_kept": int(len(labels)),
        "dropped": dropped,
        "dropped_total": int(sum(dropped.values())),
        "per_split": {u: int((usage == k).sum()) for k, u in enumerate(USAGES)},
    }
    return FERData(images, np.array(labels, np.int64), usage, np.array(rows, np.int64), report)


def _cache_key(path):
    st = os.stat(path)
    s = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|v{CACHE_VERSION}"
    return hashlib.sha1(s.encode()).hexdigest()[:16]


def load_fer(path=None, cache_dir=DEFAULT_CACHE, verbose=True):
    """Load (and cache as .npy) a cleaned FER CSV. The cache is keyed on path, size and mtime."""
    path = Path(path or os.environ.get("FER_DATA") or DEFAULT_DATA)
    d = None
    if cache_dir is not None:
        cdir = Path(cache_dir) / _cache_key(path)
        if (cdir / "report.json").exists():
            d = FERData(
                *(np.load(cdir / f"{k}.npy") for k in ("images", "labels", "usage", "rows")),
                report=json.loads((cdir / "report.json").read_text()),
            )
    if d is None:
        d = parse_csv(path)
        if cache_dir is not None:
            cdir.mkdir(parents=True, exist_ok=True)
            for k in ("images", "labels", "usage", "rows"):
                np.save(cdir / f"{k}.npy", getattr(d, k))
            (cdir / "report.json").write_text(json.dumps(d.report, indent=1))  # written last = cache complete
    if verbose:
        r = d.report
        print(
            f"[data] {path}: read {r['rows_read']} rows, kept {r['rows_kept']}, dropped {r['dropped_total']} "
            f"{r['dropped']}; per split {r['per_split']}"
        )
    return d


def ferplus_votes(ferplus_csv, n_rows):
    """The FER+ vote columns' names and an int array (n_rows, 10) of votes; rows aligned by position
    (zeros past the file's end).

    The file is parsed once per version (training reads the votes for not-a-face rows and again for soft
    targets); the array is read-only, so no caller can change another's copy."""
    st = os.stat(ferplus_csv)
    names, votes = _read_ferplus_votes(str(ferplus_csv), st.st_mtime_ns, st.st_size)
    if n_rows > len(votes):
        votes = np.pad(votes, ((0, n_rows - len(votes)), (0, 0)))
        votes.flags.writeable = False
    return names, votes[:n_rows]


@functools.lru_cache(maxsize=2)
def _read_ferplus_votes(ferplus_csv, _mtime_ns, _size):
    with open(ferplus_csv, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        vote_cols = [i for i, h in enumerate(header) if h not in ("Usage", "Image name")]
        votes = np.array([[int(rec[j] or 0) for j in vote_cols] for rec in reader], np.int64)
    votes = votes.reshape(-1, len(vote_cols))  # an empty file still has the columns
    votes.flags.writeable = False
    return tuple(header[i] for i in vote_cols), votes


def ferplus_csv_beside(d):
    """The FER+ votes file that sits beside the CSV `d` was read from."""
    return Path(d.report["source"]).parent / "ferplus_training_publictest.csv"


def ferplus_not_face(ferplus_csv, n_rows):
    """Boolean mask over source rows: True where the FER+ majority vote is NF (not a face).

    "Majority" = NF gets more than half of all votes for that image. Rows are aligned by position.
    """
    names, votes = ferplus_votes(ferplus_csv, n_rows)
    return votes[:, names.index("NF")] * 2 > votes.sum(1)


# FER+ vote columns -> index into LABELS (contempt, unknown and NF have no FER-2013 class)
FERPLUS_TO_LABEL = {
    "anger": 0,
    "disgust": 1,
    "fear": 2,
    "happiness": 3,
    "sadness": 4,
    "surprise": 5,
    "neutral": 6,
}


def ferplus_majority(ferplus_csv, n_rows):
    """Per source row, the FER+ majority vote as an index into LABELS, or -1 where there is none: the top
    vote is tied, or is contempt / unknown / not-a-face. Rows are aligned by position."""
    names, votes = ferplus_votes(ferplus_csv, n_rows)
    to_label = np.array([FERPLUS_TO_LABEL.get(n, -1) for n in names])
    top = votes.argmax(1)
    unique_top = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    return np.where(unique_top & (votes.sum(1) > 0), to_label[top], -1)


def ferplus_distribution(ferplus_csv, n_rows):
    """Per source row, the FER+ annotators' votes over the 7 LABELS as a distribution (float32, n_rows x 7);
    all zeros where no annotator chose one of the 7 (contempt / unknown / not-a-face only). Rows are aligned
    by position."""
    names, votes = ferplus_votes(ferplus_csv, n_rows)
    seven = np.zeros((n_rows, len(LABELS)), np.float32)
    for name, label in FERPLUS_TO_LABEL.items():
        seven[:, label] = votes[:, names.index(name)]
    total = seven.sum(1, keepdims=True)
    return np.divide(seven, total, out=np.zeros_like(seven), where=total > 0)


def drop_not_faces(d, ferplus_csv=None, splits=("Training",), verbose=True):
    """Remove FER+ 'not a face' rows of the given splits (default Training only, so the validation figure
    stays comparable with the literature); counts per split are added to the report."""
    ferplus_csv = ferplus_csv or ferplus_csv_beside(d)
    nf_rows = ferplus_not_face(ferplus_csv, int(d.rows.max()) + 1)
    is_nf = nf_rows[d.rows] & np.isin(d.usage, [USAGES.index(u) for u in splits])
    dropped = {u: int((is_nf & (d.usage == k)).sum()) for k, u in enumerate(USAGES)}
    out = d.subset(~is_nf)
    out.report["dropped_not_face"] = dropped
    if verbose:
        print(f"[data] dropped FER+ not-a-face rows: {dropped}")
    return out


def norm_stats(images_uint8):
    """Scalar mean/std of the [0,1]-scaled pixels (computed on Training only)."""
    x = images_uint8.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def normalize(images_uint8, mean, std):
    """uint8 (N,48,48) -> float32 (N,1,48,48) standardised. The one preprocessing used everywhere."""
    x = images_uint8.astype(np.float32) / 255.0
    return ((x - mean) / std)[:, None]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Parse, clean and cache a FER-2013 CSV; print the report.")
    ap.add_argument("--data", default=None)
    ap.add_argument("--drop-not-face", action="store_true")
    a = ap.parse_args()
    d = load_fer(a.data)
    if a.drop_not_face:
        d = drop_not_faces(d, splits=USAGES)
    print(json.dumps(d.report, indent=1))
