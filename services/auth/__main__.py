"""`python -m services.auth`: serve by default; operator commands in services/auth/cli.py."""

import sys

from services.auth.cli import cli

sys.exit(cli(sys.argv[1:]))
