package thalovant_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// The hub goes down under a connected client: the next ask is a connection error; once the
// hub is back (same data, same port) the client reconnects by itself, with KK, on the failure
// policy's schedule (a retry every 0.5-1 s during the first minute), and the next ask succeeds.
func TestHubRestart(t *testing.T) {
	liveTestbed(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dataDir, port, mqttPort := filepath.Join(t.TempDir(), "data"), freePort(t), freePort(t)
	password := "restart-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	stop := ownServer(t, dataDir, port, mqttPort, password)
	defer func() { stop() }()
	t.Setenv("SSL_CERT_FILE", filepath.Join(dataDir, "ca.pem"))
	t.Setenv("REQUESTS_CA_BUNDLE", filepath.Join(dataDir, "ca.pem"))
	t.Setenv("CURL_CA_BUNDLE", filepath.Join(dataDir, "ca.pem"))
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: "https://127.0.0.1:" + strconv.Itoa(port)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 2*time.Minute)
	if _, err := api.Login(ctx, "demo@example.com", password, ""); err != nil {
		t.Fatal(err)
	}
	hub, err := api.GetPublicHub(ctx, "joke-garden")
	if err != nil {
		t.Fatal(err)
	}
	result, err := api.CreateClientIdentityForHubID(ctx, hub.ID, thalovant.BootstrapIdentityOptions{Name: "go-restart"})
	if err != nil {
		t.Fatal(err)
	}
	api.CloseIdleConnections()
	client, err := thalovant.NewClientWithOptions(result.Identity, thalovant.ClientOptions{Protocol: thalovant.ProtocolWSS, NoiseStateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	if _, err := client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{}); err != nil || client.NoisePattern() != "XXpsk2" {
		t.Fatalf("first ask: %v %s", err, client.NoisePattern())
	}

	stop()
	_, err = client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{Timeout: 20 * time.Second})
	if !errors.Is(err, thalovant.ErrConnection) {
		t.Fatalf("ask with the hub down: %v", err)
	}

	// the background loop brings the link back by itself (it retries every 0.5-1 s while the
	// outage is young); wait for that, not for a timer
	stop = ownServer(t, dataDir, port, mqttPort, password)
	ready := time.Now()
	if err := thalovant.WaitConnected(ctx, client); err != nil {
		t.Fatalf("the link did not come back by itself: %v", err)
	}
	t.Logf("link back %s after the hub was ready", time.Since(ready).Round(time.Millisecond))
	reply, err := client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{})
	if err != nil || reply.Text != joke || client.NoisePattern() != "KKpsk0" {
		t.Fatalf("ask after the restart: %v %q %s", err, reply, client.NoisePattern())
	}
	_ = client.Close(context.Background())
}
