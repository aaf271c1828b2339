// Command ask measures this SDK beside the repository's Python SDK on one hub, in one
// invocation: it starts `thalovant-server serve --demo` on free 127.0.0.1 ports in a temporary
// folder, provisions one identity per SDK on the demo hub, then
//
//   - the Python SDK: bench/harness.py's our_sdk_ask (what bench/sdk_ask.py times as "ours"):
//     one timed connect, warmup asks, N sequential timed asks, settle 0;
//   - this SDK: the same, in this process;
//
// and prints both medians, p99s and the ratio Go / Python (goal: median <= 0.5), with this
// process's CPU time per timed ask (a measure that load on the machine disturbs less). With
// -sessions N it then provisions N more identities (bounded concurrency, timed), opens N
// sessions from this process (every one stays open), sends one ask on each at once and counts
// the answers.
//
//	go run ./bench/ask [-n 300] [-warmup 5] [-protocol wss] [-sessions 1000] [-pin=false] [-cpuprofile FILE] [-json]
//
// With two or more CPUs the server runs on the first and every client on the others (-pin,
// the default; see placement.go), so both SDKs are measured with the same placement.
//
// The server and the Python SDK come from the repository's .venv (-python to change it).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

type result struct {
	SDK          string   `json:"sdk"`
	Protocol     string   `json:"protocol"`
	ConnectMS    float64  `json:"connect_ms"`
	NoisePattern string   `json:"noise_pattern"`
	OK           int      `json:"ok"`
	Errors       int      `json:"errors"`
	FirstError   *string  `json:"first_error"`
	MedianMS     *float64 `json:"median_ms"`
	P99MS        *float64 `json:"p99_ms"`
	// CPUPerAskUS is this process's CPU time (user and system) over the timed asks, per ask
	// (Go only).
	CPUPerAskUS *float64 `json:"cpu_us_per_ask,omitempty"`
}

type sessionsResult struct {
	Sessions       int     `json:"sessions"`
	ProvisionS     float64 `json:"provision_s"`
	ProvisionPar   int     `json:"provision_concurrency"`
	ConnectS       float64 `json:"connect_s"`
	ConnectPar     int     `json:"connect_concurrency"`
	Connected      int     `json:"connected"`
	AskS           float64 `json:"ask_s"`
	Answered       int     `json:"answered"`
	AskMedianMS    float64 `json:"ask_median_ms"`
	AskP99MS       float64 `json:"ask_p99_ms"`
	FirstError     string  `json:"first_error,omitempty"`
	GoroutinesOpen int     `json:"goroutines_while_open"`
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "pyproject.toml")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "bench", "harness.py")); err == nil {
				return d
			}
		}
	}
	log.Fatal("run this from inside the repository (bench/harness.py not found above the working directory)")
	return ""
}

func freePort() int {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

type server struct {
	cmd    *exec.Cmd
	apiURL string
	caFile string
}

func startServer(python, dataDir, password string) *server {
	exe := filepath.Join(filepath.Dir(python), "thalovant-server")
	port, mqttPort := freePort(), freePort()
	cmd := exec.Command(exe, "serve", "--data-dir", dataDir, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--mqtt-port", strconv.Itoa(mqttPort), "--demo")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "THALOVANT_") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "THALOVANT_DEMO_PASSWORD="+password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		log.Fatalf("cannot start %s: %v", exe, err)
	}
	lines := bufio.NewScanner(stdout)
	var seen []string
	for lines.Scan() {
		line := lines.Text()
		seen = append(seen, line)
		if strings.HasPrefix(line, "Thalovant API: ") {
			go func() { // keep draining so the server never blocks on a full pipe
				for lines.Scan() {
				}
			}()
			return &server{cmd: cmd, apiURL: fmt.Sprintf("https://127.0.0.1:%d", port), caFile: filepath.Join(dataDir, "ca.pem")}
		}
	}
	log.Fatalf("the server exited before it was ready:\n%s", strings.Join(seen, "\n"))
	return nil
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func percentile(values []float64, q float64) float64 {
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	rank := int(q/100*float64(len(sorted)) + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func median(values []float64) float64 {
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func provision(ctx context.Context, api *thalovant.ControlPlane, hubID, name, folder string) (string, error) {
	result, err := api.CreateClientIdentityForHubID(ctx, hubID, thalovant.BootstrapIdentityOptions{Name: name})
	if err != nil {
		return "", err
	}
	path := filepath.Join(folder, "identity.json")
	return path, result.Identity.Save(path)
}

func goAsk(identityFile string, n, warmup int, protocol, text, cpuProfile string) result {
	identity, err := thalovant.IdentityFromFile(identityFile)
	if err != nil {
		log.Fatal(err)
	}
	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: thalovant.HubProtocol(protocol), ReplySettle: -1})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	started := time.Now()
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	out := result{SDK: "go", Protocol: protocol, ConnectMS: round(float64(time.Since(started).Microseconds())/1000, 2), NoisePattern: client.NoisePattern()}
	var times []float64
	var cpuStart time.Duration
	for i := 0; i < warmup+n; i++ {
		if i == warmup && cpuProfile != "" {
			stop := startCPUProfile(cpuProfile)
			defer stop()
		}
		if i == warmup {
			cpuStart = processCPU()
		}
		t0 := time.Now()
		_, err := client.Ask(ctx, strings.ReplaceAll(text, "{i}", strconv.Itoa(i)), thalovant.RequestOptions{Timeout: 10 * time.Second})
		if err != nil {
			out.Errors++
			if out.FirstError == nil {
				msg := err.Error()
				out.FirstError = &msg
			}
			continue
		}
		if i >= warmup {
			times = append(times, float64(time.Since(t0).Nanoseconds())/1e6)
		}
	}
	cpu := processCPU() - cpuStart
	_ = client.Close(ctx)
	out.OK = len(times)
	if n > 0 {
		perAsk := round(float64(cpu.Nanoseconds())/1e3/float64(n), 1)
		out.CPUPerAskUS = &perAsk
	}
	if len(times) > 0 {
		m, p := round(median(times), 3), round(percentile(times, 99), 3)
		out.MedianMS, out.P99MS = &m, &p
	}
	return out
}

const pythonAsk = `
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from harness import our_sdk_ask
result = asyncio.run(our_sdk_ask(Path(sys.argv[2]), int(sys.argv[3]), protocol=sys.argv[4], text=sys.argv[5], warmup=int(sys.argv[6])))
result["sdk"] = "python"
print(json.dumps(result))
`

func pythonSDKAsk(python, repo, identityFile string, n, warmup int, protocol, text string) result {
	cmd := exec.Command(python, "-c", pythonAsk, filepath.Join(repo, "bench"), identityFile, strconv.Itoa(n), protocol, text, strconv.Itoa(warmup))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		log.Fatalf("the Python SDK run failed: %v\n%s", err, raw)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var out result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		log.Fatalf("the Python SDK run printed %q", raw)
	}
	return out
}

func sessions(ctx context.Context, api *thalovant.ControlPlane, hubID, root string, count, provisionPar, connectPar int) sessionsResult {
	out := sessionsResult{Sessions: count, ProvisionPar: provisionPar, ConnectPar: connectPar}
	var firstErr atomic.Value
	note := func(err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, err.Error())
		}
	}
	files := make([]string, count)
	started := time.Now()
	inParallel(count, provisionPar, func(i int) {
		folder := filepath.Join(root, "sessions", strconv.Itoa(i))
		_ = os.MkdirAll(folder, 0o700)
		path, err := provision(ctx, api, hubID, fmt.Sprintf("bench-session-%d", i), folder)
		note(err)
		files[i] = path
	})
	out.ProvisionS = round(time.Since(started).Seconds(), 2)

	state := filepath.Join(root, "sessions-noise") // one client key for every session: the hub pins per access key
	clients := make([]*thalovant.Client, count)
	started = time.Now()
	inParallel(count, connectPar, func(i int) {
		if files[i] == "" {
			return
		}
		identity, err := thalovant.IdentityFromFile(files[i])
		if err != nil {
			note(err)
			return
		}
		client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: thalovant.ProtocolWSS, NoiseStateDir: state, ReplySettle: -1})
		if err == nil {
			err = client.Connect(ctx)
		}
		if err != nil {
			note(err)
			return
		}
		clients[i] = client
	})
	out.ConnectS = round(time.Since(started).Seconds(), 2)
	for _, client := range clients {
		if client != nil && client.Connected() {
			out.Connected++
		}
	}
	out.GoroutinesOpen = runtime.NumGoroutine()

	var answered atomic.Int64
	latencies := make([]float64, count)
	started = time.Now()
	inParallel(count, count, func(i int) { // every session asks at once
		client := clients[i]
		if client == nil {
			return
		}
		t0 := time.Now()
		reply, err := client.Ask(ctx, "Tell me a joke.", thalovant.RequestOptions{Timeout: 60 * time.Second})
		if err == nil && reply.Text == "" {
			err = errors.New("empty reply")
		}
		if err != nil {
			note(err)
			return
		}
		latencies[i] = float64(time.Since(t0).Nanoseconds()) / 1e6
		answered.Add(1)
	})
	out.AskS = round(time.Since(started).Seconds(), 2)
	out.Answered = int(answered.Load())
	var done []float64
	for _, v := range latencies {
		if v > 0 {
			done = append(done, v)
		}
	}
	if len(done) > 0 {
		out.AskMedianMS, out.AskP99MS = round(median(done), 2), round(percentile(done, 99), 2)
	}
	for _, client := range clients {
		if client != nil {
			_ = client.Close(ctx)
		}
	}
	if v := firstErr.Load(); v != nil {
		out.FirstError = v.(string)
	}
	return out
}

// inParallel runs fn(0..count-1) on at most workers goroutines and waits for them.
func inParallel(count, workers int, fn func(int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fn(i)
			}
		}()
	}
	for i := 0; i < count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}

func main() {
	n := flag.Int("n", 300, "timed asks per SDK")
	warmup := flag.Int("warmup", 5, "untimed asks first")
	protocol := flag.String("protocol", "wss", "carrier: wss, https or mqtt")
	text := flag.String("text", "Tell me a joke.", "the utterance")
	count := flag.Int("sessions", 0, "then open this many concurrent sessions (each its own identity)")
	provisionPar := flag.Int("provision-concurrency", 4, "identities created at once (the server derives each PSK)")
	connectPar := flag.Int("connect-concurrency", 8, "sessions opened at once (each client derives its PSK)")
	python := flag.String("python", "", "the repository's Python (default <repo>/.venv/bin/python)")
	asJSON := flag.Bool("json", false, "print one JSON object")
	spread := flag.Bool("pin", true, "server on one CPU, clients on the others (when there are two or more)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this SDK's timed asks to this file")
	flag.Parse()

	repo := repoRoot()
	if *python == "" {
		*python = filepath.Join(repo, ".venv", "bin", "python")
	}
	root, err := os.MkdirTemp("", "thalovant-go-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	password := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := startServer(*python, filepath.Join(root, "server"), password)
	defer srv.stop()
	var cpus *placement
	if *spread {
		cpus = newPlacement()
	}
	if err := cpus.pinServer(srv.cmd.Process.Pid); err != nil {
		log.Fatal(err)
	}
	if err := cpus.pinClients(); err != nil {
		log.Fatal(err)
	}
	for _, variable := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		_ = os.Setenv(variable, srv.caFile)
	}
	_ = os.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "xdg"))
	_ = os.Setenv("THALOVANT_API_URL", srv.apiURL)

	ctx := context.Background()
	api, err := thalovant.NewControlPlane(thalovant.ControlPlaneOptions{APIURL: srv.apiURL, Timeout: 60 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := api.Login(ctx, "demo@example.com", password, ""); err != nil {
		log.Fatal(err)
	}
	hub, err := api.GetPublicHub(ctx, "joke-garden")
	if err != nil {
		log.Fatal(err)
	}
	for _, who := range []string{"go", "python"} {
		_ = os.MkdirAll(filepath.Join(root, who), 0o700)
	}
	goFile, err := provision(ctx, api, hub.ID, "bench-go", filepath.Join(root, "go"))
	if err != nil {
		log.Fatal(err)
	}
	pyFile, err := provision(ctx, api, hub.ID, "bench-python", filepath.Join(root, "python"))
	if err != nil {
		log.Fatal(err)
	}

	py := pythonSDKAsk(*python, repo, pyFile, *n, *warmup, *protocol, *text)
	goResult := goAsk(goFile, *n, *warmup, *protocol, *text, *cpuProfile)
	summary := map[string]any{"n": *n, "protocol": *protocol, "text": *text, "settle": 0, "go": goResult, "python": py,
		"placement": cpus.String()}
	ratio := func(a, b *float64) any {
		if a == nil || b == nil || *b == 0 {
			return nil
		}
		return round(*a / *b, 4)
	}
	summary["ratio_median"] = ratio(goResult.MedianMS, py.MedianMS)
	summary["ratio_p99"] = ratio(goResult.P99MS, py.P99MS)
	connectRatio := round(goResult.ConnectMS/py.ConnectMS, 4)
	summary["ratio_connect"] = connectRatio
	var sess *sessionsResult
	if *count > 0 {
		s := sessions(ctx, api, hub.ID, root, *count, *provisionPar, *connectPar)
		sess = &s
		summary["sessions"] = s
	}
	api.CloseIdleConnections()

	if *asJSON {
		raw, _ := json.Marshal(summary)
		fmt.Println(string(raw))
	} else {
		fmt.Printf("placement: %s\n", cpus)
		fmt.Printf("%-8s %11s %10s %8s  %-8s %s\n", "", "connect ms", "median ms", "p99 ms", "pattern", "ok/errors")
		for _, row := range []result{py, goResult} {
			cpu := ""
			if row.CPUPerAskUS != nil {
				cpu = fmt.Sprintf("  cpu %.1f us/ask", *row.CPUPerAskUS)
			}
			fmt.Printf("%-8s %11.1f %10.3f %8.3f  %-8s %d/%d%s\n", row.SDK, row.ConnectMS, deref(row.MedianMS), deref(row.P99MS), row.NoisePattern, row.OK, row.Errors, cpu)
		}
		fmt.Printf("ratios go/python over %s: median %v, p99 %v, connect %v (goal: median <= 0.5)\n", *protocol, summary["ratio_median"], summary["ratio_p99"], connectRatio)
		if sess != nil {
			fmt.Printf("sessions: %d identities provisioned in %.1f s (%d at a time); %d/%d connected in %.1f s (%d at a time); %d/%d answered, all asked at once, in %.1f s (median %.0f ms, p99 %.0f ms)\n",
				sess.Sessions, sess.ProvisionS, sess.ProvisionPar, sess.Connected, sess.Sessions, sess.ConnectS, sess.ConnectPar,
				sess.Answered, sess.Sessions, sess.AskS, sess.AskMedianMS, sess.AskP99MS)
			fmt.Printf("goroutines in this process with every session open: %d\n", sess.GoroutinesOpen)
			if sess.FirstError != "" {
				fmt.Println("first error:", sess.FirstError)
			}
		}
	}
	failed := goResult.Errors > 0 || py.Errors > 0 || (sess != nil && sess.Answered != sess.Sessions)
	srv.stop()
	if failed {
		os.Exit(1)
	}
}

// startCPUProfile profiles this process into path until the returned function is called.
func startCPUProfile(path string) func() {
	file, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = file.Close()
	}
}

// processCPU is the CPU time (user and system) this process has used so far.
func processCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

func deref(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}
