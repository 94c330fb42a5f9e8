"""Identifiers that more than one service must agree on."""

from __future__ import annotations

import uuid

# Fixed namespace for analysis ids; changing it would change every future id.
ANALYSIS_NAMESPACE = uuid.UUID("6f1f4e0c-6b1d-5c8e-9a57-2f3f0c9e7a11")


def analysis_id(user_id: str, request_id: str) -> str:
    """The id of the analysis a user recorded under `request_id` (a UUIDv5).

    History stores each analysis under this id, and the gateway can name it before history has
    it: an analysis queued in the gateway's outbox is acknowledged with the id it will carry.
    """
    return str(uuid.uuid5(ANALYSIS_NAMESPACE, f"{user_id}/{request_id}"))
