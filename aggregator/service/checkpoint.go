package service

// Durability (DESIGN.md): the restore at start-up, the checkpoint loop and
// the final checkpoint at shutdown.
//
// The key files live in <-data>/keys (package keys; mode 0600, in a
// directory of mode 0700): the pseudonym key, and one key per day and per
// ISO week, which make the sealed sections of the checkpoints readable. The
// engine deletes an epoch's key once its data has expired, which shreds
// that epoch's sections in every checkpoint. The checkpoints live in
// <-data>/checkpoints (package store): each sealed hour of either tier is
// written once, as a segment file, and every checkpoint file lists the
// segments it depends on and holds the rest (docs/operations.md,
// Durability). A checkpoint is written by one goroutine at a time (ckptMu):
// the loop while the service runs, then Shutdown once the loop has ended.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ratingsd/ratingsd/aggregator"
	"github.com/ratingsd/ratingsd/aggregator/keys"
	"github.com/ratingsd/ratingsd/aggregator/natsio"
	"github.com/ratingsd/ratingsd/aggregator/store"
	"github.com/ratingsd/ratingsd/sketch"
)

// Paths under DataDir.
const (
	keyDir        = "keys"
	keyFile       = keys.PseudonymFile
	checkpointDir = "checkpoints"
)

// DefaultCheckpointEvery is the period of the checkpoint loop.
const DefaultCheckpointEvery = 30 * time.Second

// ErrKeyFile is wrapped by the start-up errors about the key files.
var ErrKeyFile = keys.ErrKeyFile

// openCheckpoints opens and locks the checkpoint directory. It loads
// nothing yet: which checkpoint is usable takes the engine's configuration,
// so restore loads it, and cp is always nil.
func (s *Service) openCheckpoints(_ *sketch.Key) (*store.Checkpoint, error) {
	dir, err := store.Open(filepath.Join(s.cfg.DataDir, checkpointDir))
	if err != nil {
		return nil, fmt.Errorf("-data %s: %w", s.cfg.DataDir, err)
	}
	s.store = dir
	return nil, nil
}

// restore builds the aggregator from cp if it is not nil, or else from the
// newest usable checkpoint of the directory: newest to oldest, each file
// that does not decode (truncated, a checksum mismatch, an unknown version)
// or whose sections the engine cannot restore (damaged, or sealed under a
// key that is gone) is logged with its name and cause and passed over. Only
// if none is usable does the service start empty, and says so. A checkpoint
// of another configuration stops the start: its error names the setting.
func (s *Service) restore(cfg aggregator.Config, cp *store.Checkpoint) (*aggregator.Aggregator, error) {
	var a *aggregator.Aggregator
	use := func(cp *store.Checkpoint) error {
		var err error
		a, err = aggregator.Restore(cfg, cp)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, aggregator.ErrCheckpointConfig):
			return fmt.Errorf("checkpoint in %s was written under another -model, -precision, -min-dwell, -inactivity or key; start with the settings it was written with, or move the directory away to start empty: %w", s.store.Path(), err)
		case errors.Is(err, aggregator.ErrCheckpointCorrupt):
			return fmt.Errorf("%w: %w", store.ErrUnusable, err)
		}
		return err
	}
	if cp != nil {
		if err := use(cp); err != nil {
			return nil, err
		}
	} else {
		var skipped []*store.Skipped
		var err error
		cp, skipped, err = s.store.Load(cfg.Keys.Lookup, use)
		for _, sk := range skipped {
			s.log.Error("checkpoint skipped, trying an older one", "file", filepath.Base(sk.Path), "reason", sk.Reason(), "err", sk.Err)
			s.metrics.CheckpointSkipped(sk.Reason())
		}
		if err != nil {
			return nil, err
		}
		if cp == nil {
			if len(skipped) > 0 {
				s.log.Error("no usable checkpoint: starting empty", "dir", s.store.Path(), "skipped_files", len(skipped))
			}
			return aggregator.New(cfg)
		}
	}
	s.resumeAfter = cp.StreamSeq
	s.log.Info("restored checkpoint", "seq", cp.Seq, "created", cp.Created, "stream_seq", cp.StreamSeq,
		"sealed_minutes", a.SealedMinutes(), "accepted_events", a.Accepted())
	return a, nil
}

// resetConsumer deletes the durable JetStream consumer before a restore, so
// that the intake starts a new one after the checkpoint's stream position
// (natsio's ResumeAfter) rather than after the old one's acknowledgements,
// which may be ahead of the checkpoint after a crash.
func resetConsumer(ctx context.Context, nc *nats.Conn, stream string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	err = js.DeleteConsumer(ctx, stream, natsio.DefaultDurable)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("reset consumer %q of stream %q to the checkpoint: %w", natsio.DefaultDurable, stream, err)
	}
	return nil
}

// checkpointer writes checkpoints and remembers whether they fail.
type checkpointer struct {
	mu      sync.Mutex // one checkpoint at a time
	failing error      // the last write's error, nil after a success
	// ready is what /readyz reports: nil while checkpoints succeed.
	ready atomic.Pointer[error]
}

// checkpoint snapshots the aggregator, writes the checkpoint and prunes the
// old ones. A failure is logged once per streak of failures and reported by
// /readyz until a write succeeds; ingest and queries go on either way.
func (s *Service) checkpoint() error {
	c := &s.ckpt
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	sn := s.agg.Snapshot(s.StreamSequence)
	size, err := s.writeSnapshot(sn)
	if err != nil {
		s.metrics.CheckpointFailed()
		if c.failing == nil {
			s.log.Error("checkpoint failing; retrying every -checkpoint-every, logged again when it recovers", "err", err)
		}
		c.failing = err
		ready := fmt.Errorf("checkpoint failing: %w", err)
		c.ready.Store(&ready)
		return err
	}
	took := time.Since(start)
	s.metrics.CheckpointWritten(took, size, sn.Pause, time.Now())
	if c.failing != nil {
		s.log.Info("checkpoint recovered", "after", c.failing)
		c.failing = nil
		c.ready.Store(nil)
	}
	s.log.Debug("checkpoint written", "bytes", size, "took", took, "ingest_pause", sn.Pause, "stream_seq", sn.StreamSeq)
	return nil
}

// writeSnapshot writes the segments of the sealed hours that no checkpoint
// holds yet (each once, one at a time), then the checkpoint file, which
// lists every segment it depends on, then prunes: old checkpoints, and the
// segments no kept checkpoint lists or whose key epoch is gone. It returns
// the bytes written.
func (s *Service) writeSnapshot(sn *aggregator.Snapshot) (int64, error) {
	if err := sn.WriteSegments(s.store); err != nil {
		return 0, fmt.Errorf("write sealed hours: %w", err)
	}
	cp, err := sn.Encode()
	if err != nil {
		return 0, fmt.Errorf("encode checkpoint: %w", err)
	}
	if s.cfg.ForgetTuning {
		kept := cp.Sections[:0]
		for _, sec := range cp.Sections {
			if sec.Name != "tuning" {
				kept = append(kept, sec)
			}
		}
		cp.Sections = kept
	}
	f, err := s.store.Write(cp, sn.Keys())
	if err != nil {
		return 0, err
	}
	var live store.KeyLookup
	if s.keys != nil {
		live = s.keys.Lookup
	}
	if err := s.store.PruneKeys(store.DefaultKeep, live); err != nil {
		// The new checkpoint is written; old files left behind are
		// retried at the next prune.
		s.log.Warn("prune old checkpoints", "err", err)
	}
	return f.Size, nil
}

// checkpointLoop writes a checkpoint every CheckpointEvery until ctx ends.
func (s *Service) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.checkpoint()
		}
	}
}
