package bench

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Model is an audience model of docs/semantics.md.
type Model uint8

const (
	// Tuning credits each box, each minute, to the one channel it watched
	// longest (min dwell, inactivity, standby).
	Tuning Model = iota
	// Events counts each box on every channel it sent a tune or heartbeat
	// for in the minute.
	Events
)

func (m Model) String() string {
	switch m {
	case Tuning:
		return "tuning"
	case Events:
		return "events"
	}
	return "model(" + strconv.Itoa(int(m)) + ")"
}

// ParseModel returns the Model named s ("tuning" or "events").
func ParseModel(s string) (Model, error) {
	switch s {
	case "tuning":
		return Tuning, nil
	case "events":
		return Events, nil
	}
	return 0, fmt.Errorf("model %q is neither tuning nor events", s)
}

// Truth is the exact ground truth of a generated stream under
// docs/semantics.md: per-minute audiences in both models, totals, regional
// audiences, channel changes, flows, and reach over the windows and channel
// sets it was built for. It holds aggregate numbers only, never a device.
// Queries outside the run's minutes, or for channels or regions it does not
// know, return 0. A Truth is immutable and safe for concurrent use.
type Truth struct {
	f       truthFile
	channel map[string]int   // name → 0-based index
	region  map[string]int   // name → 0-based index
	window  map[[2]int64]int // [from, to) Unix ms → index in f.Windows
	set     map[string]int   // setKey → reach set id
	reach   map[reachKey]uint32
	cells   [2]map[uint64]uint32 // truthFile.Regional
	flow    map[uint64]uint32    // truthFile.Flows
	flows   []uint64             // its cells, ascending
	total   []uint32             // tuning totals: Σ over channels
}

// TruthInfo describes the run a Truth belongs to.
type TruthInfo struct {
	Seed       uint64
	Devices    int
	Start, End time.Time // the run: events have Start ≤ ts < End
	// FirstMinute is the minute that holds Start; the truth covers Minutes
	// minutes from it (the last one holds End - 1ms).
	FirstMinute time.Time
	Minutes     int
	// The aggregator settings the tuning truth was computed for, and the
	// heartbeat interval of the stream (0 = none).
	MinDwell, Inactivity, Heartbeat time.Duration
	// Events in the stream, and how many of each kind.
	Events, Tunes, Heartbeats, Standbys int64
}

// Flow is a number of boxes that changed from one state to another
// (docs/semantics.md, Flow); "" is off.
type Flow struct {
	From, To string
	N        int
}

// Window is a reach window [From, To).
type Window struct{ From, To time.Time }

// truthFile is a Truth as stored (docs/workload.md, Truth file).
type truthFile struct {
	Seed        uint64
	Devices     int
	Start, End  int64 // Unix ms
	First       int64 // Unix ms of the first minute
	Minutes     int
	MinDwell    int64 // ms
	Inactivity  int64
	Heartbeat   int64
	Channels    []string
	Regions     []string
	Audience    [2][]uint32 // [model][minute*channels + channel]
	EventsTotal []uint32    // distinct boxes with a tune or heartbeat, per minute
	// Regional audiences, cell (minute*channels + channel)*regions + region.
	Regional [2]sparse
	Zaps     []uint32 // [minute*regions + region]: tune events
	// Flows, cell (minute*(channels+1) + from)*(channels+1) + to, where from
	// and to are 1-based channels and 0 is off.
	Flows                               sparse
	Windows                             []windowSpan
	Sets                                [][]uint16 // named reach sets: 0-based channel indexes, sorted
	Reach                               []reachCell
	Events, Tunes, Heartbeats, Standbys int64
}

// sparse is a table's nonzero cells as columns, which compress four times
// better than rows: each cell's index as the delta from the previous
// cell's (ascending from 0), and its value.
type sparse struct {
	Delta []uint64
	N     []uint32
}

func (s *sparse) add(index uint64, prev *uint64, n uint32) {
	s.Delta = append(s.Delta, index-*prev)
	s.N = append(s.N, n)
	*prev = index
}

// cells returns the table as a map, checking that indexes ascend below limit.
func (s *sparse) cells(limit uint64) (map[uint64]uint32, []uint64, error) {
	if len(s.Delta) != len(s.N) {
		return nil, nil, fmt.Errorf("sparse table has %d indexes and %d values", len(s.Delta), len(s.N))
	}
	m := make(map[uint64]uint32, len(s.N))
	keys := make([]uint64, len(s.N))
	var idx uint64
	for i, d := range s.Delta {
		if i > 0 && d == 0 || d >= limit-idx {
			return nil, nil, fmt.Errorf("sparse cell %d: index does not ascend below %d", i, limit)
		}
		idx += d
		m[idx], keys[i] = s.N[i], idx
	}
	return m, keys, nil
}

// windowSpan is a reach window in a truth file, Unix ms.
type windowSpan struct{ From, To int64 }

// reachCell is a nonzero reach in a truth file. Set 0 is all channels, 1..C
// channel Set-1, C+1+i the named set i.
type reachCell struct {
	Model  uint8
	Window uint32
	Set    uint32
	N      uint32
}

type reachKey struct {
	model  Model
	window int
	set    int
}

// truthMagic starts the decompressed content of a truth file.
const truthMagic = "ratingsd truth v1\n"

// maxTruthBytes bounds the decompressed size of a truth file that ReadTruth
// accepts.
const maxTruthBytes = 1 << 30

// Info describes the run of t.
func (t *Truth) Info() TruthInfo {
	f := &t.f
	return TruthInfo{
		Seed: f.Seed, Devices: f.Devices,
		Start: time.UnixMilli(f.Start).UTC(), End: time.UnixMilli(f.End).UTC(),
		FirstMinute: time.UnixMilli(f.First).UTC(), Minutes: f.Minutes,
		MinDwell:   time.Duration(f.MinDwell) * time.Millisecond,
		Inactivity: time.Duration(f.Inactivity) * time.Millisecond,
		Heartbeat:  time.Duration(f.Heartbeat) * time.Millisecond,
		Events:     f.Events, Tunes: f.Tunes, Heartbeats: f.Heartbeats, Standbys: f.Standbys,
	}
}

// Minutes returns the minutes the truth covers, in order.
func (t *Truth) Minutes() []time.Time {
	m := make([]time.Time, t.f.Minutes)
	for i := range m {
		m[i] = time.UnixMilli(t.f.First + int64(i)*60000).UTC()
	}
	return m
}

// Channels returns the channel names of the line-up, in line-up order.
func (t *Truth) Channels() []string { return slices.Clone(t.f.Channels) }

// Regions returns the region names.
func (t *Truth) Regions() []string { return slices.Clone(t.f.Regions) }

// minute returns the index of the minute that holds m, or -1.
func (t *Truth) minute(m time.Time) int {
	d := m.UnixMilli() - t.f.First
	if d < 0 || d >= int64(t.f.Minutes)*60000 {
		return -1
	}
	return int(d / 60000)
}

// Audience returns the audience of channel at the minute that holds minute.
func (t *Truth) Audience(model Model, channel string, minute time.Time) int {
	c, ok := t.channel[channel]
	m := t.minute(minute)
	if !ok || m < 0 || model > Events {
		return 0
	}
	return int(t.f.Audience[model][m*len(t.f.Channels)+c])
}

// Total returns the boxes credited to any channel (Tuning: the sum over
// channels) or seen on any channel (Events: distinct boxes) at minute.
func (t *Truth) Total(model Model, minute time.Time) int {
	m := t.minute(minute)
	switch {
	case m < 0:
		return 0
	case model == Tuning:
		return int(t.total[m])
	case model == Events:
		return int(t.f.EventsTotal[m])
	}
	return 0
}

// RegionAudience returns the audience of channel among the boxes of region
// at minute.
func (t *Truth) RegionAudience(model Model, channel, region string, minute time.Time) int {
	c, ok1 := t.channel[channel]
	r, ok2 := t.region[region]
	m := t.minute(minute)
	if !ok1 || !ok2 || m < 0 || model > Events {
		return 0
	}
	nc, nr := uint64(len(t.f.Channels)), uint64(len(t.f.Regions))
	return int(t.cells[model][(uint64(m)*nc+uint64(c))*nr+uint64(r)])
}

// Zaps returns the channel changes (tune events) of region's boxes with ts in
// minute; region "" sums over all regions.
func (t *Truth) Zaps(region string, minute time.Time) int {
	m := t.minute(minute)
	if m < 0 {
		return 0
	}
	nr := len(t.f.Regions)
	row := t.f.Zaps[m*nr : (m+1)*nr]
	if region == "" {
		n := 0
		for _, z := range row {
			n += int(z)
		}
		return n
	}
	r, ok := t.region[region]
	if !ok {
		return 0
	}
	return int(row[r])
}

// Flow returns the boxes whose state changed from channel from to channel
// to in minute (tuning model); "" is off.
func (t *Truth) Flow(from, to string, minute time.Time) int {
	a, ok1 := t.state(from)
	b, ok2 := t.state(to)
	m := t.minute(minute)
	if !ok1 || !ok2 || m < 0 {
		return 0
	}
	return int(t.flow[t.flowCell(m, a, b)])
}

func (t *Truth) flowCell(m, from, to int) uint64 {
	s := uint64(len(t.f.Channels) + 1)
	return (uint64(m)*s+uint64(from))*s + uint64(to)
}

// Flows returns every nonzero flow of minute, by From then To in line-up
// order (off first).
func (t *Truth) Flows(minute time.Time) []Flow {
	m := t.minute(minute)
	if m < 0 {
		return nil
	}
	s := uint64(len(t.f.Channels) + 1)
	i, _ := slices.BinarySearch(t.flows, t.flowCell(m, 0, 0))
	var out []Flow
	for ; i < len(t.flows) && t.flows[i] < t.flowCell(m+1, 0, 0); i++ {
		k := t.flows[i]
		out = append(out, Flow{From: t.stateName(k / s % s), To: t.stateName(k % s), N: int(t.flow[k])})
	}
	return out
}

func (t *Truth) state(name string) (int, bool) {
	if name == "" {
		return 0, true
	}
	c, ok := t.channel[name]
	return c + 1, ok
}

func (t *Truth) stateName(s uint64) string {
	if s == 0 {
		return ""
	}
	return t.f.Channels[s-1]
}

// ReachWindows returns the windows Reach can answer, in order of From, then To.
func (t *Truth) ReachWindows() []Window {
	w := make([]Window, len(t.f.Windows))
	for i, s := range t.f.Windows {
		w[i] = Window{time.UnixMilli(s.From).UTC(), time.UnixMilli(s.To).UTC()}
	}
	slices.SortFunc(w, func(a, b Window) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return a.To.Compare(b.To)
	})
	return w
}

// ReachSets returns the named channel sets Reach can answer besides single
// channels and all channels (no channel given).
func (t *Truth) ReachSets() [][]string {
	sets := make([][]string, len(t.f.Sets))
	for i, s := range t.f.Sets {
		for _, c := range s {
			sets[i] = append(sets[i], t.f.Channels[c])
		}
	}
	return sets
}

// Reach returns the distinct boxes credited (Tuning) or seen (Events) on
// any of channels in a minute of [from, to); no channels means all. It is
// an error if the truth was not built for that window (ReachWindows) or
// channel set (a single channel, all, or one of ReachSets).
func (t *Truth) Reach(model Model, channels []string, from, to time.Time) (int, error) {
	if model > Events {
		return 0, fmt.Errorf("reach: %s is not a model", model)
	}
	w, ok := t.window[[2]int64{from.UnixMilli(), to.UnixMilli()}]
	if !ok {
		return 0, fmt.Errorf("reach: the truth has no window [%s, %s); it has %d windows (ReachWindows)",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), len(t.f.Windows))
	}
	set, err := t.setOf(channels)
	if err != nil {
		return 0, fmt.Errorf("reach: %w", err)
	}
	return int(t.reach[reachKey{model, w, set}]), nil
}

func (t *Truth) setOf(channels []string) (int, error) {
	idx := make([]uint16, 0, len(channels))
	for _, name := range channels {
		c, ok := t.channel[name]
		if !ok {
			return 0, fmt.Errorf("channel %q is not in the line-up", name)
		}
		idx = append(idx, uint16(c))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	switch len(idx) {
	case 0:
		return 0, nil
	case 1:
		return 1 + int(idx[0]), nil
	}
	if s, ok := t.set[setKey(idx)]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("the truth has no reach of the set %v; it has %d named sets (ReachSets)", channels, len(t.f.Sets))
}

func setKey(idx []uint16) string {
	var b strings.Builder
	for _, c := range idx {
		b.WriteString(strconv.Itoa(int(c)))
		b.WriteByte(',')
	}
	return b.String()
}

// WriteFile writes t to path, zstd-compressed (docs/workload.md, Truth file).
func (t *Truth) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	if _, err := t.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write truth %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write truth %s: %w", path, err)
	}
	return nil
}

// WriteTo writes t to w in the truth file format.
func (t *Truth) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(zw)
	bw.WriteString(truthMagic)
	if err := gob.NewEncoder(bw).Encode(&t.f); err != nil {
		zw.Close()
		return cw.n, fmt.Errorf("encode truth: %w", err)
	}
	if err := bw.Flush(); err != nil {
		zw.Close()
		return cw.n, err
	}
	err = zw.Close()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// LoadTruth reads the truth file at path.
func LoadTruth(path string) (*Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load truth: %w", err)
	}
	defer f.Close()
	t, err := ReadTruth(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("load truth %s: %w", path, err)
	}
	return t, nil
}

// ErrNotTruth is returned by ReadTruth for input that is not a truth file.
var ErrNotTruth = errors.New("not a ratingsd truth file")

// ReadTruth reads a truth file from r. Input that is not a well-formed truth
// file gives an error wrapping ErrNotTruth, never a panic.
func ReadTruth(r io.Reader) (*Truth, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<26), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	br := bufio.NewReader(io.LimitReader(zr, maxTruthBytes))
	magic := make([]byte, len(truthMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(truthMagic)) {
		if err == nil {
			err = fmt.Errorf("content starts with %q", magic)
		}
		return nil, fmt.Errorf("%w: %w", ErrNotTruth, err)
	}
	var f truthFile
	if err := gob.NewDecoder(br).Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrNotTruth, err)
	}
	t, err := newTruth(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotTruth, err)
	}
	return t, nil
}

// newTruth checks f's consistency, so that no query can go out of range,
// and indexes it.
func newTruth(f truthFile) (*Truth, error) {
	nc, nr, nm := len(f.Channels), len(f.Regions), f.Minutes
	switch {
	case nm < 0 || int64(nm) > MaxDuration.Milliseconds()/60000+2:
		return nil, fmt.Errorf("minutes %d is out of range", nm)
	case f.End < f.Start || f.First > f.Start || f.Start-f.First >= 60000:
		return nil, fmt.Errorf("run [%d, %d) does not start in minute %d", f.Start, f.End, f.First)
	case nc > MaxChannels || nr > MaxRegions:
		return nil, fmt.Errorf("%d channels or %d regions is too many", nc, nr)
	case len(f.Audience[0]) != nm*nc || len(f.Audience[1]) != nm*nc:
		return nil, fmt.Errorf("audience tables have %d and %d cells, want %d minutes × %d channels",
			len(f.Audience[0]), len(f.Audience[1]), nm, nc)
	case len(f.EventsTotal) != nm:
		return nil, fmt.Errorf("events totals have %d minutes, want %d", len(f.EventsTotal), nm)
	case len(f.Zaps) != nm*nr:
		return nil, fmt.Errorf("zaps table has %d cells, want %d minutes × %d regions", len(f.Zaps), nm, nr)
	}
	t := &Truth{
		f:       f,
		channel: make(map[string]int, nc),
		region:  make(map[string]int, nr),
		window:  make(map[[2]int64]int, len(f.Windows)),
		set:     make(map[string]int, len(f.Sets)),
		reach:   make(map[reachKey]uint32, len(f.Reach)),
		total:   make([]uint32, nm),
	}
	for i, name := range f.Channels {
		t.channel[name] = i
	}
	for i, name := range f.Regions {
		t.region[name] = i
	}
	if len(t.channel) != nc || len(t.region) != nr {
		return nil, errors.New("channel or region names repeat")
	}
	for m := range nm {
		for _, a := range f.Audience[Tuning][m*nc : (m+1)*nc] {
			t.total[m] += a
		}
	}
	var err error
	for model := range 2 {
		if t.cells[model], _, err = f.Regional[model].cells(uint64(nm) * uint64(nc) * uint64(nr)); err != nil {
			return nil, fmt.Errorf("%s regional audiences: %w", Model(model), err)
		}
	}
	if t.flow, t.flows, err = f.Flows.cells(uint64(nm) * uint64(nc+1) * uint64(nc+1)); err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	for i, w := range f.Windows {
		if w.From >= w.To {
			return nil, fmt.Errorf("reach window [%d, %d) is empty", w.From, w.To)
		}
		t.window[[2]int64{w.From, w.To}] = i
	}
	for i, s := range f.Sets {
		for j, c := range s {
			if int(c) >= nc || j > 0 && s[j-1] >= c {
				return nil, fmt.Errorf("reach set %d is out of range or unsorted", i)
			}
		}
		t.set[setKey(s)] = 1 + nc + i
	}
	for _, c := range f.Reach {
		if c.Model > uint8(Events) || int(c.Window) >= len(f.Windows) || int(c.Set) > nc+len(f.Sets) {
			return nil, fmt.Errorf("reach cell %+v is out of range", c)
		}
		t.reach[reachKey{Model(c.Model), int(c.Window), int(c.Set)}] = c.N
	}
	return t, nil
}
