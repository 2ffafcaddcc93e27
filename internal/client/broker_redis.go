package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBroker keeps the fallback's bindings in Redis, for a cluster: the
// key rtcgate:conn:<sha256(connectionId)> holds the owner's node-id and
// address and the client address, with a TTL of client-idle-timeout that
// client activity renews. The connectionId itself is never stored.
type RedisBroker struct {
	rdb  redis.UniversalClient
	node string // this node's node-id
	addr string // its advertised listen-client
	ttl  time.Duration

	mu     sync.Mutex
	secret string
}

// connKeyPrefix names a binding's key.
const connKeyPrefix = "rtcgate:conn:"

// routeSecretKey holds the cluster's secret for forwarded requests,
// created by the first node that needs it.
const routeSecretKey = "rtcgate:route-secret"

// NewRedisBroker is a broker for node, reachable at addr, over rdb.
func NewRedisBroker(rdb redis.UniversalClient, node, addr string, ttl time.Duration) *RedisBroker {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &RedisBroker{rdb: rdb, node: node, addr: addr, ttl: ttl}
}

type redisRoute struct {
	Node string `json:"node"`
	Addr string `json:"addr"`
	IP   string `json:"ip"`
}

// Bind implements Broker.
func (b *RedisBroker) Bind(ctx context.Context, hash, ip string) error {
	v, _ := json.Marshal(redisRoute{Node: b.node, Addr: b.addr, IP: ip})
	return b.rdb.Set(ctx, connKeyPrefix+hash, v, b.ttl).Err()
}

// unbindScript deletes a binding only if this node still owns it.
var unbindScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['node'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Unbind implements Broker.
func (b *RedisBroker) Unbind(ctx context.Context, hash string) error {
	return unbindScript.Run(ctx, b.rdb, []string{connKeyPrefix + hash}, b.node).Err()
}

// Owner implements Broker.
func (b *RedisBroker) Owner(ctx context.Context, hash string) (Route, error) {
	v, err := b.rdb.Get(ctx, connKeyPrefix+hash).Bytes()
	if errors.Is(err, redis.Nil) {
		return Route{}, ErrUnbound
	}
	if err != nil {
		return Route{}, err
	}
	var r redisRoute
	if err := json.Unmarshal(v, &r); err != nil {
		return Route{}, ErrUnbound
	}
	return Route{Node: r.Node, Addr: r.Addr, IP: r.IP, Local: r.Node == b.node}, nil
}

// Secret implements Broker: the cluster's shared secret, read (or made)
// in Redis once; "" while Redis does not answer.
func (b *RedisBroker) Secret() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.secret != "" {
		return b.secret
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return ""
	}
	if err := b.rdb.SetNX(ctx, routeSecretKey, hex.EncodeToString(r[:]), 0).Err(); err != nil {
		return ""
	}
	s, err := b.rdb.Get(ctx, routeSecretKey).Result()
	if err != nil {
		return ""
	}
	b.secret = s
	return s
}

// sessionKey holds a stored session (a hash); its frames are in
// sessionKey+":frames" (a stream, entry ids <seq>-0).
func sessionKey(id string) string { return "rtcgate:session:" + id }

// storedField prefixes a layer's value (SetStored) among the session's
// fields.
const storedField = "v:"

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// sessionTTL: a stored session outlives its idle timeout a little, so
// that a client resuming at the end of it still finds it.
func (b *RedisBroker) sessionTTL() time.Duration { return b.ttl + 30*time.Second }

// Persist implements SessionStore.
func (b *RedisBroker) Persist(ctx context.Context, ops []StoreOp) error {
	ttl := b.sessionTTL()
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, op := range ops {
			k, fk := sessionKey(op.ID), sessionKey(op.ID)+":frames"
			switch op.Kind {
			case "save":
				r := op.Record
				cfg := make(map[string]any, len(r.Config))
				for key, v := range r.Config {
					if key != "authToken" {
						cfg[key] = v
					}
				}
				cj, _ := json.Marshal(cfg)
				fields := []any{"owner", b.node, "token", hashToken(r.AuthToken), "app", r.AppKey, "config", cj, "ip", r.RemoteIP}
				for key, v := range r.Stored {
					fields = append(fields, storedField+key, v)
				}
				p.HSet(ctx, k, fields...)
				p.Expire(ctx, k, ttl)
			case "value":
				if op.Data == nil {
					p.HDel(ctx, k, storedField+op.Key)
				} else {
					p.HSet(ctx, k, storedField+op.Key, op.Data)
					p.Expire(ctx, k, ttl)
				}
			case "frame":
				p.XAdd(ctx, &redis.XAddArgs{Stream: fk, ID: strconv.FormatUint(op.Seq, 10) + "-0", Values: []any{"d", op.Data},
					MaxLen: op.MaxLen, Approx: true})
				p.HSet(ctx, k, "last", op.Seq)
				p.Expire(ctx, fk, ttl)
			case "ack":
				p.XTrimMinID(ctx, fk, strconv.FormatUint(op.Seq+1, 10)+"-0")
			case "sent":
				p.HSet(ctx, k, "sent", op.Seq)
				p.Expire(ctx, k, ttl)
			case "renew":
				p.Expire(ctx, k, ttl)
				p.Expire(ctx, fk, ttl)
			case "drop":
				p.Del(ctx, k, fk)
			}
		}
		return nil
	})
	return err
}

// takeOverScript: KEYS[1] the session, ARGV the token's hash, this node,
// the node lease prefix. 1 taken, 0 none or wrong token, -1 owner alive.
var takeOverScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'owner', 'token')
if not v[1] or v[2] ~= ARGV[1] then return 0 end
if v[1] ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. v[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return 1`)

// TakeOver implements SessionStore.
func (b *RedisBroker) TakeOver(ctx context.Context, id, token string) (*SessionRecord, []StoredFrame, error) {
	k := sessionKey(id)
	n, err := takeOverScript.Run(ctx, b.rdb, []string{k}, hashToken(token), b.node, "rtcgate:node:").Int()
	if err != nil {
		return nil, nil, err
	}
	if n != 1 {
		return nil, nil, ErrUnbound
	}
	h, err := b.rdb.HGetAll(ctx, k).Result()
	if err != nil {
		return nil, nil, err
	}
	rec := &SessionRecord{ID: id, AuthToken: token, AppKey: h["app"], RemoteIP: h["ip"]}
	for f, v := range h {
		if key, ok := strings.CutPrefix(f, storedField); ok {
			if rec.Stored == nil {
				rec.Stored = map[string][]byte{}
			}
			rec.Stored[key] = []byte(v)
		}
	}
	if err := json.Unmarshal([]byte(h["config"]), &rec.Config); err != nil || rec.Config == nil {
		rec.Config = map[string]any{}
	}
	msgs, err := b.rdb.XRange(ctx, k+":frames", "-", "+").Result()
	if err != nil {
		return nil, nil, err
	}
	var frames []StoredFrame
	for _, m := range msgs {
		ms, _, _ := strings.Cut(m.ID, "-")
		seq, _ := strconv.ParseUint(ms, 10, 64)
		d, _ := m.Values["d"].(string)
		frames = append(frames, StoredFrame{Seq: seq, Data: []byte(d)})
	}
	rec.NextSeq = 1
	if len(frames) > 0 {
		rec.NextSeq = frames[len(frames)-1].Seq + 1
	}
	if last, err := strconv.ParseUint(h["last"], 10, 64); err == nil && last+1 > rec.NextSeq {
		rec.NextSeq = last + 1
	}
	rec.Sent, _ = strconv.ParseUint(h["sent"], 10, 64)
	b.rdb.Expire(ctx, k, b.sessionTTL())
	b.rdb.Expire(ctx, k+":frames", b.sessionTTL())
	return rec, frames, nil
}

// SessionOwner implements SessionStore.
func (b *RedisBroker) SessionOwner(ctx context.Context, id string) (Route, error) {
	owner, err := b.rdb.HGet(ctx, sessionKey(id), "owner").Result()
	if errors.Is(err, redis.Nil) {
		return Route{}, ErrUnbound
	}
	if err != nil {
		return Route{}, err
	}
	if owner == b.node {
		return Route{Node: owner, Addr: b.addr, Local: true}, nil
	}
	v, err := b.rdb.Get(ctx, "rtcgate:node:"+owner).Bytes()
	if errors.Is(err, redis.Nil) {
		return Route{}, ErrUnbound // its lease ended: a takeover
	}
	if err != nil {
		return Route{}, err
	}
	var n struct {
		Client string `json:"client"`
	}
	if json.Unmarshal(v, &n) != nil || n.Client == "" {
		return Route{}, ErrUnbound
	}
	return Route{Node: owner, Addr: n.Client}, nil
}
