"""The privacy policy and user agreement, versioned as Markdown files.

Each kind has a folder; each file is one version named by the date it takes
effect (`2026-11-01.md`); its first `# ` heading is the title. The current
version is the latest one whose date has come. Publishing a new version is
adding a file; old ones stay so what a user accepted remains on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

AGREEMENTS_DIR = Path(__file__).parent
PRIVACY_POLICY = "privacy_policy"
USER_AGREEMENT = "user_agreement"


@dataclass(frozen=True)
class Agreement:
    kind: str
    version: str
    title: str
    text_markdown: str
    effective_at: datetime


def _load(path: Path, kind: str) -> Agreement:
    text = path.read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), kind)
    effective_at = datetime.strptime(path.stem, "%Y-%m-%d").replace(tzinfo=UTC)
    return Agreement(kind, path.stem, title, text, effective_at)


def versions(kind: str, directory: Path = AGREEMENTS_DIR) -> list[Agreement]:
    """Every version of `kind`, oldest first."""
    return sorted((_load(p, kind) for p in (directory / kind).glob("*.md")), key=lambda a: a.effective_at)


def current(kind: str, now: datetime, directory: Path = AGREEMENTS_DIR) -> Agreement:
    """The version in force at `now`."""
    in_force = [a for a in versions(kind, directory) if a.effective_at <= now]
    if not in_force:
        raise LookupError(f"no {kind} in force at {now.isoformat()}")
    return in_force[-1]
