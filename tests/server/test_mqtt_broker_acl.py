"""The broker's rules without a broker: topic matching, grants, password hashes, Mosquitto files."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thalovant_server.mqtt import (
    ALL_CLIENTS_FILTER,
    Access,
    BrokerAccount,
    BrokerStartError,
    InvalidCredentialsError,
    InvalidTopicError,
    MqttAccessControl,
    TopicGrant,
    client_account,
    client_topic_prefix,
    client_username,
    create_broker,
    filter_covers,
    hash_password,
    hub_grants,
    issue_client_credentials,
    issue_hub_credentials,
    topic_matches,
    verify_password,
)
from thalovant_server.mqtt.embedded import EmbeddedBroker
from thalovant_server.mqtt.mosquitto import MosquittoBroker, render_acl_file, render_config, render_password_file

HUB_ID = "hub1"
A = client_topic_prefix(HUB_ID, "client-a")
B = client_topic_prefix(HUB_ID, "client-b")
PASSWORD = "s3cret-broker-password"
PASSWORD_HASH = hash_password(PASSWORD)


@pytest.fixture
def access() -> MqttAccessControl:
    return MqttAccessControl(
        [
            client_account("c_a", PASSWORD_HASH, A),
            client_account("c_b", PASSWORD_HASH, B),
            BrokerAccount("thalovant-hub", PASSWORD_HASH, hub_grants()),
        ]
    )


# -- topic matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/b/c", "a/b", False),
        ("a/b", "a/b/c", False),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/y/c", False),
        ("a/+", "a/", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("thalovant/+/+/in", "thalovant/h/c/in", True),
        ("thalovant/+/+/in", "thalovant/h/c/out", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("grant", "requested", "expected"),
    [
        ("a/b/out", "a/b/out", True),
        ("a/b/out", "a/+/out", False),
        ("a/b/out", "a/#", False),
        ("a/b/out", "#", False),
        ("a/+/in", "a/+/in", True),
        ("a/+/in", "a/x/in", True),
        ("a/+/in", "a/#", False),
        ("a/+/in", "+/x/in", False),
        ("a/#", "a/x/#", True),
        ("a/#", "a", True),
        ("+/x", "$SYS/x", False),
    ],
)
def test_filter_covers(grant: str, requested: str, expected: bool) -> None:
    assert filter_covers(grant, requested) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "a/\x00", "a/\x1f", "\ud800"])
def test_invalid_filters_cannot_be_granted(bad: str) -> None:
    with pytest.raises(InvalidTopicError):
        TopicGrant(Access.SUBSCRIBE, bad)


# -- the decisions ----------------------------------------------------------------------------


def test_client_grants(access: MqttAccessControl) -> None:
    assert access.allows_publish("c_a", f"{A}/in")
    assert access.allows_publish("c_a", f"{A}/status")
    assert not access.allows_publish("c_a", f"{A}/out")
    assert not access.allows_publish("c_a", f"{B}/in")
    assert not access.allows_publish("c_a", f"{B}/status")
    assert not access.allows_publish("c_a", f"{A}/in/more")
    assert not access.allows_publish("c_a", f"{A}/+")
    assert access.allows_subscribe("c_a", f"{A}/out")
    for refused in (f"{A}/in", f"{A}/status", f"{B}/out", f"{A}/#", f"{HUB_ID}/+/out", "thalovant/#", "#", "+/+/+/out"):
        assert not access.allows_subscribe("c_a", refused), refused
    assert access.allows_receive("c_a", f"{A}/out")
    assert not access.allows_receive("c_a", f"{B}/out")


def test_hub_grants(access: MqttAccessControl) -> None:
    assert access.allows_subscribe("thalovant-hub", "thalovant/+/+/in")
    assert access.allows_subscribe("thalovant-hub", "thalovant/+/+/status")
    assert access.allows_subscribe("thalovant-hub", f"{A}/in")
    assert not access.allows_subscribe("thalovant-hub", "thalovant/+/+/out")
    assert not access.allows_subscribe("thalovant-hub", "thalovant/#")
    assert access.allows_publish("thalovant-hub", f"{A}/out")
    assert not access.allows_publish("thalovant-hub", f"{A}/in")
    assert not access.allows_publish("thalovant-hub", f"{A}/status")
    assert access.allows_receive("thalovant-hub", f"{B}/in")


def test_unknown_users_and_bad_input_are_refused(access: MqttAccessControl) -> None:
    for username in (None, "", "nobody"):
        assert not access.allows_publish(username, f"{A}/in")
        assert not access.allows_subscribe(username, f"{A}/out")
        assert not access.allows_receive(username, f"{A}/out")
    assert not access.allows_subscribe("c_a", f"{A}/ou#")
    assert not access.allows_publish("c_a", "")


def test_authenticate(access: MqttAccessControl) -> None:
    assert access.authenticate("c_a", PASSWORD)
    assert not access.authenticate("c_a", PASSWORD + "x")
    assert not access.authenticate("c_a", None)
    assert not access.authenticate(None, PASSWORD)
    assert not access.authenticate("nobody", PASSWORD)


def test_registry_add_remove_replace(access: MqttAccessControl) -> None:
    assert len(access) == 3 and "c_a" in access
    removed = access.remove("c_a")
    assert removed is not None and removed.username == "c_a"
    assert access.remove("c_a") is None
    assert not access.authenticate("c_a", PASSWORD)
    assert not access.allows_publish("c_a", f"{A}/in")
    access.replace_all([client_account("c_z", PASSWORD_HASH, "x/y")])
    assert [a.username for a in access] == ["c_z"]


def test_hub_filter_for_one_hub() -> None:
    access = MqttAccessControl([BrokerAccount("hub1-svc", PASSWORD_HASH, hub_grants(f"thalovant/{HUB_ID}/+"))])
    assert access.allows_publish("hub1-svc", f"{A}/out")
    assert not access.allows_publish("hub1-svc", "thalovant/hub2/c/out")
    with pytest.raises(InvalidCredentialsError):
        hub_grants("thalovant/#")


# -- names, prefixes, credentials -------------------------------------------------------------


def test_client_names_follow_the_control_plane() -> None:
    client_id = str(uuid.uuid4())
    assert client_username(client_id) == "c_" + client_id.replace("-", "")
    assert client_topic_prefix("h", client_id) == f"thalovant/h/{client_id}"


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "a#", "a b", "\x00", "$sys"])
def test_bad_ids_make_no_prefix(bad: str) -> None:
    with pytest.raises(InvalidCredentialsError):
        client_topic_prefix("hub", bad)


@pytest.mark.parametrize("bad", ["", " ", "/", "a//b", "a/+/b", "a/#", "a b/c", "ta\tb", "$SYS/x"])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCredentialsError):
        client_account("c_x", PASSWORD_HASH, bad)


def test_prefix_is_trimmed_like_the_sdk_does() -> None:
    assert client_account("c_x", PASSWORD_HASH, " /thalovant/h/c/ ").topic_prefix == "thalovant/h/c"


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "-lead", "x" * 129, "é"])
def test_bad_usernames_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCredentialsError):
        BrokerAccount(bad, PASSWORD_HASH, ())


def test_issued_client_credentials() -> None:
    client_id = str(uuid.uuid4())
    creds = issue_client_credentials(HUB_ID, client_id)
    assert creds.username == client_username(client_id)
    assert creds.topic_prefix == client_topic_prefix(HUB_ID, client_id)
    assert len(creds.password) >= 43
    assert verify_password(creds.password, creds.password_hash)
    assert creds.password not in creds.password_hash
    assert creds.password not in repr(creds) and creds.password_hash not in repr(creds.account)
    block = creds.identity_block("mqtts://127.0.0.1:8883")
    assert block == {
        "endpoint": "mqtts://127.0.0.1:8883",
        "username": creds.username,
        "password": creds.password,
        "topic_prefix": creds.topic_prefix,
        "qos": 1,
        "tls": True,
    }
    assert creds.topics.inbound == creds.topic_prefix + "/in"
    assert issue_client_credentials(HUB_ID, client_id).password != creds.password


def test_issued_hub_credentials() -> None:
    hub = issue_hub_credentials()
    assert hub.username == "thalovant-hub" and hub.topic_prefix == ALL_CLIENTS_FILTER
    access = MqttAccessControl([hub.account])
    assert access.authenticate(hub.username, hub.password)
    assert access.allows_subscribe(hub.username, "thalovant/+/+/in")


# -- password hashes --------------------------------------------------------------------------


def test_hash_format_is_mosquittos_pbkdf2() -> None:
    stored = hash_password(PASSWORD, iterations=101, salt=b"0123456789ab")
    tag, iterations, salt, digest = stored.split("$")[1:]
    assert (tag, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes, base64
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)


def test_hash_written_by_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        pytest.fail("mosquitto_passwd is not installed (apt-get install mosquitto; ./scripts/test does it)")
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "alice", PASSWORD], check=True, capture_output=True)
    username, stored = passwd.read_text().strip().split(":", 1)
    assert username == "alice" and stored.startswith("$7$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password("other", stored)


def test_sha256_hex_hashes_are_accepted() -> None:
    import hashlib

    stored = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "x", stored)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "$7$", "$7$abc$AAAA$AAAA", "$7$0$AAAA$AAAA", "$7$10$!!!$AAAA", "$7$10$AAAA$AAAA", "$6$x$y", "A" * 64],
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    assert not verify_password(PASSWORD, stored)


@given(password=st.text(max_size=40), stored=st.text(max_size=120))
def test_verify_password_never_raises(password: str, stored: str) -> None:
    assert verify_password(password, stored) in (True, False)


def test_hash_password_refuses_bad_input() -> None:
    with pytest.raises(InvalidCredentialsError):
        hash_password("")
    with pytest.raises(InvalidCredentialsError):
        hash_password(PASSWORD, iterations=0)


# -- Mosquitto files --------------------------------------------------------------------------


def test_mosquitto_acl_file_renders_the_same_grants(access: MqttAccessControl) -> None:
    text = render_acl_file(access)
    blocks = [block.strip().splitlines() for block in text.split("\n\n")[1:]]
    assert blocks == [
        ["user c_a", f"topic write {A}/in", f"topic write {A}/status", f"topic read {A}/out"],
        ["user c_b", f"topic write {B}/in", f"topic write {B}/status", f"topic read {B}/out"],
        [
            "user thalovant-hub",
            "topic read thalovant/+/+/in",
            "topic read thalovant/+/+/status",
            "topic write thalovant/+/+/out",
        ],
    ]


def test_mosquitto_password_file_leaves_out_foreign_hashes(access: MqttAccessControl) -> None:
    access.add(client_account("c_legacy", "ab" * 32, "x/legacy"))
    lines = render_password_file(access).splitlines()
    assert lines == [f"c_a:{PASSWORD_HASH}", f"c_b:{PASSWORD_HASH}", f"thalovant-hub:{PASSWORD_HASH}"]


def test_mosquitto_config(tmp_path: Path) -> None:
    text = render_config(
        host="127.0.0.1",
        port=18883,
        cert_file=tmp_path / "cert.pem",
        key_file=tmp_path / "key.pem",
        password_file=tmp_path / "passwd",
        acl_file=tmp_path / "acl",
    )
    lines = text.splitlines()
    for expected in (
        "allow_anonymous false",
        f"password_file {tmp_path / 'passwd'}",
        f"acl_file {tmp_path / 'acl'}",
        "set_tcp_nodelay true",
        "listener 18883 127.0.0.1",
        f"certfile {tmp_path / 'cert.pem'}",
        f"keyfile {tmp_path / 'key.pem'}",
        "max_packet_size 262144",
        "max_inflight_messages 20",
        "max_queued_messages 100",
        "max_connections 8192",
    ):
        assert expected in lines
    assert lines.index("allow_anonymous false") < lines.index("listener 18883 127.0.0.1")
    assert lines.index("listener 18883 127.0.0.1") < lines.index("max_connections 8192")


# -- construction and start errors ------------------------------------------------------------


def test_create_broker(tmp_path: Path) -> None:
    embedded = create_broker("embedded", cert_file=tmp_path / "c", key_file=tmp_path / "k", port=1)
    assert isinstance(embedded, EmbeddedBroker)
    mosquitto = create_broker("mosquitto", cert_file=tmp_path / "c", key_file=tmp_path / "k", config_dir=tmp_path)
    assert isinstance(mosquitto, MosquittoBroker)
    with pytest.raises(ValueError, match="config_dir"):
        create_broker("mosquitto", cert_file=tmp_path / "c", key_file=tmp_path / "k")
    with pytest.raises(ValueError, match="unknown MQTT broker kind"):
        create_broker("rabbit", cert_file=tmp_path / "c", key_file=tmp_path / "k")  # type: ignore[arg-type]


async def test_brokers_refuse_missing_certificates(tmp_path: Path) -> None:
    embedded = EmbeddedBroker(cert_file=tmp_path / "missing.pem", key_file=tmp_path / "missing-key.pem", port=0)
    with pytest.raises(BrokerStartError):
        await embedded.start()
    assert not embedded.running
    mosquitto = MosquittoBroker(
        config_dir=tmp_path / "m", cert_file=tmp_path / "missing.pem", key_file=tmp_path / "missing-key.pem", port=0
    )
    with pytest.raises(BrokerStartError):
        await mosquitto.start()
    assert not mosquitto.running
