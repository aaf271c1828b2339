"""One Noise static key per endpoint: every hub of a server presents the same key, for ever.

Clients pin the hub key per endpoint (``wss://host:port``; the HTTPS base for HTTPS and MQTT),
so a client folder that talked to one hub of a server must be able to talk to every other hub of
it. Two hubs on one real server, one client folder per first contact: the public SDK 0.9.7 and
our SDK each ask both hubs over WSS, HTTPS and MQTT, hub A first in one folder and hub B first
in the other; after a restart every session of every identity runs KK (the pins held).
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from tests.fixtures.peers import OUR_PYTHON, run_python, trust_env
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_wss import GUIDE_JOKE, SdkRunner, make_identity, result_of

pytestmark = pytest.mark.interop

CARRIERS = ("wss", "https", "mqtt")
SESSION_LINE = {"wss": "WSS session open", "https": "HTTPS session open", "mqtt": "MQTT session open"}

# Runs unchanged under both SDKs: IDENTITIES maps a folder to the identity files it asks, in order.
ASK_EVERY_HUB = """
import json, os
from thalovant import ThalovantClient, ThalovantIdentity

answers = []
for folder, files in json.loads(os.environ["IDENTITIES"]).items():
    for carrier in ("wss", "https", "mqtt"):
        for path in files:
            identity = ThalovantIdentity.from_file(path)
            with ThalovantClient(identity, protocol=carrier, noise_state_dir=folder, reply_settle_seconds=0) as c:
                answers.append([folder, carrier, path, c.ask("Tell me a short clean joke.").text])
print("RESULT " + json.dumps(answers))
"""


def _second_hub(server: RunningServer) -> str:
    slug = f"second-{secrets.token_hex(3)}"
    server.admin("hub", "create", "--slug", slug, "--title", "Second garden", "--public", "--skill", "jokes")
    return slug


def _sessions_since(server: RunningServer, mark: int) -> list[str]:
    return [line for line in server.output[mark:] if " session open: " in line]


def _check_every_session(
    server: RunningServer, mark: int, client_ids: list[str], patterns: set[str]
) -> None:
    """Each client id opened one session per carrier since ``mark``, with a pattern in ``patterns``."""
    lines = _sessions_since(server, mark)
    for client_id in client_ids:
        for carrier in CARRIERS:
            mine = [line for line in lines if SESSION_LINE[carrier] in line and f"client={client_id} " in line]
            assert mine, f"no {carrier} session of {client_id}:\n" + "".join(lines)
            found = {line.rsplit("pattern=", 1)[1].strip() for line in mine}
            assert found <= patterns, (carrier, client_id, found)


@pytest.mark.parametrize("sdk_name", ["public-0.9.7", "ours"])
def test_one_client_folder_asks_two_hubs_on_every_carrier_in_both_orders_and_after_a_restart(
    sdk_name: str,
    run_public_sdk: SdkRunner,
    server_factory: Callable[..., RunningServer],
    tmp_path: Path,
) -> None:
    server = server_factory()
    hubs = {"A": "joke-garden", "B": _second_hub(server)}
    made = {
        (folder, hub): make_identity(server, tmp_path, hubs[hub])
        for folder in ("a-first", "b-first")
        for hub in ("A", "B")
    }
    order = {"a-first": ("A", "B"), "b-first": ("B", "A")}
    identities = {
        str(tmp_path / folder): [str(made[(folder, hub)][0]) for hub in order[folder]] for folder in order
    }
    client_ids = [client_id for _, client_id in made.values()]
    env = {"IDENTITIES": json.dumps(identities)}

    def ask() -> list[list[str]]:
        if sdk_name == "ours":
            completed: CompletedProcess[str] = run_python(
                OUR_PYTHON, textwrap.dedent(ASK_EVERY_HUB), env={**env, **trust_env(server.ca_file)}, cwd=tmp_path
            )
        else:
            completed = run_public_sdk(textwrap.dedent(ASK_EVERY_HUB), env=env, ca_file=server.ca_file)
        answers: list[list[str]] = result_of(completed)
        return answers

    mark = len(server.output)
    first = ask()
    assert len(first) == 2 * len(CARRIERS) * 2 and {answer[3] for answer in first} == {GUIDE_JOKE}
    # first contact in each folder is XX; the second hub of a folder is served under the same pin
    _check_every_session(server, mark, client_ids, {"XXpsk2", "KKpsk0"})

    server.restart()
    mark = len(server.output)
    again = ask()
    assert [answer[:3] for answer in again] == [answer[:3] for answer in first]
    assert {answer[3] for answer in again} == {GUIDE_JOKE}
    _check_every_session(server, mark, client_ids, {"KKpsk0"})
