"""ThalovantIdentity (dataplane.md 1.1-1.5) and the config file reader."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from thalovant.config import YamlSubsetError, parse_yaml_subset, select_identity_mapping
from thalovant.errors import ThalovantIdentityError, ThalovantUnsupportedProtocolError
from thalovant.identity import MqttBrokerCredentials, ThalovantIdentity

BASE: dict[str, Any] = {
    "access_key": "key-AAAA",
    "password": "pw-BBBB",
    "site_id": "kitchen",
    "default_master": "https://hub.example.com",
    "default_port": 443,
}


def ident(**extra: Any) -> ThalovantIdentity:
    return ThalovantIdentity.from_mapping({**BASE, **extra})


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- parsing and aliases


def test_aliases() -> None:
    identity = ThalovantIdentity.from_mapping(
        {
            "apiKey": "  k  ",
            "password": "p",
            "hubHttpHost": "https://hub.example.com/",
            "clientId": "site-1",
            "hub_http_port": "8443",
            "uri_path": "a//b/",
            "crypto_key": "ignored",
        }
    )
    assert identity.access_key == "k"
    assert identity.default_master == "https://hub.example.com"
    assert identity.site_id == "site-1"
    assert identity.default_port == 8443
    assert identity.default_path == "/a/b"


def test_main_key_wins_over_alias() -> None:
    identity = ident(key="alias-key", site="alias-site")
    assert identity.access_key == "key-AAAA"
    assert identity.site_id == "kitchen"


@pytest.mark.parametrize("missing", ["access_key", "password", "site_id", "default_master"])
def test_missing_field(missing: str) -> None:
    data = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ThalovantIdentityError, match=missing):
        ThalovantIdentity.from_mapping(data)


@pytest.mark.parametrize("port", ["abc", True, 70000, -1, 1.5, None])
def test_bad_port(port: Any) -> None:
    if port is None:
        assert ident(default_port=None).default_port == 5679
        return
    with pytest.raises(ThalovantIdentityError, match="default_port"):
        ident(default_port=port)


def test_bad_shapes() -> None:
    with pytest.raises(ThalovantIdentityError):
        ThalovantIdentity.from_mapping(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ThalovantIdentityError, match="string"):
        ident(site_id=12)
    with pytest.raises(ThalovantIdentityError, match="metadata"):
        ident(metadata="x")
    with pytest.raises(ThalovantIdentityError, match="empty"):
        ident(access_key="   ")


def test_default_path_normalisation() -> None:
    assert ident(default_path="/").default_path == ""
    assert ident(default_path="").default_path == ""
    assert ident(default_path="hivemind/public/").default_path == "/hivemind/public"


# ---------------------------------------------------------------- endpoints (1.2) and the port trap


def test_port_trap_default_5679() -> None:
    data = {k: v for k, v in BASE.items() if k != "default_port"}
    identity = ThalovantIdentity.from_mapping(data)
    assert identity.default_port == 5679
    assert identity.endpoint_for("https") == "https://hub.example.com:5679"


def test_https_endpoint_gets_port_but_not_path() -> None:
    identity = ident(
        data_plane_endpoints={"https": "https://api.example.com/hivemind/public/"}, default_path="/ignored"
    )
    assert identity.endpoint_for("https") == "https://api.example.com:443/hivemind/public"
    explicit = ident(data_plane_endpoints={"http": "https://api.example.com:9443/x"}, default_port=1)
    assert explicit.endpoint_for("http") == "https://api.example.com:9443/x"


def test_master_rewrite_port_and_path() -> None:
    identity = ident(default_master="wss://hub.example.com/base/", default_path="/hivemind/public")
    assert identity.endpoint_base() == "https://hub.example.com:443/base/hivemind/public"
    assert identity.endpoint_for("wss") == "wss://hub.example.com/base"
    plain = ident(default_master="ws://10.0.0.5", default_port=5678)
    assert plain.endpoint_base() == "http://10.0.0.5:5678"
    assert plain.endpoint_for("ws") == "ws://10.0.0.5"
    # the naive check: an IPv6 literal gets no default port
    v6 = ident(default_master="https://[::1]")
    assert v6.endpoint_base() == "https://[::1]"


def test_wss_and_mqtt_endpoints() -> None:
    identity = ident()
    assert identity.endpoint_for("wss") is None
    assert identity.endpoint_for("mqtt") is None
    with_wss = ident(data_plane_endpoints={"ws": "wss://hub.example.com/hubs/h1/"})
    assert with_wss.endpoint_for("wss") == "wss://hub.example.com/hubs/h1"
    with pytest.raises(ThalovantUnsupportedProtocolError):
        identity.endpoint_for("carrier-pigeon")


def test_endpoint_normalisation_drops_bad_urls() -> None:
    identity = ident(data_plane_endpoints={"wss": "ftp://hub.example.com", "https": "https://", "mqtt": 5})
    assert identity.data_plane_endpoints == {}


def test_top_level_endpoints_and_mqtt_block() -> None:
    identity = ident(
        wss="wss://hub.example.com/ws",
        mqtt={"endpoint": "mqtts://broker.example.com", "username": "u", "password": "secret-mqtt"},
    )
    assert identity.endpoint_for("wss") == "wss://hub.example.com/ws"
    assert identity.endpoint_for("mqtt") == "mqtts://broker.example.com"


# ---------------------------------------------------------------- protocol flags (1.3)


def test_protocol_flags() -> None:
    assert ident().enabled_protocols() == ["wss"]
    identity = ident(protocols={"websocket": "off", "https": {"enabled": "yes"}, "mqtt": True})
    assert identity.enabled_protocols() == ["https", "mqtt"]
    assert identity.supports_protocol("http")
    assert identity.supports_protocol("https")
    assert not identity.supports_protocol("wss")
    spec = ident(spec={"network": {"mqtt": "1"}}, protocols={"mqtt": False})
    assert spec.enabled_protocols() == ["wss", "mqtt"]
    network_ignored = ident(protocols={"http": True}, network={"mqtt": True})
    assert network_ignored.enabled_protocols() == ["wss", "https"]


# ---------------------------------------------------------------- MQTT (1.4)


def test_mqtt_block() -> None:
    identity = ident(
        mqtt={
            "broker_url": "mqtts://broker.example.com",
            "brokerUsername": "user",
            "brokerPassword": "secret-mqtt",
            "topicPrefix": "hivemind/h1/key/",
            "qos": 2,
        }
    )
    mqtt = identity.mqtt
    assert isinstance(mqtt, MqttBrokerCredentials)
    assert mqtt["host"] == "broker.example.com"
    assert mqtt["port"] == 8883
    assert mqtt.tls is True
    assert mqtt.qos == 1
    assert mqtt.topic_prefix == "hivemind/h1/key"
    assert mqtt["username"] == "user"
    assert dict(mqtt)["endpoint"] == "mqtts://broker.example.com"
    assert "secret-mqtt" not in repr(mqtt)
    plain = MqttBrokerCredentials.from_mapping(
        {"endpoint": "mqtt://127.0.0.1:18830", "username": "u", "password": "p", "tls": "true", "qos": 0}
    )
    assert plain is not None
    assert (plain.host, plain.port, plain.tls, plain.qos) == ("127.0.0.1", 18830, True, 0)
    assert MqttBrokerCredentials.from_mapping({"endpoint": "mqtt://b", "username": "u"}) is None
    assert ident(mqtt={"endpoint": "mqtt://b"}).mqtt is None


# ---------------------------------------------------------------- redaction and saving


def full_identity() -> ThalovantIdentity:
    return ident(
        data_plane_endpoints={"wss": "wss://user:urlsecret@hub.example.com/hubs/h"},
        mqtt={
            "endpoint": "mqtts://broker.example.com:8883",
            "username": "mq-user",
            "password": "mq-secret",
            "topic_prefix": "hivemind/h/k",
            "qos": 0,
        },
        metadata={"team": "ops", "api_token": "meta-secret", "nested": {"x": 1}},
        protocols={"http": True, "mqtt": True},
    )


def test_as_dict_redacts() -> None:
    identity = full_identity()
    public = identity.as_dict()
    text = json.dumps(public)
    for secret in ("key-AAAA", "pw-BBBB", "mq-user", "mq-secret", "urlsecret", "meta-secret", "hivemind/h/k"):
        assert secret not in text, secret
        assert secret not in repr(identity), secret
        assert secret not in str(identity), secret
    assert public["metadata"] == {"team": "ops", "api_token": "<redacted>", "nested": {"x": 1}}
    assert public["mqtt"] == {"endpoint": "mqtts://broker.example.com:8883", "tls": True}
    assert public["data_plane_endpoints"] == {"wss": "wss://hub.example.com/hubs/h"}


def test_as_dict_with_secrets_round_trips(tmp_path: Path) -> None:
    identity = full_identity()
    data = identity.as_dict(include_secrets=True)
    assert data["access_key"] == "key-AAAA"
    assert data["mqtt"]["qos"] == 0
    assert data["protocols"] == {"wss": {"enabled": True}, "http": {"enabled": True}, "mqtt": {"enabled": True}}
    path = identity.save(tmp_path / "sub" / "identity.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity.source_path == path.absolute()
    loaded = ThalovantIdentity.from_file(path)
    assert loaded.as_dict(include_secrets=True) == data
    assert loaded.enabled_protocols() == ["wss", "https", "mqtt"]
    assert loaded.source_path == path.absolute()
    assert [p.name for p in path.parent.iterdir()] == ["identity.json"]  # no temp file left


# ---------------------------------------------------------------- files (1.5)


def test_from_file_refuses_permissive(tmp_path: Path) -> None:
    path = write_private(tmp_path / "identity.json", json.dumps(BASE), 0o644)
    with pytest.raises(ThalovantIdentityError, match=r"too permissive.*chmod 600"):
        ThalovantIdentity.from_file(path)
    path.chmod(0o640)
    with pytest.raises(ThalovantIdentityError, match="too permissive"):
        ThalovantIdentity.from_file(path)
    path.chmod(0o600)
    assert ThalovantIdentity.from_file(path).site_id == "kitchen"


def test_from_file_bad_content(tmp_path: Path) -> None:
    bad = write_private(tmp_path / "bad.json", "{not json")
    with pytest.raises(ThalovantIdentityError, match="not valid JSON"):
        ThalovantIdentity.from_file(bad)
    array = write_private(tmp_path / "array.json", "[1, 2]")
    with pytest.raises(ThalovantIdentityError, match="object"):
        ThalovantIdentity.from_file(array)
    with pytest.raises(ThalovantIdentityError):
        ThalovantIdentity.from_file(tmp_path / "missing.json")


CONFIG = """\
# Thalovant profiles
profile: office
profiles:
  default:
    access_key: default-key
    password: default-pw
    site_id: default-site
    default_master: https://default.example.com
  office:
    identity:
      access_key: "office-key"
      password: 'office pw'
      site_id: office-desk   # trailing comment
      default_master: https://office.example.com
      default_port: 443
      data_plane_endpoints: {wss: "wss://office.example.com/hubs/1", https: https://office.example.com}
      protocols:
        wss: true
        http: yes
      metadata:
        tags: [a, b]
"""


def test_from_config_profiles(tmp_path: Path) -> None:
    path = write_private(tmp_path / "config.yaml", CONFIG)
    office = ThalovantIdentity.from_config(path)
    assert office.site_id == "office-desk"
    assert office.password == "office pw"
    assert office.endpoint_for("wss") == "wss://office.example.com/hubs/1"
    assert office.enabled_protocols() == ["wss", "https"]
    assert office.metadata == {"tags": ["a", "b"]}
    assert office.source_path == path.absolute()
    assert ThalovantIdentity.from_config(path, profile="default").site_id == "default-site"
    with pytest.raises(ThalovantIdentityError, match="no profile 'nope'"):
        ThalovantIdentity.from_config(path, profile="nope")
    path.chmod(0o604)
    with pytest.raises(ThalovantIdentityError, match="too permissive"):
        ThalovantIdentity.from_config(path)


def test_from_config_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(ThalovantIdentityError, match="No Thalovant config file"):
        ThalovantIdentity.from_config()
    folder = tmp_path / "thalovant"
    folder.mkdir()
    write_private(folder / "config.yaml", "identity:\n" + "".join(f"  {k}: {v}\n" for k, v in BASE.items()))
    assert ThalovantIdentity.from_config().default_port == 443


def test_select_identity_mapping_rules() -> None:
    assert select_identity_mapping({"a": 1}) == {"a": 1}
    assert select_identity_mapping({"identity": {"b": 2}}) == {"b": 2}
    assert select_identity_mapping({"defaultProfile": "x", "profiles": {"x": {"c": 3}}}) == {"c": 3}
    with pytest.raises(ThalovantIdentityError):
        select_identity_mapping(["x"])


def test_from_env() -> None:
    env = {
        "THALOVANT_ACCESS_KEY": "env-key",
        "THALOVANT_PASSWORD": "env-pw",
        "THALOVANT_SITE_ID": "env-site",
        "THALOVANT_HUB_HTTP_HOST": "https://env.example.com",
        "THALOVANT_HUB_HTTP_PORT": "8443",
        "THALOVANT_HUB_HTTP_PATH": "/ignored-for-https",
        "THALOVANT_HUB_WEBSOCKET_HOST": "wss://env.example.com/ws",
        "THALOVANT_MQTT_ENDPOINT": "mqtt://broker:1883",
        "THALOVANT_MQTT_USERNAME": "mu",
        "THALOVANT_MQTT_PASSWORD": "mp",
        "THALOVANT_MQTT_QOS": "0",
        "THALOVANT_CRYPTO_KEY": "obsolete",
    }
    identity = ThalovantIdentity.from_env(environ=env)
    assert identity.access_key == "env-key"
    assert identity.endpoint_for("https") == "https://env.example.com:8443"
    assert identity.endpoint_for("wss") == "wss://env.example.com/ws"
    assert identity.mqtt is not None and identity.mqtt.qos == 0 and identity.mqtt.port == 1883
    assert identity.enabled_protocols() == ["wss"]
    custom = ThalovantIdentity.from_env("HUB_", environ={k.replace("THALOVANT_", "HUB_"): v for k, v in env.items()})
    assert custom.site_id == "env-site"
    with pytest.raises(ThalovantIdentityError, match="THALOVANT_PASSWORD"):
        ThalovantIdentity.from_env(environ={"THALOVANT_ACCESS_KEY": "k"})


# ---------------------------------------------------------------- the YAML subset reader


YAML_DOCS = [
    CONFIG,
    "a: 1\nb: -2.5\nc: null\nd: ~\ne: 'it''s'\nf: \"tab\\tq\"\ng: [1, [2, 3], {h: i}]\n",
    "list:\n- one\n- two: 2\n  three: 3\n-\n  - nested\n- {x: 1}\nafter: true\n",
    "top:\n  - a\n  - b\nkey with spaces: value with # no comment\nurl: https://x.example.com:8443/p\n",
    "empty_map: {}\nempty_list: []\nflag: off\n",
    "- 1\n- two\n",
]


@pytest.mark.parametrize("document", YAML_DOCS)
def test_yaml_subset_matches_pyyaml(document: str) -> None:
    assert parse_yaml_subset(document) == yaml.safe_load(document)


@pytest.mark.parametrize(
    "document",
    [
        "a: &anchor 1\nb: *anchor\n",
        "a: !!str 1\n",
        "a: |\n  block\n",
        "a: 1\n  b: 2\n",
        "a: [1, 2\n",
        "a: 1\na: 2\n",
        "a: 1\n---\nb: 2\n",
    ],
)
def test_yaml_subset_refusals(document: str) -> None:
    with pytest.raises(YamlSubsetError):
        parse_yaml_subset(document)


def test_config_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_yaml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "yaml":
            raise ImportError("PyYAML hidden for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    path = write_private(tmp_path / "config.yaml", CONFIG)
    assert ThalovantIdentity.from_config(path).site_id == "office-desk"
    broken = write_private(tmp_path / "broken.yaml", "a: &x 1\n")
    with pytest.raises(ThalovantIdentityError, match="Cannot parse"):
        ThalovantIdentity.from_config(broken)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_kubernetes_projected_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "..2026_01_01"
    data_dir.mkdir()
    real = data_dir / "identity.json"
    real.write_text(json.dumps(BASE), encoding="utf-8")
    real.chmod(0o644)
    (tmp_path / "..data").symlink_to(data_dir.name)
    link = tmp_path / "identity.json"
    link.symlink_to(Path("..data") / "identity.json")
    with pytest.raises(ThalovantIdentityError, match="too permissive"):
        ThalovantIdentity.from_file(link)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert ThalovantIdentity.from_file(link).site_id == "kitchen"
