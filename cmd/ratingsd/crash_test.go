package main

// Crash-exact recovery, with real processes: the ratingsd binary, built
// here, consumes the committed stream from a real NATS server (in this test
// process, JetStream on a file store) and is killed with SIGKILL at several
// points, or stopped with SIGTERM over core NATS, and restarted on the same
// -data directory. Its answers at the end must be those of a run that was
// never interrupted, byte for byte. Everything is observed from outside:
// the process, NATS and HTTP, so the test holds whatever the engine's
// checkpoint sections look like inside; only the key directory every run
// starts from is made here, with the service's own key ring.
//
// The service keeps minutes for the minute retention behind the wall clock
// and counts reach within one key epoch (docs/semantics.md, Reach tiers), so
// the committed stream, dated 2025, is replayed moved by whole days to the
// recent past: minute and hour boundaries, and the days the windows fall
// in, stay as they were.

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
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/aggregator/service"
	"github.com/ratingsd/ratingsd/bench"
)

// streamPath is the committed stream (testdata/stream/README.md): one hour,
// 2025-03-14 19:30–20:30 UTC, events in time order.
var streamPath = filepath.Join("..", "..", "testdata", "stream", "prime-20k.tvs")

// crashLateness is the -lateness of every run. The runs replay events hours
// old under the wall clock, so a minute seals when the watermark — the
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

// replay is the committed stream and its truth, moved by shift: the batches
// hold the moved events, first and end bound the moved run; the truth is the
// committed one, which the methods below ask at moved times.
type replay struct {
	batches [][]event.Event
	events  int
	truth   *bench.Truth
	shift   time.Duration // a whole number of days
	first   time.Time     // the run's first minute
	end     time.Time     // the end of its last minute
}

// settled is how long before the wall clock the replayed run ends at least
// (see recentShift).
const settled = 2 * time.Minute

// recentShift returns the whole number of days that moves a run ending at
// end to the latest day on which it ends settled before now.
func recentShift(end, now time.Time) time.Duration {
	const day = 24 * time.Hour
	d := now.Add(-settled).Sub(end)
	n := d / day
	if d < 0 && d%day != 0 {
		n-- // round toward the past
	}
	return n * day
}

func TestRecentShift(t *testing.T) {
	end := time.Date(2025, 3, 14, 20, 30, 0, 0, time.UTC)
	f := func(now, wantEnd time.Time) {
		t.Helper()
		shift := recentShift(end, now)
		if got := end.Add(shift); !got.Equal(wantEnd) || shift%(24*time.Hour) != 0 {
			t.Errorf("now %s: the run moved by %s ends at %s, want %s", now, shift, got, wantEnd)
		}
	}
	day := func(d int, hh, mm int) time.Time { return time.Date(2026, 11, d, hh, mm, 0, 0, time.UTC) }
	f(day(27, 6, 18), day(26, 20, 30))
	f(day(27, 20, 31), day(26, 20, 30))
	f(day(27, 20, 32), day(27, 20, 30))
	f(day(27, 23, 59), day(27, 20, 30))
	f(time.Date(2025, 3, 14, 20, 32, 0, 0, time.UTC), end)
	f(time.Date(2025, 3, 14, 20, 31, 0, 0, time.UTC), end.Add(-24*time.Hour))
}

// windows returns the truth's reach windows, moved.
func (rp *replay) windows() []bench.Window {
	ws := rp.truth.ReachWindows()
	for i := range ws {
		ws[i].From, ws[i].To = ws[i].From.Add(rp.shift), ws[i].To.Add(rp.shift)
	}
	return ws
}

// minutes returns the truth's minutes, moved.
func (rp *replay) minutes() []time.Time {
	ms := rp.truth.Minutes()
	for i := range ms {
		ms[i] = ms[i].Add(rp.shift)
	}
	return ms
}

// audience returns the truth's audience of channel in the moved minute m.
func (rp *replay) audience(model bench.Model, channel string, m time.Time) int {
	return rp.truth.Audience(model, channel, m.Add(-rp.shift))
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
	info := truth.Info()
	now := time.Now()
	shift := recentShift(info.FirstMinute.Add(time.Duration(info.Minutes)*time.Minute), now)
	// Events older than the minute retention behind the wall clock are
	// too_old; a minute of margin for the test's own run time.
	minuteRetention := service.DefaultConfig().MinuteRetention
	if oldest := now.Add(-minuteRetention + time.Minute); info.Start.Add(shift).Before(oldest) {
		t.Fatalf("the stream, moved by %s to end by %s, starts at %s: longer than the %s minute retention allows",
			shift, now.Add(-settled).Format(time.RFC3339), info.Start.Add(shift).Format(time.RFC3339), minuteRetention)
	}
	r, err := bench.OpenStream(streamPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rp := &replay{truth: truth, shift: shift}
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
				Region: slices.Clone(e.Region), TS: e.TS + shift.Milliseconds(), Kind: e.Kind}
		}
		rp.batches = append(rp.batches, b)
		rp.events += len(b)
	}
	rp.first = info.FirstMinute.Add(shift)
	rp.end = rp.first.Add(time.Duration(info.Minutes) * time.Minute)
	t.Logf("replaying %s..%s: the committed stream moved by %d days", rp.first.Format(time.RFC3339), rp.end.Format(time.RFC3339), shift/(24*time.Hour))
	return rp
}

// calendar is the key calendar of the runs: the default -day-start.
var calendar keys.Calendar

// seedKeys makes the key directory every run starts from (copied into its
// -data): the pseudonym key and the keys of the days and ISO weeks of the
// replayed run, which a service creates on first use, so that every run
// hashes devices under the same keys. Estimates (reach; audiences beyond
// the exact range in the events model) depend on the keys, exact counts do
// not.
func seedKeys(t *testing.T, dir string, rp *replay) []string {
	t.Helper()
	ring, err := keys.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{keys.PseudonymFile}
	for _, tier := range []keys.Tier{keys.Minute, keys.Reach} {
		for n := calendar.Epoch(tier, rp.first); n <= calendar.Epoch(tier, rp.end.Add(-time.Minute)); n++ {
			if _, err := ring.Key(tier, n); err != nil {
				t.Fatal(err)
			}
			files = append(files, keys.ID(tier, n)+".key")
		}
	}
	return files
}

// sameKeys requires the key files of the seed to be in data's key
// directory, unchanged: the run hashed under the seed's keys.
func sameKeys(t *testing.T, seed, data string, files []string) {
	t.Helper()
	for _, name := range files {
		want, err := os.ReadFile(filepath.Join(seed, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(data, "keys", name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: the key file %s is not the seed's (%v)", data, name, err)
		}
	}
}

// reachQuery is a reach window the comparison asks for, with what
// docs/semantics.md (Reach tiers) says of it: the tier that counts it,
// "minute" or "hour", or none (400, cross epoch).
type reachQuery struct {
	from, to time.Time
	tier     string // "" for 400
	sets     [][]string
}

// wantTier returns the tier that counts [from, to) under the default
// calendar, both ends within retention: the minute tier within one day,
// the reach tier for whole hours within one ISO week, else none.
func wantTier(from, to time.Time) string {
	last := to.Add(-time.Millisecond)
	switch {
	case calendar.Epoch(keys.Minute, from) == calendar.Epoch(keys.Minute, last):
		return "minute"
	case from.Truncate(time.Hour).Equal(from) && to.Truncate(time.Hour).Equal(to) &&
		calendar.Epoch(keys.Reach, from) == calendar.Epoch(keys.Reach, last):
		return "hour"
	}
	return ""
}

// reachQueries returns the truth's windows (over the truth's channel sets,
// all channels and, for the whole run, each channel), and two windows that
// cross the midnight before the run, over all channels: at minute
// resolution, which no tier counts (400), and in whole hours, which the
// reach tier counts if the midnight is not a Monday's (else 400).
func (rp *replay) reachQueries() []reachQuery {
	var qs []reachQuery
	for _, w := range rp.windows() {
		sets := append([][]string{nil}, rp.truth.ReachSets()...)
		if w.From.Equal(rp.first) && w.To.Equal(rp.end) {
			for _, ch := range rp.truth.Channels() {
				sets = append(sets, []string{ch})
			}
		}
		qs = append(qs, reachQuery{w.From, w.To, wantTier(w.From, w.To), sets})
	}
	midnight := rp.first.Truncate(24 * time.Hour)
	to := rp.end.Truncate(time.Hour)
	for _, from := range []time.Time{midnight.Add(-30 * time.Minute), midnight.Add(-time.Hour)} {
		qs = append(qs, reachQuery{from, to, wantTier(from, to), [][]string{nil}})
	}
	return qs
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
	tier := make(map[string]string) // reach path → the tier that must count it
	for _, w := range rp.reachQueries() {
		for _, set := range w.sets {
			v := span(w.from, w.to)
			v["channel"] = set
			p := "/v1/reach?" + q(v)
			paths = append(paths, p)
			tier[p] = w.tier
		}
	}
	for _, r := range rp.truth.Regions() {
		v := span(rp.first, rp.end)
		v.Set("region", r)
		paths = append(paths, "/v1/capacity?"+q(v))
	}
	if model == "tuning" {
		for _, ch := range rp.truth.Channels()[:5] {
			for _, m := range rp.minutes() {
				paths = append(paths, "/v1/flow?"+q(url.Values{"from": {ch}, "minute": {m.Format(time.RFC3339)}}))
			}
		}
	}
	got := make(map[string]string, len(paths))
	for _, p := range paths {
		code, body := d.get(p)
		want, isReach := tier[p]
		switch {
		case isReach && code == http.StatusNotFound:
			// A channel nobody watched in the window is unknown.
		case isReach && want == "":
			if code != http.StatusBadRequest || !strings.Contains(string(body), "spans two key epochs") {
				d.t.Fatalf("GET %s: %d %s; want 400 for a window across two key epochs", p, code, body)
			}
		case code != http.StatusOK:
			d.t.Fatalf("GET %s: %d %s", p, code, body)
		case isReach:
			var r struct{ Tier string }
			if err := json.Unmarshal(body, &r); err != nil || r.Tier != want {
				d.t.Fatalf("GET %s: %s; want it counted by the %s tier", p, body, want)
			}
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
		for _, m := range rp.minutes() {
			if want := rp.audience(bench.Tuning, ch, m); got[m] != want {
				if wrong++; wrong <= 5 {
					t.Errorf("uninterrupted run: audience of %s at %s is %d, want exactly %d", ch, m.Format("15:04"), got[m], want)
				}
			}
		}
	}
}

// TestCrashRecovery runs, in each model, three ratingsd processes on the
// same stream of events: one uninterrupted (JetStream); one consuming the
// stream as it is published and SIGKILLed six times — before its first
// checkpoint, early in a life, before and after its checkpoints, and once
// after the whole stream is in but before its last minutes sealed — each
// time restarted on its -data;
// and one over core NATS that is stopped with SIGTERM halfway, after its
// events were published and flushed, and restarted before the second half
// is published. Once every event is consumed and every minute sealed, the
// second and third must give the first's answers, byte for byte: minute
// curves, reach, capacity (minus its live part) and flows.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("runs the binary twelve times for ~45s; not with -short (but always in CI)")
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
	// Every run hashes devices under the same keys: a seed key directory,
	// copied into each run's -data.
	seed := filepath.Join(t.TempDir(), "seed-keys")
	seeded := seedKeys(t, seed, rp)

	for _, model := range []string{"tuning", "events"} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			flags := func(t *testing.T, name string, jsOn bool) (args []string, data string) {
				data = filepath.Join(t.TempDir(), name)
				copyTree(t, seed, filepath.Join(data, "keys"))
				args = []string{
					"-nats", ns.ClientURL(), "-data", data, "-http", "127.0.0.1:0",
					"-subject", model + "." + name + ".>", "-model", model,
					"-lateness", crashLateness.String(), "-min-dwell", info.MinDwell.String(),
					"-inactivity", info.Inactivity.String(), "-checkpoint-every", "250ms", "-workers", "2",
				}
				if jsOn {
					args = append(args, "-jetstream", model+"-"+name)
				}
				return args, data
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
					args, data := flags(t, "ref", true)
					d := startDaemon(t, bin, args...)
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
					sameKeys(t, seed, data, seeded)
				})

				// SIGKILL at several points while the stream is published.
				t.Run("sigkill", func(t *testing.T) {
					t.Parallel()
					s := stream(t, "crash")
					args, data := flags(t, "crash", true)
					// The first life writes no checkpoint (-checkpoint-every 0
					// checkpoints only at a shutdown, which SIGKILL skips).
					d := startDaemon(t, bin, append(slices.Clone(args), "-checkpoint-every", "0")...)
					published := make(chan struct{})
					go func() {
						defer close(published)
						// 40 batches of the file over about 4s.
						publish(t, nc, model+".crash", true, rp.batches, 100*time.Millisecond)
					}()
					// The whole stream is 637 messages; a kill point is a share
					// of them processed and checkpoints written in this life.
					const messages = 637
					// kill SIGKILLs d and restarts it, and counts the restarts
					// that resumed before what the killed process had
					// acknowledged: those replay events the broker considered
					// done, which only the checkpoint's position (or, with
					// none, the stream's start) brings back.
					replayed := 0
					kill := func(checkpointed bool) {
						before := acked(t, s)
						d.kill()
						d = startDaemon(t, bin, args...)
						seq, ok := d.restoredSeq()
						if ok != checkpointed {
							t.Fatalf("after a SIGKILL of a life that checkpointed (%v): checkpoint restored %v, want %v:\n%s", checkpointed, ok, checkpointed, d.logs)
						}
						if seq < before {
							replayed++
						}
						if ok {
							t.Logf("SIGKILL with messages up to %d acknowledged; restarted from the checkpoint at %d", before, seq)
						} else {
							t.Logf("SIGKILL with messages up to %d acknowledged; restarted with no checkpoint, from the stream's start", before)
						}
					}
					d.waitFor("2% processed", 30*time.Second, func() bool {
						return float64(acked(t, s)) >= 0.02*messages
					})
					kill(false)
					for _, p := range []struct {
						share       float64
						checkpoints float64
					}{{0.15, 2}, {0.35, 1}, {0.45, 0}, {0.75, 3}} {
						d.waitFor(fmt.Sprintf("%.0f%% processed, %v checkpoints", 100*p.share, p.checkpoints), 30*time.Second, func() bool {
							return float64(acked(t, s)) >= p.share*messages &&
								d.metric("ratings_checkpoint_seconds_count") >= p.checkpoints
						})
						kill(true)
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
					kill(true)
					if replayed == 0 {
						t.Errorf("no restart resumed before what the killed process had acknowledged: the kills did not test the replay")
					}
					d.waitFor("the stream consumed after the last restart", 30*time.Second, func() bool {
						return float64(acked(t, s)) >= total
					})
					d.sealedThrough(last)
					crashed = answers(d, rp, model)
					sameKeys(t, seed, data, seeded)
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
					args, data := flags(t, "term", false)
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
					sameKeys(t, seed, data, seeded)
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
