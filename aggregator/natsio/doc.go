// Package natsio connects the aggregator to NATS: an embedded server, the
// intake of events (core NATS or JetStream), the publication of sealed
// minutes, and the NATS micro service that answers queries.
//
// The embedded Server runs nats-server in process with JetStream on; the
// service talks to it over an in-process pipe (nats.InProcessServer), which
// skips TCP. The core Intake is a queue subscription whose callback deals each
// message to one of W workers; a worker owns an event.Decoder, an
// aggregator.Writer and a tally of counts, so the per-event path shares
// nothing but the aggregator's shard locks. In the tuning model messages are
// dealt by subject, keeping each subject's events in arrival order. The
// subscription's pending limits are raised so that bursts are buffered, and
// what overflows is counted (slow consumer, dropped). The JetStreamIntake
// consumes a durable pull consumer with Consume and one in-order processor,
// acknowledging with AckAll. Every rejected event is counted by reason and
// explained in a log line at most once a second per reason, never naming the
// device.
//
// A Publisher sends every sealed minute as JSON on ratings.minute.<channel>
// and a summary on ratings.minute. StartMicro registers the micro service
// "ratings" whose endpoints answer through the HTTP API's handler, so both
// interfaces give the same JSON.
//
// Server, Intake, JetStreamIntake and Publisher are safe for concurrent use;
// each intake is stopped once, by its owner, with Stop.
package natsio
