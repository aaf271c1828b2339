"""``thalovant-server``: run the server (``serve``) and administer it (``admin ...``).

``serve`` prints ``Thalovant MQTT: mqtts://HOST:PORT (KIND)`` once the broker listens (unless
``--mqtt-broker off``), then ``Thalovant API: https://HOST:PORT/v1`` once the API socket listens,
followed by ``export SSL_CERT_FILE=DIR/ca.pem``. Nothing secret is printed except a generated
demo password. Log lines (the ``thalovant_server`` logger, INFO by default) go to stderr.

A server that cannot start (the MQTT broker's port is taken, ``mosquitto`` is not installed, ...)
says why in one line and exits with status 1.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from thalovant.files import write_private
from thalovant_server.config import (
    MQTT_BROKER_KINDS,
    SETTINGS_FILE,
    ConfigError,
    ServerConfig,
    load_settings,
    save_settings,
)

T = TypeVar("T")

DEMO_EMAIL = "demo@example.com"
DEMO_HUB_SLUG = "joke-garden"
DEMO_HUB_TITLE = "Joke Garden"
DEMO_SKILLS = ("jokes", "trivia", "capabilities", "memory")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SHUTDOWN_GRACE_SECONDS = 5
"""How long a stopping server waits for open connections (idle keep-alive ones included)."""


def _say(text: str = "") -> None:
    click.echo(text)
    sys.stdout.flush()


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _config(
    data_dir: str | None,
    database_url: str | None,
    *,
    host: str | None = None,
    port: int | None = None,
    public_host: str | None = None,
    mqtt_broker: str | None = None,
    mqtt_port: int | None = None,
    use_saved: bool = False,
) -> ServerConfig:
    """Options, then ``THALOVANT_*``, then (for admin) what the last ``serve`` recorded."""
    try:
        config = ServerConfig.from_env(
            data_dir=data_dir,
            database_url=database_url,
            host=host,
            port=port,
            public_host=public_host,
            mqtt_broker=mqtt_broker,
            mqtt_port=mqtt_port,
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if not use_saved:
        return config
    saved = load_settings(config.data_dir)
    env = os.environ
    overrides: dict[str, Any] = {}
    if host is None and "THALOVANT_HOST" not in env and isinstance(saved.get("host"), str):
        overrides["host"] = saved["host"]
    if port is None and "THALOVANT_PORT" not in env and isinstance(saved.get("port"), int):
        overrides["port"] = saved["port"]
    if public_host is None and "THALOVANT_PUBLIC_HOST" not in env and isinstance(saved.get("public_host"), str):
        overrides["public_host"] = saved["public_host"]
    if isinstance(saved.get("public_port"), int) and "THALOVANT_PUBLIC_PORT" not in env:
        overrides["public_port"] = saved["public_port"]
    if isinstance(saved.get("mqtt_port"), int) and "THALOVANT_MQTT_PORT" not in env:
        overrides["mqtt_port"] = saved["mqtt_port"]
    broker_from_env = "THALOVANT_MQTT_BROKER" in env or "THALOVANT_MQTT_ENABLED" in env
    if saved.get("mqtt_broker") in MQTT_BROKER_KINDS and not broker_from_env:
        overrides["mqtt_broker"] = saved["mqtt_broker"]
    elif saved.get("mqtt_enabled") is False and not broker_from_env:
        overrides["mqtt_broker"] = "off"  # recorded by a server before --mqtt-broker existed
    try:
        return ServerConfig(**{**config.__dict__, **overrides})
    except ConfigError as exc:
        raise _fail(f"{config.data_dir / SETTINGS_FILE}: {exc}") from None


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, help="Server data directory (THALOVANT_DATA_DIR)."
)
database_option = click.option(
    "--database-url", default=None, help="SQLAlchemy async URL (THALOVANT_DATABASE_URL); default SQLite in DATA_DIR."
)


@click.group()
@click.version_option(package_name="thalovant-selfhosted")
def main() -> None:
    """Run and administer a self-hosted Thalovant server."""


# -- serve ---------------------------------------------------------------------------------


def configure_logging(level: str | None) -> None:
    """Send the ``thalovant_server`` log to stderr at ``level`` (default INFO).

    The lines are written by a thread of their own: a record costs the event loop a queue put,
    and a slow reader of stderr (a full pipe, a busy journal) never stalls a session. Records
    still queued when the process exits are written then. A logging setup that already exists
    (a handler on that logger or on the root logger) is kept; only an explicit ``level`` is
    applied to it.
    """
    logger = logging.getLogger("thalovant_server")
    if logger.handlers or logging.getLogger().handlers:
        if level is not None:
            logger.setLevel(level.upper())
        return
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(LOG_FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, stream)
    writer.start()
    atexit.register(writer.stop)
    logger.addHandler(logging.handlers.QueueHandler(records))
    logger.setLevel((level or "info").upper())


@main.command()
@data_dir_option
@click.option("--host", default=None, help="Bind address of the API and the MQTT broker (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TLS port for the API and the hubs (default 8443).")
@click.option("--public-host", default=None, help="Host name clients are told to dial (default: the bind host).")
@database_option
@click.option(
    "--mqtt-broker",
    type=click.Choice(MQTT_BROKER_KINDS, case_sensitive=False),
    default=None,
    help="MQTT broker: embedded (default), mosquitto (Debian's binary) or off (THALOVANT_MQTT_BROKER).",
)
@click.option(
    "--mqtt-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TLS port of the MQTT broker (default 8883; 0 picks a free one) (THALOVANT_MQTT_PORT).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Level of the server's log on stderr (default info).",
)
@click.option("--demo", is_flag=True, help="Also create the demo account and the public hub joke-garden.")
@click.option("--demo-password", default=None, help="Demo password (THALOVANT_DEMO_PASSWORD; else generated).")
def serve(
    data_dir: str | None,
    host: str | None,
    port: int | None,
    public_host: str | None,
    database_url: str | None,
    mqtt_broker: str | None,
    mqtt_port: int | None,
    log_level: str | None,
    demo: bool,
    demo_password: str | None,
) -> None:
    """Serve the API and every hub's data plane on one TLS port, and the MQTT broker on its own."""
    from thalovant_server.app import create_app
    from thalovant_server.carriers.mqtt import MqttCarrierError
    from thalovant_server.heap import settle_after_startup
    from thalovant_server.hub.routes import websocket_route_of
    from thalovant_server.limits import raise_file_limit
    from thalovant_server.listener import GuardedServer, server_config
    from thalovant_server.mqtt import BrokerStartError
    from thalovant_server.reload import running_server, serving_reloads
    from thalovant_server.store.sealed import SealedSecretUnreadable
    from thalovant_server.tls import ensure_dev_tls

    configure_logging(log_level)
    config = _config(
        data_dir,
        database_url,
        host=host,
        port=port,
        public_host=public_host,
        mqtt_broker=mqtt_broker.lower() if mqtt_broker else None,
        mqtt_port=mqtt_port,
    )
    running = running_server(config.data_dir)
    if running is not None:
        _say(f"Thalovant is already running on {config.data_dir} (pid {running}); nothing was changed.")
        _print_client_settings(config, config.data_dir / "ca.pem")
        return
    tls = ensure_dev_tls(config.data_dir, extra_names=(config.advertised_host,))
    save_settings(config)
    if demo:
        given = demo_password or os.environ.get("THALOVANT_DEMO_PASSWORD") or None
        try:
            password = kept_demo_password(config.data_dir, given)
            hub_id = _run(lambda: _ensure_demo(config, password))
        except SealedSecretUnreadable as exc:
            raise _fail(str(exc)) from None
        _say(f"Demo account: {DEMO_EMAIL}")
        _say("Demo password: (as given)" if given else f"Demo password: {password}")
        _say(f"Demo hub: {DEMO_HUB_SLUG} (id {hub_id})")

    class AnnouncingServer(GuardedServer):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                settle_after_startup()
                _say(f"Thalovant API: {_api_base(config)}/v1")
                _print_client_settings(config, tls.ca_cert)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Like uvicorn's, minus re-raising the signal afterwards: the app's lifespan (which
            # stops the MQTT broker) runs around this server and must finish first.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    app = create_app(config)
    limits = config.limits.fitted_to(raise_file_limit())
    uvicorn_config = server_config(
        app,
        host=config.host,
        port=config.port,
        cert=str(tls.cert),
        key=str(tls.key),
        limits=limits,
        websockets=websocket_route_of(app),
        loop="auto",
        lifespan="off",  # run below, so that a failed start is one clear error line
        access_log=False,
        server_header=False,
        log_level=(log_level or "info").lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )

    async def reload_from_store() -> None:
        accounts = app.state.mqtt_accounts
        if accounts is not None:
            await accounts.load()
        if app.state.runtime is not None:
            await app.state.runtime.reconcile()

    async def run_server() -> None:
        async with app.router.lifespan_context(app), serving_reloads(config.data_dir, reload_from_store):
            address = app.state.mqtt_address
            if address is not None:
                _say(f"Thalovant MQTT: {address.endpoint} ({config.mqtt_broker})")
            await AnnouncingServer(uvicorn_config, limits).serve()

    try:
        with asyncio.Runner(loop_factory=uvicorn_config.get_loop_factory()) as runner:
            runner.run(run_server())
    except BrokerStartError as exc:
        raise _fail(f"the MQTT broker ({config.mqtt_broker}) did not start: {exc}") from None
    except MqttCarrierError as exc:
        raise _fail(f"the hub could not subscribe at its MQTT broker ({config.mqtt_broker}): {exc}") from None
    except SealedSecretUnreadable as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"the server did not start: {exc}") from None


def _api_base(config: ServerConfig) -> str:
    return f"https://{config.host_for_url}:{config.advertised_port}"


def _print_client_settings(config: ServerConfig, ca_file: Path) -> None:
    """The API docs URL and every variable a client (Python, Node.js, Go, Rust, curl) needs."""
    _say(f"API docs: {_api_base(config)}/v1/docs")
    _say("Clients need:")
    _say(f"export THALOVANT_API_URL={_api_base(config)}")
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        _say(f"export {variable}={ca_file}")


DEMO_PASSWORD_FILE = "demo-password.sealed"
DEMO_PASSWORD_CONTEXT = b"thalovant demo password"


def kept_demo_password(data_dir: Path, given: str | None) -> str:
    """The demo password: ``given`` when set, else the one chosen on an earlier start, else a
    new one. It is kept sealed with the server's key (``DATA_DIR/demo-password.sealed``), never
    in clear."""
    from thalovant_server.secrets import SealingKey, new_password

    sealing = SealingKey.load_or_create(data_dir)
    path = data_dir / DEMO_PASSWORD_FILE
    if given is None:
        with contextlib.suppress(OSError, ValueError):
            sealed_text = path.read_bytes().strip()
            kept = sealing.open(base64.b64decode(sealed_text, validate=True), context=DEMO_PASSWORD_CONTEXT)
            if kept is not None:
                return kept.decode("utf-8")
    password = given or new_password()
    sealed = sealing.seal(password.encode("utf-8"), context=DEMO_PASSWORD_CONTEXT)
    write_private(path, base64.b64encode(sealed) + b"\n")
    return password


async def _ensure_demo(config: ServerConfig, password: str) -> str:
    """The demo user (with ``password``) and the public hub joke-garden."""
    from thalovant_server.app import open_control_plane
    from thalovant_server.secrets import hash_password, verify_password
    from thalovant_server.store import accounts, hubs

    async with open_control_plane(config) as plane, plane.store.session() as session:
        user = await accounts.user_by_email(session, DEMO_EMAIL)
        if user is None:
            password_hash = await asyncio.to_thread(hash_password, password)
            user = await accounts.create_user(
                session, email=DEMO_EMAIL, password_hash=password_hash, display_name="Demo"
            )
        elif not await asyncio.to_thread(verify_password, user.password_hash, password):
            user.password_hash = await asyncio.to_thread(hash_password, password)
        hub = await hubs.hub_by_ref(session, DEMO_HUB_SLUG)
        if hub is None:
            workspace = (await accounts.workspace_ids(session, user.id))[0]
            hub = await hubs.create_hub(
                session,
                slug=DEMO_HUB_SLUG,
                name=DEMO_HUB_SLUG,
                title=DEMO_HUB_TITLE,
                description="Clean jokes, trivia and a little memory: the demo hub.",
                owner_id=user.id,
                workspace_id=workspace,
                spec=_hub_spec(DEMO_SKILLS, mqtt=True),
                visibility="public",
            )
        return hub.id


def _hub_spec(skills: tuple[str, ...], *, mqtt: bool) -> dict[str, Any]:
    from thalovant_server.store.hub_spec import normalise_spec

    return normalise_spec(
        {"version": "1", "skills": list(skills), "protocols": {"wss": True, "http": True, "mqtt": mqtt}}
    )


# -- admin ---------------------------------------------------------------------------------


@main.group()
def admin() -> None:
    """List, create and delete users, hubs and client identities from the shell.

    Passwords are never taken as arguments (other users see those in ``ps``): they are typed at
    a prompt, or read from the first line of standard input with ``--password-stdin``, or from
    ``THALOVANT_ADMIN_PASSWORD``.
    """


ADMIN_PASSWORD_VARIABLE = "THALOVANT_ADMIN_PASSWORD"


def password_input(command: Callable[..., Any]) -> Callable[..., Any]:
    """The password options of a command that sets a password."""
    command = click.option(
        "--password-stdin",
        is_flag=True,
        help=f"Read the password from standard input (else {ADMIN_PASSWORD_VARIABLE}).",
    )(command)
    return click.option("--password", "password_argument", hidden=True, default=None)(command)


def read_password(password_stdin: bool, password_argument: str | None) -> str:
    """The new password: from stdin, the environment, or a prompt (twice); never argv."""
    if password_argument is not None:
        raise _fail(
            "passwords are not taken as arguments (they show in ps): type it at the prompt, "
            f"pipe it with --password-stdin, or set {ADMIN_PASSWORD_VARIABLE}"
        )
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif os.environ.get(ADMIN_PASSWORD_VARIABLE):
        password = os.environ[ADMIN_PASSWORD_VARIABLE]
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise _fail(
            f"no password: type it at a terminal, pipe it with --password-stdin, or set {ADMIN_PASSWORD_VARIABLE}"
        )
    if not password:
        raise _fail("the password is empty")
    return password


@admin.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.option("--email", required=True)
@password_input
@click.option("--display-name", default="")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user")
@data_dir_option
@database_option
def user_create(
    email: str,
    password_stdin: bool,
    password_argument: str | None,
    display_name: str,
    role: str,
    data_dir: str | None,
    database_url: str | None,
) -> None:
    """Create a user with a personal workspace (the password is stored as an argon2id hash)."""
    config = _config(data_dir, database_url, use_saved=True)
    if "@" not in email:
        raise _fail("--email must be an e-mail address")
    password = read_password(password_stdin, password_argument)
    user_id = _run(lambda: _create_user(config, email, password, display_name, role))
    _say(json.dumps({"id": user_id, "email": email.strip().lower()}))


@user.command("list")
@data_dir_option
@database_option
def user_list(data_dir: str | None, database_url: str | None) -> None:
    """Print every user as a JSON line (id, email, role, created_at)."""
    config = _config(data_dir, database_url, use_saved=True)
    for row in _run(lambda: _list_rows(config, "users")):
        _say(json.dumps(row))


@user.command("reset-password")
@click.option("--email", required=True)
@password_input
@data_dir_option
@database_option
def user_reset_password(
    email: str, password_stdin: bool, password_argument: str | None, data_dir: str | None, database_url: str | None
) -> None:
    """Set a user's password and revoke their API tokens (every session signs in again)."""
    config = _config(data_dir, database_url, use_saved=True)
    password = read_password(password_stdin, password_argument)
    _run(lambda: _reset_password(config, email, password))
    _say(json.dumps({"email": email.strip().lower(), "password": "reset", "tokens": "revoked"}))


@user.command("delete")
@click.option("--email", required=True)
@data_dir_option
@database_option
def user_delete(email: str, data_dir: str | None, database_url: str | None) -> None:
    """Delete a user who owns no hub and no client (delete those first)."""
    config = _config(data_dir, database_url, use_saved=True)
    _run(lambda: _delete_user(config, email))
    _tell_running_server(config)
    _say(json.dumps({"email": email.strip().lower(), "deleted": True}))


async def _list_rows(config: ServerConfig, kind: str, hub_ref: str | None = None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from thalovant_server.app import open_control_plane
    from thalovant_server.store import hubs
    from thalovant_server.store.models import Client, Hub, User

    async with open_control_plane(config) as plane, plane.store.session() as session:
        emails = {u.id: u.email for u in await session.scalars(select(User))}
        if kind == "users":
            users = await session.scalars(select(User).order_by(User.created_at, User.id))
            return [{"id": u.id, "email": u.email, "role": u.role, "created_at": str(u.created_at)} for u in users]
        if kind == "hubs":
            found = await session.scalars(select(Hub).order_by(Hub.created_at, Hub.id))
            return [
                {
                    "id": h.id,
                    "slug": h.slug,
                    "title": h.title,
                    "visibility": h.visibility,
                    "owner": emails.get(h.owner_id),
                }
                for h in found
            ]
        query = select(Client).order_by(Client.created_at, Client.id)
        if hub_ref is not None:
            hub = await hubs.hub_by_ref(session, hub_ref)
            if hub is None:
                raise _fail(f"no hub {hub_ref}")
            query = query.where(Client.hub_id == hub.id)
        return [
            {"id": c.id, "hub_id": c.hub_id, "name": c.name, "owner": emails.get(c.owner_id), "active": c.active}
            for c in await session.scalars(query)
        ]


async def _reset_password(config: ServerConfig, email: str, password: str) -> None:
    from sqlalchemy import delete

    from thalovant_server.app import open_control_plane
    from thalovant_server.secrets import hash_password
    from thalovant_server.store import accounts
    from thalovant_server.store.models import ApiToken

    password_hash = await asyncio.to_thread(hash_password, password)
    async with open_control_plane(config) as plane, plane.store.session() as session:
        found = await accounts.user_by_email(session, email)
        if found is None:
            raise _fail(f"no user with e-mail {email}")
        found.password_hash = password_hash
        await session.execute(delete(ApiToken).where(ApiToken.user_id == found.id))


async def _delete_user(config: ServerConfig, email: str) -> None:
    from sqlalchemy import func, select

    from thalovant_server.app import open_control_plane
    from thalovant_server.store import accounts
    from thalovant_server.store.models import Client, Hub

    async with open_control_plane(config) as plane, plane.store.session() as session:
        found = await accounts.user_by_email(session, email)
        if found is None:
            raise _fail(f"no user with e-mail {email}")
        owned_hubs = await session.scalar(select(func.count()).select_from(Hub).where(Hub.owner_id == found.id))
        owned_clients = await session.scalar(
            select(func.count()).select_from(Client).where(Client.owner_id == found.id)
        )
        if owned_hubs or owned_clients:
            raise _fail(f"{email} owns {owned_hubs} hub(s) and {owned_clients} client(s): delete those first")
        await session.delete(found)


async def _create_user(config: ServerConfig, email: str, password: str, display_name: str, role: str) -> str:
    from thalovant_server.app import open_control_plane
    from thalovant_server.secrets import hash_password
    from thalovant_server.store import accounts

    password_hash = await asyncio.to_thread(hash_password, password)
    async with open_control_plane(config) as plane, plane.store.session() as session:
        try:
            created = await accounts.create_user(
                session, email=email, password_hash=password_hash, display_name=display_name, role=role
            )
        except accounts.EmailTaken:
            raise _fail(f"a user with e-mail {email.strip().lower()} already exists") from None
        return created.id


@admin.group()
def hub() -> None:
    """Hubs."""


@hub.command("create")
@click.option("--slug", required=True)
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--public", "public", is_flag=True, help="List the hub publicly (default: workspace only).")
@click.option("--skill", "skills", multiple=True, help="A skill to run (repeatable); default: the demo set.")
@click.option("--owner", default=None, help="Owner e-mail (default: the oldest user).")
@click.option("--mqtt/--no-mqtt", default=True, help="Serve the hub over MQTT too.")
@data_dir_option
@database_option
def hub_create(
    slug: str,
    title: str,
    description: str,
    public: bool,
    skills: tuple[str, ...],
    owner: str | None,
    mqtt: bool,
    data_dir: str | None,
    database_url: str | None,
) -> None:
    """Create a hub; prints its JSON resource."""
    config = _config(data_dir, database_url, use_saved=True)
    view = _run(lambda: _create_hub(config, slug, title, description, public, skills or DEMO_SKILLS, owner, mqtt))
    _say(json.dumps(view, indent=2))


async def _owner(session: Any, email: str | None) -> Any:
    from sqlalchemy import select

    from thalovant_server.store import accounts
    from thalovant_server.store.models import User

    if email is not None:
        found = await accounts.user_by_email(session, email)
        if found is None:
            raise _fail(f"no user with e-mail {email}")
        return found
    oldest = await session.scalar(select(User).order_by(User.created_at, User.id).limit(1))
    if oldest is None:
        raise _fail("no user yet: run 'admin user create' first or pass --owner")
    return oldest


async def _create_hub(
    config: ServerConfig,
    slug: str,
    title: str,
    description: str,
    public: bool,
    skills: tuple[str, ...],
    owner: str | None,
    mqtt: bool,
) -> dict[str, Any]:
    from thalovant_server.api.views import hub_view
    from thalovant_server.app import open_control_plane
    from thalovant_server.store import accounts, hubs
    from thalovant_server.store.hub_spec import SpecError

    if not hubs.valid_slug(slug):
        raise _fail("--slug must be lowercase letters, digits and '-'")
    try:
        spec = _hub_spec(skills, mqtt=mqtt)
    except SpecError as exc:
        raise _fail(str(exc)) from None
    async with open_control_plane(config) as plane, plane.store.session() as session:
        owner_user = await _owner(session, owner)
        workspace = (await accounts.workspace_ids(session, owner_user.id))[0]
        try:
            created = await hubs.create_hub(
                session,
                slug=slug,
                name=slug,
                title=title,
                description=description,
                owner_id=owner_user.id,
                workspace_id=workspace,
                spec=spec,
                visibility="public" if public else "workspace",
            )
        except hubs.SlugTaken:
            raise _fail(f"a hub with slug {slug} already exists") from None
        return hub_view(created, config, private=True)


@hub.command("list")
@data_dir_option
@database_option
def hub_list(data_dir: str | None, database_url: str | None) -> None:
    """Print every hub as a JSON line (id, slug, title, visibility, owner)."""
    config = _config(data_dir, database_url, use_saved=True)
    for row in _run(lambda: _list_rows(config, "hubs")):
        _say(json.dumps(row))


@hub.command("delete")
@click.option("--hub", "hub_ref", required=True, help="Hub slug, id or public_ref.")
@data_dir_option
@database_option
def hub_delete(hub_ref: str, data_dir: str | None, database_url: str | None) -> None:
    """Delete a hub and its client identities; a running server drops their sessions."""
    config = _config(data_dir, database_url, use_saved=True)
    hub_id, client_ids = _run(lambda: _delete_hub(config, hub_ref))
    _tell_running_server(config)
    _say(json.dumps({"id": hub_id, "deleted": True, "clients_deleted": len(client_ids)}))


async def _delete_hub(config: ServerConfig, hub_ref: str) -> tuple[str, list[str]]:
    from thalovant_server.app import open_control_plane
    from thalovant_server.store import hubs

    async with open_control_plane(config) as plane, plane.store.session() as session:
        found = await hubs.hub_by_ref(session, hub_ref)
        if found is None:
            raise _fail(f"no hub {hub_ref}")
        hub_id = found.id
        return hub_id, await hubs.delete_hub(session, found)


@admin.group()
def client() -> None:
    """Client identities."""


@client.command("list")
@click.option("--hub", "hub_ref", default=None, help="Only this hub's clients (slug, id or public_ref).")
@data_dir_option
@database_option
def client_list(hub_ref: str | None, data_dir: str | None, database_url: str | None) -> None:
    """Print client identities as JSON lines (id, hub_id, name, owner, active); no secrets."""
    config = _config(data_dir, database_url, use_saved=True)
    for row in _run(lambda: _list_rows(config, "clients", hub_ref)):
        _say(json.dumps(row))


@client.command("delete")
@click.option("--id", "client_id", required=True)
@data_dir_option
@database_option
def client_delete(client_id: str, data_dir: str | None, database_url: str | None) -> None:
    """Delete a client identity; a running server drops its sessions and broker account."""
    config = _config(data_dir, database_url, use_saved=True)
    _run(lambda: _delete_client(config, client_id))
    _tell_running_server(config)
    _say(json.dumps({"id": client_id, "deleted": True}))


async def _delete_client(config: ServerConfig, client_id: str) -> None:
    from thalovant_server.app import open_control_plane
    from thalovant_server.store import clients

    async with open_control_plane(config) as plane, plane.store.session() as session:
        found = await clients.client_by_id(session, client_id)
        if found is None:
            raise _fail(f"no client {client_id}")
        await clients.delete_client(session, found)


@client.command("create")
@click.option("--hub", "hub_ref", required=True, help="Hub slug, id or public_ref.")
@click.option("--name", required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Identity file to write (0600).")
@click.option("--site-id", default=None)
@click.option("--owner", default=None, help="Owner e-mail (default: the hub's owner).")
@click.option("--connection-type", default=None)
@data_dir_option
@database_option
def client_create(
    hub_ref: str,
    name: str,
    out: str,
    site_id: str | None,
    owner: str | None,
    connection_type: str | None,
    data_dir: str | None,
    database_url: str | None,
) -> None:
    """Provision a client identity and write its identity file (mode 0600)."""
    config = _config(data_dir, database_url, use_saved=True)
    identity, client_id = _run(lambda: _create_client(config, hub_ref, name, site_id, owner, connection_type))
    write_identity_file(Path(out), identity)
    _tell_running_server(config)
    _say(json.dumps({"id": client_id, "hub_id": identity["hub_id"], "name": name, "identity_file": str(out)}))


def _tell_running_server(config: ServerConfig) -> None:
    """Have a ``serve`` on the same data directory pick up the change (its broker accounts)."""
    from thalovant_server.reload import notify_server

    if notify_server(config.data_dir) is False:
        click.echo("note: the running server did not confirm the reload; its MQTT broker may need a restart", err=True)


def write_identity_file(path: Path, identity: dict[str, Any]) -> None:
    """Write ``identity`` as JSON readable by its owner only (0600 from the first byte)."""
    from thalovant_server.files import write_private

    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(identity, indent=2) + "\n")


async def _create_client(
    config: ServerConfig,
    hub_ref: str,
    name: str,
    site_id: str | None,
    owner: str | None,
    connection_type: str | None,
) -> tuple[dict[str, Any], str]:
    from thalovant_server.api.provisioning import ClientRequest, ProvisioningError, provision_client
    from thalovant_server.app import open_control_plane
    from thalovant_server.store import accounts, clients, hubs

    async with open_control_plane(config) as plane:
        async with plane.store.session() as session:
            found = await hubs.hub_by_ref(session, hub_ref)
            if found is None:
                raise _fail(f"no hub {hub_ref}")
            if owner is not None:
                owner_user = await _owner(session, owner)
                owner_id = owner_user.id
            else:
                owner_id = found.owner_id
            workspace = (await accounts.workspace_ids(session, owner_id))[0]
        try:
            provisioned = await provision_client(
                plane,
                hub=found,
                owner_id=owner_id,
                workspace_id=workspace,
                request=ClientRequest(name=name, site_id=site_id, connection_type=connection_type),
            )
        except clients.ClientNameTaken:
            raise _fail(f"hub {hub_ref} already has a client named {name}") from None
        except ProvisioningError as exc:
            raise _fail(str(exc)) from None
    identity: dict[str, Any] = provisioned.body["initial_identify"]
    return identity, provisioned.client.id


if __name__ == "__main__":
    main()
