"""Host side: the chat server's ASGI app — Starlette routes around a `Supervisor`.

The Supervisor lives in the app's lifespan: modules load (concurrently) before the first
request is served and shut down, each within a grace period, when the server stops.

    GET  /                         the chat page            GET /admin    the admin panel
    WS   /ws                       chat (JSON frames; see server.ChatServer.handle)
    GET  /api/modules              every module: state, permissions, confinement, RSS, CPU…
    POST /api/modules/{name}/{action}   pause | resume | restart | unload | load (admin token)
    GET  /metrics                  Prometheus text       GET /healthz   liveness
    (in production mode, /api/modules and /metrics need the admin token too)
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from plexisandbox import Supervisor

from .config import DEFAULT_TOKEN, ServerConfig
from .server import ADMIN_ACTIONS, ChatServer, Client

__all__ = ["create_app"]

_log = logging.getLogger("plexichat")
STATIC = Path(__file__).resolve().parent / "static"
_CLIENT_QUEUE = 200
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    config: ServerConfig | None = None, *, on_ready: Callable[[ChatServer], None] | None = None
) -> Starlette:
    """The chat server as an ASGI app; `config` defaults to the demo's `chat_server.toml`.

    `on_ready` runs once every module has been loaded (or refused), before serving starts.
    """
    config = config if config is not None else ServerConfig.load()
    chat = ChatServer(config)
    if config.admin_token == DEFAULT_TOKEN:
        _log.warning(
            "admin token is the default %r (development mode only); set CHAT_ADMIN_TOKEN",
            DEFAULT_TOKEN,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Supervisor(
            data_root=config.data_root,
            strict=config.strict,
            watchdog_interval=config.watchdog_interval,
        ) as sup:
            await chat.start(sup)
            if on_ready is not None:
                on_ready(chat)
            try:
                yield
            finally:
                chat.close()
                await chat.unload_all()

    async def page(request: Request) -> Response:
        name = "admin.html" if request.url.path.rstrip("/") == "/admin" else "chat.html"
        return FileResponse(STATIC / name, headers=_SECURITY_HEADERS)

    def _operator_only(request: Request) -> Response | None:
        # What the panel and /metrics show — module errors, exit reasons, which confinement
        # layers are missing, what the hostile module tried — is for the operator: in
        # production every chat user can reach this port, so reading needs the token too.
        return _check_token(request, config.admin_token) if config.production else None

    async def modules(request: Request) -> Response:
        problem = _operator_only(request)
        if problem is not None:
            return problem
        return JSONResponse(chat.modules_json(), headers={"Cache-Control": "no-store"})

    async def module_action(request: Request) -> Response:
        problem = _check_token(request, config.admin_token)
        if problem is not None:
            return problem
        name, action = request.path_params["name"], request.path_params["action"]
        if name not in chat.entries:
            return _error(404, f"no module named {name!r}; configured: {sorted(chat.entries)}")
        if action not in ADMIN_ACTIONS:
            return _error(404, f"unknown action {action!r}; one of {', '.join(ADMIN_ACTIONS)}")
        try:
            row = await chat.admin(name, action)
        except ValueError as exc:
            return _error(409, str(exc))
        return JSONResponse({"ok": True, "module": row})

    async def metrics(request: Request) -> Response:
        problem = _operator_only(request)
        if problem is not None:
            return problem
        return PlainTextResponse(
            chat.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def websocket(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != ws.headers.get("host"):
            # Another web site's page in the user's browser: no cross-site chatting.
            await ws.close(code=1008)
            return
        await ws.accept()
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](_CLIENT_QUEUE)
        client = Client(send)
        chat.connect(client)

        async def writer() -> None:
            async with receive:
                async for payload in receive:
                    await ws.send_text(json.dumps(payload, ensure_ascii=False))
            # The queue was closed: shutdown, or this client stopped reading.
            await ws.close(code=1001)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_quietly, writer)
                try:
                    while True:
                        # receive(), not receive_text(): a binary frame from a client must
                        # be answered, not end the connection with an unhandled KeyError.
                        message = await ws.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                        raw = message.get("text")
                        try:
                            if raw is None:
                                raise ValueError("a binary frame")
                            data = json.loads(raw)
                        except (ValueError, RecursionError):
                            client.deliver({"type": "error", "text": "frames must be JSON text"})
                            continue
                        await chat.handle(client, data)
                except (WebSocketDisconnect, RuntimeError):
                    pass  # RuntimeError: the writer closed the socket under us
                finally:
                    tg.cancel_scope.cancel()
        finally:
            chat.disconnect(client)
            send.close()

    routes = [
        Route("/", page),
        Route("/admin", page),
        Route("/api/modules", modules),
        Route("/api/modules/{name}/{action}", module_action, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        WebSocketRoute("/ws", websocket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.chat = chat
    return app


async def _quietly(function: Callable[[], Any]) -> None:
    try:
        await function()
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the peer went away


def _check_token(request: Request, token: str) -> Response | None:
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    given = given or request.headers.get("x-admin-token", "")
    if not given:
        return _error(401, "admin token required: send `Authorization: Bearer <token>`")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _error(403, "wrong admin token")
    return None


def _error(status: int, message: str) -> Response:
    return JSONResponse({"ok": False, "error": message}, status_code=status)
