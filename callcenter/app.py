"""Composition root: builds the store, the bus, the lines and the web app, and owns their tasks.

The only core module allowed to import adapters (pbx/, gsm/, fax/) and the UI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.services import Services
from callcenter.store.sqlite import SqliteStore

log = logging.getLogger(__name__)


def session_secret(config: Config) -> str:
    """The configured secret, or one generated on first start and kept beside the database."""
    if config.server.secret_key:
        return config.server.secret_key
    path = config.data_dir / "session-secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def create_app(config: Config, *, demo: bool | None = None) -> Starlette:
    from ui.app import build_web_app

    demo = config.demo.enabled if demo is None else demo

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await SqliteStore.open(config.database_path)
        services = Services.build(config, store)
        app.state.services = services
        try:
            if demo:
                from ui.security import hash_password

                if await seed_demo(store, hash_password(DEMO_PASSWORD)):
                    log.info("demo users: admin, secretary, maria, dmitry; password %r",
                             DEMO_PASSWORD)
            async with contextlib.AsyncExitStack() as stack:
                for component in app.state.components:
                    await stack.enter_async_context(component(services, demo))
                yield
        finally:
            await store.close()

    app = build_web_app(
        secret_key=session_secret(config),
        secure_cookies=config.server.secure_cookies,
        session_hours=config.server.session_hours,
        lifespan=lifespan,
    )
    app.state.config = config
    # Long-running parts (PBX lines, recording fetcher, demo PBX) register here as async
    # context managers taking (services, demo); each starts its tasks and stops them on exit.
    app.state.components = []
    return app
