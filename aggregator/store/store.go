// Package store keeps the engine's checkpoints: versioned, checksummed,
// compressed files in a data directory, written atomically and loaded at
// start-up, with the sketches of each key epoch encrypted so that deleting
// the epoch key makes every older copy of them unreadable.
//
// The engine hands Dir.Write a Checkpoint: a few header fields and a list of
// named sections of bytes that only the engine interprets, so it can add a
// section without a new file format. A section with an Epoch is sealed under
// a key derived from that epoch's key (KeyLookup); the file names the epoch
// but never holds a key. Write streams the sections, one chunk at a time,
// through zstd, AES-GCM and a CRC-32C into a temporary file in the
// directory, then fsyncs it, renames it to its final name and fsyncs the
// directory, so a crash leaves either the whole new file or none of it.
// Load returns the newest file that passes every check and that the caller
// can use, and says precisely what was wrong with each newer one (truncated
// at which byte, which checksum, which version, or the caller's reason); a
// sealed section whose epoch key is gone is left out and reported, for the
// caller to judge. Prune keeps the newest good files, and never counts a
// file Load passed over as one.
//
// # Concurrency
//
// A Dir holds an exclusive lock on its directory (flock on the file LOCK),
// so two processes cannot checkpoint into one directory. Write,
// WriteSegment and Prune serialize on the Dir's mutex and may be called
// from any goroutine; a Write runs on the caller's goroutine and uses one
// core. Load and Decode read only finished files or the caller's bytes and
// are safe to run concurrently with anything. Write neither modifies nor retains the
// Checkpoint, so the caller can write from a consistent copy of its state
// while ingest goes on.
//
// # Segments
//
// Sealed data that never changes (a complete hour of minutes) need not be
// written again by every checkpoint. The engine gives it as a Segment: an
// immutable file written once (segment-<name>.rtsg, in the same format,
// atomically too), which every later checkpoint lists by name, epoch, size
// and header checksum instead of holding it. Write writes the segments of a
// checkpoint that have no size yet (WriteSegment writes one ahead of it),
// then the checkpoint file. Load reads the listed segments of a checkpoint
// with it: a segment whose epoch key is gone has expired and is reported in
// its Err, unread (it may be deleted); a segment that is missing, or whose
// size, checksums or structure do not match the list, makes the checkpoint
// unusable (ErrSegment), and Load falls back to an older one. Prune deletes
// the segments that no checkpoint it keeps lists, and those of expired
// epochs (PruneKeys).
//
// # File format, version 2
//
// A checkpoint is the file checkpoint-<seq>.rtck, seq in 20 decimal digits,
// so that names sort like sequence numbers; a segment is the file
// segment-<name>.rtsg. Integers are big-endian.
//
//	offset  size  field
//	0       4     magic "RTCK"
//	4       2     format version: 2 (1 is read too)
//	6       2     flags: bit 0 set = a segment; others 0 (version 1: 0)
//	8       8     sequence number (a segment: 0)
//	16      8     created at, Unix nanoseconds
//	24      8     stream sequence (JetStream; 0 = none)
//	32      8     body length B in bytes
//	40      4     section count
//	44      4     CRC-32C (Castagnoli) of the body
//	48      4     CRC-32C of bytes 0..47
//	52      B     body: the segment list (version 2 only), then the
//	              sections, one after another
//
// The segment list is a 4-byte count S (0 in a segment), then S entries:
//
//	1       name length n, 1..128
//	n       name: [A-Za-z0-9-], unique in the list
//	1       epoch length e, 1..255
//	e       epoch id: the segment's sections are sealed under it
//	8       the segment file's size in bytes
//	4       the segment file's header CRC-32C (bytes 48..51 of it)
//
// A section is:
//
//	1       name length n, 1..255
//	n       name, unique in the file
//	1       epoch length e, 0..255; 0 = plain, else sealed
//	e       epoch id (what KeyLookup takes)
//	32      salt, only if sealed
//	8       raw length L of the section's data
//	...     ⌈L / 1 MiB⌉ chunks: chunk i holds data[i MiB : min(L, (i+1) MiB)]
//
// and a chunk is a 4-byte word (bit 31 set: the payload is a zstd frame;
// clear: the raw bytes as they are; bits 0..30: the payload length s) and s
// bytes of payload. A chunk is stored raw when zstd does not make it smaller,
// so s never exceeds the chunk's raw size (plus the 16-byte tag if sealed).
// Each chunk is compressed on its own, so a reader needs 1 MiB of scratch
// and never inflates more than a chunk declares.
//
// A sealed section's payloads are AES-256-GCM ciphertexts with their tags.
// The key is HKDF-SHA256 (RFC 5869) of the epoch key, with the section's
// random salt and the info "ratingsd/store v1 section key\x00" + epoch id;
// the nonce of chunk i is 4 zero bytes and i as a uint64; the additional data
// is the section's bytes from its name length to its raw length, then the
// chunk's 4-byte word. The salt makes every section's key new, so chunk
// counters never repeat a nonce under a key. Compression comes before
// encryption, because ciphertext does not compress. Every section of a
// segment is sealed under the segment's epoch.
//
// Version 1 is version 2 without the segment list and with no flags. Golden
// files of both versions are in testdata/store; this build writes version 2
// and keeps decoding version 1.
package store

import (
	"errors"
	"fmt"
	"time"
)

// Every error of Decode, and of Load about a file it could read, wraps
// exactly one of the first four (Load's about a checkpoint's segment wraps
// ErrSegment too); a section that cannot be opened is reported
// with ErrKeyGone or ErrKeyMismatch in Checkpoint.Unreadable. Open wraps
// ErrLocked.
var (
	// ErrTruncated: the file ends before its header or its body does.
	ErrTruncated = errors.New("checkpoint truncated")
	// ErrChecksum: the header or the body does not match its CRC-32C.
	ErrChecksum = errors.New("checkpoint checksum mismatch")
	// ErrVersion: a format version (or, in version 1, flags) this build
	// does not read.
	ErrVersion = errors.New("unknown checkpoint format version")
	// ErrCorrupt: not a checkpoint (wrong magic), or a structure that
	// passed its checksum but is not well formed: written by something
	// other than this package.
	ErrCorrupt = errors.New("corrupt checkpoint")
	// ErrKeyGone: the key of a sealed section's epoch has been deleted
	// (crypto-shredded) or was never known.
	ErrKeyGone = errors.New("epoch key gone")
	// ErrKeyMismatch: a sealed section fails authentication under the key
	// KeyLookup gave for its epoch: not the key it was written with.
	ErrKeyMismatch = errors.New("epoch key does not open the section")
	// ErrLocked: another Dir, in this or another process, holds the
	// directory.
	ErrLocked = errors.New("checkpoint directory in use")
	// ErrSegment: a segment file that a checkpoint lists is missing, or is
	// not the file the list describes (size, checksum, structure). Load
	// passes over such a checkpoint.
	ErrSegment = errors.New("checkpoint segment missing or damaged")
)

// KeyLookup returns the key material of a key epoch by its id, at least 16
// bytes; false means the key has been deleted. It is called once per sealed
// section and may be called concurrently by concurrent loads.
type KeyLookup func(epoch string) ([]byte, bool)

// Checkpoint is the content of one checkpoint file.
type Checkpoint struct {
	// Seq orders checkpoints: Write assigns the next number of its
	// directory and ignores this field; Decode sets it from the file.
	Seq uint64
	// Created is when the engine copied its state. If zero, Write uses
	// the current time. Decoded times are UTC, to the nanosecond.
	Created time.Time
	// StreamSeq is the JetStream stream sequence the state includes
	// events up to; 0 if none (core NATS).
	StreamSeq uint64
	// Sections hold the engine's state; names are unique and 1..255
	// bytes long.
	Sections []Section
	// Segments are the segment files the checkpoint depends on, names
	// unique. Write writes those whose Size is 0 (and which must then
	// carry their Sections) before the checkpoint, and lists them all;
	// Load reads each one's Sections back (Decode, from bytes alone, only
	// the list).
	Segments []Segment
	// Unreadable lists, for a decoded checkpoint, the sealed sections that
	// were skipped because their epoch key is gone or does not open them.
	// Write ignores it.
	Unreadable []*SectionError
}

// Section is a named part of a checkpoint. If Epoch is not empty, the section
// is sealed under a key derived from that epoch's key; Epoch is stored in
// the file as it is, so it must identify the key without revealing it (a
// fingerprint or a date, never key material). Name and Epoch are stored in
// the clear, so neither may hold a device identifier; Epoch is at most 255
// bytes.
type Section struct {
	Name  string
	Epoch string
	Data  []byte
}

// Section returns the data of the section called name, and whether there is
// one.
func (cp *Checkpoint) Section(name string) ([]byte, bool) {
	for _, s := range cp.Sections {
		if s.Name == name {
			return s.Data, true
		}
	}
	return nil, false
}

// SectionError says why a sealed section of a decoded checkpoint could not
// be read. Err is ErrKeyGone or ErrKeyMismatch, or wraps one of them.
type SectionError struct {
	Name  string
	Epoch string
	Err   error
}

func (e *SectionError) Error() string {
	return fmt.Sprintf("section %q sealed under epoch %q: %v", e.Name, e.Epoch, e.Err)
}

func (e *SectionError) Unwrap() error { return e.Err }

// Segment is an immutable file of sealed data that checkpoints share (see
// Segments in the package doc). A Segment with a Size is a reference to the
// file written; one without carries the Sections to write.
type Segment struct {
	// Name is 1..128 bytes of [A-Za-z0-9-], unique in the directory: the
	// file is segment-<Name>.rtsg. Writing a segment of an existing name
	// replaces the file (atomically).
	Name string
	// Epoch is the key epoch every section of the segment is sealed under
	// (1..255 bytes): once its key is gone, the segment has expired.
	Epoch string
	// Size and CRC identify the file written: its length in bytes and its
	// header's CRC-32C, which covers the body's. Zero before it is written.
	Size int64
	CRC  uint32
	// Sections are the segment's content: given to write it, filled in by
	// Load; nil in a reference, and when Err is set.
	Sections []Section
	// Err says, for a loaded segment, why its sections were not read: its
	// epoch key is gone (ErrKeyGone: expired; the file is not read) or
	// does not open a section (ErrKeyMismatch). It is a *SectionError
	// naming the segment.
	Err error
}

// ref returns the segment without its content.
func (s *Segment) ref() Segment {
	return Segment{Name: s.Name, Epoch: s.Epoch, Size: s.Size, CRC: s.CRC}
}
