"""`python -m services.history [serve | migrate]`: serve (the default, applying migrations on
start), or only apply the database migrations and exit (the operator's migration Job)."""

import asyncio
import sys

from services.common import db
from services.history.server import MIGRATIONS, VERSION_TABLE, HistorySettings, main

args = sys.argv[1:]
if args in ([], ["serve"]):
    main()
elif args == ["migrate"]:
    asyncio.run(db.upgrade(HistorySettings().database_url, MIGRATIONS, VERSION_TABLE))
    print("migrations applied")
else:
    sys.exit("usage: python -m services.history [serve | migrate]")
