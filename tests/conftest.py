"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from tests.support import DATABASES, create_database


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> str:
    """An empty database on each real server: SQLite, MariaDB and PostgreSQL."""
    url, drop = create_database(request.param, tmp_path)
    yield url
    drop()
