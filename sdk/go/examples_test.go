package thalovant_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

// Every example under examples/ (the guide's Go snippets) runs against serve --demo on all
// three carriers and prints what the guide promises.

const joke = "Why did the hub keep good logs? It wanted every punchline to be traceable."
const capabilities = "This hub can answer quick joke and trivia requests."

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func exampleBinary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "thalovant-go-examples-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "./examples/...").CombinedOutput()
		if err != nil {
			buildErr = &exampleBuildError{string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("building the examples: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

type exampleBuildError struct{ output string }

func (e *exampleBuildError) Error() string { return e.output }

// runExample runs an example in dir with the testbed's variables plus extra; it returns its
// standard output lines.
func runExample(t *testing.T, name, dir string, extra map[string]string) []string {
	t.Helper()
	b := liveTestbed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exampleBinary(t, name))
	cmd.Dir = dir
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "THALOVANT_") || strings.HasPrefix(kv, "THALOVANT_TESTBED=") || strings.HasPrefix(kv, "THALOVANT_API_URL=") {
			env = append(env, kv)
		}
	}
	env = append(env, "THALOVANT_EMAIL="+b.Demo.Email, "THALOVANT_PASSWORD="+b.Demo.Password, "THALOVANT_HUB_ID="+b.hubID,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	for key, value := range extra {
		env = append(env, key+"="+value)
	}
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s failed: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, stderr.String())
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

func TestExampleQuickstart(t *testing.T) {
	for _, protocol := range carriers {
		t.Run(string(protocol), func(t *testing.T) {
			lines := runExample(t, "quickstart", t.TempDir(), map[string]string{
				"THALOVANT_PROTOCOL": string(protocol), "THALOVANT_CLIENT_NAME": uniqueName("go-demo-client"),
			})
			if len(lines) != 1 || lines[0] != joke {
				t.Fatalf("quickstart printed %q", lines)
			}
		})
	}
}

func TestExampleControlPlane(t *testing.T) {
	b := liveTestbed(t)
	lines := runExample(t, "discover_hubs", t.TempDir(), nil)
	if len(lines) < 4 || !strings.Contains(lines[0], b.hubID+" joke-garden Joke Garden") {
		t.Fatalf("discover_hubs printed %q", lines)
	}
	if !strings.HasPrefix(lines[1], "Joke Garden hub_") || lines[len(lines)-1] != "Joke Garden" {
		t.Fatalf("discover_hubs printed %q", lines)
	}
	name := uniqueName("checkout-kiosk")
	created := runExample(t, "create_identity", t.TempDir(), map[string]string{"THALOVANT_CLIENT_NAME": name})
	if len(created) != 1 || !strings.Contains(created[0], `site_id="`+name+`"`) || !strings.Contains(created[0], "password=<redacted>") {
		t.Fatalf("create_identity printed %q", created)
	}
}

func TestExampleLoadIdentity(t *testing.T) {
	result, _ := provision(t, "go-load")
	dir := t.TempDir()
	identity := result.Identity
	if err := identity.Save(filepath.Join(dir, "_identity.json")); err != nil {
		t.Fatal(err)
	}
	// a "prod" profile in the config file, and the same identity in THALOVANT_* variables
	config := "profile: default\nprofiles:\n  prod:\n    identity:\n" +
		"      access_key: " + identity.AccessKey + "\n      password: " + identity.Password + "\n" +
		"      site_id: " + identity.SiteID + "\n      default_master: " + identity.DefaultMaster + "\n" +
		"      default_port: " + itoa(identity.DefaultPort) + "\n      default_path: " + identity.DefaultPath + "\n" +
		"      data_plane_endpoints:\n        wss: " + identity.DataPlaneEndpoints["wss"] + "\n"
	if err := os.MkdirAll(filepath.Join(dir, "config", "thalovant"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "thalovant", "config.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := runExample(t, "load_identity", dir, map[string]string{
		"THALOVANT_ACCESS_KEY": identity.AccessKey, "THALOVANT_PASSWORD": identity.Password,
		"THALOVANT_SITE_ID": identity.SiteID, "THALOVANT_HUB_HTTP_HOST": identity.DefaultMaster,
		"THALOVANT_HUB_HTTP_PORT": itoa(identity.DefaultPort), "THALOVANT_HUB_WSS_HOST": identity.DataPlaneEndpoints["wss"],
	})
	want := []string{identity.SiteID + " " + identity.SiteID, "wss wss wss"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("load_identity printed %q, want %q", lines, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExampleIdentityProtocols(t *testing.T) {
	result, path := provision(t, "go-protocols")
	lines := runExample(t, "identity_protocols", t.TempDir(), map[string]string{"THALOVANT_IDENTITY": path})
	identity := result.Identity
	want := []string{
		"[wss https mqtt]", identity.DataPlaneEndpoints["wss"], identity.EndpointBase(), identity.DataPlaneEndpoints["mqtt"], "true",
		identity.MQTT.Host + " " + itoa(identity.MQTT.Port),
	}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("identity_protocols printed %q, want %q", lines, want)
	}
}

// TestExamplesOnEveryCarrier runs the runtime examples over wss, https and mqtt, each carrier
// with an identity (and Noise state) of its own.
func TestExamplesOnEveryCarrier(t *testing.T) {
	for _, protocol := range carriers {
		t.Run(string(protocol), func(t *testing.T) {
			_, path := provision(t, "go-examples-"+string(protocol))
			vars := map[string]string{"THALOVANT_IDENTITY": path, "THALOVANT_PROTOCOL": string(protocol)}
			dir := t.TempDir()

			health := runExample(t, "runtime_basics", dir, vars)
			if len(health) != 1 || !strings.HasPrefix(health[0], "health: ok protocol="+string(protocol)) {
				t.Fatalf("runtime_basics printed %q", health)
			}
			if doctor := runExample(t, "doctor", dir, vars); !strings.HasPrefix(doctor[0], "health: ok") || !strings.Contains(doctor[0], "noise=KKpsk0") {
				t.Fatalf("doctor printed %q (the second connection of an identity is KK)", doctor)
			}
			if ask := runExample(t, "ask", dir, vars); ask[0] != capabilities {
				t.Fatalf("ask printed %q", ask)
			}
			inputs := runExample(t, "emit_and_inputs", dir, vars)
			if strings.Join(inputs, "|") != "emitted thalovant.client.status|sent utterance|sent action|sent code" {
				t.Fatalf("emit_and_inputs printed %q", inputs)
			}
			convo := runExample(t, "conversation", dir, vars)
			if len(convo) != 1 || !strings.Contains(strings.ToLower(convo[0]), "blue") || !strings.Contains(strings.ToLower(strings.SplitN(convo[0], ".", 2)[1]), "blue") {
				t.Fatalf("conversation printed %q", convo)
			}
			if contextReply := runExample(t, "context", dir, vars); len(contextReply) != 1 || strings.TrimSpace(contextReply[0]) == "" {
				t.Fatalf("context printed %q", contextReply)
			}
			events := runExample(t, "events", dir, vars)
			if !strings.HasPrefix(events[0], thalovant.EventSpeak+" ") || len(events[0]) <= len("speak ") {
				t.Fatalf("events: first event %q", events)
			}
			stream := strings.Join(events[1:], "\n")
			if strings.Count(stream, thalovant.EventUtteranceHandled) != 4 || !strings.Contains(stream, "speak "+capabilities) || strings.Count(stream, "speak ") < 3 {
				t.Fatalf("events: stream %q", events[1:])
			}
		})
	}
}
