"""Registration rules, against each real database."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from emotion.v1 import auth_pb2
from services.auth import agreements
from services.auth.passwords import common_passwords
from tests.auth.conftest import PASSWORD, registration

pytestmark = pytest.mark.asyncio


async def register_error(auth, **fields) -> grpc.aio.AioRpcError:
    request = registration(**fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.Register(request)
    return caught.value


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """Field -> description from the google.rpc.BadRequest detail."""
    status = rpc_status.from_call(error)
    result = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            result.update({v.field: v.description for v in bad_request.field_violations})
    return result


async def test_register_records_normalised_fields_and_accepted_agreements(auth):
    user = await auth.register("Alice_01.x-y", phone="020 7946 0958", phone_region="gb")
    assert user.username == "Alice_01.x-y"
    assert user.display_name == "Alice_01.x-y"  # defaults to the username
    assert user.phone == "+442079460958"  # stored E.164
    assert user.role == auth_pb2.ROLE_USER
    assert user.organization == ""
    assert not user.store_thumbnails
    assert user.privacy_policy_version == agreements.current(agreements.PRIVACY_POLICY, auth.clock()).version
    assert user.user_agreement_version == agreements.current(agreements.USER_AGREEMENT, auth.clock()).version
    assert abs(user.created_at.ToDatetime().timestamp() - auth.clock().timestamp()) < 1

    from services.auth.storage import User

    async with auth.app.storage.transaction() as db:
        stored = await db.get(User, user.id)
    assert abs((stored.privacy_policy_accepted_at - auth.clock()).total_seconds()) < 0.001  # time recorded
    assert abs((stored.user_agreement_accepted_at - auth.clock()).total_seconds()) < 0.001
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash

    named = await auth.register("bob", display_name="  Bob 🙂 Smith  ", phone="+86 138 0013 8000")
    assert named.display_name == "Bob 🙂 Smith"  # utf8mb4 survives the round trip
    assert named.phone == "+8613800138000"


async def test_username_rules_and_case_insensitive_uniqueness(auth):
    for bad in ("ab", "x" * 33, "has space", "ünïcode", "semi;colon", "аdmin"):  # the last has a Cyrillic a
        error = await register_error(auth, username=bad, password="a-good-long-passphrase")
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "username" in violations(error), bad
        assert error.details().startswith("username:")

    await auth.register("Carol")
    for taken in ("carol", "CAROL", "Carol"):
        error = await register_error(auth, username=taken)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "taken" in error.details()
    assert (await auth.register("x" * 32)).username == "x" * 32
    assert (await auth.register("a.b")).username == "a.b"


async def test_password_rules(auth):
    common = sorted(p for p in common_passwords() if len(p) >= 10)[:3]
    cases = {
        "short": "too short",
        "username": "PasswordUser",  # same as the username, ignoring case
        "common": common[0],
        "common upper": common[1].upper(),
    }
    for label, password in cases.items():
        error = await register_error(auth, username="passworduser", password=password)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, label
        assert "password" in violations(error), label
    assert "at least 10" in violations(await register_error(auth, password="123456789"))["password"]
    assert "common" in violations(await register_error(auth, password="1234567890"))["password"]
    assert (await auth.register("passworduser", password="Tr0ub4dor&3 staple")).username == "passworduser"


async def test_phone_and_agreement_rules(auth):
    cases = [
        ({"phone": ""}, "phone"),
        ({"phone": "not a number"}, "phone"),
        ({"phone": "+1 555"}, "phone"),  # too short to be valid
        ({"phone": "020 7946 0958"}, "phone"),  # national form without a region
        ({"phone": "020 7946 0958", "phone_region": "XX"}, "phone_region"),
        ({"accepted_privacy_policy_version": "2020-01-01"}, "accepted_privacy_policy_version"),
        ({"accepted_user_agreement_version": ""}, "accepted_user_agreement_version"),
        ({"display_name": "bad\u202ename"}, "display_name"),  # bidi override
        ({"display_name": "x" * 65}, "display_name"),
    ]
    for fields, field in cases:
        error = await register_error(auth, **fields)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert field in violations(error), (fields, violations(error))


async def test_every_violation_is_reported_at_once_and_nothing_is_stored(auth):
    error = await register_error(
        auth, username="!", password="short", phone="nope", accepted_privacy_policy_version="old"
    )
    assert set(violations(error)) == {"username", "password", "phone", "accepted_privacy_policy_version"}
    for field in ("username:", "password:", "phone:", "accepted_privacy_policy_version:"):
        assert field in error.details()

    from services.auth.storage import User

    async with auth.app.storage.transaction() as db:
        assert await auth.app.storage.count(db, User) == 0


async def test_self_registration_always_creates_a_plain_user(auth):
    # RegisterRequest has no role or organization: counsellors come only from the operator command.
    assert "role" not in auth_pb2.RegisterRequest.DESCRIPTOR.fields_by_name
    user = await auth.register("dave")
    assert user.role == auth_pb2.ROLE_USER
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.LookupCounselor(auth_pb2.LookupCounselorRequest(username="dave"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
