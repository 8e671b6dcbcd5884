package main

// Crash-exact recovery, with real processes: the ratingsd binary, built
// here, consumes the committed stream from a real NATS server (in this test
// process, JetStream on a file store) and is killed with SIGKILL at several
// points, or stopped with SIGTERM over core NATS, and restarted on the same
// -data directory. Its answers at the end must be those of a run that was
// never interrupted, byte for byte. Everything is observed from outside:
// the process, NATS and HTTP, so the test holds whatever the engine's keys
// and checkpoint sections look like inside.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/bench"
)

// streamPath is the committed stream (testdata/stream/README.md): one hour,
// 2025-03-14 19:30–20:30 UTC, events in time order.
var streamPath = filepath.Join("..", "..", "testdata", "stream", "prime-20k.tvs")

// crashLateness is the -lateness of every run. The runs replay 2025 events
// under today's wall clock, so a minute seals when the watermark — the
// newest event time, advanced by the wall time the stream stays idle, minus
// the lateness — passes its end: the last minute seals crashLateness after
// the last event, and a restart must be back within crashLateness (minus
// nothing: the stream is in time order) for no replayed event to be late.
const crashLateness = 10 * time.Second

// missing fails in CI and skips elsewhere: a test whose tool is not there
// must not pass silently where it counts.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// buildRatingsd builds this package's binary into a temporary directory.
func buildRatingsd(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		missing(t, "the go tool is not on PATH, so the ratingsd binary cannot be built: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ratingsd")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ratingsd: %v\n%s", err, out)
	}
	return bin
}

// startBroker starts a NATS server with JetStream on a file store, on a
// random loopback port.
func startBroker(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready after 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// daemon is one ratingsd process.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://host:port
	logs *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line)
	l.b.WriteByte('\n')
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var dashboardRE = regexp.MustCompile(`dashboard=http://([0-9.:]+)/`)

// startDaemon runs bin with args and returns once it serves HTTP. The
// environment holds no RATINGS_ variable: only args configure it.
func startDaemon(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RATINGS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ratingsd: %v", err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.logs.add(line)
			if m := dashboardRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() { d.kill() })
	select {
	case a := <-addr:
		d.base = "http://" + a
	case <-d.done:
		t.Fatalf("ratingsd %s exited at start: %v\n%s", strings.Join(args, " "), d.err, d.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("ratingsd did not announce its HTTP address within 30s:\n%s", d.logs)
	}
	return d
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// term sends SIGTERM and requires a clean exit within 20s.
func (d *daemon) term() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.kill()
		d.t.Fatalf("ratingsd did not stop within 20s of SIGTERM:\n%s", d.logs)
	}
	if d.err != nil {
		d.t.Fatalf("ratingsd after SIGTERM: %v\n%s", d.err, d.logs)
	}
}

func (d *daemon) get(path string) (int, []byte) {
	d.t.Helper()
	resp, err := http.Get(d.base + path)
	if err != nil {
		d.t.Fatalf("GET %s: %v\n%s", path, err, d.logs)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// metric returns the value of the sample named exactly name (with its
// labels, as /metrics writes them), 0 if absent.
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	code, body := d.get("/metrics")
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				d.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// waitFor polls cond every 20ms for up to timeout.
func (d *daemon) waitFor(what string, timeout time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-d.done:
			d.t.Fatalf("ratingsd exited while waiting for %s: %v\n%s", what, d.err, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sealedThrough waits until the newest sealed minute is at or after last.
func (d *daemon) sealedThrough(last time.Time) {
	d.t.Helper()
	d.waitFor("the run's last minute sealed", crashLateness+20*time.Second, func() bool {
		var now struct{ Sealed *struct{ Minute time.Time } }
		code, body := d.get("/v1/now")
		if code != http.StatusOK || json.Unmarshal(body, &now) != nil {
			return false
		}
		return now.Sealed != nil && !now.Sealed.Minute.Before(last)
	})
}

// acked returns the stream sequence below which the daemon's durable
// consumer of stream has acknowledged everything: it acknowledges a message
// only once its events are in the engine.
func acked(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	c, err := s.Consumer(t.Context(), natsio.DefaultDurable)
	if err != nil {
		return 0 // between a start's deletion of the consumer and its re-creation
	}
	i, err := c.Info(t.Context())
	if err != nil {
		return 0
	}
	return i.AckFloor.Stream
}

var restoredRE = regexp.MustCompile(`msg="restored checkpoint".* stream_seq=([0-9]+)`)

// restoredSeq returns the stream position of the checkpoint d restored, as
// its start-up log says, and false if it started empty.
func (d *daemon) restoredSeq() (uint64, bool) {
	m := restoredRE.FindStringSubmatch(d.logs.String())
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	return n, err == nil
}

// replay is the committed stream and its truth.
type replay struct {
	batches [][]event.Event
	events  int
	truth   *bench.Truth
	first   time.Time // the run's first minute
	end     time.Time // the end of its last minute
}

func loadReplay(t *testing.T) *replay {
	t.Helper()
	truth, err := bench.LoadTruth(streamPath + ".truth")
	if errors.Is(err, os.ErrNotExist) {
		missing(t, "no committed stream: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := bench.OpenStream(streamPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rp := &replay{truth: truth}
	var evs []event.Event
	for {
		evs, err = r.Next(evs[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b := make([]event.Event, len(evs))
		for i, e := range evs {
			b[i] = event.Event{Device: slices.Clone(e.Device), Channel: slices.Clone(e.Channel),
				Region: slices.Clone(e.Region), TS: e.TS, Kind: e.Kind}
		}
		rp.batches = append(rp.batches, b)
		rp.events += len(b)
	}
	info := truth.Info()
	rp.first = info.FirstMinute
	rp.end = info.FirstMinute.Add(time.Duration(info.Minutes) * time.Minute)
	return rp
}

// publish sends batches[from:to] to subject.> as binary frames of 256 events
// on one subject, so that the stream's messages are in time order as the
// file is, pausing pause after each batch of the file. With js, the
// messages go to the JetStream stream that binds the subject.
func publish(t *testing.T, nc *nats.Conn, subject string, js bool, batches [][]event.Event, pause time.Duration) {
	pub, err := bench.NewPublisher(nc, bench.PublishConfig{
		Subject: subject, Partitions: 1, Format: bench.FormatBinary, Batch: 256, JetStream: js,
	})
	if err != nil {
		t.Error(err)
		return
	}
	ctx := context.Background()
	for _, b := range batches {
		if err := pub.Publish(ctx, b); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(pause)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		t.Error(err)
	}
	if err := nc.Flush(); err != nil {
		t.Error(err)
	}
}

// answers asks d everything the comparison covers and returns each answer's
// body by its query: every channel's minute curve over the run, reach over
// every window of the truth for all channels, the truth's channel sets and
// (over the whole run) every channel, the capacity view of every region and,
// in the tuning model, the flows of the first channels in every minute.
func answers(d *daemon, rp *replay, model string) map[string]string {
	d.t.Helper()
	q := func(v url.Values) string { return v.Encode() }
	span := func(from, to time.Time) url.Values {
		return url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	}
	var paths []string
	for _, ch := range rp.truth.Channels() {
		v := span(rp.first, rp.end)
		v.Set("channel", ch)
		paths = append(paths, "/v1/audience?"+q(v))
	}
	for _, w := range rp.truth.ReachWindows() {
		sets := append([][]string{nil}, rp.truth.ReachSets()...)
		if w.From.Equal(rp.first) && w.To.Equal(rp.end) {
			for _, ch := range rp.truth.Channels() {
				sets = append(sets, []string{ch})
			}
		}
		for _, set := range sets {
			v := span(w.From, w.To)
			v["channel"] = set
			paths = append(paths, "/v1/reach?"+q(v))
		}
	}
	for _, r := range rp.truth.Regions() {
		v := span(rp.first, rp.end)
		v.Set("region", r)
		paths = append(paths, "/v1/capacity?"+q(v))
	}
	if model == "tuning" {
		for _, ch := range rp.truth.Channels()[:5] {
			for _, m := range rp.truth.Minutes() {
				paths = append(paths, "/v1/flow?"+q(url.Values{"from": {ch}, "minute": {m.Format(time.RFC3339)}}))
			}
		}
	}
	got := make(map[string]string, len(paths))
	for _, p := range paths {
		code, body := d.get(p)
		if code == http.StatusNotFound && strings.HasPrefix(p, "/v1/reach?") {
			// A channel nobody watched in the window is unknown.
		} else if code != http.StatusOK {
			d.t.Fatalf("GET %s: %d %s", p, code, body)
		}
		got[p] = fmt.Sprintf("%d %s", code, body)
	}
	return got
}

// copyTree copies the directory from, its files and subdirectories with
// their modes, to to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if e.IsDir() {
			return os.MkdirAll(dst, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", from, to, err)
	}
}

// canonical drops what a capacity answer says about the live moment (the
// open minute and the devices on each channel right now), which depends on
// when it is asked, not on what was consumed.
func canonical(path, answer string) string {
	if !strings.HasPrefix(path, "/v1/capacity?") {
		return answer
	}
	code, body, _ := strings.Cut(answer, " ")
	var v map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &v) != nil {
		return answer
	}
	delete(v, "now")
	b, _ := json.Marshal(v)
	return code + " " + string(b)
}

// same requires got to equal want, answer by answer.
func same(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	diffs := 0
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		w, g := canonical(k, want[k]), canonical(k, got[k])
		if w == g {
			continue
		}
		if diffs++; diffs <= 8 {
			t.Errorf("%s: GET %s\n got  %.600s\n want %.600s", what, k, g, w)
		}
	}
	if diffs > 8 {
		t.Errorf("%s: %d answers of %d differ in all", what, diffs, len(want))
	}
	if diffs == 0 {
		t.Logf("%s: all %d answers identical to the uninterrupted run", what, len(want))
	}
}

// checkTruth requires the uninterrupted tuning run's curves to be the
// truth's exact audiences, so that the comparison is with a right answer.
func checkTruth(t *testing.T, rp *replay, ans map[string]string) {
	t.Helper()
	wrong := 0
	for _, ch := range rp.truth.Channels() {
		v := url.Values{"channel": {ch}, "from": {rp.first.Format(time.RFC3339)}, "to": {rp.end.Format(time.RFC3339)}}
		var curve struct {
			Points []struct {
				Minute   time.Time
				Audience int
			}
		}
		_, body, _ := strings.Cut(ans["/v1/audience?"+v.Encode()], " ")
		if err := json.Unmarshal([]byte(body), &curve); err != nil {
			t.Fatalf("audience of %s: %v", ch, err)
		}
		got := make(map[time.Time]int)
		for _, p := range curve.Points {
			got[p.Minute] = p.Audience
		}
		for _, m := range rp.truth.Minutes() {
			if want := rp.truth.Audience(bench.Tuning, ch, m); got[m] != want {
				if wrong++; wrong <= 5 {
					t.Errorf("uninterrupted run: audience of %s at %s is %d, want exactly %d", ch, m.Format("15:04"), got[m], want)
				}
			}
		}
	}
}

// TestCrashRecovery runs, in each model, three ratingsd processes on the
// same stream of events: one uninterrupted (JetStream); one consuming the
// stream as it is published and SIGKILLed five times — early in a life,
// before and after its checkpoints, and once after the whole stream is in
// but before its last minutes sealed — each time restarted on its -data;
// and one over core NATS that is stopped with SIGTERM halfway, after its
// events were published and flushed, and restarted before the second half
// is published. Once every event is consumed and every minute sealed, the
// second and third must give the first's answers, byte for byte: minute
// curves, reach, capacity (minus its live part) and flows.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("runs the binary eleven times for ~45s; not with -short (but always in CI)")
	}
	rp := loadReplay(t)
	bin := buildRatingsd(t)
	ns := startBroker(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info := rp.truth.Info()
	last := rp.end.Add(-time.Minute)
	// Every run hashes devices under the same keys: the keys a first start
	// creates in a seed directory, copied into each run's -data. Estimates
	// (reach; audiences beyond the exact range in the events model) depend
	// on the key, exact counts do not.
	seed := filepath.Join(t.TempDir(), "seed")
	startDaemon(t, bin, "-nats", ns.ClientURL(), "-data", seed, "-http", "127.0.0.1:0", "-subject", "seed.>").term()

	for _, model := range []string{"tuning", "events"} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			flags := func(t *testing.T, name string, jsOn bool) []string {
				data := filepath.Join(t.TempDir(), name)
				copyTree(t, filepath.Join(seed, "keys"), filepath.Join(data, "keys"))
				args := []string{
					"-nats", ns.ClientURL(), "-data", data, "-http", "127.0.0.1:0",
					"-subject", model + "." + name + ".>", "-model", model,
					"-lateness", crashLateness.String(), "-min-dwell", info.MinDwell.String(),
					"-inactivity", info.Inactivity.String(), "-checkpoint-every", "250ms", "-workers", "2",
				}
				if jsOn {
					args = append(args, "-jetstream", model+"-"+name)
				}
				return args
			}
			stream := func(t *testing.T, name string) jetstream.Stream {
				s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
					Name: model + "-" + name, Subjects: []string{model + "." + name + ".>"},
					MaxAge: time.Hour, Storage: jetstream.FileStorage,
				})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			lastSeq := func(t *testing.T, s jetstream.Stream) float64 {
				i, err := s.Info(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return float64(i.State.LastSeq)
			}

			var ref, crashed, termed map[string]string
			t.Run("runs", func(t *testing.T) {
				// Uninterrupted: the whole stream is in before the start.
				t.Run("uninterrupted", func(t *testing.T) {
					t.Parallel()
					s := stream(t, "ref")
					publish(t, nc, model+".ref", true, rp.batches, 0)
					total := lastSeq(t, s)
					d := startDaemon(t, bin, flags(t, "ref", true)...)
					d.waitFor("the stream consumed", 30*time.Second, func() bool {
						return float64(acked(t, s)) >= total
					})
					d.sealedThrough(last)
					if got := d.metric(`ratings_events_total{result="accepted"}`); got != float64(rp.events) {
						t.Errorf("uninterrupted run accepted %v events, the stream has %d", got, rp.events)
					}
					if got := d.metric(`ratings_events_total{result="rejected"}`); got != 0 {
						t.Errorf("uninterrupted run rejected %v events", got)
					}
					ref = answers(d, rp, model)
				})

				// SIGKILL at several points while the stream is published.
				t.Run("sigkill", func(t *testing.T) {
					t.Parallel()
					s := stream(t, "crash")
					published := make(chan struct{})
					go func() {
						defer close(published)
						// 40 batches of the file over about 4s.
						publish(t, nc, model+".crash", true, rp.batches, 100*time.Millisecond)
					}()
					args := flags(t, "crash", true)
					d := startDaemon(t, bin, args...)
					// The whole stream is 637 messages; a kill point is a share
					// of them processed and checkpoints written in this life.
					const messages = 637
					// kill SIGKILLs d and restarts it, and counts the restarts
					// that resumed before what the killed process had
					// acknowledged: those replay events the broker considered
					// done, which only the checkpoint's position brings back.
					replayed := 0
					kill := func() {
						before := acked(t, s)
						d.kill()
						d = startDaemon(t, bin, args...)
						seq, ok := d.restoredSeq()
						if !ok {
							t.Fatalf("no checkpoint restored after a SIGKILL:\n%s", d.logs)
						}
						if seq < before {
							replayed++
						}
						t.Logf("SIGKILL with messages up to %d acknowledged; restarted from the checkpoint at %d", before, seq)
					}
					for _, p := range []struct {
						share       float64
						checkpoints float64
					}{{0.15, 2}, {0.35, 1}, {0.45, 0}, {0.75, 3}} {
						d.waitFor(fmt.Sprintf("%.0f%% processed, %v checkpoints", 100*p.share, p.checkpoints), 30*time.Second, func() bool {
							return float64(acked(t, s)) >= p.share*messages &&
								d.metric("ratings_checkpoint_seconds_count") >= p.checkpoints
						})
						kill()
					}
					<-published
					total := lastSeq(t, s)
					if total != messages {
						t.Errorf("the stream holds %v messages, the kill points assume %d", total, messages)
					}
					// Once more with every event in, before the last minutes seal.
					d.waitFor("the stream consumed", 30*time.Second, func() bool {
						return float64(acked(t, s)) >= total
					})
					kill()
					if replayed == 0 {
						t.Errorf("no restart resumed before what the killed process had acknowledged: the kills did not test the replay")
					}
					d.waitFor("the stream consumed after the last restart", 30*time.Second, func() bool {
						return float64(acked(t, s)) >= total
					})
					d.sealedThrough(last)
					crashed = answers(d, rp, model)
				})

				// SIGTERM over core NATS, after the first half was published and
				// flushed; the second half is published after the restart.
				t.Run("sigterm", func(t *testing.T) {
					t.Parallel()
					half := len(rp.batches) / 2
					firstHalf, secondHalf := 0, 0
					for i, b := range rp.batches {
						if i < half {
							firstHalf += len(b)
						} else {
							secondHalf += len(b)
						}
					}
					args := flags(t, "term", false)
					d := startDaemon(t, bin, args...)
					publish(t, nc, model+".term", false, rp.batches[:half], 0)
					d.waitFor("the first half accepted", 30*time.Second, func() bool {
						return d.metric(`ratings_events_total{result="accepted"}`) >= float64(firstHalf)
					})
					d.term()
					d = startDaemon(t, bin, args...)
					publish(t, nc, model+".term", false, rp.batches[half:], 0)
					d.waitFor("the second half accepted", 30*time.Second, func() bool {
						return d.metric(`ratings_events_total{result="accepted"}`) >= float64(secondHalf)
					})
					d.sealedThrough(last)
					if got := d.metric(`ratings_events_total{result="rejected"}`); got != 0 {
						t.Errorf("after SIGTERM and restart, %v events rejected", got)
					}
					termed = answers(d, rp, model)
				})
			})
			if t.Failed() {
				return
			}
			if model == "tuning" {
				checkTruth(t, rp, ref)
			}
			same(t, "SIGKILLed run", ref, crashed)
			same(t, "SIGTERMed run over core NATS", ref, termed)
		})
	}
}
