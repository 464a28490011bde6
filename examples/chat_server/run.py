"""Host side: start the demo chat server — `python examples/chat_server/run.py [--port N]`.

Serves on 127.0.0.1:$PORT (default 8000; `--port 0` picks a free one) and prints the URL
once every module is loaded and the socket is accepting connections. Ctrl-C stops the server;
the supervisor shuts every module down on the way out.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `examples.chat_server` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn

from examples.chat_server.app import create_app
from examples.chat_server.config import ConfigError, ServerConfig
from examples.chat_server.server import ChatServer

__all__ = ["main"]


class _Server(uvicorn.Server):
    """uvicorn's server, announcing its URL once it really accepts connections."""

    url = ""
    chat: ChatServer | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.chat is not None:
            rows = self.chat.modules_json()["modules"]
            summary = ", ".join(f"{r['name']}={r['state']}" for r in rows)
            print(f"modules: {summary}", flush=True)
            print(
                f"plexichat demo serving on {self.url}  (admin panel {self.url}admin, "
                f"metrics {self.url}metrics, Ctrl-C to stop)",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_server", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--config", default=os.environ.get("CHAT_CONFIG"), help="TOML file")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    try:
        config = ServerConfig.load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # proto=IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP, and without it two frames in a row wait 40 ms for an ACK.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}; set PORT", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]

    server: _Server | None = None

    def ready(chat: ChatServer) -> None:
        if server is not None:
            server.chat = chat

    app = create_app(config, on_ready=ready)
    server = _Server(
        uvicorn.Config(
            app,
            log_level=args.log_level.lower(),
            ws_max_size=64 * 1024,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    server.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    print(
        f"starting plexichat demo ({config.mode} mode) with {len(config.modules)} modules…",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl-C it handled, after the graceful shutdown finished.
        pass
    print("plexichat demo stopped; every module worker has been shut down", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
