package harness

import (
	"hash/maphash"
	"os"
	"runtime"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// ExactResult is what the exact-counting baseline measured: the events
// model with one hash set of device hashes per (channel, minute), in this
// process. It is the non-private baseline: every set is a list of who
// watched what, when.
type ExactResult struct {
	Events        int64
	Seconds       float64
	EventsPerSec  float64
	CPUPerM       float64 // CPU seconds per million events (decode, hash, insert)
	HeapBytes     int64   // live heap of the sets after a GC
	Sets, Entries int
	Samples       []MemorySample `json:",omitempty"` // the live heap at the points runExact was asked for
}

// RunExact decodes the frames of msgs and counts exactly. Devices are kept
// as 64-bit hashes (maphash) rather than as their names: the cheapest exact
// representation, so the memory figure is a lower bound for exact counting.
func RunExact(msgs *Messages) (ExactResult, error) {
	return runExact(msgs, nil)
}

// runExact is RunExact that also samples the sets' live heap, after a GC,
// before the first message holding an event after each of sampleAt (Unix
// ms, ascending). The collections are in the rate and CPU figures.
func runExact(msgs *Messages, sampleAt []int64) (ExactResult, error) {
	var res ExactResult
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, err := CPUSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	seed := maphash.MakeSeed()
	channels := map[string]uint64{}
	sets := map[uint64]map[uint64]struct{}{}
	var dec event.Decoder
	var evs []event.Event
	t0 := time.Now()
	for i := range msgs.Len() {
		_, data, _, maxTS := msgs.msg(i)
		for len(sampleAt) > 0 && maxTS > sampleAt[0] {
			runtime.GC()
			var now runtime.MemStats
			runtime.ReadMemStats(&now)
			res.Samples = append(res.Samples, MemorySample{At: time.UnixMilli(sampleAt[0]).UTC(), Events: res.Events,
				Bytes: int64(now.HeapAlloc) - int64(before.HeapAlloc)})
			sampleAt = sampleAt[1:]
		}
		evs = dec.Decode(evs[:0], data, nil)
		for j := range evs {
			ev := &evs[j]
			if ev.Kind == event.Standby || len(ev.Channel) == 0 {
				continue
			}
			ch, ok := channels[string(ev.Channel)]
			if !ok {
				ch = uint64(len(channels))
				channels[string(ev.Channel)] = ch
			}
			cell := ch<<32 | uint64(ev.TS/60000)
			s := sets[cell]
			if s == nil {
				s = map[uint64]struct{}{}
				sets[cell] = s
			}
			s[maphash.Bytes(seed, ev.Device)] = struct{}{}
			res.Events++
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	cpu1, err := CPUSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.CPUPerM = (cpu1 - cpu0) / (float64(res.Events) / 1e6)
	res.HeapBytes = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	res.Sets = len(sets)
	for _, s := range sets {
		res.Entries += len(s)
	}
	runtime.KeepAlive(sets)
	return res, nil
}
