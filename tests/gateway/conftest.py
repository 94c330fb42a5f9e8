"""One real stack (auth, history, inference, gateway processes) for the gateway tests."""

from __future__ import annotations

import pytest

from tests.gateway.helpers import PASSWORD, Browser, Mobile, unique
from tests.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def mobile(stack) -> Mobile:
    client = Mobile(stack.gateway_addr)
    yield client
    client.close()


@pytest.fixture
def browser(stack) -> Browser:
    client = Browser(stack.http_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def counselor(stack) -> str:
    """Username of a counsellor account (created once: the operator command is slow to start)."""
    name = unique("dr")
    stack.create_counselor(name, PASSWORD)
    return name
