"""One real stack for the pressure tests (hostile input, attacks, a short fault), shared by the session.

Rate limits and the per-address login lockout are raised so that a thousand hostile requests from
127.0.0.1 test the input handling rather than the limiter; the per-username lockout keeps its real
value (test_attacks checks it), and bench/load.py measures the limiter under overload.
"""

from __future__ import annotations

import httpx
import pytest

from tests.pressure.api import Account, agreement_versions, register_and_login
from tests.pressure.harness import pressure_stack

PRESSURE_ENV = {
    "gateway": {"GATEWAY_RATE_LIMIT_USER_PER_S": "0", "GATEWAY_RATE_LIMIT_ADDRESS_PER_S": "0"},
    "auth": {"AUTH_ADDRESS_MAX_FAILURES": "100000"},
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with pressure_stack(tmp_path_factory.mktemp("pressure-stack"), env=PRESSURE_ENV) as running:
        yield running


@pytest.fixture(scope="session")
def http(stack) -> httpx.Client:
    with httpx.Client(base_url=stack.http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def versions(stack, http) -> tuple[str, str]:
    return agreement_versions(http, stack.http_url)


@pytest.fixture
def account(stack, http, versions) -> Account:
    return register_and_login(http, stack.http_url, "u", versions)
