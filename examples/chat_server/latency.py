"""Client side: measure a chat message's latency through the sandboxed modules, end to end.

    .venv/bin/python examples/chat_server/latency.py [-n 500] [--url http://127.0.0.1:8000/]

Without `--url` it starts its own server (`python -m examples.chat_server --port 0`, a fresh
data folder) and stops it afterwards. Over one real WebSocket it times, per message:

- `message`: send → the room's broadcast of it comes back. On the way the server calls the
  word filter module (a worker round trip: pass / modify / reject) and then emits
  `chat.message`, which the stats module counts and writes through to its data folder.
- `message+/stats`: a message, then `/stats`, until the stats module's answer counts that very
  message: two module calls (filter, stats.summary) and the event, all through workers.
- `/roll`: send → the dice module's answer (one module call).

It measures twice: right after start-up, while the hostile module of the demo configuration
steals, fork-bombs and eats memory in its worker (and is killed and restarted), and again
once it is FAILED.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]


def _start_server(data_root: str) -> tuple[subprocess.Popen[str], str]:
    # Messages go back to back, faster than the server paces a chat user: no pacing here.
    env = {
        **os.environ,
        "CHAT_DATA_ROOT": data_root,
        "CHAT_CLIENT_RATE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.chat_server", "--port", "0", "--log-level", "error"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        match = re.search(r"serving on (http://\S+/)", line)
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("the chat server did not start")


def _recv_until(ws: ClientConnection, pred: Any) -> dict[str, Any]:
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if pred(msg):
            return dict(msg)


def _summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    return (
        f"{name:<16} n={len(ms):<5} mean {statistics.fmean(ms):7.3f} ms   p50 {pct(0.5):7.3f}"
        f"   p90 {pct(0.9):7.3f}   p99 {pct(0.99):7.3f}   max {ms[-1]:7.3f}"
    )


Samples = dict[str, list[float]]


def measure(url: str, n: int) -> Samples:
    """One connection: `n` messages, `n // 5` message+/stats pairs, `n // 5` rolls."""
    ws_url = url.replace("http://", "ws://").replace("https://", "wss://") + "ws"
    room = f"bench-{os.getpid()}-{time.monotonic_ns() % 100000}"
    with connect(ws_url, open_timeout=10) as ws:
        # Two frames back to back (message, then /stats) would otherwise meet Nagle's
        # algorithm and the server's delayed ACK: a flat 40 ms that is TCP's, not ours.
        ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws.send(json.dumps({"type": "hello", "user": "bench", "room": room}))
        _recv_until(ws, lambda m: m["type"] == "joined")
        for i in range(20):  # warm-up: connections, caches, the first event
            ws.send(json.dumps({"type": "say", "text": f"warm-up {i}"}))
            _recv_until(ws, lambda m, i=i: m.get("text") == f"warm-up {i}")

        message: list[float] = []
        for i in range(n):
            text = f"latency probe {i}"
            started = time.perf_counter()
            ws.send(json.dumps({"type": "say", "text": text}))
            _recv_until(ws, lambda m, text=text: m["type"] == "message" and m["text"] == text)
            message.append(time.perf_counter() - started)

        both: list[float] = []
        counted = 20 + n
        for i in range(max(1, n // 5)):
            started = time.perf_counter()
            ws.send(json.dumps({"type": "say", "text": f"counted {i}"}))
            ws.send(json.dumps({"type": "say", "text": "/stats"}))
            while True:
                reply = _recv_until(ws, lambda m: m["type"] in ("bot", "error"))
                if reply["type"] == "error":
                    raise SystemExit(f"/stats failed: {reply['text']}")
                if reply.get("module") == "stats":
                    break
            if reply["stats"]["room_total"] == counted + 1:
                both.append(time.perf_counter() - started)
            counted += 1

        rolls: list[float] = []
        for _ in range(max(1, n // 5)):
            started = time.perf_counter()
            ws.send(json.dumps({"type": "say", "text": "/roll 1d6"}))
            _recv_until(ws, lambda m: m["type"] == "bot" and m["module"] == "dice")
            rolls.append(time.perf_counter() - started)

    # A /stats answered before the stats worker counted the message is not a sample.
    return {"message": message, "message+/stats": both, "/roll": rolls}


def report(samples: Samples) -> list[str]:
    return [_summary(name, values) for name, values in samples.items() if values]


def _merge(into: Samples, more: Samples) -> None:
    for name, values in more.items():
        into.setdefault(name, []).extend(values)


def _probes(url: str) -> int:
    with urllib.request.urlopen(url + "api/modules", timeout=5) as response:
        return len(json.load(response)["probes"])


def _state(url: str, module: str) -> str:
    with urllib.request.urlopen(url + "api/modules", timeout=5) as response:
        rows = json.load(response)["modules"]
    return next((str(r["state"]) for r in rows if r["name"] == module), "?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="messages to time (default 500)")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000/")
    args = parser.parse_args()
    if args.url:
        print("\n".join(report(measure(args.url.rstrip("/") + "/", args.n))))
        return 0
    with tempfile.TemporaryDirectory(prefix="plexichat-bench-") as data_root:
        proc, url = _start_server(data_root)
        try:
            print(f"server {url} (its own process; modules in confined workers)")
            # From its first attack until it is FAILED: batches of 100 messages.
            deadline = time.monotonic() + 60
            while _probes(url) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            during: Samples = {}
            started = time.monotonic()
            while _state(url, "hostile") not in ("FAILED", "?") and time.monotonic() < deadline:
                _merge(during, measure(url, 100))
            print(
                f"while the hostile module steals, fork-bombs, eats memory and is killed and "
                f"restarted ({time.monotonic() - started:.1f} s):"
            )
            print("\n".join("  " + line for line in report(during)))
            print(f"after the hostile module is {_state(url, 'hostile')}:")
            print("\n".join("  " + line for line in report(measure(url, args.n))))
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
