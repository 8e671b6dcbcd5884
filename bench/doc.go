// Package bench generates a realistic, seeded load of set-top-box events and
// computes its exact ground truth, for tests, benchmarks, the service's demo
// mode and the tvload command.
//
// A Generator simulates a population of boxes (Config; the viewing model and
// where its numbers come from are in docs/workload.md): a daily viewing
// curve, viewing sessions that open with a state report or a tune and end in
// standby or silence, zapping bursts at session start, programme boundaries
// and ad breaks, Zipf-like channel popularity with a prime-time peak, and
// optional heartbeats, duplicates and jitter. It simulates event time in
// five-minute epochs: every box due in the epoch is stepped through it in
// box order (state arrays stream through the cache; a time-ordered queue
// waited on memory for each event), the epoch's events are radix-sorted by
// time, and Next hands them out in batches, as fast as possible or paced
// against the wall clock. Each box keeps 20 bytes of state, so ten million
// boxes fit in a few hundred MB.
//
// With Config.Truth the Generator also applies docs/semantics.md to every
// event it hands out, in order, and builds a Truth: per-minute audiences in
// both models, totals, regional audiences, channel changes, flows and reach.
// The truth is derived from the events, not from the simulation's intent,
// so duplicates, jitter and silent boxes count exactly as an aggregator sees
// them; a test re-derives it by brute force. A Truth holds only aggregate
// numbers and is written next to a stream file (WriteStream, LoadTruth).
//
// Streams are written as zstd-compressed binary batch frames (StreamWriter,
// OpenStream) and published to NATS (Publisher) as JSON events, JSON arrays
// or binary frames, partitioned by box.
//
// A Generator, StreamWriter, Stream and Publisher are not safe for
// concurrent use; a Truth is immutable and is.
package bench
