package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ParseProcStat returns the user and system CPU seconds of a
// /proc/<pid>/stat line (fields 14 and 15, counted after the command name,
// which may hold spaces and parentheses).
func ParseProcStat(line []byte) (user, system float64, err error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat %q: no ')' after the command name", clip(line))
	}
	f := strings.Fields(string(line[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("proc stat %q: %d fields after the command, want at least 13", clip(line), len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("proc stat: utime %q or stime %q is not a number", f[11], f[12])
	}
	return float64(u) / clockTicks, float64(s) / clockTicks, nil
}

// CPUSeconds returns the user + system CPU seconds process pid has used.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	u, s, err := ParseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	return u + s, nil
}

// ParseStatusKB returns the value in bytes of a "Name:  123 kB" line of a
// /proc/<pid>/status or /proc/meminfo file.
func ParseStatusKB(status []byte, name string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: %q is not a number of kB", name, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number of kB", name, f[0])
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("%s: not found", name)
}

// Memory returns the resident set size and its peak (VmRSS, VmHWM) of
// process pid, in bytes.
func Memory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	if rss, err = ParseStatusKB(b, "VmRSS"); err != nil {
		return 0, 0, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	if peak, err = ParseStatusKB(b, "VmHWM"); err != nil {
		return 0, 0, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	return rss, peak, nil
}

// Machine describes the machine a run measured.
type Machine struct {
	CPU        string // model name
	Cores      int    // logical CPUs
	Memory     int64  // MemTotal, bytes
	Go         string
	OS, Arch   string
	LoadBefore string // /proc/loadavg at the start
}

func (m Machine) String() string {
	return fmt.Sprintf("%d × %s, %.1f GiB, %s %s/%s, load average at start %s",
		m.Cores, m.CPU, float64(m.Memory)/(1<<30), m.Go, m.OS, m.Arch, m.LoadBefore)
}

// ParseCPUInfo returns the first model name and the number of processors
// of a /proc/cpuinfo file.
func ParseCPUInfo(b []byte) (model string, n int) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return model, n
}

// ThisMachine reads the machine's description from /proc.
func ThisMachine() Machine {
	m := Machine{Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU(), CPU: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if model, n := ParseCPUInfo(b); n > 0 {
			m.Cores = n
			if model != "" {
				m.CPU = model
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory, _ = ParseStatusKB(b, "MemTotal")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadBefore = strings.Join(f[:3], " ")
		}
	}
	return m
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
