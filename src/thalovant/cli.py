"""The ``thalovant`` command line (client side).

Control plane (no identity, no hub connection)::

    thalovant hubs [--public] [--limit N] [--json]
    thalovant identity create --hub HUB --name NAME --out FILE
    thalovant identity show [-i FILE]

  These take ``--api-url`` (else ``THALOVANT_API_URL``, the config file, the default) and
  ``--token`` (else ``THALOVANT_API_TOKEN``), or ``--email``/``--password`` (else
  ``THALOVANT_EMAIL``/``THALOVANT_PASSWORD``) to sign in first. ``--ca-file`` adds a CA.

Data plane (an identity from ``-i/--identity FILE``, else the ``THALOVANT_*`` variables)::

    thalovant ask TEXT [--timeout S] [--lang L] [--session-id ID]
    thalovant listen EVENT [--timeout S] [--max-events N]
    thalovant emit EVENT [--data JSON] [--context JSON]
    thalovant health | doctor

  ``--protocol`` forces a carrier; ``--host``/``--port`` override the identity's
  ``default_master``/``default_port``.

Exit codes: 0 success, 1 an error (printed as ``thalovant: <message>`` on stderr; ``health``
and ``doctor`` also exit 1 when not ok), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from thalovant.errors import ThalovantError
from thalovant.identity import ThalovantIdentity

if TYPE_CHECKING:
    from thalovant.client import ThalovantClient
    from thalovant.control import ThalovantControlPlane

__all__ = ["build_parser", "main"]


class CLIError(Exception):
    """A usage problem the CLI reports as ``thalovant: <message>``."""


# ---------------------------------------------------------------------------- helpers


def _json_object(text: str | None, what: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise CLIError(f'{what} must be a JSON object, e.g. \'{{"key": "value"}}\'') from None
    if not isinstance(value, dict):
        raise CLIError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    lines = ["  ".join(header.upper().ljust(widths[i]) for i, header in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())
    return "\n".join(lines)


def _hub_title(hub: Mapping[str, Any]) -> str | None:
    spec = hub.get("spec")
    catalog = spec.get("catalog") if isinstance(spec, Mapping) else None
    if isinstance(catalog, Mapping) and isinstance(catalog.get("title"), str):
        return str(catalog["title"])
    for key in ("title", "name"):
        if isinstance(hub.get(key), str) and hub[key]:
            return str(hub[key])
    return None


# ---------------------------------------------------------------------------- control plane


def _control_plane(args: argparse.Namespace) -> ThalovantControlPlane:
    from thalovant.control import ThalovantControlPlane

    token = args.token or os.environ.get("THALOVANT_API_TOKEN") or None
    api = ThalovantControlPlane(args.api_url, access_token=token or "", verify=args.ca_file)
    return api


def _sign_in(api: ThalovantControlPlane, args: argparse.Namespace, *, required: bool) -> None:
    if api.access_token:
        return
    email = args.email or os.environ.get("THALOVANT_EMAIL")
    if not email:
        if required:
            raise CLIError(
                "an API token is required: set THALOVANT_API_TOKEN or pass --token (or sign in with --email)"
            )
        return
    password = args.password or os.environ.get("THALOVANT_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise CLIError("a password is required with --email: pass --password or set THALOVANT_PASSWORD")
        password = getpass.getpass(f"Password for {email}: ")
    api.login(email, password)


def cmd_hubs(args: argparse.Namespace, out: TextIO) -> int:
    api = _control_plane(args)
    try:
        if args.public:
            page = api.list_public_hubs(limit=args.limit, cursor=args.cursor)
        else:
            _sign_in(api, args, required=True)
            page = api.list_hubs(limit=args.limit, cursor=args.cursor)
    finally:
        api.close()
    if args.json:
        _print_json(page, out)
        return 0
    hubs = [hub for hub in page.get("data", []) if isinstance(hub, Mapping)]
    if not hubs:
        out.write("no hubs\n")
        return 0
    rows = [
        (
            hub.get("id"),
            hub.get("slug"),
            hub.get("public_ref"),
            _hub_title(hub),
            hub.get("visibility"),
        )
        for hub in hubs
    ]
    out.write(format_table(rows, ("id", "slug", "public_ref", "title", "visibility")) + "\n")
    meta = page.get("meta")
    if isinstance(meta, Mapping) and meta.get("next"):
        out.write(f"more: --cursor {meta['next']}\n")
    return 0


def cmd_identity_create(args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.out).expanduser()
    if target.exists() and not args.force:
        raise CLIError(f"{target} exists; pass --force to replace it")
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    api = _control_plane(args)
    try:
        _sign_in(api, args, required=True)
        result = api.create_client_identity(
            args.hub,
            name=args.name,
            site_id=args.site_id,
            preferred_protocols=protocols,
            connection_type=args.connection_type,
        )
    finally:
        api.close()
    result.identity.save(target)
    if args.json:
        summary = result.as_dict()
        summary["identity_file"] = str(target)
        _print_json(summary, out)
        return 0
    out.write(f"client:   {result.client_id or '-'}\n")
    out.write(f"site_id:  {result.identity.site_id}\n")
    out.write(f"protocol: {result.selected_protocol or '-'} {result.selected_endpoint or ''}\n".rstrip() + "\n")
    out.write(f"wrote {target} (mode 0600)\n")
    return 0


def cmd_identity_show(args: argparse.Namespace, out: TextIO) -> int:
    identity = _load_identity(args)
    data = identity.as_dict()
    data["enabled_protocols"] = identity.enabled_protocols()
    data["endpoints"] = {p: identity.endpoint_for(p) for p in ("wss", "https", "mqtt")}
    _print_json(data, out)
    return 0


# ---------------------------------------------------------------------------- data plane


def _load_identity(args: argparse.Namespace) -> ThalovantIdentity:
    identity = ThalovantIdentity.from_file(args.identity) if args.identity else ThalovantIdentity.from_env()
    changes: dict[str, Any] = {}
    if getattr(args, "host", None):
        changes["default_master"] = args.host.strip().rstrip("/")
    if getattr(args, "port", None) is not None:
        changes["default_port"] = args.port
    return dataclasses.replace(identity, **changes) if changes else identity


def _runtime_client(args: argparse.Namespace) -> ThalovantClient:
    identity = _load_identity(args)
    from thalovant.client import ThalovantClient

    return ThalovantClient(identity, protocol=args.protocol)


def cmd_ask(args: argparse.Namespace, out: TextIO) -> int:
    with _runtime_client(args) as client:
        reply = client.ask(args.text, lang=args.lang, session_id=args.session_id, timeout=args.timeout)
    if args.json:
        _print_json(reply.as_dict(), out)
        return 0
    out.write(reply.text + "\n")
    for item in reply.display_items():
        out.write(f"{item}\n")
    return 0


def cmd_listen(args: argparse.Namespace, out: TextIO) -> int:
    with _runtime_client(args) as client:
        for event in client.listen(args.event, timeout=args.timeout, max_events=args.max_events):
            if args.json:
                out.write(json.dumps(event.as_dict(), ensure_ascii=False, default=str) + "\n")
            else:
                out.write(f"{event}\n")
            out.flush()
    return 0


def cmd_emit(args: argparse.Namespace, out: TextIO) -> int:
    data = _json_object(args.data, "--data")
    context = _json_object(args.context, "--context")
    with _runtime_client(args) as client:
        client.emit(args.event, data, context)
    out.write(f"sent {args.event}\n")
    return 0


def cmd_health(args: argparse.Namespace, out: TextIO) -> int:
    with _runtime_client(args) as client:
        health = client.healthcheck()
    if args.json:
        _print_json(health.as_dict(), out)
    else:
        out.write(f"{health}\n")
    return 0 if health.ok else 1


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    client = _runtime_client(args)  # not connected first: a failed connect is one of the checks
    try:
        report = client.doctor()
    finally:
        client.close()
    if args.json:
        _print_json(report.as_dict(), out)
    else:
        out.write(f"{report}\n")
    return 0 if report.ok else 1


# ---------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("a port is at most 65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thalovant", description="Thalovant client: hubs, identities, requests.")
    from thalovant import __version__

    parser.add_argument("--version", action="version", version=f"thalovant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")

    control = argparse.ArgumentParser(add_help=False, parents=[common])
    control.add_argument("--api-url", default=None, help="API URL (default: $THALOVANT_API_URL, config, localhost)")
    control.add_argument("--token", default=None, help="API token (default: $THALOVANT_API_TOKEN)")
    control.add_argument("--email", default=None, help="sign in with this account (default: $THALOVANT_EMAIL)")
    control.add_argument("--password", default=None, help="account password (default: $THALOVANT_PASSWORD)")
    control.add_argument("--ca-file", default=None, help="CA bundle to trust for the API")

    identity_opts = argparse.ArgumentParser(add_help=False)
    identity_opts.add_argument("-i", "--identity", default=None, help="identity JSON file (default: $THALOVANT_*)")

    data = argparse.ArgumentParser(add_help=False, parents=[common, identity_opts])
    data.add_argument("--protocol", choices=("wss", "https", "mqtt"), default=None, help="force a carrier")
    data.add_argument("--host", default=None, help="override the identity's default_master")
    data.add_argument("--port", type=_port, default=None, help="override the identity's default_port")

    hubs = commands.add_parser("hubs", parents=[control], help="list hubs")
    hubs.add_argument("--public", action="store_true", help="public hubs (no sign-in)")
    hubs.add_argument("--limit", type=_positive_int, default=None)
    hubs.add_argument("--cursor", default=None, help="the next-page cursor of a previous listing")
    hubs.set_defaults(handler=cmd_hubs)

    identity = commands.add_parser("identity", help="client identities")
    identity_commands = identity.add_subparsers(dest="identity_command", metavar="ACTION", required=True)
    create = identity_commands.add_parser("create", parents=[control], help="create a client identity on a hub")
    create.add_argument("--hub", required=True, help="hub id")
    create.add_argument("--name", required=True, help="client name")
    create.add_argument("--out", required=True, help="identity file to write (mode 0600)")
    create.add_argument("--site-id", default=None)
    create.add_argument("--protocols", default="wss,https,mqtt", help="preferred protocols, in order")
    create.add_argument("--connection-type", default=None)
    create.add_argument("--force", action="store_true", help="replace an existing file")
    create.set_defaults(handler=cmd_identity_create)
    show = identity_commands.add_parser("show", parents=[common, identity_opts], help="show an identity (redacted)")
    show.set_defaults(handler=cmd_identity_show)

    ask = commands.add_parser("ask", parents=[data], help="ask the hub and print the reply")
    ask.add_argument("text")
    ask.add_argument("--timeout", type=_seconds, default=12.0)
    ask.add_argument("--lang", default="en-us")
    ask.add_argument("--session-id", default=None)
    ask.set_defaults(handler=cmd_ask)

    listen = commands.add_parser("listen", parents=[data], help="print events of one name")
    listen.add_argument("event")
    listen.add_argument("--timeout", type=_seconds, default=30.0)
    listen.add_argument("--max-events", type=_positive_int, default=None)
    listen.set_defaults(handler=cmd_listen)

    emit = commands.add_parser("emit", parents=[data], help="send one bus event")
    emit.add_argument("event")
    emit.add_argument("--data", default=None, help="JSON object")
    emit.add_argument("--context", default=None, help="JSON object")
    emit.set_defaults(handler=cmd_emit)

    health = commands.add_parser("health", parents=[data], help="connect and report the link health")
    health.set_defaults(handler=cmd_health)
    doctor = commands.add_parser("doctor", parents=[data], help="run connection diagnostics")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 1
    if getattr(args, "command", None) == "hubs" and args.limit is None:
        args.limit = 24 if args.public else 100
    try:
        code: int = args.handler(args, stdout)
        return code
    except KeyboardInterrupt:
        stderr.write("\n")
        return 130
    except (ThalovantError, CLIError, ValueError, OSError) as exc:
        stderr.write(f"thalovant: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
