package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunRefusesBadFlags: flags that cannot make a sound run are refused
// with exit status 2 before anything starts, and say why.
func TestRunRefusesBadFlags(t *testing.T) {
	f := func(args []string, want string) {
		t.Helper()
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", args, code, stderr.String(), want)
		}
	}
	f([]string{"-only", "everything"}, `-only "everything": want one of main, scale, retention`)
	f([]string{"-only", "retention", "-results", "bench/RESULTS.md"}, "would replace the whole harness section")
	f([]string{"-no-such-flag"}, "flag provided but not defined")
}
