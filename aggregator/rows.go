package aggregator

import (
	"encoding/binary"
	"slices"
)

// rows is a sealed minute's table of (a, b, value) rows: audiences per
// (region, channel) cell, or devices per (from, to) flow. Sealed minutes are
// kept for the minute retention (48 h): at 300 channels and 40 regions a
// minute has up to 12,000 cells, which as Cell structs (two string headers
// and an estimate, 56 bytes) came to ~40 MiB an hour, more than twice the
// minute's sketches. Here a row is three uvarints (ids into the name tables
// a and b, and the value), about 4 bytes; a and b are the id → name tables
// the ids were given under (an Aggregator's, or a checkpoint section's),
// immutable and shared by every minute that uses them.
type rows struct {
	a, b []string
	n    int
	data []byte
}

// add appends the row (a, b, v).
func (t *rows) add(a, b uint32, v uint64) {
	t.data = binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(t.data, uint64(a)), uint64(b)), v)
	t.n++
}

// done trims the rows' storage to their size once the last is added.
func (t *rows) done() { t.data = slices.Clip(slices.Clone(t.data)) }

// each calls f with the names and value of every row, in the order added.
func (t *rows) each(f func(a, b string, v uint64)) {
	d := t.data
	for range t.n {
		a, k := binary.Uvarint(d)
		d = d[k:]
		b, k := binary.Uvarint(d)
		d = d[k:]
		v, k := binary.Uvarint(d)
		d = d[k:]
		f(t.a[a], t.b[b], v)
	}
}

// Cells returns the audiences per (channel, region) of the minute, for the
// regions events carried: by region, then by descending audience, then by
// channel. Each call builds a new slice.
func (m *Minute) Cells() []Cell {
	out := make([]Cell, 0, m.cells.n)
	m.cells.each(func(region, ch string, n uint64) {
		out = append(out, Cell{Channel: ch, Region: region, Audience: exact(n)})
	})
	return out
}

// NumCells returns the number of (channel, region) cells of the minute.
func (m *Minute) NumCells() int { return m.cells.n }

// Flows returns the minute's flows between viewing states (Tuning only; ""
// is off): by descending devices, then from, then to. Each call builds a
// new slice.
func (m *Minute) Flows() []Flow {
	out := make([]Flow, 0, m.flows.n)
	m.flows.each(func(from, to string, n uint64) {
		out = append(out, Flow{From: from, To: to, Devices: n})
	})
	return out
}

// SetCells replaces the minute's cells with cells, kept in the order given,
// and SetFlows its flows: for a Minute made outside the engine (the
// archive's tests, a tool), as a sealed minute's come from the sealer or a
// checkpoint. A cell's Audience.Value is its count.
func (m *Minute) SetCells(cells []Cell) {
	var regions, chans nameTable
	for _, c := range cells {
		regions.id(c.Region)
		chans.id(c.Channel)
	}
	m.cells = rows{a: regions.names, b: chans.names}
	for _, c := range cells {
		m.cells.add(regions.id(c.Region), chans.id(c.Channel), c.Audience.Value)
	}
	m.cells.done()
}

// SetFlows: see SetCells.
func (m *Minute) SetFlows(flows []Flow) {
	var chans nameTable
	for _, f := range flows {
		chans.id(f.From)
		chans.id(f.To)
	}
	m.flows = rows{a: chans.names, b: chans.names}
	for _, f := range flows {
		m.flows.add(chans.id(f.From), chans.id(f.To), f.Devices)
	}
	m.flows.done()
}

// nameTable gives names ids in the order they come (for SetCells).
type nameTable struct {
	names []string
	ids   map[string]uint32
}

func (t *nameTable) id(name string) uint32 {
	if id, ok := t.ids[name]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[string]uint32)
	}
	id := uint32(len(t.names))
	t.names = append(t.names, name)
	t.ids[name] = id
	return id
}
