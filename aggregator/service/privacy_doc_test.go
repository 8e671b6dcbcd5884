package service

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// TestPrivacyDocIsGenerated: docs/privacy.md is the statement of the default
// configuration, so that it cannot drift from the code. Regenerate it with
// `make privacy-doc`.
func TestPrivacyDocIsGenerated(t *testing.T) {
	got, err := os.ReadFile("../../docs/privacy.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := PrivacyMarkdown(DefaultConfig()); !bytes.Equal(got, want) {
		t.Fatalf("docs/privacy.md is not the statement of the default configuration: run `make privacy-doc` and commit it")
	}
}

// TestPrivacyStatementFollowsConfig: the statement says what this
// configuration does, not what the defaults do.
func TestPrivacyStatementFollowsConfig(t *testing.T) {
	c := DefaultConfig()
	c.TokensFile = "/etc/ratingsd/tokens"
	c.JetStream = "TV"
	c.JetStreamMaxAge = 6 * time.Hour
	c.ForgetTuning = true
	c.MinuteRetention = 24 * time.Hour
	c.Retention = 14 * 24 * time.Hour
	c.ExportNoise = 0.5
	c.MinAudience = 10
	md := string(PrivacyMarkdown(c))
	for _, want := range []string{
		"| `-minute-retention` | 1 day |",
		"| `-retention` | 14 days |",
		"1 day after the minute",
		"14 days after the hour",
		"memory only (-persist-tuning=false): never written to disk",
		`the JetStream stream "TV"`,
		"MaxAge (6h0m0s when the service creates it",
		"| role read |",
		"| role export | the export only |",
		"counts below 10 suppressed, counts with two-sided geometric noise, epsilon 0.5",
		"at most 2 days after the day starts",
		"at most 21 days after it starts",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("statement lacks %q", want)
		}
	}
	if strings.Contains(md, "anyone on this machine") {
		t.Error("with tokens the statement still says anyone on this machine can see everything")
	}
	c.Model = aggregator.Events // no tuning table
	if md := string(PrivacyMarkdown(c)); strings.Contains(md, "| tuning table |") {
		t.Error("the events model keeps no tuning table, but the statement lists one")
	}
	// The JSON form carries the same content.
	b, err := json.Marshal(privacyStatement(c.withDefaults()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"limits"`)) || !bytes.Contains(b, []byte(`"kept"`)) {
		t.Errorf("JSON statement %s", b)
	}
}
