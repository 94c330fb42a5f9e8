"""Plumbing shared by every service: configuration, server bootstrap, health,
reflection, metrics, structured logs, client channels, token verification and
the database layer. Written once here; services only wire it up."""
