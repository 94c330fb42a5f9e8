"""Command line of `python -m services.auth [serve | migrate | create-counselor | generate-key]`.

serve (the default) runs the gRPC service. The others are operator commands:
  migrate            apply database migrations and exit
  create-counselor   create a counsellor account (counsellors cannot self-register)
  generate-key PATH  write a new Ed25519 signing key (0600), for AUTH_SIGNING_KEY_FILE
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from services.auth.server import AuthSettings
from services.auth.server import main as serve


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.password is not None:
        return args.password
    if not sys.stdin.isatty():
        sys.exit("no password: pass --password-stdin and pipe it in, or run interactively")
    first = getpass.getpass("Password for the counsellor: ")
    if first != getpass.getpass("Repeat password: "):
        sys.exit("passwords differ")
    return first


async def _create_counselor(args: argparse.Namespace) -> int:
    from services.auth.handlers import Accounts, InvalidFields, NewAccount
    from services.auth.server import make_passwords, migrate
    from services.auth.storage import Storage, UsernameTaken
    from services.auth.tokens import utc_now
    from services.common import db
    from services.common.tokens import ROLE_COUNSELOR

    settings = AuthSettings()
    await migrate(settings)
    storage = Storage(db.create_engine(settings.database_url))
    passwords = make_passwords(settings)
    try:
        user = await Accounts(storage, passwords, utc_now).create(
            NewAccount(
                username=args.username,
                password=_read_password(args),
                phone=args.phone,
                phone_region=args.phone_region,
                display_name=args.display_name,
                role=ROLE_COUNSELOR,
                organization=args.organization,
            )
        )
    except InvalidFields as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UsernameTaken:
        print(f"error: username {args.username!r} is already taken", file=sys.stderr)
        return 3
    finally:
        await storage.close()
        passwords.close()
    print(f"created counsellor {user.username} ({user.organization}) id={user.id}")
    return 0


def _generate_key(path: str) -> int:
    from services.common.keys import generate_private_pem, key_id, public_pem_of

    pem = generate_private_pem()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite a key
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    print(f"wrote {path}; key id {key_id(public_pem_of(pem))}")
    print(public_pem_of(pem), end="")
    return 0


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.auth", description="Auth service.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gRPC service (default)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    counselor = commands.add_parser("create-counselor", help="create a counsellor account")
    counselor.add_argument("--username", required=True)
    counselor.add_argument("--organization", required=True)
    counselor.add_argument(
        "--phone", required=True, help="international form, or national with --phone-region"
    )
    counselor.add_argument("--phone-region", default="", help="ISO 3166 region of a national-form phone")
    counselor.add_argument("--display-name", default="", help="defaults to the username")
    secret = counselor.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    secret.add_argument(
        "--password", help="visible in process lists and shell history: prefer --password-stdin"
    )
    key = commands.add_parser("generate-key", help="write a new Ed25519 signing key PEM (mode 0600)")
    key.add_argument("path")
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        serve()
        return 0
    if args.command == "migrate":
        from services.auth.server import migrate

        asyncio.run(migrate(AuthSettings()))
        print("migrations applied")
        return 0
    if args.command == "create-counselor":
        return asyncio.run(_create_counselor(args))
    if args.command == "generate-key":
        return _generate_key(args.path)
    parser.error(f"unknown command {args.command}")
    return 2
