"""AuthService RPCs: registration, sessions, profile, agreements, keys.

Security properties kept here:
- Login answers an unknown username exactly like a wrong password, after
  verifying against a dummy Argon2 hash so the timing matches too.
- Failed password checks are counted per username (whether it exists or not)
  and per client address in sliding windows; over the limit, attempts are
  refused with RESOURCE_EXHAUSTED and `retry-after` without checking the
  password at all.
- Refresh tokens are single use. Presenting a spent one means it was copied:
  the whole session (every token rotated from the same login) is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter

from emotion.v1 import auth_pb2, auth_pb2_grpc
from services.auth import agreements, validation
from services.auth.history_erasure import HistoryEraser
from services.auth.passwords import Passwords, password_problem
from services.auth.settings import AuthSettings
from services.auth.storage import Storage, User, UsernameTaken
from services.auth.tokens import Clock, KeyRing, TokenMinter, hash_refresh_token, new_refresh_token
from services.common.tokens import ALGORITHM, ROLE_COUNSELOR, ROLE_USER, current_principal

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "invalid username or password"
BAD_REFRESH_TOKEN = "invalid or expired refresh token"
SCOPE_USERNAME = "username"
SCOPE_ADDRESS = "address"
ROLES = {ROLE_USER: auth_pb2.ROLE_USER, ROLE_COUNSELOR: auth_pb2.ROLE_COUNSELOR}

LOGINS = Counter("auth_logins_total", "Login attempts by outcome.", ["outcome"])  # success|failure|locked
REFRESH_REUSE = Counter("auth_refresh_token_reuse_total", "Spent refresh tokens presented again.")


class Abort(Exception):
    """A gRPC error to return, raised from helpers below the handler."""

    def __init__(
        self, code: grpc.StatusCode, message: str, trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing = trailing


class InvalidFields(Exception):
    def __init__(self, errors: list[validation.FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def rpc(method):
    """Turns Abort / InvalidFields raised inside a handler into the gRPC status."""

    async def handler(self, request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except Abort as exc:
            await context.abort(exc.code, exc.message, trailing_metadata=exc.trailing)
        except InvalidFields as exc:
            await context.abort_with_status(_bad_request(exc.errors))

    handler.__name__ = method.__name__
    handler.__doc__ = method.__doc__
    return handler


def _bad_request(errors: list[validation.FieldError]) -> grpc.Status:
    """INVALID_ARGUMENT naming every offending field, with google.rpc.BadRequest details for clients."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=e.field, description=e.reason)
                for e in errors
            ]
        )
    )
    message = "; ".join(str(e) for e in errors)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    )


def _check(errors: list[validation.FieldError], check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except validation.FieldError as exc:
        errors.append(exc)
        return None


def failure_key(scope: str, value: str) -> str:
    """What the failure table stores: a hash, so it holds no usernames or addresses."""
    return hashlib.sha256(f"{scope}:{value}".encode()).hexdigest()


def client_address(context: grpc.aio.ServicerContext, trusted_proxies: tuple = ()) -> str:
    """The caller's IP from context.peer(); behind a trusted proxy (the gateway), the nearest
    untrusted address of its x-forwarded-for."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        address = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        address = unquote(rest.rsplit(":", 1)[0]).strip("[]")
    else:
        return peer or "unknown"

    def trusted(ip: str) -> bool:
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(parsed in network for network in trusted_proxies)

    if not trusted(address):
        return address
    metadata = dict(context.invocation_metadata() or ())
    hops = [h.strip() for h in str(metadata.get("x-forwarded-for", "")).split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage in the header: trust nothing further left
        if not trusted(hop):
            return hop
    return address


def retry_after_s(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until fewer than `limit` failures remain in the window, or None if under it."""
    if limit <= 0 or len(failures) < limit:
        return None
    pivot = failures[len(failures) - limit]  # the failure whose ageing-out brings the count below limit
    return max(1, math.ceil((pivot + window - now).total_seconds()))


def _user_message(user: User) -> auth_pb2.User:
    message = auth_pb2.User(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        phone=user.phone,
        role=ROLES.get(user.role, auth_pb2.ROLE_UNSPECIFIED),
        organization=user.organization,
        privacy_policy_version=user.privacy_policy_version,
        user_agreement_version=user.user_agreement_version,
        store_thumbnails=user.store_thumbnails,
    )
    message.created_at.FromDatetime(user.created_at)
    return message


def _agreement_message(agreement: agreements.Agreement) -> auth_pb2.Agreement:
    message = auth_pb2.Agreement(
        version=agreement.version, title=agreement.title, text_markdown=agreement.text_markdown
    )
    message.effective_at.FromDatetime(agreement.effective_at)
    return message


@dataclass
class NewAccount:
    username: str
    password: str
    phone: str
    phone_region: str = ""
    display_name: str = ""
    role: str = ROLE_USER
    organization: str = ""


class Accounts:
    """Account creation shared by Register and the operator's create-counselor command."""

    def __init__(self, storage: Storage, passwords: Passwords, clock: Clock) -> None:
        self.storage = storage
        self.passwords = passwords
        self.clock = clock

    def validate(self, account: NewAccount) -> NewAccount:
        """The account with normalised fields, or InvalidFields listing every problem."""
        errors: list[validation.FieldError] = []
        username = _check(errors, validation.username, account.username)
        problem = password_problem(account.password, account.username)
        if problem:
            errors.append(validation.FieldError("password", problem))
        phone = _check(errors, validation.phone, account.phone, account.phone_region)
        display_name = _check(errors, validation.display_name, account.display_name or account.username)
        organization = ""
        if account.role == ROLE_COUNSELOR:
            organization = _check(errors, validation.organization, account.organization)
        if errors:
            raise InvalidFields(errors)
        return NewAccount(username, account.password, phone, "", display_name, account.role, organization)

    async def create(self, account: NewAccount) -> User:
        """Validates and stores a new account accepting the current agreements. UsernameTaken if taken."""
        account = self.validate(account)
        async with self.storage.transaction() as db:
            if await self.storage.user_by_username(db, account.username) is not None:
                raise UsernameTaken(account.username)  # answer before spending a hash on it
        password_hash = await self.passwords.hash(account.password)
        now = self.clock()
        user = User(
            id=str(uuid.uuid4()),
            username=account.username,
            username_key=account.username.lower(),
            display_name=account.display_name,
            phone=account.phone,
            password_hash=password_hash,
            role=account.role,
            organization=account.organization,
            store_thumbnails=False,
            privacy_policy_version=agreements.current(agreements.PRIVACY_POLICY, now).version,
            privacy_policy_accepted_at=now,
            user_agreement_version=agreements.current(agreements.USER_AGREEMENT, now).version,
            user_agreement_accepted_at=now,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        async with self.storage.transaction() as db:
            await self.storage.add_user(db, user)
        return user


class AuthHandlers(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        settings: AuthSettings,
        storage: Storage,
        passwords: Passwords,
        keyring: KeyRing,
        minter: TokenMinter,
        eraser: HistoryEraser,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.passwords = passwords
        self.keyring = keyring
        self.minter = minter
        self.eraser = eraser
        self.clock = clock
        self.accounts = Accounts(storage, passwords, clock)
        self.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_s)
        self.lockout_window = timedelta(seconds=settings.lockout_window_s)
        self.address_window = timedelta(seconds=settings.address_window_s)
        self.final_sweep_delay = timedelta(seconds=settings.history_final_sweep_s)
        self.service_secrets = settings.service_secret_map()
        self.trusted_proxies = settings.trusted_proxy_networks()

    # Registration and sessions

    @rpc
    async def Register(self, request: auth_pb2.RegisterRequest, context) -> auth_pb2.RegisterResponse:
        now = self.clock()
        errors = []
        for kind, field, accepted in (
            (
                agreements.PRIVACY_POLICY,
                "accepted_privacy_policy_version",
                request.accepted_privacy_policy_version,
            ),
            (
                agreements.USER_AGREEMENT,
                "accepted_user_agreement_version",
                request.accepted_user_agreement_version,
            ),
        ):
            version = agreements.current(kind, now).version
            if accepted != version:
                errors.append(validation.FieldError(field, f"must accept the current version {version!r}"))
        account = NewAccount(
            username=request.username,
            password=request.password,
            phone=request.phone,
            phone_region=request.phone_region,
            display_name=request.display_name,
        )
        try:
            account = self.accounts.validate(account)
        except InvalidFields as exc:
            errors = exc.errors + errors
        if errors:
            raise InvalidFields(errors)
        try:
            user = await self.accounts.create(account)
        except UsernameTaken:
            raise Abort(grpc.StatusCode.ALREADY_EXISTS, "username: already taken") from None
        log.info("user registered", extra={"user_id": user.id})
        return auth_pb2.RegisterResponse(user=_user_message(user))

    @rpc
    async def Login(self, request: auth_pb2.LoginRequest, context) -> auth_pb2.LoginResponse:
        if not request.username or not request.password:
            raise InvalidFields(
                [
                    validation.FieldError(f, "is required")
                    for f in ("username", "password")
                    if not getattr(request, f)
                ]
            )
        username_key = failure_key(SCOPE_USERNAME, request.username.lower())
        address_key = failure_key(SCOPE_ADDRESS, client_address(context, self.trusted_proxies))
        try:
            async with self.storage.transaction() as db:  # one round trip for the lockout check and the user
                earlier_failures = await self._refuse_if_locked(db, username_key, address_key)
                user = await self.storage.user_by_username(db, request.username)
        except Abort:
            LOGINS.labels("locked").inc()
            raise
        if not await self.passwords.verify(user.password_hash if user else None, request.password):
            await self._record_failure(username_key, address_key)
            LOGINS.labels("failure").inc()
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, BAD_CREDENTIALS)
        LOGINS.labels("success").inc()

        now = self.clock()
        async with self.storage.transaction() as db:
            if earlier_failures:
                await self.storage.clear_failures(db, SCOPE_USERNAME, username_key)
            tokens = await self._start_session(db, user, now)
        if self.passwords.needs_rehash(user.password_hash):
            await self._upgrade_hash(user.id, request.password)
        return auth_pb2.LoginResponse(tokens=tokens, user=_user_message(user))

    @rpc
    async def Refresh(self, request: auth_pb2.RefreshRequest, context) -> auth_pb2.RefreshResponse:
        if not request.refresh_token:
            raise InvalidFields([validation.FieldError("refresh_token", "is required")])
        token_hash = hash_refresh_token(request.refresh_token)
        now = self.clock()
        async with self.storage.transaction() as db:
            found = await self.storage.find_refresh_token(db, token_hash)
            if found is None or found.session.revoked_at is not None or found.token.expires_at <= now:
                raise Abort(grpc.StatusCode.UNAUTHENTICATED, BAD_REFRESH_TOKEN)
            spent = found.token.used_at is not None or not await self.storage.spend_refresh_token(
                db, token_hash, now
            )
            if not spent:
                user = await self.storage.user_by_id(db, found.session.user_id)
                await self.storage.touch_session(db, found.session.id, now)
                tokens = await self._issue_tokens(db, user, found.session.id, now)
        if spent:
            await self._revoke_family(found.session.id, found.session.user_id, now)
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, BAD_REFRESH_TOKEN)
        return auth_pb2.RefreshResponse(tokens=tokens)

    async def _revoke_family(self, session_id: str, user_id: str, now: datetime) -> None:
        # A separate transaction: the refresh attempt failed, but the revocation must stick.
        async with self.storage.transaction() as db:
            await self.storage.revoke_session(db, session_id, "refresh_token_reuse", now)
        REFRESH_REUSE.inc()
        log.warning(
            "refresh token reused; session revoked", extra={"user_id": user_id, "session_id": session_id}
        )

    @rpc
    async def Logout(self, request: auth_pb2.LogoutRequest, context) -> auth_pb2.LogoutResponse:
        if not request.refresh_token:
            raise InvalidFields([validation.FieldError("refresh_token", "is required")])
        # Idempotent: an unknown, spent or expired token needs no revoking and says nothing.
        async with self.storage.transaction() as db:
            found = await self.storage.find_refresh_token(db, hash_refresh_token(request.refresh_token))
            if found is not None:
                await self.storage.revoke_session(db, found.session.id, "logout", self.clock())
        return auth_pb2.LogoutResponse()

    # Profile

    @rpc
    async def GetProfile(self, request, context) -> auth_pb2.GetProfileResponse:
        return auth_pb2.GetProfileResponse(user=_user_message(await self._caller()))

    @rpc
    async def UpdateProfile(
        self, request: auth_pb2.UpdateProfileRequest, context
    ) -> auth_pb2.UpdateProfileResponse:
        caller = await self._caller()
        errors: list[validation.FieldError] = []
        changes: dict[str, object] = {}
        if request.HasField("display_name"):
            changes["display_name"] = _check(errors, validation.display_name, request.display_name)
        if request.HasField("phone"):
            changes["phone"] = _check(errors, validation.phone, request.phone, request.phone_region)
        if request.HasField("store_thumbnails"):
            changes["store_thumbnails"] = request.store_thumbnails
        if errors:
            raise InvalidFields(errors)
        async with self.storage.transaction() as db:
            user = await self.storage.user_by_id(db, caller.id)
            if user is None:
                raise Abort(grpc.StatusCode.UNAUTHENTICATED, "account no longer exists")
            for name, value in changes.items():
                setattr(user, name, value)
            if changes:
                user.updated_at = self.clock()
        return auth_pb2.UpdateProfileResponse(user=_user_message(user))

    @rpc
    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, context
    ) -> auth_pb2.ChangePasswordResponse:
        user = await self._caller()
        await self._reauthenticate(user, request.current_password, "current_password", context)
        problem = password_problem(request.new_password, user.username)
        if not problem and request.new_password == request.current_password:
            problem = "must differ from the current password"
        if problem:
            raise InvalidFields([validation.FieldError("new_password", problem)])
        password_hash = await self.passwords.hash(request.new_password)
        now = self.clock()
        async with self.storage.transaction() as db:
            stored = await self.storage.user_by_id(db, user.id)
            if stored is None:
                raise Abort(grpc.StatusCode.UNAUTHENTICATED, "account no longer exists")
            stored.password_hash, stored.password_changed_at, stored.updated_at = password_hash, now, now
            await self.storage.revoke_user_sessions(db, user.id, "password_changed", now)
            tokens = await self._start_session(db, user, now)
        log.info("password changed; other sessions revoked", extra={"user_id": user.id})
        return auth_pb2.ChangePasswordResponse(tokens=tokens)

    @rpc
    async def DeleteAccount(
        self, request: auth_pb2.DeleteAccountRequest, context
    ) -> auth_pb2.DeleteAccountResponse:
        user = await self._caller()
        await self._reauthenticate(user, request.password, "password", context)
        now = self.clock()
        async with self.storage.transaction() as db:
            await self.storage.delete_user(db, user.id)
            await self.storage.clear_failures(
                db, SCOPE_USERNAME, failure_key(SCOPE_USERNAME, user.username_key)
            )
            await self.storage.add_pending_deletion(db, user.id, now, now + self.final_sweep_delay)
        deleted = await self.eraser.erase(user.id)
        log.info("account deleted", extra={"user_id": user.id, "history_pending": deleted is None})
        if deleted is None:
            # The account is gone; its history deletion is queued and retried until history confirms.
            context.set_trailing_metadata((("history-deletion", "pending"),))
        return auth_pb2.DeleteAccountResponse(deleted_analyses=deleted or 0)

    # Public information

    @rpc
    async def GetAgreements(self, request, context) -> auth_pb2.GetAgreementsResponse:
        now = self.clock()
        return auth_pb2.GetAgreementsResponse(
            privacy_policy=_agreement_message(agreements.current(agreements.PRIVACY_POLICY, now)),
            user_agreement=_agreement_message(agreements.current(agreements.USER_AGREEMENT, now)),
        )

    @rpc
    async def GetPublicKeys(self, request, context) -> auth_pb2.GetPublicKeysResponse:
        return auth_pb2.GetPublicKeysResponse(
            keys=[
                auth_pb2.PublicKey(kid=kid, algorithm=ALGORITHM, pem=pem)
                for kid, pem in self.keyring.public_keys().items()
            ],
            issuer=self.minter.issuer,
        )

    @rpc
    async def LookupCounselor(
        self, request: auth_pb2.LookupCounselorRequest, context
    ) -> auth_pb2.LookupCounselorResponse:
        if not request.username:
            raise InvalidFields([validation.FieldError("username", "is required")])
        async with self.storage.transaction() as db:
            user = await self.storage.user_by_username(db, request.username)
        if user is None or user.role != ROLE_COUNSELOR:  # ordinary users are not disclosed
            raise Abort(grpc.StatusCode.NOT_FOUND, "no counsellor with that username")
        return auth_pb2.LookupCounselorResponse(
            counselor_id=user.id,
            username=user.username,
            display_name=user.display_name,
            organization=user.organization,
        )

    @rpc
    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context
    ) -> auth_pb2.IssueServiceTokenResponse:
        if not request.service or not request.secret:
            raise InvalidFields(
                [
                    validation.FieldError(f, "is required")
                    for f in ("service", "secret")
                    if not getattr(request, f)
                ]
            )
        expected = self.service_secrets.get(request.service)
        # Compare even for an unknown service, so timing does not tell which names exist.
        matches = hmac.compare_digest(request.secret.encode(), (expected or "\0unknown").encode())
        if expected is None or not matches:
            log.warning("service token refused", extra={"service_name": request.service[:64]})
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, "unknown service or wrong secret")
        minted = self.minter.service_token(request.service)
        reply = auth_pb2.IssueServiceTokenResponse(access_token=minted.token)
        reply.expires_at.FromDatetime(minted.expires_at)
        return reply

    # Helpers

    async def _caller(self) -> User:
        """The user behind the verified access token, if the account and session still exist."""
        principal = current_principal()
        if principal.role not in ROLES:
            raise Abort(grpc.StatusCode.PERMISSION_DENIED, "only user and counsellor accounts have a profile")
        async with self.storage.transaction() as db:
            user = await self.storage.user_by_id(db, principal.subject)
            active = bool(principal.session_id) and await self.storage.session_active(
                db, principal.session_id
            )
        if user is None or not active:
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, "session has ended; log in again")
        return user

    async def _reauthenticate(self, user: User, password: str, field: str, context) -> None:
        """Password check for sensitive changes, under the same lockout as Login."""
        if not password:
            raise InvalidFields([validation.FieldError(field, "is required")])
        username_key = failure_key(SCOPE_USERNAME, user.username_key)
        address_key = failure_key(SCOPE_ADDRESS, client_address(context, self.trusted_proxies))
        async with self.storage.transaction() as db:
            await self._refuse_if_locked(db, username_key, address_key)
        if not await self.passwords.verify(user.password_hash, password):
            await self._record_failure(username_key, address_key)
            raise Abort(grpc.StatusCode.PERMISSION_DENIED, f"{field}: wrong password")

    async def _refuse_if_locked(self, db, username_key: str, address_key: str) -> int:
        """Raises RESOURCE_EXHAUSTED with retry-after while either limit is reached; otherwise
        returns how many recent failures the username has."""
        now = self.clock()
        s = self.settings
        by_user = await self.storage.failures_since(
            db, SCOPE_USERNAME, username_key, now - self.lockout_window
        )
        by_address = await self.storage.failures_since(
            db, SCOPE_ADDRESS, address_key, now - self.address_window
        )
        waits = [
            w
            for w in (
                retry_after_s(by_user, s.lockout_max_failures, self.lockout_window, now),
                retry_after_s(by_address, s.address_max_failures, self.address_window, now),
            )
            if w is not None
        ]
        if waits:
            wait = max(waits)
            raise Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many failed login attempts; retry after {wait} seconds",
                (("retry-after", str(wait)),),
            )
        return len(by_user)

    async def _record_failure(self, username_key: str, address_key: str) -> None:
        now = self.clock()
        async with self.storage.transaction() as db:
            await self.storage.record_failure(
                db, SCOPE_USERNAME, username_key, now, now - self.lockout_window
            )
            await self.storage.record_failure(db, SCOPE_ADDRESS, address_key, now, now - self.address_window)

    async def _upgrade_hash(self, user_id: str, password: str) -> None:
        """Re-hashes with the current Argon2 parameters after they were raised (at a successful login)."""
        password_hash = await self.passwords.hash(password)
        async with self.storage.transaction() as db:
            user = await self.storage.user_by_id(db, user_id)
            if user is not None:
                user.password_hash = password_hash

    async def _start_session(self, db, user: User, now: datetime) -> auth_pb2.TokenPair:
        session = await self.storage.start_session(db, user.id, now)
        return await self._issue_tokens(db, user, session.id, now)

    async def _issue_tokens(self, db, user: User, session_id: str, now: datetime) -> auth_pb2.TokenPair:
        refresh_token = new_refresh_token()
        refresh_expires_at = now + self.refresh_ttl
        await self.storage.add_refresh_token(
            db, session_id, hash_refresh_token(refresh_token), now, refresh_expires_at
        )
        access = self.minter.access_token(user.id, user.role, user.username, user.organization, session_id)
        pair = auth_pb2.TokenPair(access_token=access.token, refresh_token=refresh_token)
        pair.access_expires_at.FromDatetime(access.expires_at)
        pair.refresh_expires_at.FromDatetime(refresh_expires_at)
        return pair
