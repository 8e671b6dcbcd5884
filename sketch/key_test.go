package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// seqKey is the key of the SipHash reference vectors: bytes 00 01 ... 0f.
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
	if *k2 != *k {
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

// The SipHash-2-4 reference vectors (Aumasson and Bernstein, vectors.h): key
// 00..0f, message 00..(n-1).
func TestHashReferenceVectors(t *testing.T) {
	k := seqKey(t)
	f := func(n int, want uint64) {
		t.Helper()
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		if got := k.Hash(msg); got != want {
			t.Errorf("Hash(00..%02x) = %#016x; want %#016x", n-1, got, want)
		}
	}
	f(0, 0x726fdb47dd0e0e31)
	f(1, 0x74f839c593dc67fd)
	f(8, 0x93f5f5799a932462)
	f(15, 0xa129ca6149be45e5)
	f(16, 0x3f2acc7f57c29bdb)
}

// HashUint64 is Hash of the value's 8 little-endian bytes: the reference
// vector of an 8-byte message, and random values under random keys.
func TestHashUint64(t *testing.T) {
	if got, want := seqKey(t).HashUint64(0x0706050403020100), uint64(0x93f5f5799a932462); got != want {
		t.Errorf("HashUint64(00..07) = %#016x; want %#016x", got, want)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		k, v := randKey(t, r), r.Uint64()
		b := binary.LittleEndian.AppendUint64(nil, v)
		if got, want := k.HashUint64(v), k.Hash(b); got != want {
			t.Fatalf("%v: HashUint64(%#x) = %#016x; Hash of its bytes %#016x", k, v, got, want)
		}
	}
	k := seqKey(t)
	if n := testing.AllocsPerRun(100, func() { k.HashUint64(1) }); n > 0 {
		t.Errorf("HashUint64 allocates %v times", n)
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
	// Frozen: the golden files store it.
	if got, want := k.Fingerprint().String(), "2defbb41b8583909"; got != want {
		t.Errorf("fingerprint of key 00..0f = %s; want %s", got, want)
	}
	if k.Fingerprint() != Fingerprint(k.Hash([]byte(fingerprintLabel))) {
		t.Errorf("fingerprint is not the keyed hash of the label")
	}
	r := rand.New(rand.NewPCG(5, 6))
	if randKey(t, r).Fingerprint() == randKey(t, r).Fingerprint() {
		t.Errorf("two keys share a fingerprint")
	}
}

// A Key printed by mistake, alone or in a struct, shows no key material.
func TestKeyFormatHidesMaterial(t *testing.T) {
	k, err := KeyFromBytes([]byte("\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x10"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		fmt.Sprintf("%x", k.k0), fmt.Sprintf("%X", k.k0), fmt.Sprintf("%d", k.k0),
		fmt.Sprintf("%x", k.k1), fmt.Sprintf("%X", k.k1), fmt.Sprintf("%d", k.k1),
		"11223344", "\x11\x22\x33",
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
