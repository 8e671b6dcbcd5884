package bench

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// rng is wyrand: one multiply per 64 random bits, a 2^64 period, and it
// passes BigCrush; math/rand/v2's PCG costs about twice as much per draw, and
// the simulation draws several numbers per event.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// float returns a uniform float64 in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) * 0x1p-53 }

// exp returns an exponential variate with mean 1 by Marsaglia and Tsang's
// ziggurat (as math/rand's ExpFloat64): 99% of draws are one multiply and
// one comparison, where -log(u) cost a third of the generator's time.
func (r *rng) exp() float64 {
	for {
		u := r.next()
		j := uint32(u)
		i := u >> 32 & 0xff
		x := float64(j) * zigW[i]
		if j < zigK[i] {
			return x
		}
		if i == 0 {
			return zigR - math.Log(1-r.float())
		}
		if zigF[i]+r.float()*(zigF[i-1]-zigF[i]) < math.Exp(-x) {
			return x
		}
	}
}

// The ziggurat of the exponential distribution with 256 layers.
const zigR = 7.69711747013104972 // start of the tail

var zigK, zigW, zigF = func() (k [256]uint32, w, f [256]float64) {
	const m = 1 << 32
	const v = 3.949659822581572e-3 // area of each layer
	de := zigR
	te := de
	q := v / math.Exp(-de)
	k[0], k[1] = uint32(de/q*m), 0
	w[0], w[255] = q/m, de/m
	f[0], f[255] = 1, math.Exp(-de)
	for i := 254; i >= 1; i-- {
		de = -math.Log(v/de + math.Exp(-de))
		k[i+1] = uint32(de / te * m)
		te = de
		f[i] = math.Exp(-de)
		w[i] = de / m
	}
	return k, w, f
}()

// below returns a uniform integer in [0, n).
func (r *rng) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// chance is a probability as a threshold on 53 random bits, so that a draw is
// one comparison.
type chance uint64

func newChance(p float64) chance { return chance(p * (1 << 53)) }

func (r *rng) hit(c chance) bool { return r.next()>>11 < uint64(c) }

// mix64 is the splitmix64 finaliser: a fixed hash that derives per-box and
// per-channel constants (region, ad-break phase) without storing them.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// alias samples an index in [0, n) with given weights in O(1) (Vose's alias
// method).
type alias struct {
	cut   []uint64 // index i is kept if the low 32 random bits are below cut[i]
	other []uint16 // else other[i]
}

func newAlias(w []float64) alias {
	n := len(w)
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	p := make([]float64, n)
	var small, large []int
	for i, x := range w {
		p[i] = x * float64(n) / sum
		if p[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	a := alias{cut: make([]uint64, n), other: make([]uint16, n)}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.cut[s] = uint64(p[s] * (1 << 32))
		a.other[s] = uint16(l)
		p[l] -= 1 - p[s]
		if p[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.cut[i] = 1 << 32
		a.other[i] = uint16(i)
	}
	return a
}

func (a *alias) sample(r *rng) int {
	u := r.next()
	i, _ := bits.Mul64(u, uint64(len(a.cut)))
	if u&0xffffffff < a.cut[i] {
		return int(i)
	}
	return int(a.other[i])
}

// rates holds a non-homogeneous Poisson rate per minute of the run and its
// running integral, so that the next arrival after t is found by inverting
// the integral: arrival = Λ⁻¹(Λ(t) + Exp(1)).
type rates struct {
	rate []float64 // per minute k of the run grid, events per minute
	cum  []float64 // cum[k] = Σ rate[:k]; len(rate)+1 entries
	// from[q] is the smallest minute j with cum[j+1] ≥ level(q), q =
	// 0..levels: where the search for an integral of at least level(q)
	// starts.
	from  []int32
	scale float64 // levels / cum[len(rate)]
}

// levelsPerMinute sets rates.from: four levels of the integral per minute
// of the run, so that a search starts at most a few minutes short of its
// answer unless the rate is far below its mean.
const levelsPerMinute = 4

func newRates(rate []float64) rates {
	cum := make([]float64, len(rate)+1)
	for k, x := range rate {
		cum[k+1] = cum[k] + x
	}
	r := rates{rate: rate, cum: cum}
	if total := cum[len(rate)]; total > 0 {
		levels := levelsPerMinute * len(rate)
		r.scale = float64(levels) / total
		r.from = make([]int32, levels+1)
		j := 0
		for q := range r.from {
			for j < len(rate) && cum[j+1] < r.level(q) {
				j++
			}
			r.from[q] = int32(j)
		}
	}
	return r
}

// level is the integral of rates.from's level q.
func (r *rates) level(q int) float64 { return float64(q) / r.scale }

// next returns the time of the next arrival after minute position u (in
// minutes from the grid start) when x units of integrated rate must pass, or
// false if that is beyond the grid.
func (r *rates) next(u, x float64) (float64, bool) {
	k := int(u)
	n := len(r.rate)
	if k >= n {
		return 0, false
	}
	target := r.cum[k] + r.rate[k]*(u-float64(k)) + x
	if !(target <= r.cum[n]) || r.from == nil {
		return 0, false
	}
	// The smallest j ≥ k with cum[j+1] ≥ target (cum does not decrease):
	// from the start of target's level, a step or two. (A galloping and
	// binary search mispredicted a branch at each of its steps: 6% of the
	// generator.)
	q := min(int(target*r.scale), len(r.from)-1)
	if q > 0 && r.level(q) > target {
		q-- // rounding: level(q) must not pass target
	}
	j := max(int(r.from[q]), k)
	for r.cum[j+1] < target {
		j++
	}
	return float64(j) + (target-r.cum[j])/r.rate[j], true
}

// onShareAt returns the share of active boxes in a session at local minute
// of day m (0..1439), and its slope per minute, by linear interpolation of
// the hourly table.
func (b *Behaviour) onShareAt(m int) (p, slope float64) {
	h := m / 60
	a, z := b.OnShare[h], b.OnShare[(h+1)%24]
	slope = (z - a) / 60
	return a + slope*float64(m%60), slope
}

func (b *Behaviour) prime(localMinuteOfDay int) bool {
	h := localMinuteOfDay / 60
	return h >= b.PrimeFrom && h < b.PrimeTo
}

// sessionRates returns the per-minute session start rate of an off box and
// the end rate of a box in session over n minutes of local time from local
// minute of day m0, chosen so that the expected share of boxes in session
// follows OnShare: with on-share p, end rate μ and start rate λ,
// dp/dt = λ(1-p) - μp, so λ = (p' + μp)/(1-p). μ is 1/SessionMean and is
// raised where the curve falls faster than sessions would end by themselves.
func (b *Behaviour) sessionRates(m0, n int) (start, end []float64) {
	start, end = make([]float64, n), make([]float64, n)
	for k := range n {
		m := (m0 + k) % 1440
		p, slope := b.onShareAt(m)
		mean := b.SessionMean
		if b.prime(m) {
			mean = b.SessionMeanPrime
		}
		mu := 1 / mean.Minutes()
		if fall := -slope / p; 1.25*fall > mu {
			mu = 1.25 * fall
		}
		lam := (slope + mu*p) / (1 - p)
		if floor := 0.05 * mu * p / (1 - p); lam < floor {
			lam = floor
		}
		start[k], end[k] = lam, mu
	}
	return start, end
}

// popularity returns the channel weights off prime time and in prime time.
func (b *Behaviour) popularity(channels int) (off, prime []float64) {
	off, prime = make([]float64, channels), make([]float64, channels)
	for k := range channels {
		w := math.Pow(float64(k+1), -b.Zipf)
		off[k], prime[k] = w, w
		if k < b.PrimeBoostChannels {
			prime[k] *= b.PrimeBoost
		}
	}
	return off, prime
}

// Names of channels, regions and devices.

func digits(n int) int { return len(strconv.Itoa(n)) }

func channelDigits(channels int) int { return max(3, digits(channels)) }

func regionDigits(regions int) int { return max(2, digits(regions)) }

// ChannelName returns the name of channel i (1-based) of a line-up of n.
func ChannelName(i, n int) string { return "ch-" + pad(i, channelDigits(n)) }

// RegionName returns the name of region i (1-based) of n regions.
func RegionName(i, n int) string { return "r-" + pad(i, regionDigits(n)) }

func pad(i, width int) string {
	s := strconv.Itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// channelIndex returns the 1-based index of channel name in a line-up of n.
func channelIndex(name string, n int) (int, bool) {
	w := channelDigits(n)
	if len(name) != 3+w || name[:3] != "ch-" {
		return 0, false
	}
	i, err := strconv.Atoi(name[3:])
	if err != nil || i < 1 || i > n {
		return 0, false
	}
	return i, true
}

// deviceLen is the length of a device name: "stb-" and 8 digits.
const deviceLen = 12

// putDevice writes the name of device d (d < 10^8) into b[:deviceLen].
func putDevice(b []byte, d uint32) {
	_ = b[deviceLen-1]
	b[0], b[1], b[2], b[3] = 's', 't', 'b', '-'
	binary.LittleEndian.PutUint64(b[4:], deviceDigits(d))
}

// deviceDigits returns the eight digits of d (d < 10^8) as the bytes of a
// little-endian word, small enough to inline.
func deviceDigits(d uint32) uint64 {
	// The eight digits in one word, by arithmetic on its lanes: a chain of
	// divisions by 100 cost ~10 ns an event, and a table of 10,000
	// four-digit strings is 40 KB probed at random, more than L1, which the
	// encoder of the events shares. Lanes of 32 bits hold d's two halves of four digits,
	// lanes of 16 bits their pairs, bytes the digits; x*5243>>19 is x/100
	// for x < 43,699 and x*103>>10 is x/10 for x < 179, and no lane's
	// product reaches the next lane.
	v := uint64(d/10000) | uint64(d%10000)<<32
	q := v * 5243 >> 19 & 0x0000007f0000007f
	v = q | (v-q*100)<<16
	q = v * 103 >> 10 & 0x000f000f000f000f
	v = q | (v-q*10)<<8
	return v | 0x3030303030303030
}

// DeviceName returns the name of device d (0-based).
func DeviceName(d int) string {
	var b [deviceLen]byte
	putDevice(b[:], uint32(d))
	return string(b[:])
}

// msOf converts a duration to milliseconds.
func msOf(d time.Duration) int64 { return d.Milliseconds() }
