package carrier

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// wssPeer is a WebSocket server that sends count binary messages "0", "1", ... as soon as a
// client connects, then waits for the client to close.
func wssPeer(t *testing.T, count int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.CloseNow()
		for i := 0; i < count; i++ {
			if err := conn.Write(r.Context(), websocket.MessageBinary, []byte(strconv.Itoa(i))); err != nil {
				return
			}
		}
		_, _, _ = conn.Read(r.Context())
	}))
}

func openWSS(t *testing.T, server *httptest.Server) *WSS {
	w, err := NewWSS("ws"+strings.TrimPrefix(server.URL, "http"), "access", "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// Serve hands on what Receive left queued, then what the reader reads, in order, once each.
func TestWSSServeKeepsTheOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const count = 500
	server := wssPeer(t, count)
	defer server.Close()
	w := openWSS(t, server)
	defer w.Close()
	next := 0
	for ; next < 3; next++ {
		message, err := w.Receive(context.Background())
		if err != nil || string(message.Data) != strconv.Itoa(next) {
			t.Fatalf("received %q, %v", message.Data, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := w.Serve(ctx, func(message Message) error {
		if want := strconv.Itoa(next); string(message.Data) != want || !message.Binary {
			return errors.New("message " + string(message.Data) + ", want " + want)
		}
		next++
		if next == count {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || next != count {
		t.Fatalf("%d messages handled: %v", next, err)
	}
}

// The handler's error stops Serve, and the carrier reads no further.
func TestWSSServeStopsAtTheHandlersError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	server := wssPeer(t, 100)
	defer server.Close()
	w := openWSS(t, server)
	defer w.Close()
	stop := errors.New("stop")
	handled := 0
	err := w.Serve(context.Background(), func(message Message) error {
		handled++
		if handled == 50 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || handled != 50 {
		t.Fatalf("%d messages handled: %v", handled, err)
	}
}

// A session that ends while served returns its *ClosedError.
func TestWSSServeReturnsTheClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		_ = conn.Write(r.Context(), websocket.MessageBinary, []byte("last"))
		_ = conn.Close(websocket.StatusGoingAway, "restarting")
	}))
	defer server.Close()
	w := openWSS(t, server)
	defer w.Close()
	var got []string
	err := w.Serve(context.Background(), func(message Message) error {
		got = append(got, string(message.Data))
		return nil
	})
	var closedErr *ClosedError
	if !errors.As(err, &closedErr) || closedErr.Code != int(websocket.StatusGoingAway) || len(got) != 1 || got[0] != "last" {
		t.Fatalf("handled %q: %v", got, err)
	}
}
