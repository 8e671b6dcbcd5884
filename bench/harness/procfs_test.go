package harness

import (
	"os"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	f := func(line string, user, sys float64, wantErr string) {
		t.Helper()
		u, s, err := ParseProcStat([]byte(line))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseProcStat(%q) error %v, want one containing %q", line, err, wantErr)
			}
			return
		}
		if err != nil || u != user || s != sys {
			t.Errorf("ParseProcStat(%q) = %g, %g, %v; want %g, %g", line, u, s, err, user, sys)
		}
	}
	// A command name with spaces and a parenthesis, as the kernel writes it.
	f("4242 (rat ingsd) x) S 1 4242 4242 0 -1 4194560 1083 0 0 0 1234 56 0 0 20 0 9 0 4711 1000 100 18446744073709551615", 12.34, 0.56, "")
	f("1 (init) S 0 1 1 0 -1 4194560 10 0 0 0 7 3 0 0 20 0 1 0 1", 0.07, 0.03, "")
	f("1 init S 0", 0, 0, "no ')'")
	f("1 (init) S 0 1", 0, 0, "fields after the command")
	f("1 (init) S 0 1 1 0 -1 4194560 10 0 0 0 x 3 0 0 20", 0, 0, "not a number")
}

func TestCPUSecondsOfThisProcess(t *testing.T) {
	// Burn a little CPU so that the figure cannot be zero by accident.
	x := 0
	for i := range 50_000_000 {
		x += i ^ x
	}
	got, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || x == 42 {
		t.Errorf("CPUSeconds(self) = %g, want > 0", got)
	}
	rss, peak, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss {
		t.Errorf("Memory(self) = rss %d, peak %d; want 0 < rss ≤ peak", rss, peak)
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tratingsd\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\nBad:\t12 MB\n"
	f := func(name string, want int64, wantErr string) {
		t.Helper()
		got, err := ParseStatusKB([]byte(status), name)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("ParseStatusKB(%s) error %v, want one containing %q", name, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("ParseStatusKB(%s) = %d, %v; want %d", name, got, err, want)
		}
	}
	f("VmRSS", 100<<20, "")
	f("VmHWM", 200<<20, "")
	f("VmSwap", 0, "not found")
	f("Threads", 0, "not a number of kB")
	f("Bad", 0, "not a number of kB")
}

func TestParseCPUInfo(t *testing.T) {
	model, n := ParseCPUInfo([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"))
	if model != "AMD EPYC 7B13" || n != 2 {
		t.Errorf("ParseCPUInfo = %q, %d; want AMD EPYC 7B13, 2", model, n)
	}
}
