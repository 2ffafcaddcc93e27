package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
