package service

// The privacy statement: what the service processes, keeps and shows, built
// from the live configuration so that it cannot drift from what runs. It is
// served as JSON by GET /v1/privacy and as Markdown by GET
// /v1/privacy?format=markdown; docs/privacy.md is the Markdown of the
// default configuration (`ratingsd -privacy-statement > docs/privacy.md`,
// checked by a test).

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/ratingsd/ratingsd/aggregator"
)

// PrivacyStatement is the statement of one configuration.
type PrivacyStatement struct {
	// Configuration summarises the settings the statement depends on.
	Configuration map[string]string `json:"configuration"`
	// Processed is what comes in, and where the raw identifier lives.
	Processed []string `json:"processed"`
	// Kept lists every kind of data the service holds, where, in what form,
	// for how long and what ends it.
	Kept []Holding `json:"kept"`
	// Access says who can see what.
	Access []Access `json:"access"`
	// Never lists what no output contains.
	Never []string `json:"never"`
	// Limits are what the design does not protect against, and for how long.
	Limits []string `json:"limits"`
}

// Holding is one kind of data the service keeps.
type Holding struct {
	What  string `json:"what"`
	Form  string `json:"form"`
	Where string `json:"where"`
	For   string `json:"for"`
	Ends  string `json:"ends"`
}

// Access is what one role, or an anonymous caller, may see.
type Access struct {
	Who string `json:"who"`
	Can string `json:"can"`
}

// privacyStatement builds the statement of c (defaults filled in).
func privacyStatement(c Config) PrivacyStatement {
	day := "00:00 UTC"
	if c.DayStart != 0 {
		day = time.Time{}.Add(c.DayStart).Format("15:04") + " UTC"
	}
	p := PrivacyStatement{
		Configuration: map[string]string{
			"model":            c.Model.String(),
			"precision":        fmt.Sprint(c.Precision),
			"day-start":        day,
			"minute-retention": days(c.MinuteRetention),
			"retention":        days(c.Retention),
			"counts-retention": days(c.CountsRetention),
			"embargo":          days(c.Embargo),
			"min-audience":     fmt.Sprint(c.MinAudience),
			"export-noise":     noiseSetting(c.ExportNoise),
			"persist-tuning":   fmt.Sprint(!c.ForgetTuning),
			"tokens":           tokensSetting(c.TokensFile),
			"jetstream":        jetstreamSetting(c),
		},
		Processed: []string{
			"Set-top-box channel-change events from NATS: device identifier, channel, time, kind (tune, heartbeat, standby) and optionally a region (access node).",
			"The raw device identifier exists only in the buffer of the NATS message being decoded. It is hashed at once under a secret 128-bit pseudonym key, with a pseudorandom function: the first 8 bytes of the AES-128 CBC-MAC (zero IV) of the identifier's length as a uvarint, the identifier, and zero bytes up to a multiple of 16; it never appears in a log line, an error, a metric label, a file or a response.",
			"Each pseudonym is hashed again, once per tier, with the key of the tier's current epoch before it enters a sketch: a daily key (days start at " + day + ") for the minute tier, a weekly key (ISO weeks) for the reach tier. The pseudonym itself never enters a sketch.",
		},
		Never: []string{
			"device identifiers, raw or hashed",
			"pseudonyms or keyed hashes",
			"sketch bytes (no API returns them)",
			"which channels a given device watched: the service keeps no viewing history",
		},
	}

	tuning := Holding{
		What:  "tuning table",
		Form:  "per pseudonymous device: its current channel and region, since when, and the minute being credited; never its past. In memory only, also its hash under the current daily key (the value the day's minute sketches hold, kept so that a device carried forward is hashed once a day)",
		Where: "memory, and the checkpoints in " + c.DataDir + "/checkpoints, encrypted (AES-GCM) under a key derived from the current daily key",
		For:   fmt.Sprintf("while the device is tuned: an entry ends on standby, on a tune elsewhere (replaced) or after %s without events", days(c.Inactivity)),
		Ends:  "replaced or removed in memory; the copy in a checkpoint becomes unreadable when its daily key is deleted",
	}
	if c.ForgetTuning {
		tuning.Where = "memory only (-persist-tuning=false): never written to disk"
		tuning.Ends = "replaced or removed in memory; lost on restart"
	}
	if c.Model == aggregator.Tuning {
		p.Kept = append(p.Kept, tuning)
	}
	p.Kept = append(p.Kept,
		Holding{
			What:  "minute tier",
			Form:  fmt.Sprintf("per channel and minute (and all channels per minute) a HyperLogLog sketch (precision %d) of the devices' daily-key hashes, with its estimate; per channel, region and minute the exact count", c.Precision),
			Where: "memory, and the checkpoints in " + c.DataDir + "/checkpoints, each day's sketches encrypted under a key derived from that day's key",
			For:   days(c.MinuteRetention) + " after the minute",
			Ends:  "dropped from memory; when the last minute of a day is gone, the day's key file is deleted, which makes that day's sketches unreadable in every checkpoint, old copies and backups included",
		},
		Holding{
			What:  "reach tier",
			Form:  "per channel and hour (and all channels per hour) a HyperLogLog sketch of the devices' weekly-key hashes, with its estimate",
			Where: "memory, and the checkpoints, each week's sketches encrypted under a key derived from that week's key",
			For:   days(c.Retention) + " after the hour (the service refuses 30 days or more)",
			Ends:  "dropped from memory; when the last hour of a week is gone, the week's key file is deleted",
		},
		Holding{
			What:  "keys",
			Form:  "random 128-bit keys, one file each, mode 0600: the pseudonym key, one per day (minute tier), one per ISO week (reach tier)",
			Where: c.DataDir + "/keys, apart from the checkpoints",
			For:   fmt.Sprintf("a day's key until the last minute of the day expires (at most %s after the day starts); a week's key until the last hour of the week expires (at most %s after it starts); the pseudonym key while the data directory lives", days(c.MinuteRetention+24*time.Hour), days(c.Retention+7*24*time.Hour)),
			Ends:  "deleted (crypto-shredding); a deleted key is never re-created",
		},
		Holding{
			What:  "counts archive",
			Form:  "per channel and minute the audience as a plain number, and the all-channels total; per region and minute the counts and channel changes; no hashes, no sketches",
			Where: c.DataDir + "/counts, one file per day",
			For:   days(c.CountsRetention),
			Ends:  "the day's file is deleted",
		},
		Holding{
			What:  "logs and metrics",
			Form:  "counts, rates, rejections by reason, timings; no identifiers and no per-device labels",
			Where: "standard error and GET /metrics",
			For:   "as long as the operator keeps them",
			Ends:  "outside the service",
		},
	)
	broker := Holding{
		What:  "raw events in the broker",
		Form:  "none: core NATS delivers and forgets",
		Where: "NATS",
		For:   "not kept",
		Ends:  "on delivery",
	}
	if c.JetStream != "" {
		broker.Form = "the raw events, device identifiers included"
		broker.Where = fmt.Sprintf("the JetStream stream %q", c.JetStream)
		broker.For = fmt.Sprintf("the stream's MaxAge (%s when the service creates it; it warns above 24h and refuses 30 days or more)", c.JetStreamMaxAge)
		broker.Ends = "removed by the broker"
	}
	p.Kept = append(p.Kept, broker)

	noise := "exact counts"
	if c.ExportNoise > 0 {
		noise = fmt.Sprintf("counts with two-sided geometric noise, epsilon %g per released count", c.ExportNoise)
	}
	if c.TokensFile == "" {
		p.Access = []Access{{
			Who: "anyone on this machine (no -tokens: the HTTP API binds to loopback only)",
			Can: "every query, the live stream, the metrics and the export",
		}}
	} else {
		p.Access = []Access{
			{Who: "role read", Can: "the live figures: audience curves, now, reach, flow, capacity, the live stream, the metrics"},
			{Who: "role export", Can: "the export only"},
			{Who: "role admin", Can: "everything"},
			{Who: "no token", Can: "the dashboard page (it asks for a token), this statement, /healthz and /readyz"},
		}
	}
	p.Access = append(p.Access, Access{
		Who: "third parties (through GET /v1/export)",
		Can: fmt.Sprintf("CSV of minutes older than %s whose sketch keys are all deleted, only: per channel and minute the audience and the total, counts below %d suppressed, %s", days(c.Embargo), c.MinAudience, noise),
	}, Access{
		Who: "NATS subscribers",
		Can: "every sealed minute on ratings.minute.<channel> and the NATS micro service ratings: the same numbers as the HTTP API; secure the NATS server accordingly",
	})

	p.Limits = []string{
		fmt.Sprintf("A sketch is not anonymous by itself. Whoever holds a day's key and that day's sketches (process memory, or a checkpoint) can test whether a known device is in a (channel, minute) audience, near-certainly for small audiences. This lasts until the day's key is deleted: at most %s after the day starts. The same holds for the reach tier under a week's key: at most %s.", days(c.MinuteRetention+24*time.Hour), days(c.Retention+7*24*time.Hour)),
		"Without any key, a sparse sketch keeps a ~25-bit token per device, so whoever reads the sketches of one epoch can follow a token across that epoch's minutes and channels (a pseudonymous viewing history within one day, or one week at hour resolution). Different epochs use different keys: tokens do not link across days or weeks.",
		"The pseudonym key lives as long as the data directory. With it and a device identifier, an insider can look the device up in the live tuning table: its current channel, which the operator's network sees anyway, and never its past.",
		"Backups or snapshots of the data directory keep keys alive as long as the backup: keep them shorter than the retention, or leave the key files out.",
		"Exported counts are exact unless -export-noise is set. With noise, each released count costs epsilon; over the minutes of a day the costs add up (a device can be in 1,440 minutes), and which channels have a row is not hidden.",
		"The counts archive keeps per-region counts; a small region's count of a niche channel can be small. The export leaves region rows out for that reason.",
	}
	if c.JetStream != "" {
		p.Limits = append(p.Limits, fmt.Sprintf("Raw events, device identifiers included, stay in the JetStream stream %q for its MaxAge: whoever can read the stream reads them.", c.JetStream))
	}
	return p
}

func days(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		n := d / (24 * time.Hour)
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

func noiseSetting(eps float64) string {
	if eps == 0 {
		return "off"
	}
	return fmt.Sprintf("epsilon %g", eps)
}

func tokensSetting(file string) string {
	if file == "" {
		return "none (loopback only)"
	}
	return "set"
}

func jetstreamSetting(c Config) string {
	if c.JetStream == "" {
		return "off (core NATS)"
	}
	return fmt.Sprintf("stream %q, MaxAge %s", c.JetStream, c.JetStreamMaxAge)
}

var privacyTemplate = template.Must(template.New("privacy").Funcs(template.FuncMap{
	"cell": func(s string) string { return strings.ReplaceAll(s, "|", `\|`) },
}).Parse(`# Privacy statement

This statement is generated from the configuration of the running service
(GET /v1/privacy serves it as JSON, GET /v1/privacy?format=markdown as this text). This
copy shows the defaults; run ` + "`ratingsd -privacy-statement`" + ` with your flags for yours.

## Configuration

| setting | value |
|---|---|
{{range $k, $v := .Configuration}}| ` + "`-{{$k}}`" + ` | {{cell $v}} |
{{end}}
## What is processed

{{range .Processed}}- {{.}}
{{end}}
## What is kept, where, for how long

| what | form | where | for how long | then |
|---|---|---|---|---|
{{range .Kept}}| {{cell .What}} | {{cell .Form}} | {{cell .Where}} | {{cell .For}} | {{cell .Ends}} |
{{end}}
## Who can see what

| who | can see |
|---|---|
{{range .Access}}| {{cell .Who}} | {{cell .Can}} |
{{end}}
## What no output contains

{{range .Never}}- {{.}}
{{end}}
## Known limits

{{range .Limits}}- {{.}}
{{end}}`))

// Markdown renders the statement as the text of docs/privacy.md.
func (p PrivacyStatement) Markdown() []byte {
	var b bytes.Buffer
	if err := privacyTemplate.Execute(&b, p); err != nil {
		panic("BUG: privacy template: " + err.Error())
	}
	return b.Bytes()
}

// PrivacyMarkdown returns the privacy statement of c as Markdown, with c's
// defaults filled in.
func PrivacyMarkdown(c Config) []byte {
	return privacyStatement(c.withDefaults()).Markdown()
}
