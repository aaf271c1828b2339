package thalovant

import (
	"errors"
	"sync"
	"time"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// Event streams (the guide's client.Transport.Events()).
const (
	// EventBuffer is the capacity of each channel Events returns; events for a full channel
	// are dropped for that channel (and counted in Dropped).
	EventBuffer   = 256
	recentEvents  = 256
	recentHorizon = 30 * time.Second
)

type recentEvent struct {
	at        time.Time
	event     Event
	delivered bool
}

// Transport is the client's side of the link that applications read events from.
type Transport struct {
	// Protocol is the carrier in use.
	Protocol HubProtocol

	mu          sync.Mutex
	subscribers map[chan Event]struct{}
	// recent holds the last recentEvents events since the last publication, oldest first from
	// recentNext (where the next one goes once it is full)
	recent     []recentEvent
	recentNext int
	closed     bool
	dropped    uint64
}

func newTransport(protocol HubProtocol) *Transport {
	return &Transport{Protocol: protocol, subscribers: map[chan Event]struct{}{}}
}

// Events returns a new channel of every bus event the hub sends from now on, closed when the
// client closes. It starts with the events that arrived since this client's last publication
// and that no channel has received yet, so "send, then listen" never misses a fast answer.
// Stop a channel you no longer read with StopEvents.
func (t *Transport) Events() <-chan Event {
	ch := make(chan Event, EventBuffer)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(ch)
		return ch
	}
	horizon := time.Now().Add(-recentHorizon)
	for i := range t.recent {
		item := &t.recent[(t.recentNext+i)%len(t.recent)]
		if !item.delivered && item.at.After(horizon) && len(ch) < cap(ch) {
			ch <- item.event
			item.delivered = true
		}
	}
	t.subscribers[ch] = struct{}{}
	return ch
}

// StopEvents unsubscribes and closes a channel returned by Events.
func (t *Transport) StopEvents(events <-chan Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch := range t.subscribers {
		if (<-chan Event)(ch) == events {
			delete(t.subscribers, ch)
			close(ch)
		}
	}
}

// Dropped counts events dropped because a channel's buffer was full.
func (t *Transport) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

func (t *Transport) deliver(event Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	item := t.remember(recentEvent{at: time.Now(), event: event})
	for ch := range t.subscribers {
		select {
		case ch <- event:
			item.delivered = true
		default:
			t.dropped++
		}
	}
}

// remember keeps item in place of the oldest event once recentEvents are kept, and returns
// where it is. Called with t.mu held.
func (t *Transport) remember(item recentEvent) *recentEvent {
	if len(t.recent) < recentEvents {
		t.recent = append(t.recent, item)
		return &t.recent[len(t.recent)-1]
	}
	slot := &t.recent[t.recentNext]
	*slot = item
	t.recentNext = (t.recentNext + 1) % recentEvents
	return slot
}

// markPublication notes a publication: the events kept so far can no longer start a channel,
// so they are let go.
func (t *Transport) markPublication() {
	t.mu.Lock()
	clear(t.recent)
	t.recent, t.recentNext = t.recent[:0], 0
	t.mu.Unlock()
}

func (t *Transport) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for ch := range t.subscribers {
		close(ch)
	}
	t.subscribers = map[chan Event]struct{}{}
	t.recent, t.recentNext = nil, 0
}

func (t *Transport) reopen() {
	t.mu.Lock()
	t.closed = false
	t.mu.Unlock()
}
