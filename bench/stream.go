package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ratingsd/ratingsd/aggregator/event"
)

// A stream file is a zstd stream whose content is streamMagic followed by
// binary batch frames (docs/wire-format.md), each preceded by its length as
// a 4-byte little-endian integer (docs/workload.md, Stream file).
const streamMagic = "ratingsd stream v1\n"

// maxStreamFrame bounds a frame that a Stream reads: the decoder's default
// message limit.
const maxStreamFrame = event.DefaultMaxMessageBytes

// ErrNotStream is returned for input that is not a well-formed stream file.
var ErrNotStream = errors.New("not a ratingsd stream file")

// StreamOptions configures a StreamWriter.
type StreamOptions struct {
	// FrameEvents is the number of events per frame. If 0, 4096: larger
	// frames repeat the channel and region dictionaries less often.
	FrameEvents int
	// Level is the zstd level. If 0, zstd.SpeedDefault; the committed
	// testdata stream uses zstd.SpeedBestCompression.
	Level zstd.EncoderLevel
}

// StreamWriter writes a stream file. It is not safe for concurrent use.
type StreamWriter struct {
	zw          *zstd.Encoder
	bw          *bufio.Writer
	enc         event.BatchEncoder
	frameEvents int
	frame       []byte
	frames      int64
	events      int64
	err         error
}

// NewStreamWriter returns a StreamWriter that writes to w. Close it to
// flush the last frame; it does not close w.
func NewStreamWriter(w io.Writer, opt StreamOptions) (*StreamWriter, error) {
	if opt.FrameEvents == 0 {
		opt.FrameEvents = 4096
	}
	if opt.FrameEvents < 1 || opt.FrameEvents > event.DefaultMaxBatchEvents {
		return nil, fmt.Errorf("stream: frame events %d is outside 1..%d", opt.FrameEvents, event.DefaultMaxBatchEvents)
	}
	if opt.Level == 0 {
		opt.Level = zstd.SpeedDefault
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(opt.Level), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	s := &StreamWriter{zw: zw, bw: bufio.NewWriterSize(zw, 1<<16), frameEvents: opt.FrameEvents}
	_, s.err = s.bw.WriteString(streamMagic)
	return s, s.err
}

// Write adds events to the stream, writing a frame every FrameEvents.
func (s *StreamWriter) Write(evs []event.Event) error {
	for i := range evs {
		if s.err != nil {
			return s.err
		}
		if err := s.enc.Add(&evs[i]); err != nil {
			s.err = fmt.Errorf("stream: event %d: %w", s.events, err)
			return s.err
		}
		s.events++
		if s.enc.Len() == s.frameEvents {
			s.flushFrame()
		}
	}
	return s.err
}

// WriteFrame writes an encoded frame as it is, after the events written so
// far. The caller vouches that it decodes.
func (s *StreamWriter) WriteFrame(frame []byte) error {
	if s.enc.Len() > 0 {
		s.flushFrame()
	}
	s.writeFrame(frame)
	return s.err
}

func (s *StreamWriter) flushFrame() {
	s.frame = s.enc.AppendFrame(s.frame[:0], false)
	s.enc.Reset()
	s.writeFrame(s.frame)
}

func (s *StreamWriter) writeFrame(frame []byte) {
	if s.err != nil {
		return
	}
	if len(frame) > maxStreamFrame {
		s.err = fmt.Errorf("stream: frame of %d bytes exceeds %d", len(frame), maxStreamFrame)
		return
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(frame)))
	s.bw.Write(n[:])
	_, s.err = s.bw.Write(frame)
	s.frames++
}

// Close writes the last frame and ends the zstd stream.
func (s *StreamWriter) Close() error {
	if s.enc.Len() > 0 {
		s.flushFrame()
	}
	if s.err == nil {
		s.err = s.bw.Flush()
	}
	if err := s.zw.Close(); s.err == nil {
		s.err = err
	}
	return s.err
}

// Stream reads a stream file. It is not safe for concurrent use.
type Stream struct {
	f     io.Closer
	zr    *zstd.Decoder
	br    *bufio.Reader
	frame []byte
	dec   event.Decoder
	rej   event.Rejections
	n     int64 // frames read
}

// OpenStream opens the stream file at path.
func OpenStream(path string) (*Stream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	s, err := NewStreamReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open stream %s: %w", path, err)
	}
	s.f = f
	return s, nil
}

// NewStreamReader reads a stream file from r.
func NewStreamReader(r io.Reader) (*Stream, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
	if err != nil {
		return nil, err
	}
	s := &Stream{zr: zr, br: bufio.NewReaderSize(zr, 1<<16)}
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(s.br, magic); err != nil || string(magic) != streamMagic {
		zr.Close()
		if err == nil {
			err = fmt.Errorf("content starts with %q", magic)
		}
		return nil, fmt.Errorf("%w: %w", ErrNotStream, err)
	}
	return s, nil
}

// NextFrame returns the next frame, valid until the next call, or io.EOF
// after the last one.
func (s *Stream) NextFrame() ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(s.br, n[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: frame %d: length: %w", ErrNotStream, s.n, err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > maxStreamFrame {
		return nil, fmt.Errorf("%w: frame %d claims %d bytes, max %d", ErrNotStream, s.n, size, maxStreamFrame)
	}
	if cap(s.frame) < int(size) {
		s.frame = make([]byte, size)
	}
	s.frame = s.frame[:size]
	if _, err := io.ReadFull(s.br, s.frame); err != nil {
		return nil, fmt.Errorf("%w: frame %d of %d bytes: %w", ErrNotStream, s.n, size, err)
	}
	s.n++
	return s.frame, nil
}

// Next appends the events of the next frame to dst, or returns io.EOF after
// the last one. The events alias the Stream's buffers until the next call.
// A frame with an event the decoder rejects is an error: a stream file
// holds only valid events.
func (s *Stream) Next(dst []event.Event) ([]event.Event, error) {
	frame, err := s.NextFrame()
	if err != nil {
		return dst, err
	}
	s.rej.Reset()
	dst = s.dec.Decode(dst, frame, &s.rej)
	if s.rej.Total() > 0 {
		return dst, fmt.Errorf("%w: frame %d: %d events rejected, first: %w", ErrNotStream, s.n-1, s.rej.Total(), s.rej.First)
	}
	return dst, nil
}

// Close releases the Stream and closes its file.
func (s *Stream) Close() error {
	s.zr.Close()
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// Progress reports how far a long run has got.
type Progress struct {
	Events     int64     // events so far
	Now        time.Time // the event time reached
	Start, End time.Time // of the run
}

// StreamStats summarises a written stream.
type StreamStats struct {
	Events, Frames    int64
	Bytes, TruthBytes int64 // file sizes
}

// WriteStream runs g to its end, writing its events to the stream file at
// path and, if g computes the truth, the truth to path+".truth". progress,
// if not nil, is called about every million events and at the end.
func WriteStream(ctx context.Context, path string, g *Generator, opt StreamOptions, progress func(Progress)) (StreamStats, error) {
	var st StreamStats
	f, err := os.Create(path)
	if err != nil {
		return st, fmt.Errorf("write stream: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := NewStreamWriter(bw, opt)
	if err != nil {
		return st, err
	}
	report := func() {
		if progress != nil {
			progress(Progress{Events: g.Events(), Now: g.Now(), Start: g.cfg.Start, End: g.End()})
		}
	}
	var batch []event.Event
	next := int64(1 << 20)
	for g.Next(ctx, &batch) {
		if err := w.Write(batch); err != nil {
			return st, fmt.Errorf("write stream %s: %w", path, err)
		}
		if g.Events() >= next {
			next += 1 << 20
			report()
		}
	}
	if err := g.Err(); err != nil {
		return st, fmt.Errorf("write stream %s: %w", path, err)
	}
	report()
	if err := w.Close(); err != nil {
		return st, fmt.Errorf("write stream %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("write stream %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return st, fmt.Errorf("write stream %s: %w", path, err)
	}
	st.Events, st.Frames = w.events, w.frames
	if fi, err := os.Stat(path); err == nil {
		st.Bytes = fi.Size()
	}
	if t := g.Truth(); t != nil {
		if err := t.WriteFile(path + ".truth"); err != nil {
			return st, err
		}
		if fi, err := os.Stat(path + ".truth"); err == nil {
			st.TruthBytes = fi.Size()
		}
	}
	return st, nil
}
