package thalovant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Collecting the reply to one Ask (dataplane.md 6.3). A replyCollector is fed every correlated
// bus event of its request and settles into a reply or a typed error:
//
//   - each speak / ovos.utterance.speak with text adds a fragment (a repeat of the previous one
//     is dropped); the first starts the settle window, and the reply is returned when it
//     closes, or at once when ovos.utterance.handled arrives after speech;
//   - ovos.utterance.handled before any speech starts the empty-reply window (then
//     ErrTimeout), an unmatched / intent failure the same window (then ErrUnanswered); a
//     speak inside the window still wins;
//   - hive.policy.denied and hive.query.timeout end the ask at once (a reply with
//     Handled false if speech already arrived);
//   - mycroft.audio.queue clips are kept in order (size limits apply) and never settle it;
//   - the overall deadline without speech is ErrTimeout.

// Limits of the reply collection.
const (
	DefaultEmptyReplyWait = 5 * time.Second
	DefaultReplySettle    = 250 * time.Millisecond
	DefaultAskTimeout     = 12 * time.Second
	MaxAudioClipBytes     = 4 * 1024 * 1024
	MaxReplyMediaBytes    = 16 * 1024 * 1024
)

type replyCollector struct {
	mu           sync.Mutex
	requestID    string
	sessionID    string
	settle       time.Duration
	emptyWait    time.Duration
	done         chan struct{}
	reply        *Reply
	err          error
	timer        *time.Timer
	windowErr    error
	events       []Event
	fragments    []string
	media        []Event
	mediaBytes   int
	dropped      int
	handled      bool
	failureEvent *Event
}

func newReplyCollector(requestID, sessionID string, settle, emptyWait time.Duration) *replyCollector {
	return &replyCollector{requestID: requestID, sessionID: sessionID, settle: settle, emptyWait: emptyWait, done: make(chan struct{})}
}

func (c *replyCollector) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// feed takes one event already correlated with this ask.
func (c *replyCollector) feed(event Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished() {
		return
	}
	switch event.Name {
	case EventSpeak, EventOVOSUtteranceSpeak:
		c.speech(event)
	case EventUtteranceHandled:
		c.events = append(c.events, event)
		c.handled = true
		if len(c.fragments) > 0 {
			c.finishLocked()
		} else if c.timer == nil {
			c.startWindow(newErr(ErrTimeout, "Hub finished the query but did not emit a speak reply."), false)
		}
	case EventIntentUnmatched, EventIntentFailure:
		c.events = append(c.events, event)
		if len(c.fragments) == 0 {
			ev := event
			c.failureEvent = &ev
			said := nonEmpty(event.Data["utterance"])
			message := "The hub did not understand the request."
			if said != "" {
				message += " (said: " + said + ")"
			}
			c.startWindow(&UnansweredError{base: base{Kind: ErrUnanswered, Message: message}, Said: said, Event: &ev}, true)
		}
	case EventPolicyDenied, EventQueryTimeout:
		c.events = append(c.events, event)
		ev := event
		c.failureEvent = &ev
		switch {
		case len(c.fragments) > 0:
			c.handled = false
			c.finishLocked()
		case event.Name == EventPolicyDenied:
			c.failLocked(policyDeniedFromEvent(&ev))
		default:
			c.failLocked(&RuntimeError{base: base{Kind: ErrRuntime, Message: failureMessage(event)}, Event: &ev})
		}
	case EventAudioQueue:
		c.audio(event)
	}
}

func failureMessage(event Event) string {
	for _, key := range []string{"reason", "error", "code"} {
		switch v := event.Data[key].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return fmt.Sprint(v)
		}
	}
	return event.Name
}

func (c *replyCollector) speech(event Event) {
	c.events = append(c.events, event)
	text := strings.Join(strings.Fields(event.Text()), " ")
	if text == "" || (len(c.fragments) > 0 && c.fragments[len(c.fragments)-1] == text) {
		return
	}
	first := len(c.fragments) == 0
	c.fragments = append(c.fragments, text)
	c.media = append(c.media, event)
	if first {
		c.stopTimer()
		if c.settle <= 0 {
			c.finishLocked()
		} else {
			c.timer = time.AfterFunc(c.settle, c.finish)
		}
	}
}

func (c *replyCollector) audio(event Event) {
	clip, _ := event.Data["binary_data"].(string)
	size := len(clip) / 2
	if size > MaxAudioClipBytes || c.mediaBytes+size > MaxReplyMediaBytes {
		c.dropped++
		return
	}
	c.mediaBytes += size
	c.media = append(c.media, event)
}

func (c *replyCollector) startWindow(err error, restart bool) {
	if c.timer != nil && !restart {
		return
	}
	c.stopTimer()
	c.windowErr = err
	c.timer = time.AfterFunc(c.emptyWait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.fragments) == 0 && c.windowErr != nil {
			c.failLocked(c.windowErr)
		}
	})
}

func (c *replyCollector) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

func (c *replyCollector) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finishLocked()
}

func (c *replyCollector) finishLocked() {
	c.stopTimer()
	if c.finished() {
		return
	}
	c.reply = newReply(Reply{
		Text: strings.Join(c.fragments, " "), RequestID: c.requestID, SessionID: c.sessionID,
		Handled: c.handled || (c.failureEvent == nil && len(c.fragments) > 0),
		Events:  append([]Event(nil), c.events...), Fragments: append([]string(nil), c.fragments...),
		MediaEvents: append([]Event(nil), c.media...), FailureEvent: c.failureEvent, DroppedMedia: c.dropped,
	})
	close(c.done)
}

func (c *replyCollector) failLocked(err error) {
	c.stopTimer()
	if c.finished() {
		return
	}
	c.err = err
	close(c.done)
}

// abort ends the ask with err (the link dropped, the client closed), or with the speech so far.
func (c *replyCollector) abort(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fragments) > 0 {
		c.finishLocked()
	} else {
		c.failLocked(err)
	}
}

// errSendAgain ends an ask that must be sent again on the next link (resendUnanswered).
var errSendAgain = errors.New("send the ask again")

// abortIfUnanswered ends the ask with err if nothing for its request has arrived yet; it says
// whether it did.
func (c *replyCollector) abortIfUnanswered(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished() || len(c.events) > 0 || len(c.media) > 0 || c.dropped > 0 {
		return false
	}
	c.failLocked(err)
	return true
}

// result waits for the reply, the typed error, the deadline (ErrTimeout) or ctx.
func (c *replyCollector) result(ctx context.Context, timeout time.Duration) (*Reply, error) {
	return c.resultWithin(ctx, timeout, timeout)
}

// resultWithin is result waiting for wait, the part left of the ask's whole timeout.
func (c *replyCollector) resultWithin(ctx context.Context, wait, timeout time.Duration) (*Reply, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	select {
	case <-c.done:
	case <-deadline.C:
		c.abort(newErr(ErrTimeout, "No reply from the hub within %s.", timeout))
	case <-ctx.Done():
		c.abort(wrapErr(ErrTimeout, ctx.Err(), "Stopped waiting for the reply: %v.", ctx.Err()))
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reply, c.err
}
