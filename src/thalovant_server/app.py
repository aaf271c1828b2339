"""The ASGI application: ``create_app(config)``.

The lifespan opens the store (running migrations) and exposes ``app.state.store`` and
``app.state.control``; ``app.state.runtime`` is the hub runtime once one is attached (the
control plane calls its ``client_revoked``/``hub_changed`` when set), and
``app.state.skill_rollout`` the :class:`~thalovant_server.rollout.SkillRollout` that drives
skill operations (it takes up unfinished ones at start), and ``app.state.write_behind`` the queue
through which hubs write their request log and memory.

Unless ``config.mqtt_broker`` is ``off``, the lifespan also runs the MQTT broker
(:func:`running_mqtt_broker`) with the server's TLS certificate, and exposes:

- ``app.state.mqtt_broker``: the running :class:`~thalovant_server.mqtt.MqttBroker`;
- ``app.state.mqtt_hub_login``: the hub service user's
  :class:`~thalovant_server.mqtt.MqttCredentials` (issued fresh on every start; the password
  exists only in memory);
- ``app.state.mqtt_address``: the :class:`~thalovant_server.mqtt.BrokerAddress` it listens on;
- ``app.state.mqtt_accounts``: the
  :class:`~thalovant_server.api.broker_accounts.BrokerAccounts` that keeps the broker's accounts
  equal to the store's.

All four are ``None`` without a broker (and again after shutdown). ``app.state.control.config``
carries the port the broker actually bound (``app.state.config`` stays as configured). A broker
that cannot start makes the lifespan raise :class:`~thalovant_server.mqtt.BrokerStartError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from thalovant_server import __version__, logs
from thalovant_server.api import api_router, openapi, problems
from thalovant_server.api.apps import AppRegistry
from thalovant_server.api.broker_accounts import BrokerAccounts
from thalovant_server.api.docs import mount_api_docs
from thalovant_server.api.ratelimit import LoginLimiter
from thalovant_server.api.request_limits import ApiLimits
from thalovant_server.api.state import ControlPlane
from thalovant_server.carriers.mqtt import MqttHubCarrier
from thalovant_server.config import ServerConfig, save_settings
from thalovant_server.files import secure_tree
from thalovant_server.hub.routes import mount_data_plane
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.mqtt import BrokerAddress, MqttBroker, MqttCredentials, create_broker, issue_hub_credentials
from thalovant_server.pages import pages_router
from thalovant_server.rollout import SkillRollout
from thalovant_server.secrets import SealingKey
from thalovant_server.store import accounts, idempotency, memory, request_log, signin
from thalovant_server.store.engine import Store
from thalovant_server.store.models import utcnow
from thalovant_server.store.sealed import noise_static_key
from thalovant_server.store.write_behind import WriteBehind
from thalovant_server.tls import ensure_dev_tls

MOSQUITTO_DIR = "mosquitto"

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_control_plane(config: ServerConfig) -> AsyncIterator[ControlPlane]:
    """The store (migrated), the server's keys and the limiters of one server.

    Raises :class:`~thalovant_server.store.sealed.SealedSecretUnreadable` when the database's
    sealed keys do not open with the data directory's ``server.key``.
    """
    secure_tree(config.data_dir)
    sealing = SealingKey.load_or_create(config.data_dir)
    store = await Store.open(config.resolved_database_url, sealing=sealing)
    try:
        noise_key = await noise_static_key(store, sealing)
        async with store.session() as session:
            await accounts.purge_expired_tokens(session)
            await idempotency.purge_expired(session)
            await signin.purge_expired(session)
            await memory.purge_deleted(session)
            await request_log.purge_old(session, now=utcnow())
        yield ControlPlane(
            config=config,
            store=store,
            sealing=sealing,
            noise_key=noise_key,
            login_limiter=LoginLimiter(
                free_failures=config.login_max_failures,
                max_delay=config.login_window_seconds,
                forget_after=3 * config.login_window_seconds,
            ),
            argon2_slots=asyncio.Semaphore(config.psk_concurrency),
        )
    finally:
        await store.close()


@dataclass(frozen=True)
class RunningBroker:
    """A started MQTT broker, the hub service user's login, and the accounts keeper."""

    broker: MqttBroker
    hub_login: MqttCredentials
    address: BrokerAddress
    accounts: BrokerAccounts
    ca_file: Path


def dialable(address: BrokerAddress) -> BrokerAddress:
    """Where a local client reaches a broker bound to ``address`` (a wildcard host means loopback)."""
    if address.host in ("0.0.0.0", ""):
        return BrokerAddress("127.0.0.1", address.port)
    if address.host == "::":
        return BrokerAddress("::1", address.port)
    return address


@asynccontextmanager
async def running_mqtt_broker(plane: ControlPlane) -> AsyncIterator[RunningBroker]:
    """Start the broker ``plane.config`` asks for, loaded with every account the store allows.

    The broker binds ``config.host:config.mqtt_port`` with the server's development TLS
    certificate (Mosquitto also gets the CA and ``DATA_DIR/mosquitto`` for its files). When the
    bound port differs from the configured one (port ``0``), ``plane.config`` is replaced by a
    copy with the bound port, and recorded for ``admin``, so every identity names the real port.
    Raises :class:`~thalovant_server.mqtt.BrokerStartError` when the broker does not start. The
    broker is stopped when the block ends.
    """
    config = plane.config
    if config.mqtt_broker not in ("embedded", "mosquitto"):
        raise ValueError(f"no MQTT broker to run for {config.mqtt_broker!r}")
    tls = ensure_dev_tls(config.data_dir, extra_names=(config.advertised_host,))
    broker = create_broker(
        "embedded" if config.mqtt_broker == "embedded" else "mosquitto",
        cert_file=tls.cert,
        key_file=tls.key,
        host=config.host,
        port=config.mqtt_port,
        config_dir=config.data_dir / MOSQUITTO_DIR,
        ca_file=tls.ca_cert,
        limits=config.limits,
    )
    hub_login = issue_hub_credentials()
    keeper = BrokerAccounts(broker, plane.store, hub_login)
    try:
        clients = await keeper.load()
        address = await broker.start()
        if address.port != config.mqtt_port:
            plane.config = dataclasses.replace(config, mqtt_port=address.port)
            save_settings(plane.config)
        log.info("MQTT broker (%s) on %s with %d client accounts", config.mqtt_broker, address.endpoint, clients)
        yield RunningBroker(broker=broker, hub_login=hub_login, address=address, accounts=keeper, ca_file=tls.ca_cert)
    finally:
        await broker.stop()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.mqtt_broker = app.state.mqtt_hub_login = app.state.mqtt_address = app.state.mqtt_accounts = None
    app.state.mqtt_carrier = None
    async with open_control_plane(app.state.config) as plane:
        app.state.control = plane
        app.state.store = plane.store
        writer = WriteBehind(plane.store)
        app.state.write_behind = writer
        app.state.runtime = HubRuntime(
            plane.directory(),
            sink=request_log.RequestLog(writer),
            memory=memory.memory_book(plane.store, writer),
        )
        writer.start()
        app.state.skill_rollout = SkillRollout(plane.store, app.state.runtime)
        await app.state.skill_rollout.resume()
        try:
            if not plane.config.mqtt_enabled:
                yield
                return
            async with running_mqtt_broker(plane) as mqtt:
                app.state.mqtt_broker = mqtt.broker
                app.state.mqtt_hub_login = mqtt.hub_login
                app.state.mqtt_address = mqtt.address
                app.state.mqtt_accounts = mqtt.accounts
                # the hub side of the MQTT carrier: the hub service user, stopped before the broker
                carrier = MqttHubCarrier(
                    app.state.runtime, address=dialable(mqtt.address), login=mqtt.hub_login, ca_file=mqtt.ca_file
                )
                await carrier.start()
                app.state.mqtt_carrier = carrier
                try:
                    yield
                finally:
                    await carrier.stop()
                    app.state.mqtt_broker = app.state.mqtt_hub_login = app.state.mqtt_carrier = None
                    app.state.mqtt_address = app.state.mqtt_accounts = None
        finally:
            await app.state.skill_rollout.close()
            await app.state.runtime.close()
            await writer.close()


CORS_EXPOSED_HEADERS = ("ETag", "Location", "Retry-After", "Allow")


def allow_cross_origin(app: FastAPI) -> None:
    """Let web pages of any origin call the API and the hubs' HTTPS endpoints (WSS needs nothing).

    Every credential of this server travels in a header (bearer tokens, access keys), never in
    a cookie, so a page learns nothing that its own user could not send: answers carry
    ``Access-Control-Allow-Origin: *`` and never ``Allow-Credentials``. Preflights are answered
    for every method and request header.
    """
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=False,
        expose_headers=list(CORS_EXPOSED_HEADERS),
        max_age=600,
    )


def create_app(config: ServerConfig) -> FastAPI:
    """The whole server as one ASGI app (no redirects, Problem+JSON for every error).

    Installs :func:`thalovant_server.logs.install`: control characters in logged values are
    escaped from then on, in this process.
    """
    logs.install()
    app = FastAPI(
        title="Thalovant control plane",
        version=__version__,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.runtime = None
    app.state.skill_rollout = None
    app.state.apps = AppRegistry.load(config.data_dir)
    allow_cross_origin(app)
    problems.install(app)
    app.add_middleware(
        ApiLimits, max_body=config.limits.api_max_body, max_concurrency=config.limits.api_max_concurrency
    )
    app.include_router(api_router())
    app.include_router(pages_router())
    openapi.install(app, app.state.apps)
    mount_api_docs(app)
    mount_data_plane(app)
    return app
