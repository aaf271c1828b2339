"""Collecting the reply to one ``ask()`` (spec 6.3).

A :class:`ReplyCollector` is fed every correlated bus event of its request and settles into a
reply or a typed error:

- each ``speak`` / ``ovos.utterance.speak`` with text adds a fragment (a repeat of the previous
  one is dropped); the first starts the settle window (``reply_settle_seconds``), and the reply
  is returned when it closes, or at once when ``ovos.utterance.handled`` arrives after speech;
- ``ovos.utterance.handled`` before any speech starts the 5 s empty-reply window (then
  :class:`ThalovantTimeoutError`), an unmatched / intent failure the same window (then
  :class:`ThalovantUnansweredError`); a speak inside the window still wins;
- ``hive.policy.denied`` and ``hive.query.timeout`` end the ask at once (a reply with
  ``handled=False`` if speech already arrived);
- ``mycroft.audio.queue`` clips are kept in order (size limits apply) and never settle it;
- the overall deadline without speech is :class:`ThalovantTimeoutError`.

A ``direct`` collector serves ``query()`` (spec 6.4): there is no settle window and no
empty-reply window; the answer ends with ``hive.query.complete`` (a reply when there was
speech, else the soft failure seen, else :class:`ThalovantTimeoutError`), or at once with a
hard failure.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from thalovant.errors import (
    ThalovantPolicyDeniedError,
    ThalovantRuntimeError,
    ThalovantTimeoutError,
    ThalovantUnansweredError,
)
from thalovant.events import (
    EVENT_AUDIO_QUEUE,
    EVENT_INTENT_FAILURE,
    EVENT_INTENT_UNMATCHED,
    EVENT_OVOS_UTTERANCE_SPEAK,
    EVENT_POLICY_DENIED,
    EVENT_QUERY_COMPLETE,
    EVENT_QUERY_TIMEOUT,
    EVENT_SPEAK,
    EVENT_UTTERANCE_HANDLED,
    ThalovantEvent,
)
from thalovant.models import ThalovantReply

EMPTY_REPLY_WAIT_SECONDS = 5.0
MAX_AUDIO_CLIP_BYTES = 4 * 1024 * 1024
MAX_REPLY_MEDIA_BYTES = 16 * 1024 * 1024

SPEECH_EVENTS = frozenset({EVENT_SPEAK, EVENT_OVOS_UTTERANCE_SPEAK})
SOFT_FAILURES = frozenset({EVENT_INTENT_UNMATCHED, EVENT_INTENT_FAILURE})
HARD_FAILURES = frozenset({EVENT_POLICY_DENIED, EVENT_QUERY_TIMEOUT})

#: every bus type an ask subscribes to before it publishes
REPLY_EVENTS = frozenset({*SPEECH_EVENTS, EVENT_UTTERANCE_HANDLED, *SOFT_FAILURES, *HARD_FAILURES, EVENT_AUDIO_QUEUE})

_SPACES = re.compile(r"\s+")


def _failure_message(event: ThalovantEvent) -> str:
    for key in ("reason", "error", "code"):
        value = event.data.get(key)
        if isinstance(value, str | int) and str(value):
            return str(value)
    return event.name


class ReplyCollector:
    """The state of one ask; feed it events, then await :meth:`result`."""

    def __init__(
        self,
        request_id: str,
        session_id: str | None,
        *,
        settle_seconds: float,
        empty_reply_wait: float = EMPTY_REPLY_WAIT_SECONDS,
        direct: bool = False,
    ) -> None:
        self.request_id = request_id
        self.session_id = session_id
        self.direct = direct
        self._settle = max(0.0, settle_seconds)
        self._empty_wait = empty_reply_wait
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[ThalovantReply] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._window_error: Exception | None = None
        self.events: list[ThalovantEvent] = []
        self.fragments: list[str] = []
        self.media: list[ThalovantEvent] = []
        self.media_bytes = 0
        self.dropped_media = 0
        self.handled = False
        self.failure_event: ThalovantEvent | None = None
        self._seen_media: set[int] = set()
        #: set once the request went out (a loss of the link before that does not end the ask)
        self.sent = False

    def fresh(self) -> ReplyCollector:
        """A new collector for the same request (the ask is being sent again)."""
        return ReplyCollector(
            self.request_id, self.session_id, settle_seconds=self._settle, empty_reply_wait=self._empty_wait
        )

    @property
    def done(self) -> bool:
        return self._future.done()

    # -- feeding

    def feed(self, event: ThalovantEvent) -> None:
        """Take one event already correlated with this ask (request id equal, or an attributed
        denial)."""
        if self._future.done():
            return
        name = event.name
        if self.direct and name != EVENT_AUDIO_QUEUE and name not in HARD_FAILURES:
            self._direct(event)
        elif name in SPEECH_EVENTS:
            self._speech(event)
        elif name == EVENT_UTTERANCE_HANDLED:
            self.events.append(event)
            self.handled = True
            if self.fragments:
                self._finish()
            elif self._timer is None:
                self._start_window(ThalovantTimeoutError("Hub finished the query but did not emit a speak reply."))
        elif name in SOFT_FAILURES:
            self.events.append(event)
            if not self.fragments:
                self.failure_event = event
                said = event.data.get("utterance")
                error = ThalovantUnansweredError(
                    "The hub did not understand the request." + (f" (said: {said})" if said else "")
                )
                if isinstance(said, str):
                    error.said = said
                self._start_window(error, restart=True)
        elif name in HARD_FAILURES:
            self.events.append(event)
            self.failure_event = event
            if self.fragments:
                self.handled = False
                self._finish()
            elif name == EVENT_POLICY_DENIED:
                self._fail(ThalovantPolicyDeniedError.from_event(event))
            else:
                self._fail(ThalovantRuntimeError(_failure_message(event)))
        elif name == EVENT_AUDIO_QUEUE:
            self._audio(event)

    def _direct(self, event: ThalovantEvent) -> None:
        """A query's event: speech and failures are kept until ``hive.query.complete``."""
        name = event.name
        if name == EVENT_QUERY_COMPLETE:
            if self.fragments:
                self._finish()
            else:
                self._fail(
                    self._window_error or ThalovantTimeoutError("Hub completed the query without a spoken reply.")
                )
            return
        self.events.append(event)
        if name in SPEECH_EVENTS:
            text = _SPACES.sub(" ", event.text or "").strip()
            if text and (not self.fragments or self.fragments[-1] != text):
                self.fragments.append(text)
                self.media.append(event)
        elif name == EVENT_UTTERANCE_HANDLED:
            self.handled = True
        elif name in SOFT_FAILURES and not self.fragments:
            self.failure_event = event
            said = event.data.get("utterance")
            error = ThalovantUnansweredError(
                "The hub did not understand the query." + (f" (said: {said})" if said else "")
            )
            if isinstance(said, str):
                error.said = said
            self._window_error = error

    def _speech(self, event: ThalovantEvent) -> None:
        self.events.append(event)
        text = _SPACES.sub(" ", event.text or "").strip()
        if not text:
            return
        if self.fragments and self.fragments[-1] == text:
            return
        first = not self.fragments
        self.fragments.append(text)
        self.media.append(event)
        if first:
            self._cancel_timer()
            if self._settle <= 0:
                self._finish()
            else:
                self._timer = self._loop.call_later(self._settle, self._finish)

    def _audio(self, event: ThalovantEvent) -> None:
        if id(event) in self._seen_media:
            return
        self._seen_media.add(id(event))
        clip = event.data.get("binary_data")
        size = len(clip) // 2 if isinstance(clip, str) else 0
        if size > MAX_AUDIO_CLIP_BYTES or self.media_bytes + size > MAX_REPLY_MEDIA_BYTES:
            self.dropped_media += 1
            return
        self.media_bytes += size
        self.media.append(event)

    # -- windows

    def _start_window(self, error: Exception, *, restart: bool = False) -> None:
        if self._timer is not None and not restart:
            return
        self._cancel_timer()
        self._window_error = error
        self._timer = self._loop.call_later(self._empty_wait, self._window_closed)

    def _window_closed(self) -> None:
        self._timer = None
        if not self.fragments and self._window_error is not None:
            self._fail(self._window_error)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- ending

    def _finish(self) -> None:
        self._cancel_timer()
        if not self._future.done():
            self._future.set_result(self.build_reply())

    def _fail(self, error: BaseException) -> None:
        self._cancel_timer()
        if not self._future.done():
            self._future.set_exception(error)

    def abort(self, error: BaseException) -> None:
        """End the ask with ``error`` (the link dropped, the client closed)."""
        if self.fragments:
            self._finish()
        else:
            self._fail(error)

    def build_reply(self) -> ThalovantReply:
        return ThalovantReply.from_events(
            request_id=self.request_id,
            session_id=self.session_id,
            text=" ".join(self.fragments),
            fragments=list(self.fragments),
            events=list(self.events),
            media_events=list(self.media),
            handled=self.handled or (self.failure_event is None and bool(self.fragments)),
            failure_event=self.failure_event,
            dropped_media=self.dropped_media,
        )

    async def result(self, timeout: float) -> ThalovantReply:
        """The reply, or the typed error; :class:`ThalovantTimeoutError` at the deadline."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            if self.fragments:
                self._finish()
                return self._future.result()
            self._fail(ThalovantTimeoutError(f"No reply from the hub within {timeout:g} s."))
            raise ThalovantTimeoutError(f"No reply from the hub within {timeout:g} s.") from None
        finally:
            self._cancel_timer()

    def result_nowait(self) -> Any:
        return self._future
