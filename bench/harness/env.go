package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// Env is what the scenarios of a run share: the tools, a work directory
// for logs and data, and one NATS server (a child process, so that its CPU
// is neither the harness's nor ratingsd's).
type Env struct {
	Tools   Tools
	WorkDir string
	NATSURL string
	Logf    func(format string, args ...any)
	nats    *Child
	seq     int // numbers children's data directories and logs
}

// StartEnv starts the NATS server.
func StartEnv(ctx context.Context, tools Tools, workDir string, logf func(string, ...any)) (*Env, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	c, err := StartChild("nats-server", tools.NATSServer,
		[]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, filepath.Join(workDir, "nats-server.log"))
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(ctx, c, addr, 10*time.Second); err != nil {
		c.Stop(0)
		return nil, err
	}
	return &Env{Tools: tools, WorkDir: workDir, NATSURL: "nats://" + addr, Logf: logf, nats: c}, nil
}

// NATSServerPid is the process id of the NATS server.
func (e *Env) NATSServerPid() int { return e.nats.Pid() }

// Close stops the NATS server.
func (e *Env) Close() { e.nats.Stop(2 * time.Second) }

func (e *Env) next(name string) string {
	e.seq++
	return filepath.Join(e.WorkDir, fmt.Sprintf("%s-%03d", name, e.seq))
}
