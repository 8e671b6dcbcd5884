// Command benchrun runs the benchmark suite of bench/harness: the NATS
// ceiling (`nats bench`), ratingsd end to end, the Redis HyperLogLog and
// exact-counting alternatives, latency, accuracy, scale, and memory with
// retention against exact counting. It starts every process it needs as a
// child and kills them all when it exits.
//
//	go run ./bench/cmd/benchrun              # full: bench/img/*.png and bench/RESULTS.md
//	go run ./bench/cmd/benchrun -smoke -out DIR   # every part once, small, into DIR
//	go run ./bench/cmd/benchrun -only retention   # one part, full size, into a temporary directory
//
// Run it from the repository (it builds ratingsd from this tree).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ratingsd/ratingsd/bench/harness"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smoke := fs.Bool("smoke", false, "run every part once at a small scale (under two minutes) and check that each produced its figures")
	out := fs.String("out", "", "`directory` for the report (results.md) and charts; default bench/img with bench/RESULTS.md updated (full run), a new temporary directory with -smoke")
	results := fs.String("results", "", "markdown `file` whose harness section (between <!-- harness:begin --> and <!-- harness:end -->) is replaced; default bench/RESULTS.md for a full run without -out, none otherwise")
	reps := fs.Int("reps", 0, "repetitions of each scenario (default 3, 1 with -smoke)")
	ratingsd := fs.String("ratingsd", "", "measure this ratingsd `binary` instead of building one from the tree")
	only := fs.String("only", "", "run only this `part` of the suite: "+strings.Join(harness.Parts, ", ")+"; its report goes to -out (default a new temporary directory), never into bench/RESULTS.md")
	work := fs.String("work", "", "work `directory` for the children's logs and data (default: a temporary one, removed at the end)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	cfg := harness.FullConfig()
	if *smoke {
		cfg = harness.SmokeConfig()
	}
	cfg.Ratingsd = *ratingsd
	if *only != "" {
		if !slices.Contains(harness.Parts, *only) {
			fmt.Fprintf(stderr, "benchrun: -only %q: want one of %s\n", *only, strings.Join(harness.Parts, ", "))
			return 2
		}
		if *results != "" {
			fmt.Fprintf(stderr, "benchrun: -only %s with -results: a partial run would replace the whole harness section\n", *only)
			return 2
		}
		cfg.Only = *only
	}
	if *reps > 0 {
		cfg.Reps = *reps
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s benchrun: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer harness.KillChildren()

	module, err := harness.ModuleRoot(ctx)
	if err != nil {
		logf("%v", err)
		return 1
	}
	binDir, imgDir := harness.DefaultDirs(module)
	outDir := *out
	resultsFile := *results
	switch {
	case outDir == "" && (*smoke || *only != ""):
		if outDir, err = os.MkdirTemp("", "benchrun-"+cfg.Name+"-"); err != nil {
			logf("%v", err)
			return 1
		}
	case outDir == "":
		outDir = imgDir
		if resultsFile == "" {
			resultsFile = filepath.Join(module, "bench", "RESULTS.md")
		}
	}
	workDir := *work
	removeWork := false
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "benchrun-work-"); err != nil {
			logf("%v", err)
			return 1
		}
		removeWork = true
	}
	defer func() {
		if removeWork {
			os.RemoveAll(workDir)
		}
	}()
	command := "make bench"
	if *smoke {
		command = "make bench-smoke"
	}
	if len(args) > 0 {
		command = "go run ./bench/cmd/benchrun " + strings.Join(args, " ")
	}
	rep, err := harness.Run(ctx, cfg, module, binDir, workDir, command, logf)
	if err != nil {
		logf("FAIL: %v (children's logs in %s)", err, workDir)
		removeWork = false // keep the logs of a failed run
		return 1
	}
	if raw, err := json.MarshalIndent(rep, "", " "); err == nil {
		name := cfg.Name
		if cfg.Only != "" {
			name += "-" + cfg.Only
		}
		_ = os.WriteFile(filepath.Join(os.TempDir(), "benchrun-last-"+name+".json"), raw, 0o644)
	}
	md, err := harness.Write(rep, outDir, imgDir, module)
	if err != nil {
		logf("FAIL: %v", err)
		return 1
	}
	if problems := harness.Check(rep); len(problems) > 0 {
		for _, p := range problems {
			logf("FAIL: %s", p)
		}
		return 1
	}
	if resultsFile != "" {
		if err := harness.UpdateResults(resultsFile, md); err != nil {
			logf("FAIL: %v", err)
			return 1
		}
		logf("updated %s", resultsFile)
	}
	if filepath.Clean(outDir) != filepath.Clean(imgDir) {
		logf("report in %s", filepath.Join(outDir, "results.md"))
	}
	logf("charts in %s; ran %s", outDir, rep.Elapsed.Round(time.Second))
	return 0
}
