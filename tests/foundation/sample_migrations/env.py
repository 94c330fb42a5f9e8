from sqlalchemy import Column, Integer, MetaData, String, Table

from services.common.db import run_migrations_from_env

metadata = MetaData()
Table(
    "widgets", metadata, Column("id", Integer, primary_key=True), Column("name", String(64), nullable=False)
)

run_migrations_from_env(metadata)
