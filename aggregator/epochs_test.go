package aggregator

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	ckpt "github.com/ratingsd/ratingsd/aggregator/store"
)

// epochFixture is an events-model aggregator over a real key directory,
// with a clock the test moves.
type epochFixture struct {
	t      *testing.T
	dir    string
	ring   *keys.Ring
	a      *Aggregator
	w      *Writer
	now    time.Time
	forgot []string // OnForget calls: "day-…" (or "… failed")
}

func newEpochFixture(t *testing.T, start time.Time) *epochFixture {
	t.Helper()
	f := &epochFixture{t: t, dir: filepath.Join(t.TempDir(), "keys"), now: start}
	var err error
	if f.ring, err = keys.Open(f.dir); err != nil {
		t.Fatal(err)
	}
	f.a, err = New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	f.w = f.a.NewWriter()
	return f
}

func (f *epochFixture) config() Config {
	return Config{Model: Events, Keys: f.ring, Shards: 2, Now: func() time.Time { return f.now },
		OnForget: func(t keys.Tier, n int64, err error) {
			id := keys.ID(t, n)
			if err != nil {
				id += " failed"
			}
			f.forgot = append(f.forgot, id)
		}}
}

// ingest writes one tune of device on ch at at, with the clock there.
func (f *epochFixture) ingest(device, ch string, at time.Time) {
	f.t.Helper()
	f.now = at
	var rej event.Rejections
	if f.w.Write([]event.Event{{Device: []byte(device), Channel: []byte(ch), TS: at.UnixMilli(), Kind: event.Tune}}, &rej) != 1 {
		f.t.Fatalf("event at %s rejected: %v", at, rej.First)
	}
}

// files returns the key files in the key directory.
func (f *epochFixture) files() []string {
	f.t.Helper()
	es, err := os.ReadDir(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".key") && e.Name() != keys.PseudonymFile {
			out = append(out, e.Name())
			if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
				f.t.Errorf("%s: mode %v, %v; want 0600", e.Name(), fi.Mode().Perm(), err)
			}
		}
	}
	return out
}

func (f *epochFixture) wantFiles(want ...string) {
	f.t.Helper()
	if got := f.files(); !slices.Equal(got, want) {
		f.t.Errorf("key files %v, want %v", got, want)
	}
}

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestKeyEpochLifecycle follows the keys of a day and of a week through
// their lives, by the wall clock alone: each key file appears with the first
// data of its epoch (0600, in a 0700 directory); after the minute retention
// the day's minutes, rollups and key file are gone and its queries say
// ErrExpired; after the retention the week's hours and key file go too; no
// forgotten key is ever made again, even for an event of its epoch or after
// the directory is opened anew.
func TestKeyEpochLifecycle(t *testing.T) {
	f := newEpochFixture(t, date("2025-03-14T20:00"))
	f.wantFiles()
	f.ingest("d1", "a", date("2025-03-14T20:00"))
	f.ingest("d2", "a", date("2025-03-14T23:30"))
	f.wantFiles("day-2025-03-14.key", "week-2025-W11.key")
	if fi, err := os.Stat(f.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	f.ingest("d3", "b", date("2025-03-15T00:30"))
	f.a.SealThrough(date("2025-03-15T01:00").UnixMilli())
	f.wantFiles("day-2025-03-14.key", "day-2025-03-15.key", "week-2025-W11.key")
	if r, err := f.a.Reach(nil, date("2025-03-14T20:00"), date("2025-03-15T01:00")); err != nil || r.Value != 3 || r.Tier != keys.Reach || r.Epoch != "2025-W11" {
		t.Fatalf("reach of the evening: %+v, %v; want 3 from the reach tier of 2025-W11", r, err)
	}

	// 48 hours after the 14th ended, its last minute expires: its minutes
	// and rollups leave memory, and its key is forgotten, at the next
	// Tick, with no event in between. (That Tick seals the empty minutes
	// up to the clock, the last of them on the 16th, which makes the
	// 16th's key.)
	f.now = date("2025-03-17T00:00")
	f.a.Tick()
	f.wantFiles("day-2025-03-15.key", "day-2025-03-16.key", "week-2025-W11.key")
	if !slices.Equal(f.forgot, []string{"day-2025-03-14"}) {
		t.Errorf("OnForget calls %v, want day-2025-03-14", f.forgot)
	}
	st := &f.a.store
	for m := range st.minutes {
		if m < date("2025-03-15T00:00").Unix()/60 {
			t.Errorf("minute %s still kept", minuteTime(m))
		}
	}
	for n := range st.hours {
		if n < date("2025-03-15T00:00").Unix()/3600 {
			t.Errorf("rollup of hour %s still kept", minuteTime(n*60))
		}
	}
	if c := f.a.cachedKey(keys.Minute, f.a.cal.Epoch(keys.Minute, date("2025-03-14T20:00"))); c != nil {
		t.Error("the forgotten key is still cached")
	}
	if _, err := f.a.Audience("a", date("2025-03-14T20:00"), date("2025-03-14T21:00")); !errors.Is(err, ErrExpired) {
		t.Errorf("curve of an expired day: %v, want ErrExpired", err)
	}
	if _, err := f.a.Reach(nil, date("2025-03-14T20:00"), date("2025-03-14T20:30")); !errors.Is(err, ErrExpired) {
		t.Errorf("minute reach of an expired day: %v, want ErrExpired", err)
	}
	if _, err := f.a.Flow("a", date("2025-03-14T20:00")); !errors.Is(err, ErrModel) {
		t.Errorf("flow in the events model: %v", err)
	}
	// Whole hours of the same evening are still counted by the reach tier.
	if r, err := f.a.Reach([]string{"a"}, date("2025-03-14T20:00"), date("2025-03-15T00:00")); err != nil || r.Value != 2 || r.Tier != keys.Reach {
		t.Errorf("reach tier after the minutes expired: %+v, %v; want 2", r, err)
	}
	// An event of the forgotten day is too old, and makes no key.
	var rej event.Rejections
	f.w.Write([]event.Event{{Device: []byte("d9"), Channel: []byte("a"), TS: date("2025-03-14T23:59").UnixMilli()}}, &rej)
	if rej.Count[event.TooOld] != 1 {
		t.Errorf("an event of the forgotten day: %v, want too_old", rej.First)
	}
	if _, err := f.ring.Key(keys.Minute, f.a.cal.Epoch(keys.Minute, date("2025-03-14T20:00"))); !errors.Is(err, keys.ErrForgotten) {
		t.Errorf("asking the ring for the forgotten key: %v", err)
	}
	f.wantFiles("day-2025-03-15.key", "day-2025-03-16.key", "week-2025-W11.key")

	// The 15th goes the same way; Monday the 17th starts week 12.
	f.now = date("2025-03-18T00:00")
	f.a.Tick()
	f.wantFiles("day-2025-03-16.key", "day-2025-03-17.key", "week-2025-W11.key", "week-2025-W12.key")

	// 28 days after week 11 ended, its hours and key go.
	f.now = date("2025-04-14T00:00")
	f.a.Tick()
	f.wantFiles("day-2025-04-13.key", "week-2025-W12.key", "week-2025-W15.key")
	if len(st.reach) != 0 {
		t.Errorf("%d reach hours kept after the retention", len(st.reach))
	}
	if _, err := f.a.Reach(nil, date("2025-03-14T20:00"), date("2025-03-15T01:00")); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "672h0m0s retention") {
		t.Errorf("reach tier after the retention: %v, want ErrExpired naming the retention", err)
	}
	if want := []string{"day-2025-03-14", "day-2025-03-15", "day-2025-03-16", "day-2025-03-17", "week-2025-W11"}; !slices.Equal(f.forgot, want) {
		t.Errorf("OnForget calls %v, want %v", f.forgot, want)
	}

	// A new process on the same directory: the forgotten keys stay gone.
	ring, err := keys.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"day-2025-03-14", "day-2025-03-15", "week-2025-W11"} {
		tier, n, _ := keys.ParseID(id)
		if _, err := ring.Key(tier, n); !errors.Is(err, keys.ErrForgotten) {
			t.Errorf("reopened ring, %s: %v, want ErrForgotten", id, err)
		}
	}
	f.wantFiles("day-2025-04-13.key", "week-2025-W12.key", "week-2025-W15.key")
}

// TestStartForgetsExpiredKeys: keys left by an earlier process for epochs
// wholly past retention are forgotten when the engine starts.
func TestStartForgetsExpiredKeys(t *testing.T) {
	f := newEpochFixture(t, date("2025-03-14T20:00"))
	f.ingest("d1", "a", date("2025-03-14T20:00"))
	f.ingest("d1", "a", date("2025-03-16T20:00"))
	// The second event sealed the minutes before it, empty ones of the
	// 15th among them.
	f.wantFiles("day-2025-03-14.key", "day-2025-03-15.key", "day-2025-03-16.key", "week-2025-W11.key")
	ring, err := keys.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.ring, f.now, f.forgot = ring, date("2025-03-18T12:00"), nil
	if _, err := New(f.config()); err != nil {
		t.Fatal(err)
	}
	f.wantFiles("day-2025-03-16.key", "week-2025-W11.key")
	if !slices.Equal(f.forgot, []string{"day-2025-03-14", "day-2025-03-15"}) {
		t.Errorf("OnForget calls %v", f.forgot)
	}
}

// TestCheckpointAfterForget: a checkpoint written while a day's key exists
// is restored after the key is forgotten: that day's section can no longer
// be read (the store reports its key gone), so the restored engine holds
// none of the day, and everything else.
func TestCheckpointAfterForget(t *testing.T) {
	f := newEpochFixture(t, date("2025-03-14T22:00"))
	f.ingest("d1", "a", date("2025-03-14T22:00"))
	f.ingest("d2", "a", date("2025-03-15T05:00"))
	f.ingest("d3", "b", date("2025-03-15T10:00"))
	f.a.SealThrough(date("2025-03-15T10:00").UnixMilli())
	sn := f.a.Snapshot(nil)
	cp, err := sn.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ckpt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	file, err := d.Write(cp, sn.Keys())
	if err != nil {
		t.Fatal(err)
	}
	var sealed []string
	for _, s := range cp.Sections {
		if s.Epoch != "" {
			sealed = append(sealed, s.Name+"/"+s.Epoch)
		}
	}
	if want := []string{"tuning/day-2025-03-15", "day-2025-03-14/day-2025-03-14", "day-2025-03-15/day-2025-03-15", "week-2025-W11/week-2025-W11"}; !slices.Equal(sealed, want) {
		t.Fatalf("sealed sections %v, want %v", sealed, want)
	}

	// Two days on, the 14th's key is forgotten (and the Tick has sealed
	// empty minutes into Monday the 17th, week 12).
	f.now = date("2025-03-17T01:00")
	f.a.Tick()
	f.wantFiles("day-2025-03-15.key", "day-2025-03-17.key", "week-2025-W11.key", "week-2025-W12.key")

	// A new process: the ring from disk, the checkpoint from disk.
	ring, err := keys.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded, bad, err := d.LoadNewest(ring.Lookup)
	if err != nil || len(bad) > 0 || loaded.Seq != file.Seq {
		t.Fatalf("load: %v %v", bad, err)
	}
	for _, seg := range loaded.Segments {
		if gone := strings.HasPrefix(seg.Name, "minutes-2025-03-14"); gone != errors.Is(seg.Err, ckpt.ErrKeyGone) {
			t.Errorf("segment %s: %v; want its key gone only for the 14th", seg.Name, seg.Err)
		}
	}
	if len(loaded.Unreadable) != 1 || loaded.Unreadable[0].Name != "day-2025-03-14" || !errors.Is(loaded.Unreadable[0].Err, ckpt.ErrKeyGone) {
		t.Fatalf("unreadable sections %v, want only day-2025-03-14, its key gone", loaded.Unreadable)
	}
	if _, ok := loaded.Section("day-2025-03-14"); ok {
		t.Fatal("the forgotten day's section was read")
	}
	f.ring = ring
	b, err := Restore(f.config(), loaded)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Audience("a", date("2025-03-14T22:00"), date("2025-03-14T23:00")); !errors.Is(err, ErrExpired) {
		t.Errorf("curve of the forgotten day: %v, want ErrExpired", err)
	}
	m := b.Minutes(date("2025-03-15T05:00"), date("2025-03-15T05:01"))
	if len(m) != 1 {
		t.Fatalf("minute 05:00 of the 15th after restore: %v", m)
	}
	if c, _ := m[0].Channel("a"); c.Audience.Value != 1 {
		t.Errorf("05:00 of the 15th: audience %v, want 1", c.Audience)
	}
	// The week's hours survived: the reach tier still counts the evening.
	r, err := b.Reach(nil, date("2025-03-14T22:00"), date("2025-03-15T11:00"))
	if err != nil || r.Value != 2 || r.Tier != keys.Reach || !r.To.Equal(date("2025-03-15T10:00")) {
		t.Errorf("reach tier after restore: %+v, %v; want 2 up to 10:00, the last complete hour", r, err)
	}
}

// TestReachErrors: a window no tier can count says why, where, and what to
// ask instead; an expired one says since when.
func TestReachErrors(t *testing.T) {
	f := newEpochFixture(t, date("2025-03-14T20:00"))
	f.ingest("d1", "a", date("2025-03-14T20:00"))
	f.a.SealThrough(date("2025-03-14T21:00").UnixMilli())
	check := func(from, to string, want error, mention ...string) {
		t.Helper()
		_, err := f.a.Reach(nil, date(from), date(to))
		if !errors.Is(err, want) {
			t.Errorf("[%s, %s): %v, want %v", from, to, err, want)
			return
		}
		for _, m := range mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("[%s, %s): %q does not mention %q", from, to, err, m)
			}
		}
	}
	check("2025-03-16T23:30", "2025-03-17T00:30", ErrCrossEpoch,
		"spans the day boundary at 2025-03-17T00:00:00Z", "minute resolution within one day",
		// Whole hours would still cross the week: split.
		"ask for [2025-03-16T23:30:00Z, 2025-03-17T00:00:00Z) and [2025-03-17T00:00:00Z, 2025-03-17T00:30:00Z) separately")
	check("2025-03-15T23:30", "2025-03-16T00:30", ErrCrossEpoch,
		"spans the day boundary at 2025-03-16T00:00:00Z",
		"whole hours, such as [2025-03-15T23:00:00Z, 2025-03-16T01:00:00Z), which the reach tier counts at hour resolution within one ISO week")
	check("2025-03-16T20:00", "2025-03-17T01:00", ErrCrossEpoch,
		"spans the ISO week boundary at 2025-03-17T00:00:00Z", "hour resolution within one week",
		"[2025-03-16T20:00:00Z, 2025-03-17T00:00:00Z) and [2025-03-17T00:00:00Z, 2025-03-17T01:00:00Z) separately")
	check("2025-03-14T20:10", "2025-03-14T20:20", nil)
	f.now = date("2025-03-17T01:00") // the 14th's minutes have expired
	check("2025-03-14T20:10", "2025-03-14T20:20", ErrExpired, "the window ends before 2025-03-15T01:00:00Z, the oldest minute kept", "48h0m0s minute retention",
		"whole hours, such as [2025-03-14T20:00:00Z, 2025-03-14T21:00:00Z)")
	check("2025-03-14T20:00", "2025-03-14T21:00", nil) // the reach tier
	f.now = date("2025-04-12T00:00")
	check("2025-03-14T20:00", "2025-03-14T21:00", ErrExpired, "the reach tier keeps whole hours for the 672h0m0s retention")
	check("2025-03-14T20:10", "2025-03-14T20:00", ErrBadRange)
}
