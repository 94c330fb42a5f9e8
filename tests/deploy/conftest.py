"""Rendered Kustomize overlays, shared by the deployment tests (rendered once per session)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deploy import manifests


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """{overlay: [objects]} for every overlay under deploy/k8s/overlays."""
    with ThreadPoolExecutor(len(manifests.OVERLAYS)) as pool:
        return dict(zip(manifests.OVERLAYS, pool.map(manifests.render, manifests.OVERLAYS), strict=True))
