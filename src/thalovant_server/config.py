"""Server configuration as a plain object, read from CLI options and ``THALOVANT_*`` variables.

Precedence: an explicit argument, then the environment variable, then the default.

The MQTT broker kind (``mqtt_broker``) is ``embedded`` (amqtt in the server process, the
default), ``mosquitto`` (a Mosquitto 2 child process) or ``off`` (no broker: hubs serve no MQTT
and provisioning hands out no MQTT credentials). ``THALOVANT_MQTT_BROKER`` sets it; the older
``THALOVANT_MQTT_ENABLED=false`` still means ``off``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from thalovant.files import write_private
from thalovant_server.files import ensure_private_dir
from thalovant_server.limits import Limits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_API_TOKEN_DAYS = 90
MAX_API_TOKEN_DAYS = 365
DEFAULT_PORT = 8443
DEFAULT_MQTT_PORT = 8883
MQTT_BROKER_KINDS = ("embedded", "mosquitto", "off")
DEFAULT_MQTT_BROKER = "embedded"


class ConfigError(ValueError):
    """A configuration value is unusable (bad port, bad boolean, ...)."""


def _env_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be a boolean, got {value!r}")


def _env_port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {port}")
    return port


def _env_whole(value: str, name: str, unit: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of {unit}, got {value!r}") from None


def _broker_kind(value: str, name: str) -> str:
    kind = value.strip().lower()
    if kind not in MQTT_BROKER_KINDS:
        raise ConfigError(f"{name} must be one of {', '.join(MQTT_BROKER_KINDS)}, got {value!r}")
    return kind


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start.

    ``public_host``/``public_port`` are what clients are told to dial (identities, hub
    endpoints); they default to the bind host and port. ``database_url`` defaults to SQLite
    at ``DATA_DIR/thalovant.db``; any SQLAlchemy async URL (``postgresql+asyncpg://...``) works.
    ``mqtt_broker`` is one of :data:`MQTT_BROKER_KINDS`; the broker binds ``host:mqtt_port``
    (``0`` picks a free port, and the running server then advertises the port it got).
    ``device_interval`` is the polling interval device sign-in asks for (seconds,
    ``THALOVANT_DEVICE_INTERVAL``); ``device_code_lifetime`` how long a device code lives.

    Sign-in: a client address or an account may fail ``login_max_failures`` times, then backs
    off (doubling from 1 s up to ``login_window_seconds``; see
    :mod:`thalovant_server.api.ratelimit`). API tokens live ``api_token_default_days`` unless
    asked otherwise, and never longer than ``api_token_max_days``
    (``THALOVANT_API_TOKEN_DEFAULT_DAYS``, ``THALOVANT_API_TOKEN_MAX_DAYS``).
    """

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_host: str | None = None
    public_port: int | None = None
    database_url: str | None = None
    mqtt_broker: str = DEFAULT_MQTT_BROKER
    mqtt_port: int = DEFAULT_MQTT_PORT
    login_max_failures: int = 5
    login_window_seconds: float = 300.0
    psk_concurrency: int = 2
    api_token_default_days: int = DEFAULT_API_TOKEN_DAYS
    api_token_max_days: int = MAX_API_TOKEN_DAYS
    device_interval: int = 5
    device_code_lifetime: int = 900
    limits: Limits = field(default_factory=Limits.from_env)

    def __post_init__(self) -> None:
        if self.mqtt_broker not in MQTT_BROKER_KINDS:
            kinds = ", ".join(MQTT_BROKER_KINDS)
            raise ConfigError(f"the MQTT broker must be one of {kinds}, got {self.mqtt_broker!r}")
        if not 0 <= self.mqtt_port <= 65535:
            raise ConfigError(f"the MQTT port must be between 0 and 65535, got {self.mqtt_port}")
        if not 1 <= self.api_token_default_days <= self.api_token_max_days <= 3650:
            raise ConfigError(
                "API token lifetimes must satisfy 1 <= default <= maximum <= 3650 days, got "
                f"{self.api_token_default_days} and {self.api_token_max_days}"
            )
        if not 1 <= self.device_interval <= 60:
            raise ConfigError(f"the device sign-in interval must be 1-60 seconds, got {self.device_interval}")
        if not 60 <= self.device_code_lifetime <= 3600:
            raise ConfigError(f"the device code lifetime must be 60-3600 seconds, got {self.device_code_lifetime}")

    @property
    def mqtt_enabled(self) -> bool:
        """Whether the server runs an MQTT broker (so hubs may serve MQTT)."""
        return self.mqtt_broker != "off"

    @property
    def advertised_host(self) -> str:
        """The host name clients dial; a wildcard bind address advertises ``localhost``."""
        host = self.public_host or self.host
        if host in {"0.0.0.0", "::", ""}:
            return "localhost"
        return host

    @property
    def advertised_port(self) -> int:
        return self.public_port if self.public_port is not None else self.port

    @property
    def host_for_url(self) -> str:
        """``advertised_host`` with IPv6 literals bracketed, ready for a URL."""
        host = self.advertised_host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'thalovant.db'}"

    @classmethod
    def from_env(
        cls,
        *,
        data_dir: str | Path | None = None,
        host: str | None = None,
        port: int | None = None,
        public_host: str | None = None,
        public_port: int | None = None,
        database_url: str | None = None,
        mqtt_broker: str | None = None,
        mqtt_port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """Build a config from explicit values, falling back to ``THALOVANT_*`` variables."""
        env = os.environ if environ is None else environ
        raw_dir = data_dir if data_dir is not None else env.get("THALOVANT_DATA_DIR")
        if not raw_dir:
            raise ConfigError("a data directory is required: pass --data-dir or set THALOVANT_DATA_DIR")
        env_port = env.get("THALOVANT_PORT")
        env_public_port = env.get("THALOVANT_PUBLIC_PORT")
        env_mqtt_port = env.get("THALOVANT_MQTT_PORT")
        env_mqtt = env.get("THALOVANT_MQTT_ENABLED")
        env_broker = env.get("THALOVANT_MQTT_BROKER")
        env_token_default = env.get("THALOVANT_API_TOKEN_DEFAULT_DAYS")
        env_token_max = env.get("THALOVANT_API_TOKEN_MAX_DAYS")
        env_interval = env.get("THALOVANT_DEVICE_INTERVAL")
        if mqtt_broker is not None:
            broker = _broker_kind(mqtt_broker, "--mqtt-broker")
        elif env_broker:
            broker = _broker_kind(env_broker, "THALOVANT_MQTT_BROKER")
        elif env_mqtt is not None and not _env_bool(env_mqtt, "THALOVANT_MQTT_ENABLED"):
            broker = "off"
        else:
            broker = DEFAULT_MQTT_BROKER
        return cls(
            data_dir=Path(raw_dir).expanduser().resolve(),
            host=host or env.get("THALOVANT_HOST") or DEFAULT_HOST,
            port=port if port is not None else (_env_port(env_port, "THALOVANT_PORT") if env_port else DEFAULT_PORT),
            public_host=public_host or env.get("THALOVANT_PUBLIC_HOST") or None,
            public_port=(
                public_port
                if public_port is not None
                else (_env_port(env_public_port, "THALOVANT_PUBLIC_PORT") if env_public_port else None)
            ),
            database_url=database_url or env.get("THALOVANT_DATABASE_URL") or None,
            mqtt_broker=broker,
            mqtt_port=(
                mqtt_port
                if mqtt_port is not None
                else (_env_port(env_mqtt_port, "THALOVANT_MQTT_PORT") if env_mqtt_port else DEFAULT_MQTT_PORT)
            ),
            device_interval=_env_whole(env_interval, "THALOVANT_DEVICE_INTERVAL", "seconds") if env_interval else 5,
            api_token_default_days=(
                _env_whole(env_token_default, "THALOVANT_API_TOKEN_DEFAULT_DAYS", "days")
                if env_token_default
                else DEFAULT_API_TOKEN_DAYS
            ),
            api_token_max_days=(
                _env_whole(env_token_max, "THALOVANT_API_TOKEN_MAX_DAYS", "days")
                if env_token_max
                else MAX_API_TOKEN_DAYS
            ),
        )


SETTINGS_FILE = "server.json"


def save_settings(config: ServerConfig) -> None:
    """Record what ``serve`` advertises, so ``admin`` commands write matching identities."""
    ensure_private_dir(config.data_dir)
    settings = {
        "host": config.host,
        "port": config.port,
        "public_host": config.public_host,
        "public_port": config.public_port,
        "mqtt_broker": config.mqtt_broker,
        "mqtt_enabled": config.mqtt_enabled,
        "mqtt_port": config.mqtt_port,
    }
    write_private(config.data_dir / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")


def load_settings(data_dir: Path) -> dict[str, object]:
    """The settings the last ``serve`` recorded (empty when it never ran or the file is unreadable)."""
    try:
        raw = json.loads((data_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}
