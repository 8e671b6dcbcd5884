package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ratingsd/ratingsd/aggregator/event"
	"github.com/ratingsd/ratingsd/bench"
	"github.com/redis/go-redis/v9"
)

// RedisResult is what one Redis HyperLogLog run measured: the events model
// (each tune or heartbeat adds its device to the key of its channel and
// minute) done with PFADD.
type RedisResult struct {
	Events        int64 // tune and heartbeat events added
	Keys          int
	Seconds       float64
	EventsPerSec  float64
	ServerCPU     float64 // redis-server's user + system CPU seconds
	ServerCPUPerM float64 // per million events
	ClientCPUPerM float64 // the harness's CPU per million events: decoding, grouping, RESP
	UsedMemory    int64   // INFO memory used_memory
	RSS           int64   // redis-server's VmRSS
	Accuracy      []Estimate
}

// RunRedis starts a fresh redis-server on a free loopback port, replays the
// binary frames of msgs into it as pipelined variadic PFADDs, one per
// (channel, minute) key of every 16 frames, and reads back every count.
func (e *Env) RunRedis(ctx context.Context, msgs *Messages, truth *bench.Truth, timeout time.Duration) (res RedisResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port, err := FreePort()
	if err != nil {
		return res, err
	}
	dir := e.next("redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("redis: %w", err)
	}
	c, err := StartChild("redis-server", e.Tools.Redis, []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
	}, dir+".log")
	if err != nil {
		return res, err
	}
	defer c.Stop(0)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(ctx, c, addr, 10*time.Second); err != nil {
		return res, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return res, fmt.Errorf("redis: ping %s: %w", addr, err)
	}

	var dec event.Decoder
	var evs []event.Event
	groups := map[string][]any{}
	var keyBuf []byte
	flush := func() error {
		if len(groups) == 0 {
			return nil
		}
		pipe := rdb.Pipeline()
		for k, devs := range groups {
			pipe.PFAdd(ctx, k, devs...)
			delete(groups, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("redis: pipelined PFADD: %w", err)
		}
		return nil
	}
	cpu0, err := CPUSeconds(c.Pid())
	if err != nil {
		return res, err
	}
	self0, err := CPUSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	for i := range msgs.Len() {
		_, data, _, _ := msgs.msg(i)
		evs = dec.Decode(evs[:0], data, nil)
		for j := range evs {
			ev := &evs[j]
			if ev.Kind == event.Standby || len(ev.Channel) == 0 {
				continue
			}
			keyBuf = appendKey(keyBuf[:0], ev.Channel, ev.TS-ev.TS%60000)
			groups[string(keyBuf)] = append(groups[string(keyBuf)], string(ev.Device))
			res.Events++
		}
		if i%16 == 15 {
			if err := flush(); err != nil {
				return res, err
			}
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("redis: after %d events: %w", res.Events, ctx.Err())
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	res.Seconds = time.Since(t0).Seconds()
	cpu1, err := CPUSeconds(c.Pid())
	if err != nil {
		return res, err
	}
	self1, err := CPUSeconds(os.Getpid())
	if err != nil {
		return res, err
	}
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.ServerCPU = cpu1 - cpu0
	res.ServerCPUPerM = res.ServerCPU / (float64(res.Events) / 1e6)
	res.ClientCPUPerM = (self1 - self0) / (float64(res.Events) / 1e6)

	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return res, fmt.Errorf("redis: INFO memory: %w", err)
	}
	if res.UsedMemory, err = infoField(info, "used_memory"); err != nil {
		return res, err
	}
	if res.RSS, _, err = Memory(c.Pid()); err != nil {
		return res, err
	}
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return res, fmt.Errorf("redis: DBSIZE: %w", err)
	}
	res.Keys = int(n)
	if truth != nil {
		if res.Accuracy, err = redisAccuracy(ctx, rdb, truth); err != nil {
			return res, err
		}
	}
	return res, nil
}

// appendKey appends the key of a (channel, minute): hll:<channel>:<unix ms>.
func appendKey(dst, channel []byte, minuteMs int64) []byte {
	dst = append(dst, "hll:"...)
	dst = append(dst, channel...)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, minuteMs, 10)
}

// redisAccuracy compares every (channel, minute) count with the truth of
// the events model. Redis serves no interval: Low = High = the count.
func redisAccuracy(ctx context.Context, rdb *redis.Client, t *bench.Truth) ([]Estimate, error) {
	type q struct {
		truth float64
		cmd   *redis.IntCmd
	}
	var qs []q
	pipe := rdb.Pipeline()
	for _, ch := range t.Channels() {
		for _, m := range t.Minutes() {
			n := t.Audience(bench.Events, ch, m)
			if n == 0 {
				continue
			}
			qs = append(qs, q{float64(n), pipe.PFCount(ctx, string(appendKey(nil, []byte(ch), m.UnixMilli())))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis: pipelined PFCOUNT: %w", err)
	}
	out := make([]Estimate, len(qs))
	for i, x := range qs {
		v := float64(x.cmd.Val())
		out[i] = Estimate{Truth: x.truth, Est: v, Low: v, High: v}
	}
	return out, nil
}

// infoField returns an integer field of a Redis INFO reply.
func infoField(info, name string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if ok && k == name {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO %s: %q is not an integer", name, v)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("redis INFO: no field %s", name)
}
