package thalovant_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

// The live tests run against the testbed (`python -m peers testbed --hm5 -- scripts/test`):
// THALOVANT_TESTBED names its testbed.json. Without it they fail, never skip.

type testbed struct {
	Python        string   `json:"python"`
	ServerCommand []string `json:"server_command"`
	CABundle      string   `json:"ca_bundle"`
	Demo          struct {
		APIURL   string `json:"api_url"`
		CAFile   string `json:"ca_file"`
		DataDir  string `json:"data_dir"`
		Email    string `json:"email"`
		Password string `json:"password"`
		HubSlug  string `json:"hub_slug"`
		MQTTPort int    `json:"mqtt_port"`
	} `json:"demo"`
	HM5 *struct {
		IdentityFile string `json:"identity_file"`
		CAFile       string `json:"ca_file"`
	} `json:"hm5"`
	hubID string
}

var (
	bedOnce sync.Once
	bed     *testbed
	bedErr  error
	names   atomic.Int64
)

func liveTestbed(t *testing.T) *testbed {
	t.Helper()
	bedOnce.Do(func() {
		path := os.Getenv("THALOVANT_TESTBED")
		if path == "" {
			bedErr = fmt.Errorf("THALOVANT_TESTBED is not set: run this suite through `.venv/bin/python -m peers testbed --hm5 -- sdk/go/scripts/test`")
			return
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			bedErr = err
			return
		}
		bed = &testbed{}
		if bedErr = json.Unmarshal(raw, bed); bedErr != nil {
			return
		}
		api := signedIn(t, bed)
		hub, err := api.GetPublicHub(context.Background(), bed.Demo.HubSlug)
		if err != nil {
			bedErr = err
			return
		}
		bed.hubID = hub.ID
	})
	if bedErr != nil {
		t.Fatalf("testbed: %v", bedErr)
	}
	return bed
}

func signedIn(t *testing.T, b *testbed) *thalovant.ControlPlane {
	t.Helper()
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: b.Demo.APIURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Login(context.Background(), b.Demo.Email, b.Demo.Password, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	return api
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), names.Add(1))
}

// provision creates a client identity of the demo hub and writes it (0600) into its own
// folder, so its Noise state (the "hivemind" folder beside it) is its own too.
func provision(t *testing.T, prefix string) (*thalovant.BootstrapIdentityResult, string) {
	t.Helper()
	b := liveTestbed(t)
	api := signedIn(t, b)
	defer api.CloseIdleConnections() // no connection outlives the call (the leak checks)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	result, err := api.CreateClientIdentityForHubID(ctx, b.hubID, thalovant.BootstrapIdentityOptions{Name: uniqueName(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.json")
	if err := result.Identity.Save(path); err != nil {
		t.Fatal(err)
	}
	return result, path
}

var carriers = []thalovant.HubProtocol{thalovant.ProtocolWSS, thalovant.ProtocolHTTPS, thalovant.ProtocolMQTT}

func connect(t *testing.T, identity *thalovant.Identity, protocol thalovant.HubProtocol) *thalovant.Client {
	t.Helper()
	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: protocol})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Connect(ctx); err != nil {
		t.Fatalf("%s connect: %v", protocol, err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return client
}
