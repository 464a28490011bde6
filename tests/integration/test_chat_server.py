"""The demo chat server for real: a subprocess on a loopback port, driven by WebSocket and HTTP.

The server runs in its own process (uvicorn is asyncio-only), so the client side here is
synchronous and backend-independent: `websockets.sync` and `httpx`. The app itself also runs
in-process under both anyio backends (Starlette's TestClient), at the end of this file.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
_READY = re.compile(r"serving on (http://\S+/)")


class ChatServerProcess:
    """`python -m examples.chat_server --port 0` with a fresh data folder and admin token."""

    def __init__(
        self,
        data_root: Path,
        *,
        env: dict[str, str] | None = None,
        config: Path | None = None,
    ) -> None:
        self.token = secrets.token_urlsafe(24)
        self.data_root = data_root
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        full_env = {
            **os.environ,
            "CHAT_ADMIN_TOKEN": self.token,
            "CHAT_DATA_ROOT": str(data_root),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        args = ["--port", "0", "--log-level", "warning"]
        if config is not None:
            args += ["--config", str(config)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "examples.chat_server", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = _READY.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 40.0) -> None:
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            pytest.fail("chat server did not start:\n" + "\n".join(self.lines[-40:]))

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "ws"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15.0)

    def modules(self) -> dict[str, dict[str, Any]]:
        with self.http() as client:
            data = client.get("/api/modules").json()
        return {row["name"]: row for row in data["modules"]}

    def api(self) -> dict[str, Any]:
        with self.http() as client:
            return dict(client.get("/api/modules").json())

    def admin(self, name: str, action: str, token: str | None = "") -> httpx.Response:
        headers = {}
        token = self.token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        with self.http() as client:
            return client.post(f"/api/modules/{name}/{action}", headers=headers)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class Chat:
    """One chat user on a real WebSocket."""

    def __init__(self, server: ChatServerProcess, user: str, room: str = "general") -> None:
        self._connection = connect(server.ws_url, open_timeout=10)
        self.ws: ClientConnection = self._connection.__enter__()
        self.user = user
        self.seen: list[dict[str, Any]] = []
        self.send({"type": "hello", "user": user, "room": room})
        self.joined = self.expect(lambda m: m["type"] == "joined")

    def send(self, obj: dict[str, Any]) -> None:
        self.ws.send(json.dumps(obj))

    def say(self, text: str) -> None:
        self.send({"type": "say", "text": text})

    def expect(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.user}: nothing matched within {timeout}s; saw {self.seen[-10:]}"
                )
            try:
                raw = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            msg = json.loads(raw)
            self.seen.append(msg)
            if pred(msg):
                return dict(msg)

    def roll(self, spec: str, timeout: float = 5.0) -> dict[str, Any]:
        self.say(f"/roll {spec}")
        return self.expect(
            lambda m: (
                (m["type"] == "bot" and m["module"] == "dice" and self.user in m["text"])
                or m["type"] == "error"
            ),
            timeout,
        )

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.__exit__(None, None, None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServerProcess]:
    proc = ChatServerProcess(tmp_path_factory.mktemp("chat-data"))
    proc.wait_ready()
    yield proc
    proc.stop()


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- chat through the modules ------------------------------------------------------------------
def test_roll_answers_in_the_room_for_everyone(server: ChatServerProcess) -> None:
    with Chat(server, "ann", "dice-room") as ann, Chat(server, "bob", "dice-room") as bob:
        _roll_answers(ann, bob)


def _roll_answers(ann: Chat, bob: Chat) -> None:
    answer = ann.roll("2d6")
    assert answer["type"] == "bot", answer
    assert len(answer["result"]["rolls"]) == 2
    assert 2 <= answer["result"]["total"] <= 12
    rolls = answer["result"]["rolls"]
    assert answer["text"] == f"ann rolled 2d6: {rolls[0]} + {rolls[1]} = {sum(rolls)}"
    seen_by_bob = bob.expect(lambda m: m["type"] == "bot" and m["module"] == "dice")
    assert seen_by_bob["id"] == answer["id"]
    error = ann.roll("banana")
    assert error["type"] == "error"
    assert "cannot parse dice" in error["text"]


def test_filter_rejects_and_rewrites_messages(server: ChatServerProcess) -> None:
    with Chat(server, "ann", "filtered") as ann, Chat(server, "bob", "filtered") as bob:
        _filter(ann, bob)


def _filter(ann: Chat, bob: Chat) -> None:
    ann.say("buy followers here, cheap")
    rejected = ann.expect(lambda m: m["type"] in ("rejected", "message"))
    assert rejected["type"] == "rejected"
    assert "buy followers" in rejected["reason"]
    ann.say("well darn it")
    masked = bob.expect(lambda m: m["type"] == "message")
    assert masked["text"] == "well d**n it"
    assert masked["filtered"] is True
    assert not any(m["type"] == "message" and "followers" in m["text"] for m in bob.seen)
    ann.say("a perfectly fine sentence")
    plain = bob.expect(lambda m: m["type"] == "message" and "fine" in m["text"])
    assert plain["filtered"] is False


def test_greeter_posts_through_the_messages_send_service(server: ChatServerProcess) -> None:
    with Chat(server, "cleo", "lobby") as cleo:
        welcome = cleo.expect(lambda m: m["type"] == "bot" and m["module"] == "greeter")
    assert "Welcome to #lobby, cleo!" in welcome["text"]


def test_stats_survive_a_module_restart(server: ChatServerProcess) -> None:
    with Chat(server, "dora", "stats-room") as dora:
        _stats_survive(server, dora)


def _stats_survive(server: ChatServerProcess, dora: Chat) -> None:
    for i in range(5):
        dora.say(f"message number {i}")
        dora.expect(lambda m: m["type"] == "message" and m["user"] == "dora")

    def room_total() -> int:
        dora.say("/stats")
        reply = dora.expect(
            lambda m: m["type"] in ("bot", "error") and m.get("module") != "greeter"
        )
        return int(reply["stats"]["room_total"] or 0) if reply["type"] == "bot" else -1

    _until(lambda: room_total() == 5, 10, "the stats module to count 5 messages")
    before = server.modules()["stats"]
    response = server.admin("stats", "restart")
    assert response.status_code == 200, response.text
    after = response.json()["module"]
    assert after["state"] == "ACTIVE"
    assert after["pid"] != before["pid"]
    assert after["restarts"] == before["restarts"] + 1
    assert room_total() == 5, "counts were lost across the restart"
    dora.say("one more")
    _until(lambda: room_total() == 6, 10, "the restarted stats module to count on")


# -- the hostile module ------------------------------------------------------------------------
def test_hostile_module_is_contained_and_chat_answers_within_a_second(
    server: ChatServerProcess,
) -> None:
    with Chat(server, "eve", "watch") as eve:
        _hostile(server, eve)


def _hostile(server: ChatServerProcess, eve: Chat) -> None:
    # It may have used up its restart budget already; the operator's restart brings it back
    # with a fresh budget, and it misbehaves again from the start.
    _until(lambda: server.modules()["hostile"]["state"] == "FAILED", 40, "hostile FAILED")
    response = server.admin("hostile", "restart")
    assert response.status_code == 200, response.text
    restarts_before = response.json()["module"]["restarts"]

    slowest = 0.0
    rounds = 0
    deadline = time.monotonic() + 40
    while server.modules()["hostile"]["state"] != "FAILED":
        assert time.monotonic() < deadline, "hostile never reached FAILED"
        started = time.monotonic()
        answer = eve.roll("1d20")
        text = f"still here {rounds}"
        eve.say(text)
        eve.expect(lambda m, text=text: m["type"] == "message" and m["text"] == text)
        elapsed = time.monotonic() - started
        assert answer["type"] == "bot", answer
        slowest = max(slowest, elapsed)
        rounds += 1
        time.sleep(0.05)
    assert rounds >= 3, f"only {rounds} rounds while the hostile module misbehaved"
    assert slowest < 1.0, f"chat took {slowest:.3f}s to answer while the module misbehaved"

    row = server.modules()["hostile"]
    # Killed by the watchdog for memory each time; restarted per its policy (2), then FAILED.
    assert row["last_exit_cause"] == "watchdog:memory_mb", row
    assert row["restarts"] == restarts_before + 2
    assert row["pid"] is None
    probes = [p for p in server.api()["probes"] if p["module"] == "hostile"]
    outcomes = {p["attempt"]: p["outcome"] for p in probes}
    assert outcomes, "the hostile module never reported its attempts"
    for attempt, outcome in outcomes.items():
        assert server.token not in outcome, f"{attempt} leaked the admin token"
        if attempt.startswith("read "):  # /proc/<server>/environ, /etc/shadow, the config
            assert outcome.startswith("refused"), (attempt, outcome)
    assert any(a.endswith("chat_server.toml") for a in outcomes), outcomes
    assert outcomes["post to chat"].startswith("refused: PermissionDenied")
    assert outcomes["fork bomb"].startswith("0 children forked"), outcomes["fork bomb"]
    assert not any(m.get("module") == "hostile" for m in eve.seen)
    assert server.proc.poll() is None


# -- the admin panel's API ---------------------------------------------------------------------
def test_admin_actions_need_the_token(server: ChatServerProcess) -> None:
    assert server.admin("dice", "pause", token=None).status_code == 401
    assert server.admin("dice", "pause", token="wrong").status_code == 403
    assert server.modules()["dice"]["state"] == "ACTIVE"
    assert server.admin("nosuch", "pause").status_code == 404
    assert server.admin("dice", "explode").status_code == 404


def test_admin_pause_resume_unload_load(server: ChatServerProcess) -> None:
    with Chat(server, "fay", "admin-room") as fay:
        _admin_actions(server, fay)


def _admin_actions(server: ChatServerProcess, fay: Chat) -> None:
    assert server.admin("wordfilter", "pause").json()["module"]["state"] == "PAUSED"
    fay.say("darn, the filter is paused")  # filter_unavailable = "pass": delivered unchanged
    passed = fay.expect(lambda m: m["type"] == "message")
    assert passed["text"] == "darn, the filter is paused"
    assert not passed["filtered"]
    conflict = server.admin("wordfilter", "pause")
    assert conflict.status_code == 409
    assert "PAUSED" in conflict.json()["error"]
    assert server.admin("wordfilter", "resume").json()["module"]["state"] == "ACTIVE"

    unloaded = server.admin("dice", "unload").json()["module"]
    assert unloaded["state"] == "UNLOADED"
    assert unloaded["actions"] == ["load"]
    gone = fay.roll("1d6")
    assert gone["type"] == "error"
    assert "unavailable" in gone["text"]
    assert server.admin("dice", "load").json()["module"]["state"] == "ACTIVE"
    assert fay.roll("1d6")["type"] == "bot"


def test_refused_module_is_listed_with_what_it_lacks(server: ChatServerProcess) -> None:
    row = server.modules()["linkpreview"]
    assert row["state"] == "REFUSED"
    assert row["missing"] == ["network_access"]
    assert set(row["declared"]) == {"messaging", "network_access"}
    assert row["granted"] == ["messaging"]
    assert server.admin("linkpreview", "load").json()["module"]["state"] == "REFUSED"


def test_api_modules_and_metrics_answer_without_a_browser(server: ChatServerProcess) -> None:
    rows = server.modules()
    assert set(rows) == {"dice", "wordfilter", "stats", "greeter", "linkpreview", "hostile"}
    # The watchdog samples each worker twice a second; a just-restarted one has no RSS yet.
    rss = _until(lambda: server.modules()["dice"]["rss_bytes"], 5, "an RSS sample of dice")
    assert rss > 1_000_000
    dice = rows["dice"]
    assert dice["state"] == "ACTIVE"
    assert dice["confinement"]["layers"], dice
    assert rows["stats"]["declared"] == ["file_system_access"]
    with server.http() as client:
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'plexisandbox_module_calls_total{module="dice"}' in metrics.text
    assert 'plexichat_module_up{module="linkpreview"} 0' in metrics.text
    assert re.search(r"^plexichat_messages_total \d+$", metrics.text, re.M)


def test_linkpreview_allowed_by_its_grant_fetches_a_title(tmp_path: Path) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><head><title>Plexi &amp; friends</title></head></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    modules = ROOT / "examples" / "chat_server" / "modules"
    config = tmp_path / "chat.toml"
    config.write_text(
        f"""
[server]
rooms = ["general"]
[[module]]
name = "linkpreview"
path = "{modules / "linkpreview.py"}"
grant = ["messaging", "network_access"]
[[module]]
name = "wordfilter"
path = "{modules / "wordfilter.py"}"
"""
    )
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    proc = ChatServerProcess(tmp_path / "data", config=config)
    try:
        proc.wait_ready()
        row = proc.modules()["linkpreview"]
        assert row["state"] == "ACTIVE"
        assert "netns" not in row["confinement"]["layers"]  # network declared and granted
        with Chat(proc, "gil") as gil:
            gil.say(f"look at http://127.0.0.1:{web.server_address[1]}/page")
            preview = gil.expect(lambda m: m["type"] == "bot" and m["module"] == "linkpreview")
        assert preview["text"] == "Link: Plexi & friends"
    finally:
        proc.stop()
        web.shutdown()
        web.server_close()


# -- start-up and shutdown ---------------------------------------------------------------------
def test_production_mode_refuses_the_default_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHAT_ADMIN_TOKEN"}
    env.update(CHAT_MODE="production", CHAT_DATA_ROOT=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "examples.chat_server", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "production mode refuses to start with the default" in result.stderr


def test_server_shutdown_stops_every_worker(tmp_path: Path) -> None:
    proc = ChatServerProcess(tmp_path)
    try:
        proc.wait_ready()
        pids = [row["pid"] for row in proc.modules().values() if row["pid"]]
    finally:
        code = proc.stop()
    assert len(pids) >= 4
    assert code == 0
    assert "every module worker has been shut down" in proc.lines[-1]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_other(pid), pid


def _is_zombie_or_other(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in status or "plexisandbox" not in Path(f"/proc/{pid}/cmdline").read_text()


# -- the same app in-process, under asyncio and trio -------------------------------------------
# Starlette 1.x wants `httpx2` for its TestClient and warns when it falls back to httpx.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_app_lifespan_and_chat_run_under_both_backends(backend: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from examples.chat_server.app import create_app
    from examples.chat_server.config import DEFAULT_CONFIG, ServerConfig

    config = ServerConfig.load(
        DEFAULT_CONFIG, env={"CHAT_ADMIN_TOKEN": "t" * 20, "CHAT_DATA_ROOT": str(tmp_path)}
    )
    keep = {"dice", "wordfilter", "stats"}
    config = dataclasses.replace(config, modules=tuple(m for m in config.modules if m.name in keep))
    with TestClient(create_app(config), backend=backend) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "hello", "user": "trio" if backend == "trio" else "aio"})
            assert ws.receive_json()["type"] == "welcome"
            assert ws.receive_json()["type"] == "joined"
            ws.receive_json()  # presence
            ws.send_json({"type": "say", "text": "/roll 3d6"})
            answer = ws.receive_json()
            assert answer["module"] == "dice"
            assert len(answer["result"]["rolls"]) == 3
            ws.send_json({"type": "say", "text": "spamalot!"})
            assert ws.receive_json()["type"] == "rejected"
        rows = {r["name"]: r for r in client.get("/api/modules").json()["modules"]}
        assert {r["state"] for r in rows.values()} == {"ACTIVE"}
        headers = {"Authorization": "Bearer " + "t" * 20}
        paused = client.post("/api/modules/dice/pause", headers=headers).json()
        assert paused["module"]["state"] == "PAUSED"
