package eventq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys, under a prefix (RedisOptions.Prefix, "rtcgate:hooks:"):
//
//	q:<key>       a stream per ordering key (session) with pending events,
//	              with one consumer group "d"; entry id 0-<seq>, fields
//	              a (app), m (method), b (body), t (queued, unix ns),
//	              n (bytes counted against the bound), u (the event's UID).
//	              Deleted when its last event is acknowledged.
//	seq           the counter that numbers events (Event.ID), cluster-wide:
//	              their order, not their UID — a Redis that lost its last
//	              writes (killed with appendfsync everysec, or restarted
//	              without persistence) counts the same numbers again
//	origin        a random name set once: the Origin of entries without u
//	              (appended by an older version)
//	bytes         bytes of pending events, checked against MaxBytes
//	consumers     sorted set: each queue (consumer) by its last heartbeat,
//	              Redis's own clock in ms; 0 once it closed
//	held:<cons>   the keys whose events a consumer holds (reads, delivers)
//	dead          the dead letters: a stream (RedisDeadLetters)
//
// None has a TTL: each is deleted when it has nothing left to say (a
// drained stream, a dead consumer whose keys were taken over), so the
// number of keys is bounded by the sessions with pending events plus the
// live consumers plus five.
//
// Order per key across nodes: a key's events are held — read from its
// stream into a consumer's pending entries list (PEL) — by one consumer at
// a time, and a consumer reads a key's next events only when the key's PEL
// is empty or its own. Every step is one Lua script, so that "the PEL is
// empty, read the next events" cannot interleave with another node's.
// The queue that appends to a free key holds it and delivers (the session's
// node, as with a local store); an append to a key held elsewhere is left
// to its holder, which reads it once it acknowledged the rest.
//
// Death: a consumer heartbeats every ClaimAfter/4. One silent for
// ClaimAfter (or closed) is dead: the others take over each key in its
// held set — XAUTOCLAIM moves its pending entries, in order, to the taker —
// and deliver them. The idle clock is the consumer's, not the entry's: an
// event in backoff for minutes behind a backend that is down is not
// orphaned while its node lives. A node taken for dead that was only
// paused delivers what it had in flight once more: a duplicate with the
// same event id, which the backend can drop.
//
// Redis down: an event that cannot be appended (Redis does not answer, at
// start or later) goes to a local spill in memory, within SpillBytes, and
// so does every later event of a key that has spilled events (order per
// session); over SpillBytes Hold refuses (ErrSpillFull). Spilled events are
// not delivered by this node while Redis is down: they wait, and the first
// heartbeat that reaches Redis appends them, per key in order, then
// delivery goes on from Redis as usual (held by this node when the key is
// free). An acknowledgement that fails is kept and sent again the same
// way, before the spill, so that the key's next events are read. A store
// opened while Redis is down does its first round trip (origin) on that
// heartbeat too. After an outage a node takes over no dead consumer for
// one ClaimAfter, so that the others, back too, heartbeat first.

// DefaultClaimAfter is how long a silent queue keeps its keys.
const DefaultClaimAfter = 5 * time.Second

// RedisOptions configure OpenRedis.
type RedisOptions struct {
	Client redis.UniversalClient // required; not closed by the store
	Prefix string                // key prefix; default "rtcgate:hooks:"
	// Consumer names this queue in the consumer groups: unique per
	// process (node id + pid + a random suffix), never reused.
	Consumer string
	// ClaimAfter: a consumer silent this long is dead and its keys are
	// taken over (default DefaultClaimAfter).
	ClaimAfter time.Duration
	// MaxBytes bounds the pending events of the whole cluster (default
	// 64 MiB); Append returns ErrFull beyond it.
	MaxBytes int64
	// Batch is how many of a key's events a consumer reads at once
	// (default 256).
	Batch int
	// SpillBytes bounds the events kept in memory while Redis does not
	// answer (default MaxBytes); Hold returns ErrSpillFull beyond it.
	SpillBytes int64
	Log        *slog.Logger
}

// Redis is a Shared Store over Redis Streams: the hook queue of a cluster.
type Redis struct {
	o      RedisOptions
	c      redis.UniversalClient
	origin string

	// writer and written name the events this store appends (Event.UID,
	// kept in the entry): a random name per store and its own count, so
	// that no two events share a UID whatever Redis forgets.
	writer  string
	written atomic.Uint64

	mu     sync.Mutex
	keyOf  map[uint64]string // events held by this queue: id → key
	feed   func([]*Event)
	closed bool

	// Redis down: down is set when a command fails and cleared by the
	// next heartbeat that answers; ready once origin is known.
	ready      bool
	down       bool
	grace      time.Time           // no takeover before (after an outage)
	spill      map[string][]*Event // per key, in order
	spillKeys  []string            // keys of spill, oldest first
	spillBytes int64
	spillN     int
	unacked    []*Event // releases that failed, to send again

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// ErrSpillFull is returned by Hold when Redis does not answer and the
// local spill is over its bound.
var ErrSpillFull = errors.New("eventq: redis unreachable and the local spill is full")

// OpenRedis opens the store and starts its heartbeat. When Redis does not
// answer within ctx the store starts anyway: events spill locally until a
// heartbeat reaches Redis.
func OpenRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if o.Client == nil || o.Consumer == "" {
		return nil, errors.New("eventq: Redis needs a client and a consumer name")
	}
	if o.Prefix == "" {
		o.Prefix = "rtcgate:hooks:"
	}
	if o.ClaimAfter <= 0 {
		o.ClaimAfter = DefaultClaimAfter
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.SpillBytes <= 0 {
		o.SpillBytes = o.MaxBytes
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &Redis{o: o, c: o.Client, writer: newOrigin(), keyOf: map[uint64]string{}, spill: map[string][]*Event{},
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := r.start(ctx); err != nil {
		r.o.Log.Warn("eventq: redis unreachable: hook events are kept in memory until it answers", "err", err)
		r.down = true
	}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// start is the first round trip: the origin, then a heartbeat.
func (r *Redis) start(ctx context.Context) error {
	if err := r.c.SetNX(ctx, r.k("origin"), newOrigin(), 0).Err(); err != nil {
		return fmt.Errorf("eventq: redis: %w", err)
	}
	origin, err := r.c.Get(ctx, r.k("origin")).Result()
	if err != nil {
		return fmt.Errorf("eventq: redis: %w", err)
	}
	r.mu.Lock()
	r.origin = origin
	r.mu.Unlock()
	if _, err := r.heartbeat(ctx); err != nil {
		return fmt.Errorf("eventq: redis: %w", err)
	}
	r.mu.Lock()
	r.ready = true
	r.mu.Unlock()
	return nil
}

func (r *Redis) getOrigin() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.origin
}

// Spilled returns the events kept in memory while Redis does not answer,
// and their bytes.
func (r *Redis) Spilled() (int, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spillN, r.spillBytes
}

// spillLocked keeps e in the spill, behind its key's. Caller holds r.mu.
func (r *Redis) spillLocked(e *Event, size int64) error {
	if r.spillBytes+size > r.o.SpillBytes {
		return ErrSpillFull
	}
	if len(r.spill[e.Key]) == 0 {
		r.spillKeys = append(r.spillKeys, e.Key)
	}
	r.spill[e.Key] = append(r.spill[e.Key], e)
	r.spillBytes += size
	r.spillN++
	return nil
}

// setDown notes that Redis did not answer.
func (r *Redis) setDown(err error) {
	r.mu.Lock()
	was := r.down
	r.down = true
	r.mu.Unlock()
	if !was {
		r.o.Log.Warn("eventq: redis unreachable: hook events are kept in memory until it answers", "err", err)
	}
}

func (r *Redis) k(s string) string { return r.o.Prefix + s }

// Consumer returns this queue's consumer name.
func (r *Redis) Consumer() string { return r.o.Consumer }

// eventSize is what an event counts against MaxBytes.
func eventSize(e *Event) int64 {
	return int64(64 + len(e.Key) + len(e.App) + len(e.Method) + len(e.Body))
}

// now is Redis's clock in ms, inside a script (heartbeats compare Redis
// time with Redis time: the nodes' clocks do not matter).
const luaNow = `redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// holdScript appends an event and reads the key's next events when the
// key is free or already this consumer's.
// KEYS: stream, seq, bytes, held:me, consumers.
// ARGV: me, maxBytes, size, app, method, body, queued, key, batch, uid.
var holdScript = redis.NewScript(luaNow + `
local size = tonumber(ARGV[3])
if tonumber(redis.call('GET', KEYS[3]) or '0') + size > tonumber(ARGV[2]) then
  return redis.error_reply('FULL')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'd', '0', 'MKSTREAM')
end
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '0-' .. id, 'a', ARGV[4], 'm', ARGV[5], 'b', ARGV[6], 't', ARGV[7], 'n', ARGV[3], 'u', ARGV[10])
redis.call('INCRBY', KEYS[3], size)
local p = redis.call('XPENDING', KEYS[1], 'd')
if p[1] > 0 then
  local mine = false
  for _, c in ipairs(p[4]) do
    if c[1] == ARGV[1] then mine = true else return {id, {}} end
  end
end
local r = redis.call('XREADGROUP', 'GROUP', 'd', ARGV[1], 'COUNT', ARGV[9], 'STREAMS', KEYS[1], '>')
redis.call('SADD', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[5], now, ARGV[1])
if r then return {id, r[1][2]} end
return {id, {}}
`)

// releaseScript acknowledges an event and, when the consumer holds no
// other of the key's, reads the next ones; a drained stream is deleted.
// KEYS: stream, bytes, held:me. ARGV: me, entry id, batch, key.
var releaseScript = redis.NewScript(`
local ent = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #ent > 0 then
  local f = ent[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'n' then redis.call('DECRBY', KEYS[2], f[i+1]) end
  end
  redis.call('XACK', KEYS[1], 'd', ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[4])
  return {}
end
local p = redis.call('XPENDING', KEYS[1], 'd')
if p[1] > 0 then
  for _, c in ipairs(p[4]) do
    if c[1] == ARGV[1] then return {} end
  end
  redis.call('SREM', KEYS[3], ARGV[4]) -- taken over meanwhile
  return {}
end
local r = redis.call('XREADGROUP', 'GROUP', 'd', ARGV[1], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if r and #r[1][2] > 0 then return r[1][2] end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[3], ARGV[4])
return {}
`)

// claimScript takes a key over from a dead consumer: its pending entries
// (XAUTOCLAIM, in id order), then what was not read yet.
// KEYS: stream, held:dead, held:me, consumers. ARGV: me, dead, key, batch.
var claimScript = redis.NewScript(luaNow + `
redis.call('SREM', KEYS[2], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local out = {}
local p = redis.call('XPENDING', KEYS[1], 'd')
if p[1] > 0 then
  for _, c in ipairs(p[4]) do
    if c[1] ~= ARGV[2] then return {} end -- a live consumer holds it
  end
  local start = '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', KEYS[1], 'd', ARGV[1], 0, start, 'COUNT', 100)
    start = r[1]
    for _, e in ipairs(r[2]) do
      if e then table.insert(out, e) end
    end
  until start == '0-0'
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'd', ARGV[2])
else
  local r = redis.call('XREADGROUP', 'GROUP', 'd', ARGV[1], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
  if r then out = r[1][2] end
end
if #out > 0 then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
return out
`)

// heartbeatScript marks this consumer alive and returns up to 16 dead
// ones: silent for ClaimAfter, or closed.
// KEYS: consumers. ARGV: me, claimAfter ms.
var heartbeatScript = redis.NewScript(luaNow + `
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])), 'LIMIT', 0, 16)
`)

// forgetScript drops a dead consumer once nothing is held in its name.
// KEYS: consumers, held:dead. ARGV: dead, claimAfter ms.
var forgetScript = redis.NewScript(luaNow + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) < now - tonumber(ARGV[2]) and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`)

func entryID(id uint64) string { return "0-" + strconv.FormatUint(id, 10) }

// parseEntries decodes a script's stream entries ({id, {field, value…}}).
func (r *Redis) parseEntries(key string, v any) ([]*Event, error) {
	list, _ := v.([]any)
	out := make([]*Event, 0, len(list))
	origin := r.getOrigin()
	for _, it := range list {
		ent, ok := it.([]any)
		if !ok || len(ent) != 2 {
			return out, fmt.Errorf("eventq: redis: unexpected entry %v", it)
		}
		sid, _ := ent[0].(string)
		seq, err := strconv.ParseUint(strings.TrimPrefix(sid, "0-"), 10, 64)
		if err != nil {
			return out, fmt.Errorf("eventq: redis: entry id %q", sid)
		}
		e := &Event{ID: seq, Key: key, Origin: origin}
		f, _ := ent[1].([]any)
		for i := 0; i+1 < len(f); i += 2 {
			name, _ := f[i].(string)
			val, _ := f[i+1].(string)
			switch name {
			case "a":
				e.App = val
			case "m":
				e.Method = val
			case "b":
				e.Body = []byte(val)
			case "t":
				ns, _ := strconv.ParseInt(val, 10, 64)
				e.Enqueued = time.Unix(0, ns)
			case "u":
				e.uid = val
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *Redis) track(evs []*Event) {
	r.mu.Lock()
	for _, e := range evs {
		r.keyOf[e.ID] = e.Key
	}
	r.mu.Unlock()
}

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Hold appends e to its key's stream and returns the events this queue is
// to deliver now (see Shared). When Redis does not answer, or e's key has
// spilled events, e is spilled (none returned; ErrSpillFull over the
// bound).
func (r *Redis) Hold(e *Event) ([]*Event, error) {
	size := eventSize(e)
	if size > r.o.MaxBytes {
		return nil, ErrTooLarge
	}
	if e.Enqueued.IsZero() {
		e.Enqueued = time.Now()
	}
	if e.uid == "" {
		// Named before it is appended or spilled: the same UID however
		// often an uncertain append is tried again.
		e.uid = r.writer + "-" + strconv.FormatUint(r.written.Add(1), 10)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if r.down || !r.ready || len(r.spill[e.Key]) > 0 {
		err := r.spillLocked(e, size)
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Unlock()
	evs, appended, err := r.hold(e, size)
	if appended || errors.Is(err, ErrFull) {
		return evs, err
	}
	r.setDown(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	return nil, r.spillLocked(e, size)
}

// hold runs holdScript; appended reports whether e is in Redis.
func (r *Redis) hold(e *Event, size int64) (evs []*Event, appended bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	res, err := holdScript.Run(ctx, r.c,
		[]string{r.k("q:" + e.Key), r.k("seq"), r.k("bytes"), r.k("held:" + r.o.Consumer), r.k("consumers")},
		r.o.Consumer, r.o.MaxBytes, size, e.App, e.Method, e.Body, e.Enqueued.UnixNano(), e.Key, r.o.Batch, e.uid).Result()
	if err != nil {
		if strings.Contains(err.Error(), "FULL") {
			return nil, false, ErrFull
		}
		return nil, false, fmt.Errorf("eventq: redis: %w", err)
	}
	arr, _ := res.([]any)
	if len(arr) != 2 {
		return nil, true, fmt.Errorf("eventq: redis: unexpected reply %v", res)
	}
	id, _ := arr[0].(int64)
	e.ID, e.Origin = uint64(id), r.getOrigin()
	evs, err = r.parseEntries(e.Key, arr[1])
	for i, h := range evs {
		if h.ID == e.ID {
			evs[i] = e // the caller's, with its budget
		}
	}
	r.track(evs)
	return evs, true, err
}

// Release acknowledges e and returns the key's next events for this queue
// (see Shared). When Redis does not answer the acknowledgement is kept and
// sent again by the heartbeat that reaches Redis.
func (r *Redis) Release(e *Event) ([]*Event, error) {
	r.mu.Lock()
	delete(r.keyOf, e.ID)
	if r.down {
		r.unacked = append(r.unacked, &Event{ID: e.ID, Key: e.Key})
		r.mu.Unlock()
		return nil, nil
	}
	r.mu.Unlock()
	evs, err := r.release(e)
	if err != nil {
		r.setDown(err)
		r.mu.Lock()
		r.unacked = append(r.unacked, &Event{ID: e.ID, Key: e.Key})
		r.mu.Unlock()
		return nil, nil
	}
	return evs, nil
}

func (r *Redis) release(e *Event) ([]*Event, error) {
	ctx, cancel := opCtx()
	defer cancel()
	res, err := releaseScript.Run(ctx, r.c, []string{r.k("q:" + e.Key), r.k("bytes"), r.k("held:" + r.o.Consumer)},
		r.o.Consumer, entryID(e.ID), r.o.Batch, e.Key).Result()
	if err != nil {
		return nil, fmt.Errorf("eventq: redis: %w", err)
	}
	evs, err := r.parseEntries(e.Key, res)
	r.track(evs)
	if err != nil {
		r.o.Log.Error("eventq: redis: bad entries", "key", e.Key, "err", err)
	}
	return evs, nil
}

// catchUp, once Redis answers again, sends the acknowledgements that
// failed, then appends the spill, per key in order, handing over what
// this queue is to deliver. It stops at the first failure (the next
// heartbeat goes on).
func (r *Redis) catchUp() error {
	for {
		r.mu.Lock()
		if len(r.unacked) == 0 {
			r.mu.Unlock()
			break
		}
		e := r.unacked[0]
		r.mu.Unlock()
		evs, err := r.release(e)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.unacked[0] = nil
		r.unacked = r.unacked[1:]
		r.mu.Unlock()
		r.handOver(evs)
	}
	n := 0
	for {
		r.mu.Lock()
		if len(r.spillKeys) == 0 {
			r.mu.Unlock()
			break
		}
		key := r.spillKeys[0]
		e := r.spill[key][0]
		r.mu.Unlock()
		size := eventSize(e)
		evs, appended, err := r.hold(e, size)
		if errors.Is(err, ErrFull) {
			return nil // the cluster's bound: the next heartbeat tries again
		}
		if !appended {
			return err
		}
		r.mu.Lock()
		l := r.spill[key]
		l[0] = nil
		if l = l[1:]; len(l) == 0 {
			delete(r.spill, key)
			r.spillKeys[0] = ""
			r.spillKeys = r.spillKeys[1:]
		} else {
			r.spill[key] = l
		}
		r.spillBytes -= size
		r.spillN--
		r.mu.Unlock()
		n++
		for _, h := range evs {
			h.since = time.Time{} // its budget starts now that it is in Redis
		}
		r.handOver(evs)
		if err != nil {
			r.o.Log.Error("eventq: redis: bad entries", "key", key, "err", err)
		}
	}
	if n > 0 {
		r.o.Log.Info("eventq: redis answers again: spilled hook events appended", "events", n)
	}
	return nil
}

// Append is Hold, handing what this queue is to deliver to Feed's
// function (a Shared store is driven by Hold and Release).
func (r *Redis) Append(e *Event) error {
	evs, err := r.Hold(e)
	r.handOver(evs)
	return err
}

// Ack is Release for an event this queue holds (other ids are ignored).
func (r *Redis) Ack(id uint64) error {
	r.mu.Lock()
	key, ok := r.keyOf[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	evs, err := r.Release(&Event{ID: id, Key: key})
	r.handOver(evs)
	return err
}

func (r *Redis) handOver(evs []*Event) {
	r.mu.Lock()
	feed := r.feed
	r.mu.Unlock()
	if feed != nil && len(evs) > 0 {
		feed(evs)
	}
}

// Pending returns nothing: a new consumer holds no events; those of a
// previous process come through Feed once it is found dead.
func (r *Redis) Pending() ([]*Event, error) { return nil, nil }

// Feed starts handing over the keys of dead consumers.
func (r *Redis) Feed(feed func([]*Event)) {
	r.mu.Lock()
	r.feed = feed
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Held returns how many events this queue holds (read, not acknowledged).
func (r *Redis) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keyOf)
}

func (r *Redis) heartbeat(ctx context.Context) ([]string, error) {
	return heartbeatScript.Run(ctx, r.c, []string{r.k("consumers")}, r.o.Consumer, r.o.ClaimAfter.Milliseconds()).StringSlice()
}

// loop heartbeats, catches up after an outage and takes over the keys of
// dead consumers.
func (r *Redis) loop() {
	defer r.wg.Done()
	t := time.NewTicker(max(r.o.ClaimAfter/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.kick:
		}
		ctx, cancel := opCtx()
		if err := r.beat(ctx); err != nil {
			r.setDown(err)
		}
		cancel()
	}
}

// beat is one heartbeat: the first round trip if not done yet, then, once
// Redis answers after an outage, the catch-up, then the takeovers.
func (r *Redis) beat(ctx context.Context) error {
	r.mu.Lock()
	ready, down := r.ready, r.down
	r.mu.Unlock()
	if !ready {
		if err := r.start(ctx); err != nil {
			return err
		}
	}
	if down {
		if _, err := r.heartbeat(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		r.down = false
		r.grace = time.Now().Add(r.o.ClaimAfter)
		r.mu.Unlock()
		r.o.Log.Info("eventq: redis answers again")
	}
	if err := r.catchUp(); err != nil {
		return err
	}
	r.mu.Lock()
	grace := r.grace
	r.mu.Unlock()
	if time.Now().Before(grace) {
		_, err := r.heartbeat(ctx)
		return err
	}
	return r.takeOver(ctx)
}

func (r *Redis) takeOver(ctx context.Context) error {
	dead, err := r.heartbeat(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	feed := r.feed
	r.mu.Unlock()
	if feed == nil {
		return nil
	}
	for _, d := range dead {
		if d == r.o.Consumer {
			continue // this one, paused past ClaimAfter: alive again now
		}
		held := r.k("held:" + d)
		var cursor uint64
		for {
			keys, next, err := r.c.SScan(ctx, held, cursor, "", 100).Result()
			if err != nil {
				return err
			}
			for _, key := range keys {
				res, err := claimScript.Run(ctx, r.c, []string{r.k("q:" + key), held, r.k("held:" + r.o.Consumer), r.k("consumers")},
					r.o.Consumer, d, key, r.o.Batch).Result()
				if err != nil {
					return err
				}
				evs, err := r.parseEntries(key, res)
				if len(evs) > 0 {
					r.o.Log.Info("eventq: took over a dead node's events", "consumer", d, "events", len(evs))
					r.track(evs)
					feed(evs)
				}
				if err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		if err := forgetScript.Run(ctx, r.c, []string{r.k("consumers"), held}, d, r.o.ClaimAfter.Milliseconds()).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the heartbeat and marks this consumer dead, so that the
// other nodes take over what it holds at once rather than after
// ClaimAfter. The client stays open: the caller owns it.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	ctx, cancel := opCtx()
	defer cancel()
	r.mu.Lock()
	behind := r.down && (r.spillN > 0 || len(r.unacked) > 0)
	r.mu.Unlock()
	if behind {
		// One last try: what reaches Redis is taken over by the others.
		if err := r.start(ctx); err == nil {
			r.mu.Lock()
			r.down = false
			r.mu.Unlock()
			r.catchUp()
		}
	}
	if n, _ := r.Spilled(); n > 0 {
		r.o.Log.Error("eventq: redis unreachable at close: spilled hook events lost", "events", n)
	}
	return r.c.ZAdd(ctx, r.k("consumers"), redis.Z{Score: 0, Member: r.o.Consumer}).Err()
}

// Ready reports whether the store has reached Redis once (false: opened
// while Redis was down, and still waiting for it).
func (r *Redis) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// kill stops the heartbeat without a word, as SIGKILL would (tests).
func (r *Redis) kill() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
}

// redisDead is the Store of a cluster's dead letters: one stream (the
// prefix's "dead"), entry id 0-<seq>, the event's fields plus when it was
// given up on (d, unix ns), after how many attempts (c) and why (r).
type redisDead struct {
	c      redis.UniversalClient
	key    string
	seq    string
	oKey   string
	noLoad bool // opened while Redis was down: Pending starts empty

	mu     sync.Mutex
	origin string
}

// getOrigin reads the origin, once.
func (s *redisDead) getOrigin(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.origin != "" {
		return s.origin, nil
	}
	if err := s.c.SetNX(ctx, s.oKey, newOrigin(), 0).Err(); err != nil {
		return "", fmt.Errorf("eventq: redis: %w", err)
	}
	origin, err := s.c.Get(ctx, s.oKey).Result()
	if err != nil {
		return "", fmt.Errorf("eventq: redis: %w", err)
	}
	s.origin = origin
	return origin, nil
}

// OpenRedisDeadLetters keeps the dead letters of the cluster in Redis,
// within maxBytes (≤0: DefaultDeadLetterBytes). Each node loads those kept
// when it starts and adds its own; the bound is applied to what a node
// knows of. When Redis does not answer it returns the dead letters, empty
// (those kept in Redis are listed after the next restart), with the error.
func OpenRedisDeadLetters(ctx context.Context, c redis.UniversalClient, prefix string, maxBytes int64) (*DeadLetters, error) {
	if prefix == "" {
		prefix = "rtcgate:hooks:"
	}
	s := &redisDead{c: c, key: prefix + "dead", seq: prefix + "seq", oKey: prefix + "origin"}
	if _, err := s.getOrigin(ctx); err != nil {
		s.noLoad = true
		dl, _ := NewDeadLetters(s, maxBytes) // Pending does not fail
		return dl, err
	}
	return NewDeadLetters(s, maxBytes)
}

// deadAppend numbers and adds a dead letter. KEYS: dead, seq.
var deadAppend = redis.NewScript(`
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '0-' .. id, 'k', ARGV[1], 'a', ARGV[2], 'm', ARGV[3], 'b', ARGV[4],
  't', ARGV[5], 'd', ARGV[6], 'c', ARGV[7], 'r', ARGV[8])
return id
`)

func (s *redisDead) Append(e *Event) error {
	ctx, cancel := opCtx()
	defer cancel()
	origin, err := s.getOrigin(ctx)
	if err != nil {
		return err
	}
	id, err := deadAppend.Run(ctx, s.c, []string{s.key, s.seq}, e.Key, e.App, e.Method, e.Body,
		e.Enqueued.UnixNano(), e.DeadAt.UnixNano(), e.Attempts, e.Reason).Int64()
	if err != nil {
		return fmt.Errorf("eventq: redis: %w", err)
	}
	e.ID, e.Origin = uint64(id), origin
	return nil
}

func (s *redisDead) Pending() ([]*Event, error) {
	if s.noLoad {
		return nil, nil
	}
	ctx, cancel := opCtx()
	defer cancel()
	msgs, err := s.c.XRange(ctx, s.key, "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("eventq: redis: %w", err)
	}
	out := make([]*Event, 0, len(msgs))
	for _, m := range msgs {
		id, err := strconv.ParseUint(strings.TrimPrefix(m.ID, "0-"), 10, 64)
		if err != nil {
			continue
		}
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		num := func(k string) int64 { n, _ := strconv.ParseInt(str(k), 10, 64); return n }
		out = append(out, &Event{ID: id, Origin: s.origin, Key: str("k"), App: str("a"), Method: str("m"),
			Body: []byte(str("b")), Enqueued: time.Unix(0, num("t")), DeadAt: time.Unix(0, num("d")),
			Attempts: int(num("c")), Reason: str("r")})
	}
	return out, nil
}

func (s *redisDead) Ack(id uint64) error {
	ctx, cancel := opCtx()
	defer cancel()
	if err := s.c.XDel(ctx, s.key, entryID(id)).Err(); err != nil {
		return fmt.Errorf("eventq: redis: %w", err)
	}
	return nil
}

func (s *redisDead) Close() error { return nil }
