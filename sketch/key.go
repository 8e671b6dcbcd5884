package sketch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// KeySize is the length in bytes of a Key.
const KeySize = 16

// ErrKeySize is wrapped by KeyFromBytes when the input is not KeySize bytes.
var ErrKeySize = errors.New("key must be 16 bytes")

// fingerprintLabel is the message whose keyed hash is a Key's Fingerprint. It
// is longer than any device identifier the event contract admits (1..64
// bytes), so no device can hash to the fingerprint: the fingerprint and the
// device hashes are outputs of the PRF on disjoint inputs. It says v2 because
// the hash changed from SipHash-2-4 to AES: a fingerprint stored by the old
// hash never matches a key of this one.
const fingerprintLabel = "ratingsd/sketch key fingerprint v2: longer than any 64-byte device identifier"

// roundKeys are the 11 AES-128 encryption round keys, 16 bytes each, in the
// byte order of FIPS-197 (round key 0 is the key itself).
type roundKeys [11 * aes.BlockSize]byte

// Key is a secret 128-bit AES-128 key. A device identifier is hashed with
// Key.Hash before it reaches a sketch, so whoever holds sketches but not the
// key cannot test them for a known device, and deleting the key makes every
// sketch under it unlinkable to devices (crypto-shredding).
//
// Hash(id) is the first 8 bytes, read as a little-endian uint64, of the
// CBC-MAC under AES-128 (zero IV, no final transformation) of the encoding
//
//	uvarint(len(id)) ‖ id ‖ zero bytes up to a multiple of 16
//
// where uvarint is encoding/binary's: one byte, len(id) itself, for ids
// shorter than 128 bytes (every id of the event contract, 1..64 bytes), two
// bytes up to 16383, and so on, with no limit on the length. HashUint64(v) is
// Hash of the 8 little-endian bytes of v: one block, 08 ‖ v ‖ 7 zero bytes.
//
// Why it is a PRF, as SipHash-2-4 was: AES-128 is a pseudorandom permutation
// of 128-bit blocks, so, up to the birthday bound (2^64 blocks under one key),
// a pseudorandom function, and so is any fixed 64 bits of it. CBC-MAC is a
// PRF on any prefix-free set of messages (Petrank and Rackoff; Bellare,
// Pietrzak and Rogaway), again up to a birthday bound in the blocks hashed:
// the length prefix makes the encodings prefix-free, since two encodings of
// ids of different lengths differ within their length prefixes (uvarints
// are a prefix code) and two of the same length are equally long. The key
// is still 128 random bits and the hash still a deterministic function of
// key and id only, so deleting a key (crypto-shredding) unlinks its hashes
// from devices as before. Nothing more is claimed: in particular a 64-bit
// output collides by chance after about 2^32 distinct ids, as every 64-bit
// hash does.
//
// On amd64 with AES-NI and AVX the hash runs in assembly; elsewhere it
// encrypts each block with crypto/aes. Both give the same output. The
// batch forms, HashIDs and HashUint64s, give the same output too, faster:
// one hash is a chain of dependent AES rounds, and the assembly runs 8
// chains side by side.
//
// A Key is immutable and safe for concurrent use. Printing a Key with the fmt
// package shows only its Fingerprint.
type Key struct {
	rk    roundKeys    // expanded by expandKey; rk[0:16] is the key material
	block cipher.Block // crypto/aes under the same key, for the portable path
	fp    Fingerprint
}

// Fingerprint identifies a Key without revealing it: it is the Key's hash of
// a fixed label, computed once. It is stored in encoded sketches so that a
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
// bytes; otherwise the error wraps ErrKeySize. The bytes are the AES-128 key
// as crypto/aes takes it.
func KeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("sketch: key of %d bytes: %w", len(b), ErrKeySize)
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, fmt.Errorf("sketch: AES key of %d bytes: %w", len(b), err)
	}
	k := &Key{block: block}
	expandKey(&k.rk, (*[KeySize]byte)(b))
	k.fp = Fingerprint(k.Hash([]byte(fingerprintLabel)))
	return k, nil
}

// Bytes returns the key material, for the key files of a key epoch. It is the
// only way key material leaves a Key.
func (k *Key) Bytes() [KeySize]byte { return [KeySize]byte(k.rk[:KeySize]) }

// Hash returns the keyed hash of id described in the Key's doc: a
// pseudorandom 64-bit value that is the same for the same id and Key, and
// unpredictable without the Key. It takes ids of any length and does not
// allocate (the portable path reuses its CBC state from a sync.Pool).
func (k *Key) Hash(id []byte) uint64 {
	if !useAESNI {
		return k.hashPortable(id)
	}
	if len(id) < 0x80 {
		// The uvarint of a length below 128 is the length itself.
		return cbcMACAESNI(&k.rk, id, uint64(len(id)), 1)
	}
	var pre [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(pre[:], uint64(len(id)))
	// n <= 8 for any slice length below 2^56, which is every length.
	return cbcMACAESNI(&k.rk, id, binary.LittleEndian.Uint64(pre[:8]), n)
}

// HashUint64 returns Hash of the 8 bytes of v, little-endian, without a
// slice: one AES block. It keys a value that is itself a hash, such as a
// device's pseudonym (another Key's Hash of its identifier), so that one
// pseudonym gives unlinkable hashes under the keys of different epochs. It
// does not allocate.
func (k *Key) HashUint64(v uint64) uint64 {
	if !useAESNI {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		return k.hashPortable(b[:])
	}
	return hashUint64AESNI(&k.rk, v)
}

// batchLanes is how many independent blocks the batch hashes keep in
// flight: one AES chain is ten dependent rounds, but the processor issues
// a round of another chain while one is in progress, so hashing 8 blocks
// side by side takes about as long as hashing one.
const batchLanes = 8

// maxBatchBlocks bounds the ids HashIDs hashes side by side: those of fewer
// than 16·maxBatchBlocks bytes (every id of the event contract), whose
// length prefix is one byte. Longer ids are hashed one at a time.
const maxBatchBlocks = 8

// HashUint64s sets dst[i] = HashUint64(src[i]) for every i < len(src),
// several values side by side: for many values it is several times faster
// than calling HashUint64 on each. dst must be at least as long as src; it
// may be src itself (hashing in place) but must not otherwise overlap it.
// It does not allocate.
func (k *Key) HashUint64s(dst, src []uint64) {
	dst = dst[:len(src)]
	if !useAESNI {
		x := blockPool.Get().(*[aes.BlockSize]byte)
		var b [8]byte
		for i, v := range src {
			binary.LittleEndian.PutUint64(b[:], v)
			dst[i] = k.hashPortableIn(x, b[:])
		}
		blockPool.Put(x)
		return
	}
	n := len(src) &^ (batchLanes - 1)
	if n > 0 {
		hashUint64s8AESNI(&k.rk, &dst[0], &src[0], n)
	}
	switch r := len(src) - n; r {
	case 0:
	case 1:
		dst[n] = hashUint64AESNI(&k.rk, src[n])
	default:
		// The rest fill a group of 8; the lanes past them hash zeros.
		var b [batchLanes]uint64
		copy(b[:], src[n:])
		hashUint64s8AESNI(&k.rk, &b[0], &b[0], batchLanes)
		copy(dst[n:], b[:r])
	}
}

// HashIDs sets dst[i] = Hash(ids[i]) for every i < len(ids), several ids
// side by side: ids whose encodings have the same number of blocks (ids of
// 0 to 15 bytes, 16 to 31, and so on up to 127) are hashed in groups of 8,
// each group in about the time of one id; longer ids one at a time. dst
// must be at least as long as ids. It does not allocate.
func (k *Key) HashIDs(dst []uint64, ids [][]byte) {
	dst = dst[:len(ids)]
	if !useAESNI {
		x := blockPool.Get().(*[aes.BlockSize]byte)
		for i, id := range ids {
			dst[i] = k.hashPortableIn(x, id)
		}
		blockPool.Put(x)
		return
	}
	// Runs of 8 ids of one length class (the ids of a fleet mostly have
	// one format) are hashed where they lie; the ids of mixed runs wait in
	// pending for 7 more of their class.
	var p pendingIDs
	i := 0
	for ; i+batchLanes <= len(ids); i += batchLanes {
		g := (*[batchLanes][]byte)(ids[i : i+batchLanes])
		b := blocksOf(g[0])
		// The 8 lengths have the same number of blocks iff they agree
		// above their low 4 bits (written out: a loop cost 13
		// instructions an id).
		l := len(g[0]) >> 4
		diff := (len(g[1])>>4 ^ l) | (len(g[2])>>4 ^ l) | (len(g[3])>>4 ^ l) | (len(g[4])>>4 ^ l) |
			(len(g[5])>>4 ^ l) | (len(g[6])>>4 ^ l) | (len(g[7])>>4 ^ l)
		if diff == 0 && b <= maxBatchBlocks {
			hashIDs8AESNI(&k.rk, g, (*[batchLanes]uint64)(dst[i:i+batchLanes]), b)
			continue
		}
		for j := i; j < i+batchLanes; j++ {
			p.add(k, dst, ids, j)
		}
	}
	for ; i < len(ids); i++ {
		p.add(k, dst, ids, i)
	}
	for b, c := range p.count {
		if c > 0 {
			k.hashGroup(dst, ids, &p.idx[b], c, b)
		}
	}
}

// blocksOf returns the number of blocks of the encoding of id if its
// length prefix is one byte, and more than maxBatchBlocks otherwise.
func blocksOf(id []byte) int { return (len(id) + 16) >> 4 }

// pendingIDs holds, for HashIDs, the indexes of ids not yet hashed: for
// each number of blocks b, count[b] of them in idx[b].
type pendingIDs struct {
	idx   [maxBatchBlocks + 1][batchLanes]int
	count [maxBatchBlocks + 1]int
}

// add hashes ids[i] into dst[i] at once if it is too long to batch, and
// otherwise when 7 more of its length class have come.
func (p *pendingIDs) add(k *Key, dst []uint64, ids [][]byte, i int) {
	b := blocksOf(ids[i])
	if b > maxBatchBlocks {
		dst[i] = k.Hash(ids[i])
		return
	}
	c := p.count[b]
	p.idx[b][c] = i
	c++
	if c == batchLanes {
		k.hashGroup(dst, ids, &p.idx[b], c, b)
		c = 0
	}
	p.count[b] = c
}

// hashGroup hashes the n ids of blocks blocks at the indexes idx[:n] of
// ids, 1 <= n <= 8, into dst at the same indexes. The lanes past n hash the
// first id again.
func (k *Key) hashGroup(dst []uint64, ids [][]byte, idx *[batchLanes]int, n, blocks int) {
	var lanes [batchLanes][]byte
	var out [batchLanes]uint64
	for l := range lanes {
		j := idx[0]
		if l < n {
			j = idx[l]
		}
		lanes[l] = ids[j]
	}
	hashIDs8AESNI(&k.rk, &lanes, &out, blocks)
	for l := range n {
		dst[idx[l]] = out[l]
	}
}

// blockPool holds the CBC state of the portable path: crypto/aes's Encrypt
// is an interface call, so a block passed to it escapes, and a stack block
// would cost an allocation a hash.
var blockPool = sync.Pool{New: func() any { return new([aes.BlockSize]byte) }}

// hashPortable is Hash with crypto/aes encrypting each block of the
// encoding: the path of every platform without the assembly.
func (k *Key) hashPortable(id []byte) uint64 {
	x := blockPool.Get().(*[aes.BlockSize]byte)
	h := k.hashPortableIn(x, id)
	blockPool.Put(x)
	return h
}

// hashPortableIn is hashPortable with x as its CBC state, for callers that
// hash many ids with one x from blockPool.
func (k *Key) hashPortableIn(x *[aes.BlockSize]byte, id []byte) uint64 {
	*x = [aes.BlockSize]byte{}
	var b [aes.BlockSize]byte
	n := binary.PutUvarint(b[:], uint64(len(id)))
	id = id[copy(b[n:], id):]
	for {
		lo := binary.LittleEndian.Uint64(x[:8]) ^ binary.LittleEndian.Uint64(b[:8])
		hi := binary.LittleEndian.Uint64(x[8:]) ^ binary.LittleEndian.Uint64(b[8:])
		binary.LittleEndian.PutUint64(x[:8], lo)
		binary.LittleEndian.PutUint64(x[8:], hi)
		k.block.Encrypt(x[:], x[:])
		if len(id) == 0 {
			break
		}
		b = [aes.BlockSize]byte{}
		id = id[copy(b[:], id):]
	}
	return binary.LittleEndian.Uint64(x[:8])
}

// expandKey writes the AES-128 key schedule of key (FIPS-197 section 5.2)
// into rk. The S-box is computed, not looked up, so that the expansion reads
// no memory at addresses that depend on the key.
func expandKey(rk *roundKeys, key *[KeySize]byte) {
	copy(rk[:KeySize], key[:])
	rcon := byte(1)
	for i := 4; i < len(rk)/4; i++ {
		t := binary.BigEndian.Uint32(rk[4*(i-1):])
		if i%4 == 0 {
			t = subWord(bits.RotateLeft32(t, 8)) ^ uint32(rcon)<<24
			rcon = gfMul(rcon, 2)
		}
		binary.BigEndian.PutUint32(rk[4*i:], binary.BigEndian.Uint32(rk[4*(i-4):])^t)
	}
}

// subWord applies the AES S-box to each byte of w.
func subWord(w uint32) uint32 {
	return uint32(sbox(byte(w>>24)))<<24 | uint32(sbox(byte(w>>16)))<<16 |
		uint32(sbox(byte(w>>8)))<<8 | uint32(sbox(byte(w)))
}

// sbox is the AES S-box: the inverse in GF(2^8) (x^254, with 0 mapping to
// 0) followed by the affine map of FIPS-197 section 5.1.1.
func sbox(x byte) byte {
	// x^254 = x^2 · x^4 · ... · x^128, with no branch on x.
	inv, sq := byte(1), x
	for range 7 {
		sq = gfMul(sq, sq)
		inv = gfMul(inv, sq)
	}
	return inv ^ bits.RotateLeft8(inv, 1) ^ bits.RotateLeft8(inv, 2) ^
		bits.RotateLeft8(inv, 3) ^ bits.RotateLeft8(inv, 4) ^ 0x63
}

// gfMul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, with no
// branch on its operands.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		a = a<<1 ^ 0x1b&-(a>>7)
		b >>= 1
	}
	return p
}

// Fingerprint returns the Key's Fingerprint.
func (k *Key) Fingerprint() Fingerprint { return k.fp }

// String describes the Key by its Fingerprint only.
func (k Key) String() string { return "sketch.Key(" + k.fp.String() + ")" }

// Format makes every fmt verb (%v, %+v, %#v, %x, %d, ...) print String, so
// that logging a Key, or a struct holding one, never prints key material.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }
