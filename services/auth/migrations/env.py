from services.auth.storage import Base
from services.common.db import run_migrations_from_env

run_migrations_from_env(Base.metadata)
