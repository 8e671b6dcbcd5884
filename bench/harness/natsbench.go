package harness

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// NATSCLIVersion is the natscli release whose `nats bench` measures the
// ceiling; Tools installs it with go install at exactly this version.
const NATSCLIVersion = "v0.5.0"

// NATSBench is one side's result of a `nats bench` run.
type NATSBench struct {
	Side        string  // e.g. "Core NATS subscriber"
	MsgsPerSec  float64 //
	BytesPerSec float64
}

// benchLine matches the summary line of `nats bench` (natscli v0.5):
//
//	NATS Core NATS subscriber stats: 479,355 msgs/sec ~ 46 MiB/sec
//	 NATS Core NATS publisher aggregated stats: 1,234 msgs/sec ~ 1.2 GiB/sec
var benchLine = regexp.MustCompile(`^\s*NATS (.+?) (aggregated )?stats: ([0-9,]+) msgs/sec ~ ([0-9.,]+) ([KMGTPE]i)?B/sec`)

// ParseNATSBench returns the result in the output of `nats bench pub` or
// `nats bench sub`. With several clients it returns the aggregated line.
func ParseNATSBench(out string) (NATSBench, error) {
	var r NATSBench
	found := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if found && m[2] == "" {
			continue // a per-client line after the aggregate: keep the aggregate
		}
		msgs, err := strconv.ParseFloat(strings.ReplaceAll(m[3], ",", ""), 64)
		if err != nil {
			return r, fmt.Errorf("nats bench: rate %q: %w", m[3], err)
		}
		bytes, err := strconv.ParseFloat(strings.ReplaceAll(m[4], ",", ""), 64)
		if err != nil {
			return r, fmt.Errorf("nats bench: throughput %q: %w", m[4], err)
		}
		if m[5] != "" {
			bytes *= float64(uint64(1) << (10 * (1 + strings.Index("KMGTPE", m[5][:1]))))
		}
		r = NATSBench{Side: m[1], MsgsPerSec: msgs, BytesPerSec: bytes}
		found = true
		if m[2] != "" {
			break
		}
	}
	if !found {
		return r, fmt.Errorf("nats bench: no \"stats: N msgs/sec\" line in its output %q", clipString(out, 300))
	}
	return r, nil
}

// Ceiling runs `nats bench sub` and `nats bench pub` on one subject of the
// server at url with msgs messages of size bytes, and returns the
// subscriber's result: what one core NATS subscriber receives, which is the
// ceiling of an intake that receives messages of that size. The run is
// bounded by timeout; a subscriber that misses messages (slow consumer)
// times out and is reported as an error.
func Ceiling(ctx context.Context, natsBin, url string, size, msgs int, timeout time.Duration) (NATSBench, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	subject := fmt.Sprintf("ceiling.%d.%d", size, time.Now().UnixNano())
	args := func(side string) []string {
		return []string{"-s", url, "bench", side, subject, "--msgs", strconv.Itoa(msgs),
			"--size", strconv.Itoa(size), "--no-progress"}
	}
	sub := exec.CommandContext(ctx, natsBin, args("sub")...)
	var subOut lockedBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	setChildAttrs(sub)
	if err := sub.Start(); err != nil {
		return NATSBench{}, fmt.Errorf("nats bench sub: %w", err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	// The subscriber announces itself before it subscribes; give it time to
	// be subscribed before the publisher starts.
	if err := waitOutput(ctx, &subOut, "Starting Core NATS subscriber", 10*time.Second); err != nil {
		_ = sub.Process.Kill()
		<-subDone
		return NATSBench{}, fmt.Errorf("nats bench sub did not start: %w; output %q", err, clipString(subOut.String(), 300))
	}
	time.Sleep(300 * time.Millisecond)
	pub := exec.CommandContext(ctx, natsBin, args("pub")...)
	setChildAttrs(pub)
	pubOut, err := pub.CombinedOutput()
	if err != nil {
		_ = sub.Process.Kill()
		<-subDone
		return NATSBench{}, fmt.Errorf("nats bench pub %d × %d B: %w; output %q", msgs, size, err, clipString(string(pubOut), 300))
	}
	if err := <-subDone; err != nil {
		return NATSBench{}, fmt.Errorf("nats bench sub %d × %d B (did it miss messages?): %w; output %q", msgs, size, err, clipString(subOut.String(), 300))
	}
	return ParseNATSBench(subOut.String())
}

// waitOutput waits until b holds s.
func waitOutput(ctx context.Context, b *lockedBuffer, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no %q after %s", s, timeout)
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
