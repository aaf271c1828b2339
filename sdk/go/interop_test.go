package thalovant_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

// pythonAsk runs the repository's Python SDK (the testbed's python) on an identity file: one
// ask over protocol, then it prints the Noise pattern and the reply text.
const pythonAsk = `
import sys
from thalovant import ThalovantClient
with ThalovantClient.from_identity_file(sys.argv[1], protocol=sys.argv[2]) as client:
    reply = client.ask("Tell me a short clean joke.")
    print(client.connection_info().noise_pattern)
    print(reply.text)
`

func runPython(t *testing.T, identityFile string, protocol thalovant.HubProtocol) (string, string) {
	t.Helper()
	b := liveTestbed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Python, "-c", pythonAsk, identityFile, string(protocol))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python SDK over %s: %v\n%s%s", protocol, err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("python SDK printed %q", lines)
	}
	return lines[0], lines[1]
}

func goAsk(t *testing.T, identityFile string, protocol thalovant.HubProtocol) (string, string) {
	t.Helper()
	identity, err := thalovant.IdentityFromFile(identityFile)
	if err != nil {
		t.Fatal(err)
	}
	client := connect(t, identity, protocol)
	defer client.Close(context.Background())
	reply, err := client.Ask(ctxTimeout(t, 20*time.Second), "Tell me a short clean joke.", thalovant.RequestOptions{})
	if err != nil {
		t.Fatalf("Go SDK over %s: %v", protocol, err)
	}
	return client.NoisePattern(), reply.Text
}

// One identity file and its Noise state (the "hivemind" folder beside it), used in turn by
// the Python SDK and by this one: the second and third connections are KK, no pin conflicts.
func TestInterchangeableWithPythonSDK(t *testing.T) {
	for _, protocol := range carriers {
		t.Run(string(protocol), func(t *testing.T) {
			_, path := provision(t, "go-interop-"+string(protocol))
			if pattern, text := runPython(t, path, protocol); pattern != "XXpsk2" || text != joke {
				t.Fatalf("python first: %s %q", pattern, text)
			}
			if pattern, text := goAsk(t, path, protocol); pattern != "KKpsk0" || text != joke {
				t.Fatalf("Go second: %s %q", pattern, text)
			}
			if pattern, text := runPython(t, path, protocol); pattern != "KKpsk0" || text != joke {
				t.Fatalf("python third: %s %q", pattern, text)
			}
			entries, err := os.ReadDir(filepath.Join(filepath.Dir(path), "hivemind"))
			if err != nil {
				t.Fatal(err)
			}
			keys := 0
			for _, entry := range entries {
				if strings.HasSuffix(entry.Name(), "_noise.key") {
					keys++
				}
			}
			if keys != 1 {
				t.Fatalf("the two SDKs must share one client key, found %d", keys)
			}
		})
	}
	// and the other way round: this SDK first, the Python SDK after it
	_, path := provision(t, "go-interop-first")
	if pattern, _ := goAsk(t, path, thalovant.ProtocolWSS); pattern != "XXpsk2" {
		t.Fatalf("Go first: %s", pattern)
	}
	if pattern, text := runPython(t, path, thalovant.ProtocolWSS); pattern != "KKpsk0" || text != joke {
		t.Fatalf("python after Go: %s %q", pattern, text)
	}
}

// This SDK against hivemind-core 5.3.10a1 (the testbed's hm5) over ws, https and mqtt: XX on
// first contact, then KK on reconnect. hivemind-core pins the first client key it sees for
// the access key, so every connection here uses one Noise state folder.
func TestHivemindCore(t *testing.T) {
	b := liveTestbed(t)
	if b.HM5 == nil {
		t.Fatal("the testbed runs without hivemind-core: use `python -m peers testbed --hm5`")
	}
	identity, err := thalovant.IdentityFromFile(b.HM5.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	ask := func(protocol thalovant.HubProtocol, wantPattern string) {
		t.Helper()
		client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: protocol, NoiseStateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close(context.Background())
		if err := client.Connect(ctxTimeout(t, 40*time.Second)); err != nil {
			t.Fatalf("hm5 %s: %v", protocol, err)
		}
		reply, err := client.Ask(ctxTimeout(t, 20*time.Second), "hello there", thalovant.RequestOptions{})
		if err != nil {
			t.Fatalf("hm5 %s ask: %v", protocol, err)
		}
		if client.NoisePattern() != wantPattern || !strings.Contains(reply.Text, "You said") || !strings.Contains(reply.Text, "hello there") {
			t.Fatalf("hm5 %s: pattern %s, reply %q", protocol, client.NoisePattern(), reply.Text)
		}
	}
	for _, protocol := range carriers {
		if protocol == thalovant.ProtocolMQTT {
			// MQTT shares the HTTPS pin (dataplane.md 1.8): forget it to show XX first here too
			pin := strings.TrimRight(identity.EndpointBase(), "/")
			if err := (&thalovant.NoiseStore{Directory: state}).RemovePin(pin); err != nil {
				t.Fatal(err)
			}
		}
		ask(protocol, "XXpsk2")
		ask(protocol, "KKpsk0")
	}
}
