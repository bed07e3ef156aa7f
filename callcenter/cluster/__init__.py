"""Several instances on one PostgreSQL store: live events across them (outbox.py), each line
owned by one live instance (leases.py), wired by runtime.py. Nothing here runs on SQLite."""
