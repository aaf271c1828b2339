package thalovant_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

// ownServer runs `thalovant-server serve --demo` of the testbed's installation on data dir
// and port, until stop; it returns once the server says it is ready.
func ownServer(t *testing.T, dataDir string, port, mqttPort int, password string) (stop func()) {
	t.Helper()
	b := liveTestbed(t)
	args := append(append([]string{}, b.ServerCommand[1:]...), "serve", "--data-dir", dataDir, "--host", "127.0.0.1",
		"--port", strconv.Itoa(port), "--mqtt-port", strconv.Itoa(mqttPort), "--demo")
	cmd := exec.Command(b.ServerCommand[0], args...)
	cmd.Env = append(os.Environ(), "THALOVANT_DEMO_PASSWORD="+password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := bufio.NewScanner(out)
	ready := false
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "Thalovant API: ") {
			ready = true
			break
		}
	}
	go func() {
		for lines.Scan() {
		}
		_ = cmd.Wait()
		close(exited)
	}()
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
	}
	if !ready {
		stop()
		t.Fatal("the server exited before it was ready")
	}
	return stop
}

func freePort(t *testing.T) int {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

// restartableHub runs a demo server of its own (ownServer) and makes a WSS client identity
// for its joke hub; stop and start stop it and run it again on the same data and port. The
// caller defers stop (after its leak check, so that the check sees the server gone).
type restartableHub struct {
	t                 *testing.T
	dataDir, password string
	port, mqttPort    int
	stopServer        func()
	identity          *thalovant.Identity
}

func newRestartableHub(t *testing.T, ctx context.Context, name string) *restartableHub {
	h := &restartableHub{t: t, dataDir: filepath.Join(t.TempDir(), "data"), port: freePort(t), mqttPort: freePort(t),
		password: "restart-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	h.start()
	made := false
	defer func() {
		if !made {
			h.stop()
		}
	}()
	t.Setenv("SSL_CERT_FILE", filepath.Join(h.dataDir, "ca.pem"))
	t.Setenv("REQUESTS_CA_BUNDLE", filepath.Join(h.dataDir, "ca.pem"))
	t.Setenv("CURL_CA_BUNDLE", filepath.Join(h.dataDir, "ca.pem"))
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: "https://127.0.0.1:" + strconv.Itoa(h.port)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Login(ctx, "demo@example.com", h.password, ""); err != nil {
		t.Fatal(err)
	}
	hub, err := api.GetPublicHub(ctx, "joke-garden")
	if err != nil {
		t.Fatal(err)
	}
	result, err := api.CreateClientIdentityForHubID(ctx, hub.ID, thalovant.BootstrapIdentityOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	api.CloseIdleConnections()
	h.identity = result.Identity
	made = true
	return h
}

func (h *restartableHub) start() {
	h.stopServer = ownServer(h.t, h.dataDir, h.port, h.mqttPort, h.password)
}

// stop stops the server (SIGTERM: it closes every link saying it is going away); idempotent.
func (h *restartableHub) stop() {
	if h.stopServer != nil {
		h.stopServer()
		h.stopServer = nil
	}
}

// holdingProxy forwards TCP connections to target until close (the caller defers it). After
// hold, what a client sends on the connections already open is held back until the hub next
// sends something on that connection (for a hub shutting down: its close frame), and only
// then passed on: the hub has said it is going away before it could read what was held.
type holdingProxy struct {
	listener net.Listener
	target   string
	mu       sync.Mutex
	conns    []*heldConn
	held     chan struct{} // closed when the first bytes are held back
	heldOnce sync.Once
	wg       sync.WaitGroup
}

type heldConn struct {
	mu     sync.Mutex
	client net.Conn
	hub    net.Conn
	hold   bool
	buffer []byte
}

func newHoldingProxy(t *testing.T, target string) *holdingProxy {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{listener: listener, target: target, held: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *holdingProxy) port() int { return p.listener.Addr().(*net.TCPAddr).Port }

func (p *holdingProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		hub, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &heldConn{client: client, hub: hub}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.clientToHub(c)
		go p.hubToClient(c)
	}
}

func (p *holdingProxy) clientToHub(c *heldConn) {
	defer p.wg.Done()
	defer c.hub.Close()
	buffer := make([]byte, 32*1024)
	for {
		n, err := c.client.Read(buffer)
		if n > 0 {
			c.mu.Lock()
			if c.hold {
				p.heldOnce.Do(func() { close(p.held) })
				c.buffer = append(c.buffer, buffer[:n]...)
			} else if _, werr := c.hub.Write(buffer[:n]); werr != nil {
				err = werr
			}
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *holdingProxy) hubToClient(c *heldConn) {
	defer p.wg.Done()
	defer c.client.Close()
	buffer := make([]byte, 32*1024)
	for {
		n, err := c.hub.Read(buffer)
		if n > 0 {
			if _, werr := c.client.Write(buffer[:n]); werr != nil {
				err = werr
			}
			c.mu.Lock()
			if c.hold {
				_, _ = c.hub.Write(c.buffer)
				c.hold, c.buffer = false, nil
			}
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// hold starts holding back what clients send on the connections open now.
func (p *holdingProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.mu.Lock()
		c.hold = true
		c.mu.Unlock()
	}
}

func (p *holdingProxy) close() {
	p.listener.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.client.Close()
		c.hub.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// The hub restarts under a connected client (SIGTERM: it closes the link with 1001/1012, then
// runs again on the same data and port), one restart for two asks:
//
//   - an ask in flight that the hub has not answered (a proxy holds it back until the hub has
//     said it is going away) is sent again, with the same request id, once the link is back,
//     and gets its reply;
//   - an ask made while the hub is down waits for the link and is answered once the client's
//     reconnect loop has brought the link back by itself, with KK.
func TestHubRestart(t *testing.T) {
	liveTestbed(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := ctxTimeout(t, 2*time.Minute)
	hub := newRestartableHub(t, ctx, "go-restart")
	defer hub.stop()
	proxy := newHoldingProxy(t, "127.0.0.1:"+strconv.Itoa(hub.port))
	defer proxy.close()
	identity := *hub.identity
	endpoints := map[string]string{}
	for protocol, endpoint := range identity.DataPlaneEndpoints {
		endpoints[protocol] = strings.Replace(endpoint, ":"+strconv.Itoa(hub.port)+"/", ":"+strconv.Itoa(proxy.port())+"/", 1)
	}
	identity.DataPlaneEndpoints = endpoints
	if wss := identity.EndpointFor(thalovant.ProtocolWSS); !strings.Contains(wss, ":"+strconv.Itoa(proxy.port())+"/") {
		t.Fatalf("the WSS endpoint %q does not go through the proxy", wss)
	}
	client, err := thalovant.NewClientWithOptions(&identity, thalovant.ClientOptions{Protocol: thalovant.ProtocolWSS, NoiseStateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	if _, err := client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{}); err != nil || client.NoisePattern() != "XXpsk2" {
		t.Fatalf("first ask: %v %s", err, client.NoisePattern())
	}

	type answer struct {
		reply *thalovant.Reply
		err   error
	}
	// each ask in a session of its own: the hub tells its jokes in order per session
	ask := func(name string) <-chan answer {
		answered := make(chan answer, 1)
		go func() {
			// generous: this bounds a slow CI machine's restart, it is not a speed goal
			reply, err := client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{
				RequestID: "thalovant-request-go-" + name, SessionID: "thalovant-session-go-" + name, Timeout: 90 * time.Second})
			answered <- answer{reply, err}
		}()
		return answered
	}
	proxy.hold()
	inFlight := ask("in-flight")
	select {
	case <-proxy.held: // the ask went out on the link
	case <-ctx.Done():
		t.Fatal("the ask never went out")
	}
	hub.stop()
	whileDown := ask("while-down")
	if err := thalovant.WaitWaiting(ctx, client, 2); err != nil { // both wait for the link
		t.Fatalf("the asks did not wait for the link: %v", err)
	}
	hub.start()
	for name, answered := range map[string]<-chan answer{"in-flight": inFlight, "while-down": whileDown} {
		got := <-answered
		if got.err != nil || got.reply.Text != joke || got.reply.RequestID != "thalovant-request-go-"+name {
			t.Fatalf("%s ask: %v %+v", name, got.err, got.reply)
		}
	}
	if thalovant.Resent(client) != 1 || client.NoisePattern() != "KKpsk0" {
		t.Fatalf("after the restart: %d asks sent again (want 1), pattern %s", thalovant.Resent(client), client.NoisePattern())
	}
	_ = client.Close(context.Background())
}
