package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/sketch"
)

// Every error of DecodeLog and DecodeDay wraps exactly one of these.
var (
	// ErrTruncated: the bytes end inside a header or a record.
	ErrTruncated = errors.New("counts file truncated")
	// ErrChecksum: a header, record or body does not match its CRC-32C.
	ErrChecksum = errors.New("counts file checksum mismatch")
	// ErrVersion: a format version (or, in version 1, flags) this build
	// does not read.
	ErrVersion = errors.New("unknown counts file format version")
	// ErrCorrupt: not a counts file (wrong magic), or a structure that
	// passed its checksum but is not well formed.
	ErrCorrupt = errors.New("corrupt counts file")
)

// Minute is one sealed minute's counts as the archive keeps them: plain
// numbers and names, nothing per device. Channels, Cells and Zaps are in the
// archive's canonical order (by name; cells by region, then channel).
type Minute struct {
	Start time.Time // UTC, on the minute
	// Estimated is set when some count of the minute is a HyperLogLog
	// estimate rather than an exact count (the events model, once an
	// audience outgrew its exact set).
	Estimated bool
	// Total is the audience of all channels together.
	Total    uint64
	Channels []Count // audience per channel (Name: the channel)
	Cells    []Cell  // audience per (channel, region)
	Zaps     []Count // tune events per region (Name: the region, "" for none)
}

// Count is a count for a name.
type Count struct {
	Name string
	N    uint64
}

// Cell is a channel's audience within a region.
type Cell struct {
	Channel, Region string
	N               uint64
}

// MaxCount is the largest count the archive stores: the day format adds one
// to a count and takes differences in 64 bits.
const MaxCount = 1<<62 - 1

// FromSealed returns the counts of a sealed minute in canonical order.
// Flows are not kept (see the package doc).
func FromSealed(s *aggregator.Minute) Minute {
	m := Minute{Start: s.Start.UTC(), Total: s.Total.Value, Estimated: !isExact(s.Total)}
	m.Channels = make([]Count, 0, len(s.Channels))
	for _, c := range s.Channels {
		m.Channels = append(m.Channels, Count{c.Channel, c.Audience.Value})
		m.Estimated = m.Estimated || !isExact(c.Audience)
	}
	for _, c := range s.Cells() {
		m.Cells = append(m.Cells, Cell{c.Channel, c.Region, c.Audience.Value})
		m.Estimated = m.Estimated || !isExact(c.Audience)
	}
	for _, z := range s.Zaps {
		m.Zaps = append(m.Zaps, Count{z.Region, z.Count})
	}
	slices.SortFunc(m.Channels, func(a, b Count) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(m.Cells, compareCells)
	slices.SortFunc(m.Zaps, func(a, b Count) int { return strings.Compare(a.Name, b.Name) })
	return m
}

func compareCells(a, b Cell) int {
	if c := strings.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	return strings.Compare(a.Channel, b.Channel)
}

func isExact(e sketch.Estimate) bool { return e.Low == e.Value && e.High == e.Value }

// validate checks m against the archive's limits: what Append stores, every
// decoder accepts.
func (m *Minute) validate() error {
	if m.Start.Before(time.Unix(0, 0)) || m.Start.Unix()%60 != 0 || m.Start.Nanosecond() != 0 {
		return fmt.Errorf("minute %s is not a whole UTC minute after 1970", m.Start.Format(time.RFC3339Nano))
	}
	if dayOf(m.Start) > maxDay {
		return fmt.Errorf("minute %s is beyond the last day a file can name", stamp(m.Start))
	}
	if m.Total > MaxCount {
		return fmt.Errorf("minute %s: total %d is beyond %d", stamp(m.Start), m.Total, uint64(MaxCount))
	}
	for i, c := range m.Channels {
		if err := checkName("channel", c.Name, false); err != nil {
			return fmt.Errorf("minute %s: %w", stamp(m.Start), err)
		}
		if i > 0 && m.Channels[i-1].Name >= c.Name {
			return fmt.Errorf("minute %s: channel %q is out of order or repeated", stamp(m.Start), c.Name)
		}
		if c.N > MaxCount {
			return fmt.Errorf("minute %s: channel %q count %d is beyond %d", stamp(m.Start), c.Name, c.N, uint64(MaxCount))
		}
	}
	for i, c := range m.Cells {
		if err := checkName("channel", c.Channel, false); err != nil {
			return fmt.Errorf("minute %s: cell: %w", stamp(m.Start), err)
		}
		if err := checkName("region", c.Region, true); err != nil {
			return fmt.Errorf("minute %s: cell: %w", stamp(m.Start), err)
		}
		if i > 0 && compareCells(m.Cells[i-1], c) >= 0 {
			return fmt.Errorf("minute %s: cell (%q, %q) is out of order or repeated", stamp(m.Start), c.Channel, c.Region)
		}
		if c.N > MaxCount {
			return fmt.Errorf("minute %s: cell (%q, %q) count %d is beyond %d", stamp(m.Start), c.Channel, c.Region, c.N, uint64(MaxCount))
		}
	}
	for i, z := range m.Zaps {
		if err := checkName("region", z.Name, true); err != nil {
			return fmt.Errorf("minute %s: zaps: %w", stamp(m.Start), err)
		}
		if i > 0 && m.Zaps[i-1].Name >= z.Name {
			return fmt.Errorf("minute %s: zaps of region %q are out of order or repeated", stamp(m.Start), z.Name)
		}
		if z.N > MaxCount {
			return fmt.Errorf("minute %s: zaps of region %q: %d is beyond %d", stamp(m.Start), z.Name, z.N, uint64(MaxCount))
		}
	}
	return nil
}

func checkName(what, s string, emptyOK bool) error {
	if s == "" && emptyOK {
		return nil
	}
	if s == "" || len(s) > event.MaxChannelLen || !event.ValidName([]byte(s)) {
		return fmt.Errorf("%s %q is not 1..%d characters of [A-Za-z0-9._-]", what, clip(s), event.MaxChannelLen)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Days and minutes are counted from the Unix epoch, in UTC.
const minutesPerDay = 24 * 60

func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

// maxDay is the last day a 32-bit day number names.
const maxDay = 1<<32 - 1

func dayStart(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }
func dayName(d int64) string     { return dayStart(d).Format(time.DateOnly) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// The log: a header, then records, each checksummed on its own so that a
// torn tail is found and cut off without losing the records before it.
const (
	logMagic      = "RTCL"
	logVersion    = 1
	logHeaderSize = 16
	recHeaderSize = 8
	// maxRecord bounds one record's payload: 5000 channels, their cells
	// in 100 regions and the names of all of them fit with room to spare.
	maxRecord = 64 << 20
)

func appendLogHeader(dst []byte, day int64) []byte {
	start := len(dst)
	dst = append(dst, logMagic...)
	dst = append(dst, logVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(day))
	return binary.BigEndian.AppendUint32(dst, crc(dst[start:]))
}

// appendRecord appends m as one log record. m must be valid and in day.
func appendRecord(dst []byte, m *Minute) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recHeaderSize)...)
	dst = binary.AppendUvarint(dst, uint64(m.Start.Unix()/60%minutesPerDay))
	var flags byte
	if m.Estimated {
		flags |= flagEstimated
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, m.Total)
	dst = binary.AppendUvarint(dst, uint64(len(m.Channels)))
	for _, c := range m.Channels {
		dst = appendName(dst, c.Name)
		dst = binary.AppendUvarint(dst, c.N)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Cells)))
	for _, c := range m.Cells {
		dst = appendName(dst, c.Channel)
		dst = appendName(dst, c.Region)
		dst = binary.AppendUvarint(dst, c.N)
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Zaps)))
	for _, z := range m.Zaps {
		dst = appendName(dst, z.Name)
		dst = binary.AppendUvarint(dst, z.N)
	}
	payload := dst[start+recHeaderSize:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc(payload))
	return dst
}

// flagEstimated marks a minute with an estimated count; the other bits of
// the flags byte are zero in version 1.
const flagEstimated = 1

func appendName(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeLog decodes the log of one day: the day's first instant (UTC), its
// records in the order they were appended (a minute may appear more than
// once: the last one wins), and n, the length of the prefix of data that
// holds the header and those whole records. A record that is cut short or
// fails its checksum ends the log: err says what and where (wrapping
// ErrTruncated, ErrChecksum or ErrCorrupt), and the records before it are
// returned. A bad header returns no records and n = 0. DecodeLog never
// panics, and the result does not alias data.
func DecodeLog(data []byte) (day time.Time, mins []Minute, n int, err error) {
	d, err := parseLogHeader(data)
	if err != nil {
		return time.Time{}, nil, 0, err
	}
	day = dayStart(d)
	off := logHeaderSize
	for off < len(data) {
		rest := data[off:]
		if len(rest) < recHeaderSize {
			return day, mins, off, fmt.Errorf("record at byte %d: %w: %d of its %d header bytes", off, ErrTruncated, len(rest), recHeaderSize)
		}
		size := binary.BigEndian.Uint32(rest)
		if size == 0 || size > maxRecord {
			return day, mins, off, fmt.Errorf("record at byte %d: %w: length %d is not in 1..%d", off, ErrCorrupt, size, maxRecord)
		}
		if uint64(len(rest)-recHeaderSize) < uint64(size) {
			return day, mins, off, fmt.Errorf("record at byte %d: %w: %d of its %d bytes", off, ErrTruncated, len(rest)-recHeaderSize, size)
		}
		payload := rest[recHeaderSize : recHeaderSize+int(size)]
		if got, want := crc(payload), binary.BigEndian.Uint32(rest[4:]); got != want {
			return day, mins, off, fmt.Errorf("record at byte %d: %w: CRC-32C %08x, header says %08x", off, ErrChecksum, got, want)
		}
		m, err := decodeRecord(payload, d)
		if err != nil {
			return day, mins, off, fmt.Errorf("record at byte %d: %w", off, err)
		}
		mins = append(mins, m)
		off += recHeaderSize + int(size)
	}
	return day, mins, off, nil
}

func parseLogHeader(data []byte) (int64, error) {
	if len(data) < logHeaderSize {
		if !strings.HasPrefix(logMagic, string(data[:min(len(data), 4)])) {
			return 0, fmt.Errorf("log header: %w: magic %q is not %q", ErrCorrupt, data[:min(len(data), 4)], logMagic)
		}
		return 0, fmt.Errorf("log header: %w: %d of %d bytes", ErrTruncated, len(data), logHeaderSize)
	}
	if string(data[:4]) != logMagic {
		return 0, fmt.Errorf("log header: %w: magic %q is not %q", ErrCorrupt, data[:4], logMagic)
	}
	if got, want := crc(data[:12]), binary.BigEndian.Uint32(data[12:]); got != want {
		return 0, fmt.Errorf("log header: %w: CRC-32C %08x, header says %08x", ErrChecksum, got, want)
	}
	if data[4] != logVersion || data[5] != 0 || data[6] != 0 || data[7] != 0 {
		return 0, fmt.Errorf("log header: %w: version %d, flags %d (this build reads version %d, flags 0)", ErrVersion, data[4], data[5], logVersion)
	}
	return int64(binary.BigEndian.Uint32(data[8:])), nil
}

// reader decodes the fields of a payload; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("byte %d: %w: "+format, append([]any{r.off, ErrCorrupt}, args...)...)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("%s is not a varint", what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(what string) int64 {
	u := r.uvarint(what)
	return int64(u>>1) ^ -int64(u&1) // zigzag
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("%s is missing", what)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

// count returns a length of items of at least minSize bytes each, bounded by
// the bytes left, so that no input makes the decoder allocate more than a
// small multiple of its size.
func (r *reader) count(what string, minSize int) int {
	n := r.uvarint(what)
	if r.err == nil && n > uint64((len(r.b)-r.off)/minSize) {
		r.fail("%s %d exceeds what the %d bytes left can hold", what, n, len(r.b)-r.off)
		return 0
	}
	return int(n)
}

func (r *reader) name(what string, emptyOK bool) string {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return ""
	}
	if n > event.MaxChannelLen || n > uint64(len(r.b)-r.off) {
		r.fail("%s length %d is beyond %d or the bytes left", what, n, event.MaxChannelLen)
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	if err := checkName(what, s, emptyOK); err != nil {
		r.fail("%v", err)
		return ""
	}
	r.off += int(n)
	return s
}

func (r *reader) countValue(what string) uint64 {
	v := r.uvarint(what)
	if v > MaxCount {
		r.fail("%s %d is beyond %d", what, v, uint64(MaxCount))
	}
	return v
}

func (r *reader) flags() bool {
	f := r.byte("flags")
	if f&^flagEstimated != 0 {
		r.fail("flags %#02x has bits version 1 does not define", f)
	}
	return f&flagEstimated != 0
}

func decodeRecord(p []byte, day int64) (Minute, error) {
	r := &reader{b: p}
	var m Minute
	mod := r.uvarint("minute of the day")
	if r.err == nil && mod >= minutesPerDay {
		r.fail("minute of the day %d is not in 0..%d", mod, minutesPerDay-1)
	}
	m.Start = dayStart(day).Add(time.Duration(mod) * time.Minute)
	m.Estimated = r.flags()
	m.Total = r.countValue("total")
	if n := r.count("channel count", 2); n > 0 {
		m.Channels = make([]Count, n)
		for i := range m.Channels {
			m.Channels[i] = Count{r.name("channel", false), r.countValue("audience")}
		}
	}
	if n := r.count("cell count", 3); n > 0 {
		m.Cells = make([]Cell, n)
		for i := range m.Cells {
			m.Cells[i] = Cell{r.name("channel", false), r.name("region", true), r.countValue("cell audience")}
		}
	}
	if n := r.count("zap count", 2); n > 0 {
		m.Zaps = make([]Count, n)
		for i := range m.Zaps {
			m.Zaps[i] = Count{r.name("region", true), r.countValue("zaps")}
		}
	}
	if r.err == nil && r.off != len(p) {
		r.fail("%d bytes follow the record's fields", len(p)-r.off)
	}
	if r.err != nil {
		return Minute{}, r.err
	}
	if err := m.validate(); err != nil {
		return Minute{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// The day file: a header, then one zstd frame of a columnar body.
const (
	dayMagic      = "RTCA"
	dayVersion    = 1
	dayHeaderSize = 24
	// maxDayBody bounds a day's raw body: what 5000 channels with cells
	// in 100 regions take, several times over.
	maxDayBody = 1 << 30
)

var (
	// SpeedBetterCompression: on the day of 500 channels of TestDaySize
	// (a raw body of 750 KB) it wrote 555 KB in 22 ms, SpeedDefault 727 KB
	// in 51 ms, SpeedBestCompression 558 KB in 110 ms.
	zenc = mustEncoder()
	zdec = mustDecoder()
)

func mustEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithEncoderCRC(false), // the header's CRC-32C covers the frame
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic("BUG: zstd encoder: " + err.Error())
	}
	return e
}

func mustDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(maxDayBody),
		zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic("BUG: zstd decoder: " + err.Error())
	}
	return d
}

// encodeDay returns the day file of day d holding mins: valid minutes of
// that day, strictly increasing.
func encodeDay(d int64, mins []Minute) ([]byte, error) {
	body := appendDayBody(nil, d, mins)
	if len(body) > maxDayBody {
		return nil, fmt.Errorf("day %s: the body of %d bytes is beyond %d", dayName(d), len(body), maxDayBody)
	}
	out := make([]byte, dayHeaderSize, dayHeaderSize+len(body)/2)
	out = zenc.EncodeAll(body, out)
	copy(out, dayMagic)
	out[4] = dayVersion
	binary.BigEndian.PutUint32(out[8:], uint32(d))
	binary.BigEndian.PutUint32(out[12:], uint32(len(body)))
	binary.BigEndian.PutUint32(out[16:], crc(out[dayHeaderSize:]))
	binary.BigEndian.PutUint32(out[20:], crc(out[:20]))
	return out, nil
}

// series is a column: one value per minute of the day file, the count plus
// one, or 0 where the minute has none.
type series struct {
	a, b uint32 // name indexes: channel (or region); region of a cell
	x    []uint64
}

func appendDayBody(dst []byte, d int64, mins []Minute) []byte {
	n := len(mins)
	dst = binary.AppendUvarint(dst, uint64(n))
	prev := int64(-1)
	for _, m := range mins {
		mod := m.Start.Unix()/60 - d*minutesPerDay
		dst = binary.AppendUvarint(dst, uint64(mod-prev-1))
		prev = mod
		var flags byte
		if m.Estimated {
			flags = flagEstimated
		}
		dst = append(dst, flags)
	}

	// The names, sorted, so that a name's index orders like the name.
	set := make(map[string]struct{})
	for _, m := range mins {
		for _, c := range m.Channels {
			set[c.Name] = struct{}{}
		}
		for _, c := range m.Cells {
			set[c.Channel], set[c.Region] = struct{}{}, struct{}{}
		}
		for _, z := range m.Zaps {
			set[z.Name] = struct{}{}
		}
	}
	names := make([]string, 0, len(set))
	for s := range set {
		names = append(names, s)
	}
	slices.Sort(names)
	index := make(map[string]uint32, len(names))
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for i, s := range names {
		index[s] = uint32(i)
		dst = appendName(dst, s)
	}

	totals := make([]uint64, n)
	for i, m := range mins {
		totals[i] = m.Total
	}
	dst = appendColumn(dst, totals)

	column := func(cols map[uint64]*series, key uint64, a, b uint32, i int, v uint64) {
		s := cols[key]
		if s == nil {
			s = &series{a: a, b: b, x: make([]uint64, n)}
			cols[key] = s
		}
		s.x[i] = v + 1
	}
	chans := make(map[uint64]*series)
	cells := make(map[uint64]*series)
	zaps := make(map[uint64]*series)
	for i, m := range mins {
		for _, c := range m.Channels {
			k := index[c.Name]
			column(chans, uint64(k), k, 0, i, c.N)
		}
		for _, c := range m.Cells {
			r, ch := index[c.Region], index[c.Channel]
			column(cells, uint64(r)<<32|uint64(ch), r, ch, i, c.N)
		}
		for _, z := range m.Zaps {
			k := index[z.Name]
			column(zaps, uint64(k), k, 0, i, z.N)
		}
	}
	dst = appendSeries(dst, chans, false)
	dst = appendSeries(dst, cells, true)
	return appendSeries(dst, zaps, false)
}

func appendSeries(dst []byte, cols map[uint64]*series, pair bool) []byte {
	keys := make([]uint64, 0, len(cols))
	for k := range cols {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		s := cols[k]
		dst = binary.AppendUvarint(dst, uint64(s.a))
		if pair {
			dst = binary.AppendUvarint(dst, uint64(s.b))
		}
		dst = appendColumn(dst, s.x)
	}
	return dst
}

// appendColumn writes each value as the zigzag varint of its difference
// from the one before: audiences move little from one minute to the next.
func appendColumn(dst []byte, xs []uint64) []byte {
	var prev uint64
	for _, x := range xs {
		dst = binary.AppendVarint(dst, int64(x-prev))
		prev = x
	}
	return dst
}

// DecodeDay decodes a day file: the day's first instant (UTC) and its
// minutes, oldest first. Every error wraps ErrTruncated, ErrChecksum,
// ErrVersion or ErrCorrupt. Both checksums are verified before anything is
// inflated, and the inflated body is bounded by what its header declares.
// DecodeDay never panics, and the result does not alias data.
func DecodeDay(data []byte) (time.Time, []Minute, error) {
	if len(data) < dayHeaderSize {
		if !strings.HasPrefix(dayMagic, string(data[:min(len(data), 4)])) {
			return time.Time{}, nil, fmt.Errorf("day header: %w: magic %q is not %q", ErrCorrupt, data[:min(len(data), 4)], dayMagic)
		}
		return time.Time{}, nil, fmt.Errorf("day header: %w: %d of %d bytes", ErrTruncated, len(data), dayHeaderSize)
	}
	if string(data[:4]) != dayMagic {
		return time.Time{}, nil, fmt.Errorf("day header: %w: magic %q is not %q", ErrCorrupt, data[:4], dayMagic)
	}
	if got, want := crc(data[:20]), binary.BigEndian.Uint32(data[20:]); got != want {
		return time.Time{}, nil, fmt.Errorf("day header: %w: CRC-32C %08x, header says %08x", ErrChecksum, got, want)
	}
	if data[4] != dayVersion || data[5] != 0 || data[6] != 0 || data[7] != 0 {
		return time.Time{}, nil, fmt.Errorf("day header: %w: version %d, flags %d (this build reads version %d, flags 0)", ErrVersion, data[4], data[5], dayVersion)
	}
	d := int64(binary.BigEndian.Uint32(data[8:]))
	rawLen := binary.BigEndian.Uint32(data[12:])
	if got, want := crc(data[dayHeaderSize:]), binary.BigEndian.Uint32(data[16:]); got != want {
		return time.Time{}, nil, fmt.Errorf("day %s body: %w: CRC-32C %08x, header says %08x (a file of %d bytes)", dayName(d), ErrChecksum, got, want, len(data))
	}
	if rawLen > maxDayBody {
		return time.Time{}, nil, fmt.Errorf("day %s body: %w: raw length %d is beyond %d", dayName(d), ErrCorrupt, rawLen, maxDayBody)
	}
	body, err := zdec.DecodeAll(data[dayHeaderSize:], nil)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("day %s body: %w: zstd: %v", dayName(d), ErrCorrupt, err)
	}
	if len(body) != int(rawLen) {
		return time.Time{}, nil, fmt.Errorf("day %s body: %w: %d bytes inflated, the header says %d", dayName(d), ErrCorrupt, len(body), rawLen)
	}
	mins, err := decodeDayBody(body, d)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("day %s body: %w", dayName(d), err)
	}
	return dayStart(d), mins, nil
}

func decodeDayBody(body []byte, d int64) ([]Minute, error) {
	r := &reader{b: body}
	n := r.count("minute count", 2)
	if r.err == nil && n > minutesPerDay {
		r.fail("minute count %d is beyond %d", n, minutesPerDay)
	}
	mins := make([]Minute, n)
	mod := int64(-1)
	for i := range mins {
		gap := r.uvarint("minute gap")
		if r.err == nil && gap >= minutesPerDay {
			r.fail("minute gap %d is beyond a day", gap)
		}
		mod += int64(gap) + 1
		if r.err == nil && mod >= minutesPerDay {
			r.fail("minute of the day %d is not in 0..%d", mod, minutesPerDay-1)
		}
		mins[i].Start = dayStart(d).Add(time.Duration(mod) * time.Minute)
		mins[i].Estimated = r.flags()
	}
	names := make([]string, r.count("name count", 1))
	for i := range names {
		names[i] = r.name("name", true)
		if r.err == nil && i > 0 && names[i-1] >= names[i] {
			r.fail("name %q is out of order or repeated", names[i])
		}
	}
	name := func(what string, emptyOK bool) string {
		i := r.uvarint(what + " index")
		if r.err != nil {
			return ""
		}
		if i >= uint64(len(names)) {
			r.fail("%s index %d is beyond the %d names", what, i, len(names))
			return ""
		}
		if names[i] == "" && !emptyOK {
			r.fail("%s index %d names the empty name", what, i)
		}
		return names[i]
	}
	column := func(what string, present bool, set func(i int, v uint64)) {
		var x uint64
		for i := range n {
			delta := r.varint(what)
			if r.err != nil {
				return
			}
			x += uint64(delta)
			v := x
			if present {
				if x == 0 {
					continue
				}
				v = x - 1
			}
			if v > MaxCount {
				r.fail("%s %d is beyond %d", what, v, uint64(MaxCount))
				return
			}
			set(i, v)
		}
	}
	column("total", false, func(i int, v uint64) { mins[i].Total = v })
	// A column takes at least one byte per minute: the count of columns
	// is bounded by the bytes left divided by the minutes.
	per := max(n, 1)
	// The channel and cell sections are read twice: first to count each
	// minute's entries, so that they share one allocation, then to fill it.
	// Appending as they came allocated 2.5 times as much (BenchmarkRangeDay).
	chStart := r.off
	chCounts := make([]int, n)
	readChannels := func(emit func(i int, ch string, v uint64)) {
		nch := r.count("channel series count", per)
		prev := ""
		for k := range nch {
			ch := name("channel", false)
			if r.err == nil && k > 0 && ch <= prev {
				r.fail("channel %q is out of order or repeated", ch)
			}
			prev = ch
			column("audience", true, func(i int, v uint64) { emit(i, ch, v) })
		}
	}
	readChannels(func(i int, _ string, _ uint64) { chCounts[i]++ })
	if r.err == nil {
		backing := make([]Count, sum(chCounts))
		for i, k := range chCounts {
			if k > 0 {
				mins[i].Channels, backing = backing[:0:k], backing[k:]
			}
		}
		r.off = chStart
		readChannels(func(i int, ch string, v uint64) { mins[i].Channels = append(mins[i].Channels, Count{ch, v}) })
	}

	cellStart := r.off
	cellCounts := make([]int, n)
	readCells := func(emit func(i int, ch, region string, v uint64)) {
		ncell := r.count("cell series count", per)
		var prevCell Cell
		for k := range ncell {
			region := name("region", true)
			ch := name("channel", false)
			c := Cell{Channel: ch, Region: region}
			if r.err == nil && k > 0 && compareCells(prevCell, c) >= 0 {
				r.fail("cell (%q, %q) is out of order or repeated", ch, region)
			}
			prevCell = c
			column("cell audience", true, func(i int, v uint64) { emit(i, ch, region, v) })
		}
	}
	readCells(func(i int, _, _ string, _ uint64) { cellCounts[i]++ })
	if r.err == nil {
		backing := make([]Cell, sum(cellCounts))
		for i, k := range cellCounts {
			if k > 0 {
				mins[i].Cells, backing = backing[:0:k], backing[k:]
			}
		}
		r.off = cellStart
		readCells(func(i int, ch, region string, v uint64) { mins[i].Cells = append(mins[i].Cells, Cell{ch, region, v}) })
	}

	nzap := r.count("zap series count", per)
	prev := ""
	for k := range nzap {
		region := name("region", true)
		if r.err == nil && k > 0 && region <= prev {
			r.fail("zaps of region %q are out of order or repeated", region)
		}
		prev = region
		column("zaps", true, func(i int, v uint64) { mins[i].Zaps = append(mins[i].Zaps, Count{region, v}) })
	}
	if r.err == nil && r.off != len(body) {
		r.fail("%d bytes follow the last series", len(body)-r.off)
	}
	if r.err != nil {
		return nil, r.err
	}
	return mins, nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
