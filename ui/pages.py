"""The console's HTML pages, its static files, and the security headers of every response.

The pages are static shells: every text comes from the i18n catalogs and every datum from the
REST API, rendered by the ES modules under ``static/js`` with ``textContent`` only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ui.security import session_user_id

STATIC_DIR = Path(__file__).resolve().parent / "static"

# No inline script or style anywhere, so the policy can forbid both: an injected caller name
# can at worst be text, never code. connect-src 'self' covers ws:/wss: to this host (CSP 3).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (API errors and static files too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(name: str) -> FileResponse:
    # The shells are tiny and change with each deploy: always revalidate.
    return FileResponse(STATIC_DIR / name, media_type="text/html",
                        headers={"cache-control": "no-cache"})


async def console_page(request: Request) -> Response:
    if session_user_id(request) is None:
        target = request.url.path
        return RedirectResponse(f"/login?next={target}", status_code=303)
    return _page("console.html")


async def login_page(request: Request) -> Response:
    return _page("login.html")


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", console_page, methods=["GET"]),
        Route("/calls", console_page, methods=["GET"]),
        Route("/tasks", console_page, methods=["GET"]),
        Route("/faxes", console_page, methods=["GET"]),
        Route("/sms", console_page, methods=["GET"]),
        Route("/campaigns", console_page, methods=["GET"]),
        Route("/clients/{id:int}", console_page, methods=["GET"]),
        Route("/admin/users", console_page, methods=["GET"]),
        Route("/admin/routing", console_page, methods=["GET"]),
        Route("/admin/audit", console_page, methods=["GET"]),
        Route("/admin/lines", console_page, methods=["GET"]),
        Route("/reports", console_page, methods=["GET"]),
        Route("/reports/{name}", console_page, methods=["GET"]),
        Route("/admin/report-schedules", console_page, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
