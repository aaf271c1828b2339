package thalovant_test

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// XX on first contact, KK on every later connection, over each carrier; then every goroutine
// the clients started has ended once they are closed.
func TestKKOnReconnectAndNoLeaks(t *testing.T) {
	liveTestbed(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, protocol := range carriers {
		result, _ := provision(t, "go-kk-"+string(protocol))
		first := connect(t, result.Identity, protocol)
		if first.NoisePattern() != "XXpsk2" {
			t.Fatalf("%s: first contact used %s", protocol, first.NoisePattern())
		}
		reply, err := first.Ask(ctxTimeout(t, 20*time.Second), "Tell me a short clean joke.", thalovant.RequestOptions{})
		if err != nil || reply.Text != joke || !reply.Handled {
			t.Fatalf("%s ask: %v %+v", protocol, err, reply)
		}
		_ = first.Close(context.Background())
		second := connect(t, result.Identity, protocol)
		if second.NoisePattern() != "KKpsk0" {
			t.Fatalf("%s: reconnect used %s", protocol, second.NoisePattern())
		}
		events := second.Transport.Events()
		if _, err := second.Ask(ctxTimeout(t, 20*time.Second), "What can this hub do?", thalovant.RequestOptions{}); err != nil {
			t.Fatal(err)
		}
		if event := <-events; event.Name == "" {
			t.Fatal("no event on the stream")
		}
		_ = second.Close(context.Background())
		if _, open := <-drain(events); open {
			t.Fatal("the event channel stays open after Close")
		}
	}
}

func drain(events <-chan thalovant.Event) <-chan thalovant.Event {
	out := make(chan thalovant.Event)
	go func() {
		for range events {
		}
		close(out)
	}()
	return out
}

func TestConcurrentAsksOnOneLink(t *testing.T) {
	result, _ := provision(t, "go-concurrent")
	client := connect(t, result.Identity, thalovant.ProtocolWSS)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			reply, err := client.Ask(ctxTimeout(t, 20*time.Second), "What can this hub do?", thalovant.RequestOptions{})
			if err == nil && reply.Text != capabilities {
				err = errors.New("wrong reply: " + reply.Text)
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func expectKind(t *testing.T, err error, kind error, what string) {
	t.Helper()
	if !errors.Is(err, kind) || !errors.Is(err, thalovant.ErrThalovant) {
		t.Fatalf("%s: got %v (%T), want %v", what, err, err, kind)
	}
	if strings.Contains(strings.ReplaceAll(err.Error(), "authorization=<redacted>", ""), "authorization=") {
		t.Fatalf("%s: the error shows the credential: %v", what, err)
	}
}

// A hub key that differs from the pin: ErrHubKeyChanged, on every carrier, and never cleared.
func TestTamperedHubKey(t *testing.T) {
	for _, protocol := range carriers {
		result, _ := provision(t, "go-tamper-"+string(protocol))
		client := connect(t, result.Identity, protocol)
		_ = client.Close(context.Background())
		store := client.NoiseStore()
		pins, err := store.Pins()
		if err != nil || len(pins) == 0 {
			t.Fatalf("no pin after the first connection: %v", err)
		}
		for pinID := range pins {
			if err := store.RemovePin(pinID); err != nil {
				t.Fatal(err)
			}
			forged, _ := hex.DecodeString(strings.Repeat("ab", 32))
			if err := store.PinHub(pinID, forged); err != nil {
				t.Fatal(err)
			}
		}
		again, err := thalovant.NewClientWithOptions(result.Identity, thalovant.ClientOptions{Protocol: protocol, NoiseStateDir: store.Directory})
		if err != nil {
			t.Fatal(err)
		}
		err = again.Connect(ctxTimeout(t, 30*time.Second))
		expectKind(t, err, thalovant.ErrHubKeyChanged, string(protocol)+" tampered hub key")
		if !thalovant.IsFatalConnectError(err) {
			t.Fatal("a changed hub key must stop supervisors")
		}
		_ = again.Close(context.Background())
	}
}

// A wrong password cannot authenticate the handshake: ErrHubRefused (the hub cannot read
// message 1 over WSS/HTTPS and goes silent over MQTT until the handshake times out).
func TestWrongPassword(t *testing.T) {
	for _, protocol := range []thalovant.HubProtocol{thalovant.ProtocolWSS, thalovant.ProtocolHTTPS} {
		result, _ := provision(t, "go-wrongpw-"+string(protocol))
		identity := *result.Identity
		identity.Password = "not-" + identity.Password
		client, err := thalovant.NewClientWithOptions(&identity, thalovant.ClientOptions{Protocol: protocol, NoiseStateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		err = client.Connect(ctxTimeout(t, 30*time.Second))
		expectKind(t, err, thalovant.ErrHubRefused, string(protocol)+" wrong password")
		_ = client.Close(context.Background())
	}
	result, _ := provision(t, "go-wrongpw-mqtt")
	identity := *result.Identity
	identity.Password = "not-" + identity.Password
	client, err := thalovant.NewClientWithOptions(&identity, thalovant.ClientOptions{Protocol: thalovant.ProtocolMQTT,
		NoiseStateDir: t.TempDir(), HandshakeTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = client.Connect(ctxTimeout(t, 30*time.Second))
	if !errors.Is(err, thalovant.ErrHubRefused) && !errors.Is(err, thalovant.ErrTimeout) {
		t.Fatalf("mqtt wrong password: %v", err)
	}
	_ = client.Close(context.Background())
}

// A client deleted through the API is refused on its next connection.
func TestRevokedIdentity(t *testing.T) {
	b := liveTestbed(t)
	for _, protocol := range []thalovant.HubProtocol{thalovant.ProtocolWSS, thalovant.ProtocolHTTPS} {
		result, _ := provision(t, "go-revoked-"+string(protocol))
		client := connect(t, result.Identity, protocol)
		_ = client.Close(context.Background())
		if err := signedIn(t, b).DeleteClient(ctxTimeout(t, 20*time.Second), result.ClientID(), ""); err != nil {
			t.Fatal(err)
		}
		again, err := thalovant.NewClientWithOptions(result.Identity, thalovant.ClientOptions{Protocol: protocol, NoiseStateDir: client.NoiseStore().Directory})
		if err != nil {
			t.Fatal(err)
		}
		expectKind(t, again.Connect(ctxTimeout(t, 30*time.Second)), thalovant.ErrHubRefused, string(protocol)+" revoked identity")
		_ = again.Close(context.Background())
	}
}

func TestMissingToken(t *testing.T) {
	b := liveTestbed(t)
	t.Setenv("THALOVANT_API_TOKEN", "")
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: b.Demo.APIURL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.ListHubs(ctxTimeout(t, 10*time.Second), 25, "", "")
	expectKind(t, err, thalovant.ErrAPI, "missing token")
	if !strings.HasPrefix(err.Error(), "Missing Thalovant API access token") {
		t.Fatalf("missing token message: %v", err)
	}
	_, err = api.CreateClientIdentityForHubID(ctxTimeout(t, 10*time.Second), b.hubID, thalovant.BootstrapIdentityOptions{Name: "x"})
	expectKind(t, err, thalovant.ErrAPI, "missing token on create")
	// a wrong password at sign-in is an auth error with the server's status
	_, err = api.Login(ctxTimeout(t, 10*time.Second), b.Demo.Email, "wrong-"+b.Demo.Password, "")
	var apiErr *thalovant.APIError
	if !errors.Is(err, thalovant.ErrAuth) || !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong sign-in password: %v", err)
	}
	// a public call needs no token
	if _, err := api.ListPublicHubs(ctxTimeout(t, 10*time.Second), 12, ""); err != nil {
		t.Fatal(err)
	}
}

func deadPort(t *testing.T) string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	_ = listener.Close()
	return addr
}

// Nothing listens: a connection error on each carrier, ErrAPIUnreachable on the control plane.
func TestServerDown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addr := deadPort(t)
	identity, err := thalovant.IdentityFromMapping(map[string]any{
		"access_key": "k", "password": "p", "site_id": "down", "default_master": "https://" + addr,
		"data_plane_endpoints": map[string]any{"wss": "wss://" + addr + "/hub", "https": "https://" + addr + "/hub"},
		"mqtt":                 map[string]any{"endpoint": "mqtts://" + addr, "username": "u", "password": "p", "topic_prefix": "t/x"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, protocol := range carriers {
		client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: protocol, NoiseStateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		err = client.Connect(ctxTimeout(t, 20*time.Second))
		expectKind(t, err, thalovant.ErrConnection, string(protocol)+" server down")
		if health := client.Healthcheck(); health.OK() || health.LastError == "" {
			t.Fatalf("%s: health of a down hub: %v", protocol, health)
		}
		if protocol == thalovant.ProtocolWSS {
			// a request waits for the reconnect loop through the drops, then fails at its timeout
			_, err := client.Ask(ctxTimeout(t, 20*time.Second), "hello", thalovant.RequestOptions{Timeout: 300 * time.Millisecond})
			if expectKind(t, err, thalovant.ErrConnection, "ask with the hub down"); !strings.Contains(err.Error(), "not back within") {
				t.Fatalf("ask with the hub down: %v", err)
			}
		}
		_ = client.Close(context.Background())
	}
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: "https://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.ListPublicHubs(ctxTimeout(t, 10*time.Second), 12, "")
	expectKind(t, err, thalovant.ErrAPIUnreachable, "API down")
	if !errors.Is(err, thalovant.ErrConnection) || !errors.Is(err, thalovant.ErrAPI) {
		t.Fatal("an unreachable API is both a connection and an API error")
	}
	api.CloseIdleConnections()
}

// An identity file readable by others is refused before anything is sent.
func TestPermissiveIdentityFileRefused(t *testing.T) {
	_, path := provision(t, "go-perm")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := thalovant.NewClientFromFile(path)
	expectKind(t, err, thalovant.ErrIdentity, "0644 identity file")
	if !strings.Contains(err.Error(), "too permissive") {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "hivemind")); err == nil {
		t.Fatal("a refused identity must not create Noise state")
	}
}
