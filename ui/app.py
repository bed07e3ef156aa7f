"""Builds the Starlette application: middleware, error handlers, REST, OpenAPI, console."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from callcenter import __version__
from callcenter.errors import CallcenterError, ValidationError
from callcenter.models import Role
from callcenter.store.base import Conflict, NotFound
from ui.api.common import current_user, handle_error
from ui.api.faxes import MAX_UPLOAD, UPLOAD_PATH
from ui.hub import Hub
from ui.openapi import build_openapi
from ui.ops import Metrics, ops_routes
from ui.pages import SecurityHeadersMiddleware, page_routes
from ui.routes import ROUTES, ApiRoute
from ui.security import BODY_TIMEOUT, MAX_BODY, BodyLimitMiddleware
from ui.throttle import LoginThrottle

SESSION_COOKIE = "cc_session"


def build_web_app(
    *,
    secret_key: str,
    secure_cookies: bool = False,
    session_hours: int = 12,
    body_timeout: float = BODY_TIMEOUT,
    lifespan: Any = None,
    api_routes: Sequence[ApiRoute] = (),
    extra_routes: Sequence[BaseRoute] = (),
    extra_schemas: dict[str, Any] | None = None,
    hub: Hub | None = None,
) -> Starlette:
    all_api = [*ROUTES, *api_routes]
    openapi = build_openapi(all_api, extra_schemas, __version__)

    async def openapi_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(openapi)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "version": __version__})

    routes: list[BaseRoute] = [
        Route(r.path.replace("{id}", "{id:int}"), _bound(r), methods=[r.method])
        for r in all_api
    ]
    routes += [
        Route("/api/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        *extra_routes,
    ]
    hub = hub or Hub()
    metrics = Metrics()
    routes += ops_routes(metrics)
    routes += [WebSocketRoute("/ws", hub.endpoint), *page_routes()]

    @contextlib.asynccontextmanager
    async def with_hub(app: Starlette) -> AsyncIterator[None]:
        # The hub runs inside the given lifespan (which builds app.state.services) and stops
        # first on shutdown, so its sender tasks are cancelled and awaited before the store
        # closes.
        async with contextlib.AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            services = getattr(app.state, "services", None)
            if services is not None:
                # The routing's rule: can_see_event plus the secretary groups, precomputed.
                hub.start(services, services.routing.can_see_event)
                stack.push_async_callback(hub.stop)
                metrics.start(app.state)
                stack.callback(metrics.stop)
            yield

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        # Before anything reads the body; inside the headers, so a 413 carries them too.
        Middleware(BodyLimitMiddleware, limit=MAX_BODY, timeout=body_timeout,
                   larger={UPLOAD_PATH: MAX_UPLOAD}),
        Middleware(
            SessionMiddleware,
            secret_key=secret_key,
            session_cookie=SESSION_COOKIE,
            max_age=session_hours * 3600,
            same_site="lax",
            https_only=secure_cookies,
        )
    ]
    handlers: dict[Any, Any] = {CallcenterError: handle_error, NotFound: handle_error,
                                Conflict: handle_error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers,
                    lifespan=with_hub)
    app.state.hub = hub
    app.state.metrics = metrics
    app.state.login_throttle = LoginThrottle()
    return app


def _bound(route: ApiRoute) -> Any:
    """The endpoint, told which route it serves: ui.api.common.body_of/query_of check that
    the model a handler validates with is the one the OpenAPI document shows."""
    endpoint = route.endpoint

    async def bound(request: Request) -> Any:
        request.scope["api_route"] = route
        if route.admin:
            # Checked once here; handlers take it from request.state (ui.api.common.admin).
            request.state.user = await current_user(request, Role.ADMIN)
        if route.query is None and request.query_params:
            # As the query models do (extra="forbid"): a misspelt filter must not be ignored.
            name = next(iter(request.query_params)).replace("\x00", "")[:40]
            raise ValidationError(f"unknown query parameter {name}; this route takes none",
                                  field=name or None)
        return await endpoint(request)

    bound.__name__ = endpoint.__name__
    bound.__doc__ = endpoint.__doc__
    return bound
