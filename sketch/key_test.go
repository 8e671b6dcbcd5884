package sketch

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// seqKey is the key 00 01 ... 0f of the known-answer vectors.
func seqKey(t testing.TB) *Key {
	t.Helper()
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = byte(i)
	}
	k, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// randKey returns a key drawn from r, so that statistical tests are seeded.
func randKey(t testing.TB, r *rand.Rand) *Key {
	t.Helper()
	var b [KeySize]byte
	binary.LittleEndian.PutUint64(b[0:8], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:16], r.Uint64())
	k, err := KeyFromBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// refHash is the hash of the Key doc written from the definition alone, with
// crypto/aes in CBC mode: the encoding uvarint(len(id)) ‖ id ‖ zero padding,
// encrypted with a zero IV; the MAC is the last ciphertext block, the hash
// its first 8 bytes little-endian.
func refHash(t testing.TB, key [KeySize]byte, id []byte) uint64 {
	t.Helper()
	c, err := aes.NewCipher(key[:])
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.AppendUvarint(nil, uint64(len(id)))
	msg = append(msg, id...)
	msg = append(msg, make([]byte, (16-len(msg)%16)%16)...)
	ct := make([]byte, len(msg))
	cipher.NewCBCEncrypter(c, make([]byte, aes.BlockSize)).CryptBlocks(ct, msg)
	return binary.LittleEndian.Uint64(ct[len(ct)-16:])
}

// randBytes returns n bytes drawn from r.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestKeyFromBytes(t *testing.T) {
	f := func(n int, wantErr bool) {
		t.Helper()
		k, err := KeyFromBytes(make([]byte, n))
		if wantErr {
			if !errors.Is(err, ErrKeySize) || k != nil {
				t.Errorf("KeyFromBytes(%d bytes) = %v, %v; want nil, ErrKeySize", n, k, err)
			}
			if err != nil && !strings.Contains(err.Error(), strconv.Itoa(n)) {
				t.Errorf("error %q does not name the length %d", err, n)
			}
			return
		}
		if err != nil {
			t.Errorf("KeyFromBytes(%d bytes): %v", n, err)
		}
	}
	f(0, true)
	f(8, true)
	f(15, true)
	f(16, false)
	f(17, true)
	f(32, true)

	k := seqKey(t)
	b := k.Bytes()
	k2, err := KeyFromBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if k2.rk != k.rk || k2.fp != k.fp {
		t.Errorf("KeyFromBytes(k.Bytes()) differs from k")
	}
	for i, c := range b {
		if c != byte(i) {
			t.Fatalf("Bytes() = %x; want 000102...0f", b)
		}
	}
}

func TestNewKey(t *testing.T) {
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.Bytes() == b.Bytes() || a.Fingerprint() == b.Fingerprint() {
		t.Errorf("two NewKey calls gave the same key or fingerprint")
	}
}

// The S-box computed by sbox is the table of FIPS-197 (figure 7): a few of
// its entries, and a permutation.
func TestSbox(t *testing.T) {
	f := func(x, want byte) {
		t.Helper()
		if got := sbox(x); got != want {
			t.Errorf("sbox(%#02x) = %#02x; want %#02x", x, got, want)
		}
	}
	f(0x00, 0x63)
	f(0x01, 0x7c)
	f(0x10, 0xca)
	f(0x53, 0xed)
	f(0x9a, 0xb8)
	f(0xff, 0x16)
	var seen [256]bool
	for x := range 256 {
		seen[sbox(byte(x))] = true
	}
	for y, ok := range seen {
		if !ok {
			t.Fatalf("sbox is not a permutation: %#02x is no entry's image", y)
		}
	}
}

// The key expansion of FIPS-197 appendix A.1, key 2b7e1516 28aed2a6
// abf71588 09cf4f3c.
func TestExpandKeyFIPS197(t *testing.T) {
	key, _ := hex.DecodeString("2b7e151628aed2a6abf7158809cf4f3c")
	var rk roundKeys
	expandKey(&rk, (*[KeySize]byte)(key))
	f := func(round int, want string) {
		t.Helper()
		if got := hex.EncodeToString(rk[16*round : 16*round+16]); got != want {
			t.Errorf("round key %d = %s; want %s", round, got, want)
		}
	}
	f(0, "2b7e151628aed2a6abf7158809cf4f3c")
	f(1, "a0fafe1788542cb123a339392a6c7605")
	f(2, "f2c295f27a96b9435935807a7359f67f")
	f(9, "ac7766f319fadc2128d12941575c006e")
	f(10, "d014f9a8c9ee2589e13f0cc8b6630ca6")
}

// Under random keys, the expanded round keys encrypt as crypto/aes does: a
// one-block hash (an id of 15 bytes, the block 0f ‖ id) is the first 8 bytes
// of crypto/aes's encryption of that block. On amd64 with AES-NI this is the
// assembly running on the Go key expansion.
func TestExpandKeyAgainstCryptoAES(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		k := randKey(t, r)
		kb := k.Bytes()
		c, err := aes.NewCipher(kb[:])
		if err != nil {
			t.Fatal(err)
		}
		var blk [16]byte
		blk[0] = 15
		copy(blk[1:], randBytes(r, 15))
		var ct [16]byte
		c.Encrypt(ct[:], blk[:])
		if got, want := k.Hash(blk[1:]), binary.LittleEndian.Uint64(ct[:8]); got != want {
			t.Fatalf("key %x, block %x: Hash = %#016x; crypto/aes gives %#016x", kb, blk, got, want)
		}
	}
}

// Known answers for key 00..0f, from an implementation outside Go (Python's
// cryptography package, AES-CBC with a zero IV over the encoding), and from
// refHash; each checked on the path this machine takes and on the portable
// one.
func TestHashKnownAnswers(t *testing.T) {
	k := seqKey(t)
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	f := func(id []byte, want uint64) {
		t.Helper()
		if ref := refHash(t, k.Bytes(), id); ref != want {
			t.Errorf("refHash(%d bytes) = %#016x; want %#016x", len(id), ref, want)
		}
		if got := k.Hash(id); got != want {
			t.Errorf("Hash(%d bytes) = %#016x; want %#016x", len(id), got, want)
		}
		if got := k.hashPortable(id); got != want {
			t.Errorf("hashPortable(%d bytes) = %#016x; want %#016x", len(id), got, want)
		}
	}
	f(nil, 0x825b8f87373ba1c6)
	f(seq(1), 0xa0877cdd63d37ce3)
	f(seq(8), 0x89dd3009228b4491)
	f(seq(15), 0x3a3e2bc0cacfed4e)
	f(seq(16), 0xd50ce5edd9a84d6a)
	f([]byte("stb-000000012345"), 0xb5d78a976ed740aa)
	f([]byte("3f2b8c1e-5d4a-4e7b-9c2f-1a6d8e0b7c45"), 0x71384638de2d3293)
	f(seq(64), 0x0e6a17590fbf6e55)
	f([]byte(fingerprintLabel), 0x1e474986721f614f)
	f(seq(127), 0x02cd93a4ac22f03f) // the last one-byte length prefix
	f(seq(128), 0x5789637f9c317b90) // the first two-byte one
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	f(long, 0xd13a0f2a2fab48bc)
}

// Every length from 0 to 300 (one and two length bytes, every position of
// the last byte in its block), random keys and data: the path this machine
// takes, the portable path and refHash agree.
func TestHashPathsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for n := range 301 {
		for range 20 {
			k, id := randKey(t, r), randBytes(r, n)
			want := refHash(t, k.Bytes(), id)
			if got := k.Hash(id); got != want {
				t.Fatalf("%v: Hash of %d bytes = %#016x; refHash %#016x", k, n, got, want)
			}
			if got := k.hashPortable(id); got != want {
				t.Fatalf("%v: hashPortable of %d bytes = %#016x; refHash %#016x", k, n, got, want)
			}
		}
	}
	// A few long ids, whose length prefix takes 2 and 3 bytes.
	for _, n := range []int{1000, 16383, 16384, 70000} {
		k, id := randKey(t, r), randBytes(r, n)
		if got, want := k.Hash(id), refHash(t, k.Bytes(), id); got != want {
			t.Errorf("%v: Hash of %d bytes = %#016x; refHash %#016x", k, n, got, want)
		}
	}
	// The hash reads only the id: bytes around it in the same array do not
	// change it.
	k := seqKey(t)
	buf := randBytes(r, 200)
	for n := range 80 {
		for off := range 40 {
			if got, want := k.Hash(buf[off:off+n]), refHash(t, k.Bytes(), buf[off:off+n]); got != want {
				t.Fatalf("Hash(buf[%d:%d]) = %#016x; refHash %#016x", off, off+n, got, want)
			}
		}
	}
}

// HashUint64 is Hash of the value's 8 little-endian bytes, on both paths.
func TestHashUint64(t *testing.T) {
	if got, want := seqKey(t).HashUint64(0x0706050403020100), uint64(0x89dd3009228b4491); got != want {
		t.Errorf("HashUint64(00..07) = %#016x; want %#016x", got, want)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		k, v := randKey(t, r), r.Uint64()
		b := binary.LittleEndian.AppendUint64(nil, v)
		want := refHash(t, k.Bytes(), b)
		if got := k.HashUint64(v); got != want {
			t.Fatalf("%v: HashUint64(%#x) = %#016x; Hash of its bytes %#016x", k, v, got, want)
		}
		if got := k.Hash(b); got != want {
			t.Fatalf("%v: Hash(%x) = %#016x; refHash %#016x", k, b, got, want)
		}
	}
	forcePortable(t)
	k := seqKey(t)
	for _, v := range []uint64{0, 1, 0x0706050403020100, math.MaxUint64} {
		b := binary.LittleEndian.AppendUint64(nil, v)
		if got, want := k.HashUint64(v), refHash(t, k.Bytes(), b); got != want {
			t.Errorf("portable HashUint64(%#x) = %#016x; refHash %#016x", v, got, want)
		}
	}
}

// forcePortable makes Hash and HashUint64 take the portable path until the
// test ends.
func forcePortable(t testing.TB) {
	saved := useAESNI
	useAESNI = false
	t.Cleanup(func() { useAESNI = saved })
}

// Neither path allocates, for ids of the contract and longer.
func TestHashNoAllocs(t *testing.T) {
	k := seqKey(t)
	ids := [][]byte{nil, []byte("stb-0012345"), []byte("3f2b8c1e-5d4a-4e7b-9c2f-1a6d8e0b7c45"), make([]byte, 64), make([]byte, 300)}
	check := func(path string) {
		for _, id := range ids {
			if n := testing.AllocsPerRun(100, func() { k.Hash(id) }); n != 0 {
				t.Errorf("%s: Hash of %d bytes allocates %v times", path, len(id), n)
			}
		}
		if n := testing.AllocsPerRun(100, func() { k.HashUint64(1) }); n != 0 {
			t.Errorf("%s: HashUint64 allocates %v times", path, n)
		}
	}
	check(fmt.Sprintf("useAESNI=%v", useAESNI))
	forcePortable(t)
	check("portable")
}

// The hashes of a million structured ids (stb-000000000000 upwards, what a
// fleet's ids look like) and of a million consecutive pseudonyms fill the
// 2^14 register indexes of a p=14 sketch, and the top byte, as uniform draws
// would: chi-square within 5 standard deviations of its mean (df = bins-1,
// variance 2·df), and every bit set in half of the hashes ± 5σ.
func TestHashDistribution(t *testing.T) {
	const n = 1 << 20
	k := randKey(t, rand.New(rand.NewPCG(11, 12)))
	chi := func(what string, bins int, h func(int) uint64) {
		t.Helper()
		shift := uint(64 - bits.Len(uint(bins-1)))
		c := make([]int, bins)
		for i := range n {
			c[h(i)>>shift]++
		}
		e := float64(n) / float64(bins)
		var x2 float64
		for _, o := range c {
			x2 += (float64(o) - e) * (float64(o) - e) / e
		}
		df := float64(bins - 1)
		if tol := 5 * math.Sqrt(2*df); math.Abs(x2-df) > tol {
			t.Errorf("%s: chi-square over %d bins = %.1f; want %.0f ± %.0f", what, bins, x2, df, tol)
		}
	}
	id := []byte("stb-000000000000")
	ids := func(i int) uint64 {
		for j, v := 15, i; j >= 4; j, v = j-1, v/10 {
			id[j] = byte('0' + v%10)
		}
		return k.Hash(id)
	}
	pseudonyms := func(i int) uint64 { return k.HashUint64(uint64(i)) }
	for _, c := range []struct {
		what string
		h    func(int) uint64
	}{{"Hash of stb ids", ids}, {"HashUint64 of 0..n-1", pseudonyms}} {
		chi(c.what+", top 14 bits", 1<<14, c.h)
		chi(c.what+", top 8 bits", 1<<8, c.h)
		var ones [64]int
		for i := range n {
			h := c.h(i)
			for b := range 64 {
				ones[b] += int(h >> b & 1)
			}
		}
		for b, o := range ones {
			if tol := 5 * math.Sqrt(n) / 2; math.Abs(float64(o)-n/2) > tol {
				t.Errorf("%s: bit %d set in %d of %d hashes; want %d ± %.0f", c.what, b, o, n, n/2, tol)
			}
		}
	}
}

func TestHashDeterministicPerKey(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a := randKey(t, r)
	b := a.Bytes()
	a2, _ := KeyFromBytes(b[:])
	id := []byte("stb-0012345")
	if a.Hash(id) != a.Hash(id) || a.Hash(id) != a2.Hash(id) {
		t.Errorf("the same id under the same key hashed differently")
	}
	if a.Hash(id) == a.Hash([]byte("stb-0012346")) {
		t.Errorf("two ids hashed alike")
	}
}

// Under two keys, the hashes of the same ids must look independent: equal
// bits half the time, no linear correlation, and register indexes (the top p
// bits) that agree only by chance. Bounds are 5 standard errors.
func TestHashUncorrelatedAcrossKeys(t *testing.T) {
	const n = 20000
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randKey(t, r), randKey(t, r)
	var id [16]byte
	var popSum float64
	var sa, sb, saa, sbb, sab float64
	sameIndex := 0
	for i := range n {
		binary.LittleEndian.PutUint64(id[:8], uint64(i))
		ha, hb := a.Hash(id[:]), b.Hash(id[:])
		if ha == hb {
			t.Fatalf("id %d hashes equally under two keys", i)
		}
		popSum += float64(bits.OnesCount64(ha ^ hb))
		x, y := float64(ha>>11), float64(hb>>11)
		sa, sb, saa, sbb, sab = sa+x, sb+y, saa+x*x, sbb+y*y, sab+x*y
		if ha>>(64-DefaultPrecision) == hb>>(64-DefaultPrecision) {
			sameIndex++
		}
	}
	// popcount of 64 fair bits: mean 32, sd 4.
	if mean, tol := popSum/n, 5*4/math.Sqrt(n); math.Abs(mean-32) > tol {
		t.Errorf("mean differing bits = %.3f; want 32 ± %.3f", mean, tol)
	}
	corr := (n*sab - sa*sb) / math.Sqrt((n*saa-sa*sa)*(n*sbb-sb*sb))
	if tol := 5 / math.Sqrt(n); math.Abs(corr) > tol {
		t.Errorf("correlation = %.4f; want |r| <= %.4f", corr, tol)
	}
	// Expected n/2^14 = 1.2 by chance; P(Poisson(1.2) > 10) < 1e-7.
	if sameIndex > 10 {
		t.Errorf("%d of %d ids share a p=14 register index under both keys; want about 1", sameIndex, n)
	}
}

func TestFingerprint(t *testing.T) {
	if len(fingerprintLabel) <= 64 {
		t.Fatalf("fingerprint label is %d bytes; it must be longer than a device id (64)", len(fingerprintLabel))
	}
	k := seqKey(t)
	// Frozen: the golden files store it. It is the known answer for the
	// label in TestHashKnownAnswers.
	if got, want := k.Fingerprint().String(), "1e474986721f614f"; got != want {
		t.Errorf("fingerprint of key 00..0f = %s; want %s", got, want)
	}
	if k.Fingerprint() != Fingerprint(refHash(t, k.Bytes(), []byte(fingerprintLabel))) {
		t.Errorf("fingerprint is not the keyed hash of the label")
	}
	r := rand.New(rand.NewPCG(5, 6))
	if randKey(t, r).Fingerprint() == randKey(t, r).Fingerprint() {
		t.Errorf("two keys share a fingerprint")
	}
}

// FuzzHash: for any key and id, the path this machine takes, the portable
// path and refHash agree; HashUint64 agrees with them on 8-byte ids; a key of
// the wrong length is ErrKeySize.
func FuzzHash(f *testing.F) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	for _, n := range []int{0, 1, 8, 14, 15, 16, 17, 31, 32, 36, 47, 64, 65, 80, 126, 127, 128, 255, 256, 300} {
		id := make([]byte, n)
		for i := range id {
			id[i] = byte(i * 7)
		}
		f.Add(key, id)
	}
	f.Add([]byte("short key"), []byte("stb-0012345"))
	f.Add(make([]byte, 17), []byte{})
	f.Fuzz(func(t *testing.T, key, id []byte) {
		k, err := KeyFromBytes(key)
		if len(key) != KeySize {
			if !errors.Is(err, ErrKeySize) || k != nil {
				t.Fatalf("KeyFromBytes(%d bytes) = %v, %v; want nil, ErrKeySize", len(key), k, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want := refHash(t, k.Bytes(), id)
		if got := k.Hash(id); got != want {
			t.Fatalf("Hash of %d bytes = %#016x; refHash %#016x", len(id), got, want)
		}
		if got := k.hashPortable(id); got != want {
			t.Fatalf("hashPortable of %d bytes = %#016x; refHash %#016x", len(id), got, want)
		}
		if len(id) == 8 {
			if got := k.HashUint64(binary.LittleEndian.Uint64(id)); got != want {
				t.Fatalf("HashUint64(%x) = %#016x; refHash %#016x", id, got, want)
			}
		}
	})
}

// A Key printed by mistake, alone or in a struct, shows no key material.
func TestKeyFormatHidesMaterial(t *testing.T) {
	k, err := KeyFromBytes([]byte("\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x10"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"11223344", "\x11\x22\x33"}
	// Each 8 bytes of every round key (the key is round key 0), in hex and
	// as little- and big-endian integers.
	for i := 0; i < len(k.rk); i += 8 {
		w := k.rk[i : i+8]
		le, be := binary.LittleEndian.Uint64(w), binary.BigEndian.Uint64(w)
		secrets = append(secrets, hex.EncodeToString(w),
			fmt.Sprintf("%x", le), fmt.Sprintf("%d", le), fmt.Sprintf("%d", be))
	}
	type holder struct {
		K  *Key
		KV Key
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, arg := range []any{k, *k, holder{k, *k}, []*Key{k}} {
			out := fmt.Sprintf(verb, arg)
			for _, s := range secrets {
				if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
					t.Errorf("Sprintf(%q, %T) = %q leaks key material %q", verb, arg, out, s)
				}
			}
		}
	}
	if got, want := fmt.Sprint(k), "sketch.Key("+k.Fingerprint().String()+")"; got != want {
		t.Errorf("Sprint(key) = %q; want %q", got, want)
	}
}

// batchIDs returns n ids drawn from r, of 0 to 80 bytes mixed, at random
// offsets in one buffer, with now and then one of 127, 128 or 300 bytes
// (the last length class batched, and the first hashed one at a time).
func batchIDs(r *rand.Rand, n int) [][]byte {
	buf := randBytes(r, 400)
	ids := make([][]byte, n)
	for i := range ids {
		l := r.IntN(81)
		if r.IntN(16) == 0 {
			l = []int{127, 128, 300}[r.IntN(3)]
		}
		off := r.IntN(len(buf) - l + 1)
		ids[i] = buf[off : off+l : off+l]
	}
	return ids
}

// checkBatch fails unless HashIDs and HashUint64s of ids and vs agree with
// Hash and HashUint64 of each, leave the rest of a longer dst alone, and
// HashUint64s hashes in place.
func checkBatch(t *testing.T, k *Key, ids [][]byte, vs []uint64) {
	t.Helper()
	const canary = 0xdeadbeefcafef00d
	dst := make([]uint64, len(ids)+3)
	for i := range dst {
		dst[i] = canary
	}
	k.HashIDs(dst, ids)
	for i, id := range ids {
		if want := k.Hash(id); dst[i] != want {
			t.Fatalf("useAESNI=%v, batch of %d: HashIDs[%d] of %d bytes = %#016x; Hash %#016x", useAESNI, len(ids), i, len(id), dst[i], want)
		}
	}
	dst = make([]uint64, len(vs)+3)
	for i := range dst {
		dst[i] = canary
	}
	k.HashUint64s(dst, vs)
	for i, v := range vs {
		if want := k.HashUint64(v); dst[i] != want {
			t.Fatalf("useAESNI=%v, batch of %d: HashUint64s[%d] = %#016x; HashUint64 %#016x", useAESNI, len(vs), i, dst[i], want)
		}
	}
	for i := len(vs); i < len(dst); i++ {
		if dst[i] != canary {
			t.Fatalf("useAESNI=%v: HashUint64s of %d values wrote dst[%d]", useAESNI, len(vs), i)
		}
	}
	in := append([]uint64(nil), vs...)
	k.HashUint64s(in, in)
	for i := range in {
		if in[i] != dst[i] {
			t.Fatalf("useAESNI=%v, batch of %d: HashUint64s in place [%d] = %#016x; %#016x", useAESNI, len(vs), i, in[i], dst[i])
		}
	}
}

// The batch hashes are the single ones, on both paths, for batches of 0 to
// 20 and 257 ids of mixed lengths under random keys; and the single ones
// are the definition (TestHashPathsAgree).
func TestHashBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	run := func(t *testing.T) {
		sizes := []int{257}
		for n := range 21 {
			sizes = append(sizes, n)
		}
		for _, n := range sizes {
			for range 30 {
				vs := make([]uint64, n)
				for i := range vs {
					vs[i] = r.Uint64()
				}
				checkBatch(t, randKey(t, r), batchIDs(r, n), vs)
			}
		}
		// One length class at a time, every class, in batches that fill
		// whole groups and leave one partly filled.
		k := randKey(t, r)
		for l := range 130 {
			for _, n := range []int{1, 7, 8, 9, 17, 24} {
				buf := randBytes(r, n*l)
				ids := make([][]byte, n)
				for i := range ids {
					ids[i] = buf[i*l : (i+1)*l]
				}
				checkBatch(t, k, ids, nil)
			}
		}
	}
	t.Run(fmt.Sprintf("useAESNI=%v", useAESNI), run)
	t.Run("portable", func(t *testing.T) {
		forcePortable(t)
		run(t)
	})
}

// The batch hashes do not allocate, on either path.
func TestHashBatchNoAllocs(t *testing.T) {
	k := seqKey(t)
	r := rand.New(rand.NewPCG(23, 24))
	ids := batchIDs(r, 257)
	vs := make([]uint64, 257)
	dst := make([]uint64, 257)
	check := func(path string) {
		if n := testing.AllocsPerRun(20, func() { k.HashIDs(dst, ids) }); n != 0 {
			t.Errorf("%s: HashIDs allocates %v times", path, n)
		}
		if n := testing.AllocsPerRun(20, func() { k.HashUint64s(dst, vs) }); n != 0 {
			t.Errorf("%s: HashUint64s allocates %v times", path, n)
		}
	}
	check(fmt.Sprintf("useAESNI=%v", useAESNI))
	forcePortable(t)
	check("portable")
}

// A dst shorter than the batch is a programming error: the batch hashes
// panic rather than hash part of it.
func TestHashBatchShortDst(t *testing.T) {
	k := seqKey(t)
	for name, f := range map[string]func(){
		"HashIDs":     func() { k.HashIDs(make([]uint64, 1), make([][]byte, 2)) },
		"HashUint64s": func() { k.HashUint64s(make([]uint64, 1), make([]uint64, 2)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a short dst did not panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzHashBatch: ids cut from data (each a length byte, mod 140, then
// that many bytes) and the words of data hash in a batch as one at a time.
func FuzzHashBatch(f *testing.F) {
	f.Add([]byte{}, uint64(1))
	f.Add([]byte("\x10stb-000000012345\x10stb-000000012346\x00\x05abcde"), uint64(2))
	f.Add(make([]byte, 300), uint64(3))
	seed := make([]byte, 0, 2000)
	for l := range 130 {
		seed = append(seed, byte(l))
		for i := range l {
			seed = append(seed, byte(i*l))
		}
	}
	f.Add(seed, uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, keySeed uint64) {
		k := randKey(t, rand.New(rand.NewPCG(keySeed, 0)))
		var ids [][]byte
		for rest := data; len(rest) > 0; {
			l := min(int(rest[0])%140, len(rest)-1)
			ids = append(ids, rest[1:1+l])
			rest = rest[1+l:]
		}
		var vs []uint64
		for i := 0; i+8 <= len(data); i += 8 {
			vs = append(vs, binary.LittleEndian.Uint64(data[i:]))
		}
		checkBatch(t, k, ids, vs)
		forcePortable(t)
		checkBatch(t, k, ids, vs)
	})
}

// A frame's device ids hashed in one batch give the pseudonyms Hash gives
// one at a time.
func ExampleKey_HashIDs() {
	k, err := KeyFromBytes([]byte("example-key-0016"))
	if err != nil {
		panic(err)
	}
	ids := [][]byte{[]byte("stb-0012345"), []byte("stb-000000012345"), []byte("3f2b8c1e-5d4a-4e7b-9c2f-1a6d8e0b7c45")}
	pseudonyms := make([]uint64, len(ids))
	k.HashIDs(pseudonyms, ids)
	for i, id := range ids {
		fmt.Println(pseudonyms[i] == k.Hash(id))
	}
	// A batch of pseudonyms keyed under an epoch key, in place.
	keyed := append([]uint64(nil), pseudonyms...)
	k.HashUint64s(keyed, keyed)
	fmt.Println(keyed[0] == k.HashUint64(pseudonyms[0]))
	// Output:
	// true
	// true
	// true
	// true
}
