"""Event constants (dataplane.md 8), event accessors (7.2) and display items (6.3)."""

from __future__ import annotations

import json

import thalovant
from thalovant import events
from thalovant.events import DisplayItem, ThalovantEvent
from thalovant.models import ThalovantDoctorCheck, ThalovantDoctorReport, ThalovantHealth, ThalovantReply


def test_constant_values() -> None:
    expected = {
        "EVENT_RECOGNIZER_LOOP_UTTERANCE": "recognizer_loop:utterance",
        "EVENT_SPEAK": "speak",
        "EVENT_OVOS_UTTERANCE_SPEAK": "ovos.utterance.speak",
        "EVENT_UTTERANCE_HANDLED": "ovos.utterance.handled",
        "EVENT_INTENT_FAILURE": "complete_intent_failure",
        "EVENT_POLICY_DENIED": "hive.policy.denied",
        "EVENT_QUERY_TIMEOUT": "hive.query.timeout",
        "EVENT_AUDIO_QUEUE": "mycroft.audio.queue",
        "EVENT_INTENT_LIST": "ovos.intent.list",
        "EVENT_INTENT_LIST_RESPONSE": "ovos.intent.list.response",
        "EVENT_INTENT_DESCRIBE": "ovos.intent.describe",
        "EVENT_INTENT_DESCRIBE_RESPONSE": "ovos.intent.describe.response",
        "HIVE_BROADCAST": "broadcast",
        "HIVE_PROPAGATE": "propagate",
        "HIVE_ESCALATE": "escalate",
        "HIVE_INTERCOM": "intercom",
        "HIVE_RENDEZVOUS": "rendezvous",
        "HOME_REQUEST": "thalovant.home.request",
        "HOME_RESPONSE": "thalovant.home.response",
        "THALOVANT_CLAIMED_META_KEY": "thalovant_claimed",
        "DEFAULT_PROTOCOL_PREFERENCE": ("wss", "https", "mqtt"),
        "HIVE_KINDS": ("broadcast", "propagate", "escalate", "intercom", "rendezvous"),
    }
    for name, value in expected.items():
        assert getattr(thalovant, name) == value, name  # exported at the package root
        assert getattr(events, name) == value, name
    assert events.EVENT_INTENT_UNMATCHED == "ovos.intent.unmatched"
    assert events.EVENT_ADAPT_MANIFEST_GET == "intent.service.adapt.manifest.get"
    assert events.EVENT_PADATIOUS_MANIFEST == "intent.service.padatious.manifest"
    assert events.EVENT_SKILLS_LIST_RESPONSE == "ovos.skills.list.response"
    assert events.EVENT_FALLBACK_LIST_RESPONSE == "ovos.skills.fallback.list.response"
    assert {
        "complete_intent_failure",
        "ovos.intent.unmatched",
        "hive.policy.denied",
        "hive.query.timeout",
    } == events.FAILURE_EVENTS
    assert events.MAX_AUDIO_CLIP_BYTES == 4 * 1024 * 1024
    assert events.MAX_REPLY_MEDIA_BYTES == 16 * 1024 * 1024


def test_text_accessor_order() -> None:
    assert ThalovantEvent("speak", {"utterance": "a", "text": "b"}).text == "a"
    assert ThalovantEvent("speak", {"text": "b", "utterances": ["c"]}).text == "b"
    assert ThalovantEvent("speak", {"utterances": ["c", "d"]}).text == "c"
    assert ThalovantEvent("speak", {}).text is None


def test_session_site_lang_accessors() -> None:
    event = ThalovantEvent(
        "speak",
        {},
        {"session": {"session_id": "s1", "site_id": "kitchen", "lang": "de-de"}, "session_id": "s2", "site_id": "x"},
    )
    assert event.session_id == "s1"
    assert event.site_id == "kitchen"
    assert event.lang == "de-de"
    flat = ThalovantEvent("speak", {"lang": "fr-fr"}, {"session_id": "s2", "site_id": "x", "lang": "en-us"})
    assert flat.session_id == "s2"
    assert flat.site_id == "x"
    assert flat.lang == "fr-fr"


def test_request_id_order() -> None:
    def rid(data: dict[str, object], context: dict[str, object]) -> str | None:
        return ThalovantEvent("speak", data, context).request_id

    assert rid({"request_id": "d"}, {"request_id": "c", "session": {"request_id": "s"}}) == "c"
    assert rid({}, {"thalovant_request_id": "t", "correlation_id": "k"}) == "t"
    assert rid({}, {"correlation_id": "k", "session": {"request_id": "s"}}) == "k"
    assert rid({"request_id": "d"}, {"session": {"correlation_id": "s"}}) == "s"
    assert rid({"correlation_id": "d"}, {}) == "d"
    assert rid({}, {"request_id": ""}) is None


def test_is_failure() -> None:
    for name in ("complete_intent_failure", "ovos.intent.unmatched", "hive.policy.denied", "hive.query.timeout"):
        assert ThalovantEvent(name).is_failure
    assert not ThalovantEvent("speak").is_failure


def test_display_items_text_and_rich_media() -> None:
    rich = {
        "attachments": [
            {"type": "image", "title": "Cat", "payload": {"src": "https://img/cat.png"}},
            {"type": "file", "title": "Invoice", "url": "https://files/invoice.pdf"},
        ],
        "quick_replies": [{"title": "Yes", "payload": "/yes"}, {"label": "No", "value": "/no"}],
        "table": {"title": "Prices", "rows": [[1, 2]]},
        "images": ["https://img/a.png", {"url": "https://img/b.png"}],
    }
    event = ThalovantEvent("speak", {"utterance": "<speak>Hello <b>there</b></speak>", "rich_media": json.dumps(rich)})
    items = event.display_items()
    kinds = [item.kind for item in items]
    assert kinds == ["text", "table", "image", "attachment", "choices", "image", "image"]
    assert items[0].text == "Hello there"
    assert not items[0].silent
    assert items[1].title == "Prices"
    assert items[2].url == "https://img/cat.png"
    assert items[3].url == "https://files/invoice.pdf"
    assert items[4].choices == ({"title": "Yes", "payload": "/yes"}, {"title": "No", "payload": "/no"})
    assert [item.url for item in items[5:]] == ["https://img/a.png", "https://img/b.png"]
    assert event.rich_media == rich
    assert "Yes" in str(items[4])
    assert items[2].as_dict()["url"] == "https://img/cat.png"


def test_display_items_direct_keys_and_silent() -> None:
    event = ThalovantEvent("write", {"text": "note", "buttons": ["A", "B"]})
    items = event.display_items()
    assert items[0] == DisplayItem(kind="text", text="note", silent=True)
    assert items[1].choices == ({"title": "A", "payload": "A"}, {"title": "B", "payload": "B"})
    assert ThalovantEvent("speak", {"utterance": "hi", "silent": True}).display_items()[0].silent
    assert ThalovantEvent("speak", {"display": "not json"}).display_items() == []


def test_reply_model() -> None:
    context = {"request_id": "r1", "session": {"session_id": "hub-session", "lang": "en-us"}, "pipeline_id": "adapt"}
    speak = ThalovantEvent("speak", {"utterance": "Here.", "buttons": ["More"]}, context)
    handled = ThalovantEvent("ovos.utterance.handled", {}, context)
    reply = ThalovantReply.from_events(
        request_id="r1", session_id="mine", text="Here.", events=[speak, handled], handled=True
    )
    assert reply.session_id == "hub-session"
    assert reply.lang == "en-us"
    assert reply.pipeline_ids == ("adapt",)
    assert reply.claimed
    assert [item.kind for item in reply.display_items()] == ["choices"]
    assert reply.display_items(max_items=0) == []
    assert str(reply) == "Here."
    assert reply.as_dict()["display_items"] == [{"kind": "choices", "choices": [{"title": "More", "payload": "More"}]}]
    plain = ThalovantReply.from_events(text="A joke.", events=[ThalovantEvent("speak", {"utterance": "A joke."})])
    assert plain.display_items() == []
    assert plain.session_id is None


def test_reply_claimed_rules() -> None:
    fallback = {"pipeline_id": "fallback_low"}
    speak = ThalovantEvent("speak", {"utterance": "x"}, fallback)
    assert not ThalovantReply.from_events(text="x", events=[speak]).claimed
    claimed = ThalovantEvent("speak", {"utterance": "x", "meta": {"thalovant_claimed": True}}, fallback)
    assert ThalovantReply.from_events(text="x", events=[claimed]).claimed
    failure = ThalovantEvent("hive.query.timeout", {})
    assert not ThalovantReply.from_events(text="x", events=[ThalovantEvent("speak", {})], failure_event=failure).claimed


def test_health_and_doctor_models() -> None:
    health = ThalovantHealth(connected=True, handshake_complete=True, transport_alive=True, protocol="wss")
    assert health.ok
    assert "health: ok" in str(health)
    broken = ThalovantHealth(connected=True, handshake_complete=True, transport_alive=True, last_error="boom")
    assert not broken.ok
    assert "boom" in str(broken)
    report = ThalovantDoctorReport(
        checks=[ThalovantDoctorCheck("identity", True, "site_id=a"), ThalovantDoctorCheck("tls", False, "expired")]
    )
    assert not report.ok
    text = str(report)
    assert "identity" in text and "FAIL" in text and "expired" in text
    name, ok, detail = report.checks[0]
    assert (name, ok, detail) == ("identity", True, "site_id=a")
    assert ThalovantDoctorReport(checks=[ThalovantDoctorCheck("identity", True, "")]).ok
    assert not ThalovantDoctorReport().ok


def test_public_names_resolve() -> None:
    for name in thalovant.__all__:
        if name in ("ThalovantClient", "AsyncThalovantClient"):
            continue  # the runtime client's own tests cover these
        assert getattr(thalovant, name) is not None, name
    for name in ("ThalovantControlPlane", "AsyncThalovantControlPlane", "ThalovantIdentity", "build_client_context"):
        assert name in thalovant.__all__
