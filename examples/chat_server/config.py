"""Host side: the chat server's configuration file — which modules run and what each may do.

A TOML file (`chat_server.toml` next to this one is the demo's): a `[server]` table, optional
`[defaults]` for limits and restart policy, and one `[[module]]` table per module with its
path, config, grant, limits and restart policy. Environment variables override the secrets and
folders, so that the file can be committed: `CHAT_ADMIN_TOKEN`, `CHAT_DATA_ROOT`, `CHAT_MODE`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from plexisandbox import Limits, RestartPolicy, RestartStrategy
from plexisandbox.interfaces import ModulePermissions

__all__ = ["DEFAULT_CONFIG", "DEFAULT_TOKEN", "ConfigError", "ModuleSpec", "ServerConfig"]

DEFAULT_CONFIG = Path(__file__).resolve().parent / "chat_server.toml"
DEFAULT_TOKEN = "change-me"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ROOM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class ModuleSpec:
    """One `[[module]]` entry."""

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    grant: ModulePermissions = field(default_factory=ModulePermissions)
    limits: Limits = field(default_factory=Limits)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    enabled: bool = True
    #: Check the module against the seed's contracts before running it (Supervisor.load()).
    validate: bool = True


@dataclass(frozen=True)
class ServerConfig:
    """The whole file, after environment overrides."""

    mode: str = "development"
    admin_token: str = DEFAULT_TOKEN
    data_root: Path = field(
        default_factory=lambda: Path("~/.local/state/plexichat-demo").expanduser()
    )
    rooms: tuple[str, ...] = ("general",)
    filter_unavailable: str = "pass"
    hook_timeout: float = 1.0
    #: Frames per second one chat connection may send, after bursts of `client_burst`;
    #: faster ones wait (0: no pacing). $CHAT_CLIENT_RATE overrides.
    client_rate: float = 10.0
    client_burst: int = 30
    #: Refuse a module whose confinement layer the kernel cannot give. Production forces it.
    strict: bool = False
    watchdog_interval: float = 0.5
    modules: tuple[ModuleSpec, ...] = ()
    source: Path | None = None

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> ServerConfig:
        """Read `path` (default: the demo's `chat_server.toml`) and apply `env` overrides.

        Raises:
            ConfigError: a wrong key or value, or production mode with the default token.
        """
        file = Path(path) if path is not None else DEFAULT_CONFIG
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the chat server config {file}: {exc}") from exc
        return cls.from_dict(raw, base=file.resolve().parent, env=env, source=file)

    @classmethod
    def from_dict(
        cls,
        raw: Mapping[str, Any],
        *,
        base: Path,
        env: Mapping[str, str] | None = None,
        source: Path | None = None,
    ) -> ServerConfig:
        """Build from parsed TOML; relative paths are relative to `base`."""
        env = os.environ if env is None else env
        _only(raw, {"server", "defaults", "module"}, "the top level")
        server = dict(raw.get("server", {}))
        _only(
            server,
            {
                "mode",
                "admin_token",
                "data_root",
                "rooms",
                "filter_unavailable",
                "hook_timeout",
                "strict",
                "watchdog_interval",
                "client_rate",
                "client_burst",
            },
            "[server]",
        )
        mode = env.get("CHAT_MODE") or server.get("mode", "development")
        if mode not in ("development", "production"):
            raise ConfigError(f"[server] mode must be 'development' or 'production', not {mode!r}")
        token = env.get("CHAT_ADMIN_TOKEN") or str(server.get("admin_token", DEFAULT_TOKEN))
        if mode == "production" and (token == DEFAULT_TOKEN or len(token) < 16):
            raise ConfigError(
                "production mode refuses to start with the default (or a short) admin token: "
                "set CHAT_ADMIN_TOKEN to a random string of at least 16 characters, e.g. "
                "`export CHAT_ADMIN_TOKEN=$(python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(24))')`"
            )
        data_root = Path(
            env.get("CHAT_DATA_ROOT") or server.get("data_root", "~/.local/state/plexichat-demo")
        ).expanduser()
        if not data_root.is_absolute():
            data_root = base / data_root
        rooms = tuple(server.get("rooms", ["general"]))
        for room in rooms:
            if not isinstance(room, str) or not _ROOM.match(room):
                raise ConfigError(f"[server] rooms: {room!r} is not a valid room name")
        if not rooms:
            raise ConfigError("[server] rooms: give at least one room")
        unavailable = server.get("filter_unavailable", "pass")
        if unavailable not in ("pass", "reject"):
            raise ConfigError("[server] filter_unavailable must be 'pass' or 'reject'")
        strict = env.get("CHAT_STRICT", "").lower() in ("1", "true", "yes") or bool(
            server.get("strict", False)
        )

        try:
            client_rate = float(env.get("CHAT_CLIENT_RATE") or server.get("client_rate", 10.0))
            client_burst = int(server.get("client_burst", 30))
        except (TypeError, ValueError):
            client_rate, client_burst = -1.0, 0
        if not client_rate >= 0 or client_burst < 1:
            raise ConfigError(
                "[server] client_rate (or $CHAT_CLIENT_RATE) must be a number >= 0 (0: no "
                "pacing) and client_burst an integer >= 1"
            )

        defaults = dict(raw.get("defaults", {}))
        _only(defaults, {"limits", "restart", "grant"}, "[defaults]")
        modules = []
        seen: set[str] = set()
        for index, entry in enumerate(raw.get("module", [])):
            where = f"[[module]] #{index + 1}"
            _only(
                entry,
                {"name", "path", "config", "grant", "limits", "restart", "enabled", "validate"},
                where,
            )
            name = entry.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(f"{where}: name must match {_NAME.pattern}, got {name!r}")
            if name in seen:
                raise ConfigError(f"{where}: a module named {name!r} is configured twice")
            seen.add(name)
            where = f"[[module]] {name!r}"
            if not isinstance(entry.get("path"), str):
                raise ConfigError(f"{where}: path (the module's .py file) is required")
            path = Path(entry["path"])
            if not path.is_absolute():
                path = (base / path).resolve()
            try:
                grant = ModulePermissions.from_names(entry.get("grant", defaults.get("grant", [])))
            except ValueError as exc:
                raise ConfigError(f"{where}: grant: {exc}") from exc
            modules.append(
                ModuleSpec(
                    name=name,
                    path=path,
                    config=dict(entry.get("config", {})),
                    grant=grant,
                    limits=_build(
                        Limits, defaults.get("limits", {}), entry.get("limits", {}), where
                    ),
                    restart=_build(
                        RestartPolicy, defaults.get("restart", {}), entry.get("restart", {}), where
                    ),
                    enabled=bool(entry.get("enabled", True)),
                    validate=bool(entry.get("validate", True)),
                )
            )
        return cls(
            mode=mode,
            admin_token=token,
            data_root=data_root,
            rooms=rooms,
            filter_unavailable=unavailable,
            hook_timeout=float(server.get("hook_timeout", 1.0)),
            client_rate=client_rate,
            client_burst=client_burst,
            strict=strict or mode == "production",
            watchdog_interval=float(server.get("watchdog_interval", 0.5)),
            modules=tuple(modules),
            source=source,
        )


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _build(kind: Any, default: Mapping[str, Any], override: Mapping[str, Any], where: str) -> Any:
    merged = {**default, **override}
    names = {f.name for f in fields(kind)}
    _only(merged, names, f"{where} {kind.__name__.lower()}")
    try:
        if "strategy" in merged:
            # RestartPolicy compares strategies by identity: pass the enum, not its value.
            merged["strategy"] = RestartStrategy(merged["strategy"])
        return kind(**merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {kind.__name__}: {exc}") from exc
