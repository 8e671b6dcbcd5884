package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// deployArg matches one flag of a ratingsd command line in the deploy
// manifests, written one per YAML list item: "- -flag=value".
var deployArg = regexp.MustCompile(`^\s*- (-[a-z][a-z-]*=\S+)\s*$`)

// deployArgs returns the ratingsd flags of a manifest, in order.
func deployArgs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := deployArg.FindStringSubmatch(sc.Text()); m != nil {
			args = append(args, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return args
}

// TestDeployManifestsUseValidFlags keeps deploy/ true to the binary: every
// ratingsd flag in the compose file and the Kubernetes manifest is one that
// ratingsd accepts, with a value it accepts, and the resulting configuration
// passes validation (a network address with a tokens file).
func TestDeployManifestsUseValidFlags(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("deploy-test-token-0123456789 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, manifest := range []string{"compose.yaml", "k8s/ratingsd.yaml"} {
		t.Run(manifest, func(t *testing.T) {
			args := deployArgs(t, filepath.Join("..", "..", "deploy", manifest))
			if len(args) < 4 {
				t.Fatalf("found %d ratingsd flags (%q); the manifest lists them one per line as '- -flag=value'", len(args), args)
			}
			// The image's entrypoint sets -data (deploy/Dockerfile).
			args = append([]string{"-data=" + t.TempDir()}, args...)
			cfg, _, err := parse(args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatalf("ratingsd %s: %v", strings.Join(args, " "), err)
			}
			if cfg.TokensFile == "" || cfg.NATSURL == "" || cfg.JetStream == "" {
				t.Fatalf("a deployment serves the network with tokens from an external NATS cluster's stream: got -tokens %q -nats %q -jetstream %q", cfg.TokensFile, cfg.NATSURL, cfg.JetStream)
			}
			cfg.TokensFile = tokens
			if err := cfg.Validate(); err != nil {
				t.Fatalf("ratingsd %s: %v", strings.Join(args, " "), err)
			}
		})
	}
}

// TestDockerfileDataVolume: the image keeps its state where the manifests
// mount their volumes.
func TestDockerfileDataVolume(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	const data = "/var/lib/ratingsd"
	if !strings.Contains(string(b), `"-data", "`+data+`"`) {
		t.Fatalf("deploy/Dockerfile's entrypoint does not set -data %s", data)
	}
	for _, manifest := range []string{"compose.yaml", "k8s/ratingsd.yaml"} {
		m, err := os.ReadFile(filepath.Join("..", "..", "deploy", manifest))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(m), data) {
			t.Errorf("deploy/%s mounts no volume at %s", manifest, data)
		}
	}
}
