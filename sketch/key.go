package sketch

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/dchest/siphash"
)

// KeySize is the length in bytes of a Key.
const KeySize = 16

// ErrKeySize is wrapped by KeyFromBytes when the input is not KeySize bytes.
var ErrKeySize = errors.New("key must be 16 bytes")

// fingerprintLabel is the message whose keyed hash is a Key's Fingerprint. It
// is longer than any device identifier the event contract admits (1..64
// bytes), so no device can hash to the fingerprint: the fingerprint and the
// device hashes are outputs of the PRF on disjoint inputs.
const fingerprintLabel = "ratingsd/sketch key fingerprint v1: longer than any 64-byte device identifier"

// Key is a secret 128-bit SipHash-2-4 key. A device identifier is hashed with
// Key.Hash before it reaches a sketch, so whoever holds sketches but not the
// key cannot test them for a known device, and deleting the key makes every
// sketch under it unlinkable to devices (crypto-shredding).
//
// A Key is immutable and safe for concurrent use. Printing a Key with the fmt
// package shows only its Fingerprint.
type Key struct {
	k0, k1 uint64
	fp     Fingerprint
}

// Fingerprint identifies a Key without revealing it: it is the Key's SipHash
// of a fixed label, computed once. It is stored in encoded sketches so that a
// sketch is never merged with, or decoded under, the wrong key.
type Fingerprint uint64

// String returns the fingerprint as 16 hex digits.
func (f Fingerprint) String() string { return fmt.Sprintf("%016x", uint64(f)) }

// NewKey returns a Key of 128 random bits from crypto/rand.
func NewKey() (*Key, error) {
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sketch: read random key: %w", err)
	}
	return KeyFromBytes(b[:])
}

// KeyFromBytes returns the Key whose Bytes are b. b must be exactly KeySize
// bytes; otherwise the error wraps ErrKeySize. The bytes are read as SipHash
// reads its key (two little-endian words), so Hash agrees with any SipHash-2-4
// implementation given the same 16 bytes.
func KeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("sketch: key of %d bytes: %w", len(b), ErrKeySize)
	}
	k := &Key{
		k0: binary.LittleEndian.Uint64(b[0:8]),
		k1: binary.LittleEndian.Uint64(b[8:16]),
	}
	k.fp = Fingerprint(siphash.Hash(k.k0, k.k1, []byte(fingerprintLabel)))
	return k, nil
}

// Bytes returns the key material, for the key files of a key epoch. It is the
// only way key material leaves a Key.
func (k *Key) Bytes() [KeySize]byte {
	var b [KeySize]byte
	binary.LittleEndian.PutUint64(b[0:8], k.k0)
	binary.LittleEndian.PutUint64(b[8:16], k.k1)
	return b
}

// Hash returns the keyed SipHash-2-4 of id: a pseudorandom 64-bit value that
// is the same for the same id and Key, and unpredictable without the Key.
// It does not allocate.
func (k *Key) Hash(id []byte) uint64 { return siphash.Hash(k.k0, k.k1, id) }

// HashUint64 returns the keyed SipHash-2-4 of the 8 bytes of v, little-endian:
// the same as Hash of those bytes, without a slice. It keys a value that is
// itself a hash, such as a device's pseudonym (another Key's Hash of its
// identifier), so that one pseudonym gives unlinkable hashes under the keys
// of different epochs. It does not allocate.
func (k *Key) HashUint64(v uint64) uint64 {
	v0 := k.k0 ^ 0x736f6d6570736575
	v1 := k.k1 ^ 0x646f72616e646f6d
	v2 := k.k0 ^ 0x6c7967656e657261
	v3 := k.k1 ^ 0x7465646279746573
	// The one 8-byte block, then the final block: the length (8) in its
	// top byte and no message bytes.
	v3 ^= v
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= v
	const last = uint64(8) << 56
	v3 ^= last
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= last
	v2 ^= 0xff
	// The four finalization rounds written out: as a loop they took 22
	// more instructions a hash (173 against 151 in BenchmarkKeyHashUint64),
	// the loop's own and the moves of the four words at its edges.
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ v1 ^ v2 ^ v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// Fingerprint returns the Key's Fingerprint.
func (k *Key) Fingerprint() Fingerprint { return k.fp }

// String describes the Key by its Fingerprint only.
func (k Key) String() string { return "sketch.Key(" + k.fp.String() + ")" }

// Format makes every fmt verb (%v, %+v, %#v, %x, %d, ...) print String, so
// that logging a Key, or a struct holding one, never prints key material.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }
