"""Open the store the configuration names: the SQLite file, or PostgreSQL by ``[store] url``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from callcenter.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from callcenter.config import Config


async def open_store(config: Config, *, target_version: int | None = None) -> SqliteStore:
    url = config.store.url.strip()
    if not url or url.startswith("sqlite:"):
        path = config.database_path if not url else sqlite_path(url, config)
        return await SqliteStore.open(path, target_version=target_version)
    from callcenter.store.postgres import PostgresStore, is_postgres_url, with_password

    if not is_postgres_url(url):
        raise ValueError(f"[store] url must start with postgresql:// or sqlite: (got {url!r})")
    return await PostgresStore.open(with_password(url, config.store.password),
                                    target_version=target_version)


def sqlite_path(url: str, config: Config | None = None) -> Path:
    """``sqlite:var/callcenter.db`` or ``sqlite:///abs/path.db`` as a path (relative to the
    data folder when a configuration is given)."""
    rest = url.removeprefix("sqlite:")
    if rest.startswith("///"):
        rest = "/" + rest[3:]
    elif rest.startswith("//"):
        rest = rest[2:]
    path = Path(rest)
    if config is not None and not path.is_absolute():
        path = config.data_dir / path
    return path
