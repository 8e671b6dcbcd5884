package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Child is a process the harness started: a NATS server, ratingsd, Redis.
// Its output goes to a log file in the run's work directory.
type Child struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, valid after done
}

// children are the processes still running, killed by KillChildren.
var children struct {
	mu  sync.Mutex // guards set
	set map[*Child]struct{}
}

// StartChild starts bin with args, its output appended to logPath. The
// child is killed with SIGKILL if the harness dies (Linux: Pdeathsig) and
// by KillChildren.
func StartChild(name, bin string, args []string, logPath string) (*Child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	c := &Child{Name: name, cmd: cmd, log: f, done: make(chan struct{})}
	children.mu.Lock()
	if children.set == nil {
		children.set = make(map[*Child]struct{})
	}
	children.set[c] = struct{}{}
	children.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		f.Close()
		children.mu.Lock()
		delete(children.set, c)
		children.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Exited reports whether the child has exited, and how.
func (c *Child) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL and waits.
// A grace of 0 kills at once.
func (c *Child) Stop(grace time.Duration) {
	if grace > 0 {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			return
		case <-time.After(grace):
		}
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// KillChildren kills every child still running, one by one by its process
// id, and waits for each.
func KillChildren() {
	children.mu.Lock()
	list := make([]*Child, 0, len(children.set))
	for c := range children.set {
		list = append(list, c)
	}
	children.mu.Unlock()
	for _, c := range list {
		c.Stop(0)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections or c exits.
func waitTCP(ctx context.Context, c *Child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := c.Exited(); done {
			return fmt.Errorf("%s exited before listening on %s: %v (log %s)", c.Name, addr, err, c.log.Name())
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after %s (log %s)", c.Name, addr, timeout, c.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitHTTP waits until url answers 200 or c exits.
func waitHTTP(ctx context.Context, c *Child, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := c.Exited(); done {
			return fmt.Errorf("%s exited before %s answered: %v (log %s)", c.Name, url, err, c.log.Name())
		}
		if code, _, err := httpGet(ctx, url); err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s does not answer 200 after %s (log %s)", c.Name, url, timeout, c.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// httpGet returns the status and body of a GET of url.
func httpGet(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var errMissingTool = errors.New("missing tool")
