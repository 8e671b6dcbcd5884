package bench

import (
	"math"

	"github.com/ratingsd/ratingsd/aggregator/event"
)

// The viewing behaviour of one box: what it does at each of its turns.

// step carries out box d's action due at t (ms from Start).
func (g *Generator) step(t, d uint32) {
	x := &g.boxes[d]
	a := x.act
	if g.hbMs > 0 && a != actStart && t < g.nextAct[d] {
		g.record(d, t, event.Heartbeat, x.ch)
		g.schedule(d, t, g.nextAct[d], a)
		return
	}
	if a != actStart && a != actEnd && t >= x.sessEnd {
		a = actEnd
	}
	switch a {
	case actReport:
		g.record(d, t, event.Tune, x.ch)
		if g.hbMs > 0 {
			// Spread the boxes' heartbeat phases over the interval.
			g.hbAt[d] = t + 1000 + uint32(g.rng.below(uint64(g.hbMs-999)))
		}
		g.planWatch(d, x, t)
	case actStart:
		if x.ch == 0 || !g.rng.hit(g.pResume) {
			x.ch = g.jump(x.ch, g.startMs+int64(t))
		}
		x.sessEnd = g.drawSessionEnd(t)
		g.record(d, t, event.Tune, x.ch)
		if g.rng.hit(g.pStartBurst) {
			x.burst = g.drawBurst()
			g.schedule(d, t, t+g.zapDwell(), actZap)
		} else {
			g.planWatch(d, x, t)
		}
	case actSwitch:
		if g.rng.hit(g.pSwitchBurst) {
			x.burst = g.drawBurst()
			g.zap(d, x, t)
		} else {
			x.ch = g.jump(x.ch, g.startMs+int64(t))
			g.record(d, t, event.Tune, x.ch)
			g.planWatch(d, x, t)
		}
	case actLeave:
		x.burst = g.drawBurst()
		g.zap(d, x, t)
	case actZap:
		g.zap(d, x, t)
	case actReturn:
		x.ch, x.home = x.home, 0
		g.record(d, t, event.Tune, x.ch)
		g.planWatch(d, x, t)
	case actEnd:
		if g.rng.hit(g.pStandby) {
			g.record(d, t, event.Standby, 0)
		}
		x.home = 0
		g.scheduleStart(d, t)
	}
}

// zap makes one zap of box d's burst and schedules the next, or settles.
func (g *Generator) zap(d uint32, x *box, t uint32) {
	c := x.ch
	if g.rng.hit(g.pLinear) {
		n := uint16(g.cfg.Channels)
		if g.rng.hit(g.pUp) {
			c = c%n + 1
		} else {
			c = (c+n-2)%n + 1
		}
	} else {
		c = g.jump(c, g.startMs+int64(t))
	}
	x.ch = c
	g.record(d, t, event.Tune, c)
	if x.burst > 1 {
		x.burst--
		g.schedule(d, t, t+g.zapDwell(), actZap)
		return
	}
	x.burst = 0
	if x.home != 0 {
		if x.home != c {
			// Stay on this channel until the ad break is over.
			g.schedule(d, t, max(x.retAt, t+g.zapDwell()), actReturn)
			return
		}
		x.home = 0
	}
	g.planWatch(d, x, t)
}

// planWatch schedules what ends box d's viewing stint that starts at t: the
// stint's natural end, the session's end, or leaving at a programme boundary
// or an ad break of its channel.
func (g *Generator) planWatch(d uint32, x *box, t uint32) {
	mean := g.watchLongMs
	if g.rng.hit(g.pWatchShort) {
		mean = g.watchShortMs
	}
	now := g.startMs + int64(t)
	end := g.startMs + int64(x.sessEnd)
	limit, a := now+1000+int64(g.rng.exp()*mean), actSwitch
	if end <= limit {
		limit, a = end, actEnd
	}
	const halfHour = 30 * 60000
	nb := ((now+g.localOff)/halfHour+1)*halfHour - g.localOff
	nbr := int64(math.MaxInt64)
	c := x.ch - 1
	if phase := g.breakPhase[c]; phase >= 0 {
		nbr = phase + ((now-phase)/g.breakEvery+1)*g.breakEvery
	}
	for {
		if nb <= nbr {
			if nb >= limit {
				break
			}
			if g.rng.hit(g.pBoundary) {
				limit, a = nb+g.reaction(), actLeave
				break
			}
			nb += halfHour
			continue
		}
		if nbr >= limit {
			break
		}
		if g.rng.hit(g.pBreakLeave) {
			limit, a = nbr+g.reaction(), actLeave
			if g.rng.hit(g.pBreakReturn) {
				x.home = c + 1
				x.retAt = uint32(min(nbr+g.breakLen[c]+g.reaction()-g.startMs, math.MaxUint32))
			}
			break
		}
		nbr += g.breakEvery
	}
	if a == actLeave && limit >= end {
		limit, a = end, actEnd
		x.home = 0
	}
	g.schedule(d, t, uint32(min(limit-g.startMs, math.MaxUint32)), a)
}

// scheduleStart schedules d's next session after t; the box is off until then.
func (g *Generator) scheduleStart(d, t uint32) {
	at, ok := g.starts.next(g.gridMinutes(t), g.rng.exp())
	if !ok {
		g.boxes[d].act, g.boxes[d].at = actStart, noAction
		return
	}
	g.schedule(d, t, g.offsetOf(at), actStart)
}

// drawSessionEnd returns when a session that is on at t ends.
func (g *Generator) drawSessionEnd(t uint32) uint32 {
	x := g.rng.exp()
	if g.rng.hit(g.pShort) {
		x /= 4
	} else {
		x /= g.kLong
	}
	at, ok := g.ends.next(g.gridMinutes(t), x)
	if !ok {
		return math.MaxUint32
	}
	return g.offsetOf(at)
}

// gridMinutes converts t (ms from Start) to minutes from gridStart.
func (g *Generator) gridMinutes(t uint32) float64 {
	return float64(g.startMs+int64(t)-g.gridStart) / 60000
}

// offsetOf converts minutes from gridStart to ms from Start.
func (g *Generator) offsetOf(minutes float64) uint32 {
	return uint32(min(max(g.gridStart+int64(minutes*60000)-g.startMs, 0), math.MaxUint32))
}

// region returns d's region (0-based), fixed by the seed.
func (g *Generator) region(d uint32) int {
	return int((mix64(g.seedHash^uint64(d)) >> 32) * uint64(len(g.regNames)) >> 32)
}

// jump returns a channel drawn by popularity at Unix ms abs, other than c.
func (g *Generator) jump(c uint16, abs int64) uint16 {
	a := &g.pop[g.primeAt[(abs-g.gridStart)/60000]]
	for range 4 {
		if x := uint16(a.sample(&g.rng) + 1); x != c {
			return x
		}
	}
	return c%uint16(g.cfg.Channels) + 1
}

func (g *Generator) localMinuteOfDay(abs int64) int {
	return int(((abs+g.localOff)/60000%1440 + 1440) % 1440)
}

func (g *Generator) drawBurst() uint8 {
	if g.burstRate == 0 {
		return 1
	}
	return uint8(min(1+g.rng.exp()/g.burstRate, 255))
}

// zapDwell returns a time on a channel while zapping, in ms.
func (g *Generator) zapDwell() uint32 { return 1000 + uint32(g.rng.exp()*g.zapMs) }

// reaction returns the delay before a viewer reacts to a boundary or break.
func (g *Generator) reaction() int64 { return 1000 + int64(g.rng.exp()*g.reactMs) }
