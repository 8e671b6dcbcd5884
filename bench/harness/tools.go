package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tools are the programs a run starts.
type Tools struct {
	NATS       string // natscli's nats, NATSCLIVersion
	NATSServer string // nats-server at the version of go.mod
	Ratingsd   string // built from this tree, or given
	// RatingsdFrom says where Ratingsd comes from, for the report.
	RatingsdFrom string
	Redis        string // Debian's redis-server
	RedisVer     string
}

// InstallTools builds or finds every tool. Module is the repository root
// (where go.mod is); binDir is the bench-local GOBIN (bench/bin, ignored
// by git) where natscli and nats-server are installed once and reused;
// ratingsd is always rebuilt into workDir, since it is what is measured,
// unless ratingsd names a binary to measure instead. A missing
// redis-server is an error, never a skip.
func InstallTools(ctx context.Context, module, binDir, workDir, ratingsd string, logf func(string, ...any)) (Tools, error) {
	var t Tools
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return t, fmt.Errorf("tools: %w", err)
	}
	t.NATS = filepath.Join(binDir, "nats")
	if out, err := exec.CommandContext(ctx, t.NATS, "--version").Output(); err != nil || strings.TrimSpace(string(out)) != NATSCLIVersion {
		logf("installing natscli %s into %s", NATSCLIVersion, binDir)
		cmd := exec.CommandContext(ctx, "go", "install", "github.com/nats-io/natscli/nats@"+NATSCLIVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+binDir)
		cmd.Dir = module
		if out, err := cmd.CombinedOutput(); err != nil {
			return t, fmt.Errorf("tools: go install natscli %s: %w: %s", NATSCLIVersion, err, clipString(string(out), 2000))
		}
	}
	t.NATSServer = filepath.Join(binDir, "nats-server")
	// go build is a no-op when the cached build is current; it keeps the
	// server at the version go.mod pins.
	if err := goBuild(ctx, module, t.NATSServer, "github.com/nats-io/nats-server/v2"); err != nil {
		return t, err
	}
	if ratingsd != "" {
		if _, err := os.Stat(ratingsd); err != nil {
			return t, fmt.Errorf("tools: ratingsd binary: %w", err)
		}
		t.Ratingsd, t.RatingsdFrom = ratingsd, "the binary "+filepath.Base(ratingsd)+" given with -ratingsd"
	} else {
		t.Ratingsd, t.RatingsdFrom = filepath.Join(workDir, "ratingsd"), "built from this tree"
		if err := goBuild(ctx, module, t.Ratingsd, "./cmd/ratingsd"); err != nil {
			return t, err
		}
	}
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		return t, fmt.Errorf("tools: redis-server is not installed (apt-get install -y redis-server): %w", errMissingTool)
	}
	t.Redis = redis
	out, err := exec.CommandContext(ctx, redis, "--version").Output()
	if err != nil {
		return t, fmt.Errorf("tools: %s --version: %w", redis, err)
	}
	t.RedisVer = strings.TrimSpace(string(out))
	return t, nil
}

func goBuild(ctx context.Context, module, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = module
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tools: go build %s: %w: %s", pkg, err, clipString(string(b), 2000))
	}
	return nil
}

// ModuleRoot returns the directory of the go.mod of the current directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (run from the repository)")
	}
	return filepath.Dir(mod), nil
}
