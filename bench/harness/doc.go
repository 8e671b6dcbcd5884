// Package harness runs the benchmark suite of ratingsd: the NATS ceiling
// (`nats bench`), ratingsd end to end, the Redis HyperLogLog and exact
// counting alternatives on the same stream, latency, accuracy against the
// generator's exact truth, scale, and memory with retention against exact
// counting (hours of one stream, sampled as they are retained, with the
// ratio at the product's 48 h extrapolated from fitted lines); and writes
// the report and its charts (bench/RESULTS.md, bench/img/).
// bench/cmd/benchrun is its command.
//
// Run starts what it measures as child processes, so that each has its own
// CPU and memory figures from /proc: one nats-server (built at the version
// go.mod pins), a fresh ratingsd for every repetition (built from the
// tree), redis-server (Debian's), and natscli's `nats bench` (installed at
// NATSCLIVersion into a bench-local GOBIN). The workload is generated once
// (bench.Generator) and kept in memory, 16 bytes an event, then encoded
// per scenario, so the generator's cost stays out of every figure. The
// publisher keeps a bounded number of events in flight, polling ratingsd's
// own event counter, so rates are sustained rather than buffered. Every
// scenario is bounded in events and time. Children die with the harness:
// KillChildren stops them by process id, and on Linux the kernel kills them
// if the harness itself dies.
//
// The pure parts — parsing `nats bench` output, /proc files and Prometheus
// text, statistics, the RESULTS.md section — are plain functions, tested
// without any process. Run, Env and a Child's methods are meant for one
// goroutine; KillChildren is safe to call from any.
package harness
