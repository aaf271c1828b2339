"""Intent matching: the index over all intents agrees with each intent's own score, and the
active ranks of a conversation agree with the rank of each skill."""

from __future__ import annotations

import itertools
import random

import pytest

from thalovant_server.hub.matching import (
    MEMO_ENTRIES,
    MEMO_TEXT,
    CompiledIntent,
    IntentIndex,
    Match,
    content_tokens,
    normalise,
)
from thalovant_server.hub.session import ACTIVE_SKILL_SECONDS, Conversation
from thalovant_server.hub.skills.registry import BUILTIN_SKILLS, build_skills

SYNTHETIC = (
    ("empty", ("", "!!!"), ()),
    ("stop_words_only", ("the a of", "to me"), ()),
    ("mixed", ("turn on the light", "lights on"), (r"^switch (?P<what>\w+) (?P<state>on|off)$",)),
    ("pattern_only", (), (r"(?P<n>\d+) times", r"^repeat")),
    ("duplicate_examples", ("tell me a joke", "tell me a joke", "joke"), ()),
    ("same_as_jokes", ("tell me a joke",), ()),
    ("overlap", ("tell me about the weather", "weather today", "what is the weather like"), ()),
)


def demo_intents() -> list[CompiledIntent]:
    skills = build_skills(tuple(BUILTIN_SKILLS))
    intents = [
        CompiledIntent((skill.skill_id, spec.name), spec.examples, spec.patterns)
        for skill in skills
        for spec in skill.intents
    ]
    intents += [CompiledIntent(name, examples, patterns) for name, examples, patterns in SYNTHETIC]
    return intents


def utterances(intents: list[CompiledIntent]) -> list[str]:
    """Every example, words of every example, random mixes of those words, and pattern hits."""
    texts = [
        "",
        "   ",
        "?!",
        "the",
        "Tell me a joke.",
        "another one",
        "remember that my car is blue",
        "please note that the door is red",
        "what is my car",
        "what did I tell you about my car",
        "switch lamp on",
        "say it 3 times",
        "repeat after me",
        "WHAT'S the weather like, today?",
        "tell me a trivia fact and a joke",
        "Ünïcödé jokes ☃",
    ]
    words: list[str] = []
    for compiled in intents:
        for example in compiled.examples:
            words.extend(example)
    rng = random.Random(7)
    vocabulary = [*sorted(set(words)), "me", "a", "the", "zebra", "please"]
    texts += [" ".join(rng.sample(vocabulary, rng.randint(1, 6))) for _ in range(400)]
    texts += [" ".join(pair) for pair in itertools.combinations(sorted(set(words))[:30], 2)]
    return texts


def expected(intents: list[CompiledIntent], normalised: str, tokens: frozenset[str]) -> list[Match]:
    return [m for m in (c.score(normalised, tokens) for c in intents) if m is not None]


def test_the_index_gives_each_intents_own_score_in_order() -> None:
    intents = demo_intents()
    index = IntentIndex(intents)
    matched = 0
    for text in utterances(intents):
        normalised = normalise(text)
        tokens = content_tokens(normalised) if normalised else frozenset()
        want = expected(intents, normalised, tokens)
        assert index.matches(normalised, tokens) == want, text
        matched += bool(want)
    assert matched > 100  # the corpus exercises matches, not only misses


def test_match_text_gives_the_matches_of_the_normalised_text_twice_alike() -> None:
    intents = demo_intents()
    index = IntentIndex(intents)
    for text in utterances(intents)[:200]:
        normalised = normalise(text)
        want = tuple(index.matches(normalised, content_tokens(normalised))) if normalised else ()
        assert index.match_text(text) == want, text
        assert index.match_text(text) == want, text  # remembered: the same answer


def test_match_text_remembers_a_bounded_number_of_short_texts() -> None:
    index = IntentIndex(demo_intents())
    for n in range(MEMO_ENTRIES * 3):
        index.match_text(f"tell me joke number {n}")
    index.match_text("joke " * MEMO_TEXT)  # too long to be remembered
    remembered = index._memo
    assert len(remembered) == MEMO_ENTRIES
    assert f"tell me joke number {MEMO_ENTRIES * 3 - 1}" in remembered  # the newest stay
    assert "tell me joke number 0" not in remembered
    assert all(len(text) <= MEMO_TEXT for text in remembered)


def test_an_empty_index_matches_nothing() -> None:
    assert IntentIndex([]).matches("tell me a joke", content_tokens("tell me a joke")) == []


def test_a_pattern_wins_over_examples_of_the_same_intent() -> None:
    compiled = CompiledIntent("k", ("switch lamp on",), (r"^switch (?P<what>\w+) on$",))
    normalised = normalise("Switch lamp on")
    [match] = IntentIndex([compiled]).matches(normalised, content_tokens(normalised))
    assert match == Match("k", 1.0, {"what": "lamp"})


@pytest.mark.parametrize(
    "active",
    [
        [],
        [("jokes", 1000.0)],
        [("jokes", 1000.0), ("trivia", 990.0), ("memory", 980.0)],
        [("jokes", 1000.0 - ACTIVE_SKILL_SECONDS - 1), ("trivia", 990.0), ("memory", 980.0)],
        [("trivia", 990.0), ("jokes", 1000.0 - ACTIVE_SKILL_SECONDS - 1), ("memory", 980.0)],
        [("jokes", 1000.0), ("jokes", 999.0), ("trivia", 990.0)],
        [("trivia", 1000.0 - ACTIVE_SKILL_SECONDS), ("jokes", 1000.0)],
    ],
)
def test_active_ranks_agree_with_active_rank(active: list[tuple[str, float]]) -> None:
    conversation = Conversation("s", "en-us", active_skills=list(active))
    ranks = conversation.active_ranks(now=1000.0)
    for skill_id in ("jokes", "trivia", "memory", "clock"):
        assert ranks.get(skill_id) == conversation.active_rank(skill_id, now=1000.0)
