// Package cluster joins rtcgate nodes through Redis (cluster-redis): it owns
// the Redis connection, keeps this node's lease in the node registry (a key
// per node with a TTL, renewed by a heartbeat), keeps the runtime apps
// cluster-wide (AppStore), and reports Redis's latency and errors. Without
// cluster-redis nothing of this package runs and no Redis is dialled.
//
// What is in Redis:
//
//	rtcgate:node:<node-id>   string, JSON of the node (id, addresses, sessions,
//	                         last heartbeat); PX cluster-node-ttl, renewed
//	                         every cluster-heartbeat; deleted at shutdown
//	rtcgate:nodes            sorted set node-id → last heartbeat (ms, Redis's
//	                         clock); members whose lease ended are pruned
//	rtcgate:apps             hash app name → app JSON (credentials included);
//	                         no TTL
//	rtcgate:apps:version     counter, incremented by every change of the apps
//	rtcgate:apps:changed     pub/sub channel: the new version, after each change
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis keys and channels (see the package comment).
const (
	keyNodePrefix  = "rtcgate:node:"
	keyNodes       = "rtcgate:nodes"
	keyApps        = "rtcgate:apps"
	keyAppsVersion = "rtcgate:apps:version"
	chanApps       = "rtcgate:apps:changed"
)

// Options configure a Cluster.
type Options struct {
	URL       string        // cluster-redis
	NodeID    string        // node-id; "" until Start names it
	Heartbeat time.Duration // cluster-heartbeat
	NodeTTL   time.Duration // cluster-node-ttl
	Timeout   time.Duration // cluster-redis-timeout
	Log       *slog.Logger
}

// Node is one node of the registry, as `list nodes` prints it.
type Node struct {
	ID        string `json:"id"`
	Client    string `json:"client"` // its listen-client, as advertised
	HTTP      string `json:"http"`   // its listen-http, as advertised
	Sessions  int    `json:"sessions"`
	Heartbeat int64  `json:"heartbeat"` // unix ms, Redis's clock
	Started   int64  `json:"started"`   // unix ms, the node's clock
	Instance  string `json:"instance"`  // this process, to tell two nodes of one node-id apart
}

// Cluster is this node's membership of the cluster.
type Cluster struct {
	o        Options
	rdb      redis.UniversalClient
	metrics  *metrics
	instance string

	self     atomic.Pointer[Node] // addresses, set by Start
	sessions func() int

	down       atomic.Bool // the last heartbeat did not reach Redis
	registered atomic.Bool // a heartbeat succeeded since start
	warnedDup  atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// clients counts the Redis clients this process ever built: a single node
// builds none (tested).
var clients atomic.Int64

// ClientsBuilt is the number of Redis clients this process built.
func ClientsBuilt() int64 { return clients.Load() }

// RedactURL is u with its password masked, for messages and logs.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}

// New parses the URL and builds the client; nothing is dialled until Start.
// A URL with master_name is Redis Sentinel's (the sentinels' addresses as
// host and addr=…), else a redis:// or rediss:// server.
func New(o Options) (*Cluster, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	setLogger(o.Log)
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, fmt.Errorf("%s: want redis://[user:password@]host:port[/db] or rediss://…", RedactURL(o.URL))
	}
	tune := func(dial, read, write *time.Duration, retries *int) {
		for _, d := range []*time.Duration{dial, read, write} {
			if *d == 0 {
				*d = o.Timeout
			}
		}
		if *retries == 0 {
			*retries = 1 // one retry: a pooled connection Redis closed while restarting
		}
	}
	noMaint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var rdb redis.UniversalClient
	if u.Query().Has("master_name") {
		fo, err := redis.ParseFailoverURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", RedactURL(o.URL), redactErr(err, o.URL))
		}
		tune(&fo.DialTimeout, &fo.ReadTimeout, &fo.WriteTimeout, &fo.MaxRetries)
		rdb = redis.NewFailoverClient(fo)
	} else {
		ro, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", RedactURL(o.URL), redactErr(err, o.URL))
		}
		tune(&ro.DialTimeout, &ro.ReadTimeout, &ro.WriteTimeout, &ro.MaxRetries)
		ro.MaintNotificationsConfig = noMaint
		rdb = redis.NewClient(ro)
	}
	clients.Add(1)
	var id [8]byte
	rand.Read(id[:])
	c := &Cluster{o: o, rdb: rdb, metrics: newMetrics(), instance: hex.EncodeToString(id[:])}
	rdb.AddHook(c.metrics)
	c.sessions = func() int { return 0 }
	return c, nil
}

// redactErr keeps a URL's password out of an error message.
func redactErr(err error, u string) string {
	msg := err.Error()
	if p, perr := url.Parse(u); perr == nil && p.User != nil {
		if pw, ok := p.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// Redis is the client, for the stores that keep their data in the cluster.
func (c *Cluster) Redis() redis.UniversalClient { return c.rdb }

// NodeID is this node's id.
func (c *Cluster) NodeID() string { return c.o.NodeID }

// Up says whether the last heartbeat reached Redis.
func (c *Cluster) Up() bool { return c.registered.Load() && !c.down.Load() }

// Start registers this node (nodeID: node-id, resolved; client and http:
// its advertised addresses; sessions: its session count) and renews the
// lease every heartbeat until Stop. Redis need not answer: the node serves
// its own sessions meanwhile and registers when Redis answers.
func (c *Cluster) Start(nodeID, clientAddr, httpAddr string, sessions func() int) {
	c.o.NodeID = nodeID
	c.self.Store(&Node{ID: c.o.NodeID, Client: clientAddr, HTTP: httpAddr, Started: time.Now().UnixMilli(), Instance: c.instance})
	if sessions != nil {
		c.sessions = sessions
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.Go(c.ctx, c.heartbeats)
}

// Go runs f in the cluster's background (after Start) until Stop.
func (c *Cluster) Go(ctx context.Context, f func(context.Context)) {
	c.wg.Go(func() { f(ctx) })
}

// Context is the cluster's background context (after Start): it ends at
// Stop.
func (c *Cluster) Context() context.Context { return c.ctx }

func (c *Cluster) heartbeats(ctx context.Context) {
	t := time.NewTicker(c.o.Heartbeat)
	defer t.Stop()
	for {
		c.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeatScript renews a node's lease: its key with a TTL, its entry in
// the index (Redis's clock, so that nodes' clocks do not matter), and prunes
// the index of nodes whose lease ended. It answers the node's previous
// value (to tell another process of the same node-id), then every live
// node's JSON (the metrics' view of the registry).
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node = cjson.decode(ARGV[1])
node.heartbeat = now
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], cjson.encode(node), 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, node.id)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[2])))
local out = {prev or ''}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local v = redis.call('GET', ARGV[3] .. id)
  if v then table.insert(out, v) end
end
return out
`)

func (c *Cluster) heartbeat(ctx context.Context) {
	n := *c.self.Load()
	n.Sessions = c.sessions()
	b, _ := json.Marshal(n)
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	res, err := heartbeatScript.Run(cctx, c.rdb, []string{keyNodePrefix + n.ID, keyNodes}, string(b), c.o.NodeTTL.Milliseconds(), keyNodePrefix).StringSlice()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// Logged when Redis goes away and when it is back, not at every
		// heartbeat: the errors are counted in the metrics.
		if !c.down.Swap(true) {
			c.o.Log.Warn("cluster: Redis unreachable; this node keeps serving its own sessions and retries every cluster-heartbeat",
				"cluster-redis", RedactURL(c.o.URL), "err", redactErr(err, c.o.URL))
		}
		c.metrics.up.Set(0)
		return
	}
	if c.down.Swap(false) || !c.registered.Load() {
		c.o.Log.Info("cluster: Redis reached; node registered", "node-id", n.ID, "client", n.Client, "http", n.HTTP)
	}
	c.metrics.up.Set(1)
	if len(res) > 0 {
		if prev := res[0]; prev != "" && c.registered.Load() {
			var p Node
			if json.Unmarshal([]byte(prev), &p) == nil && p.Instance != c.instance && !c.warnedDup.Swap(true) {
				c.o.Log.Error("cluster: another node registers with this node-id; give each node its own node-id",
					"node-id", n.ID, "other-client", p.Client)
			}
		}
		c.metrics.registry(decodeNodes(res[1:]))
	}
	c.registered.Store(true)
}

// listScript answers Redis's time (ms) and every live node's JSON.
var listScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then table.insert(out, v) end
end
return out
`)

// Nodes lists the live nodes (those whose lease runs), by id, with Redis's
// time now (unix ms).
func (c *Cluster) Nodes(ctx context.Context) ([]Node, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	res, err := listScript.Run(ctx, c.rdb, []string{keyNodes}, keyNodePrefix).StringSlice()
	if err != nil {
		return nil, 0, errors.New(redactErr(err, c.o.URL))
	}
	var now int64
	fmt.Sscan(res[0], &now)
	return decodeNodes(res[1:]), now, nil
}

// decodeNodes reads the registry's node JSONs (an unreadable one is left
// out).
func decodeNodes(js []string) []Node {
	var nodes []Node
	for _, s := range js {
		var n Node
		if json.Unmarshal([]byte(s), &n) == nil {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// Stop ends the heartbeats and the background work, removes this node from
// the registry (if Redis answers within ctx) and closes the connection.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	var err error
	if c.registered.Load() {
		dctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		_, err = c.rdb.TxPipelined(dctx, func(p redis.Pipeliner) error {
			p.Del(dctx, keyNodePrefix+c.o.NodeID)
			p.ZRem(dctx, keyNodes, c.o.NodeID)
			return nil
		})
		cancel()
		if err != nil {
			err = fmt.Errorf("cluster: leaving the registry: %s", redactErr(err, c.o.URL))
		}
	}
	return errors.Join(err, c.rdb.Close())
}

// logger routes go-redis's own log lines to the cluster's logger at debug
// level: its reconnection messages would repeat at every heartbeat while
// Redis is down, and the cluster logs that once.
type logger struct{ log atomic.Pointer[slog.Logger] }

var redisLog logger

func (l *logger) Printf(ctx context.Context, format string, v ...any) {
	if lg := l.log.Load(); lg != nil {
		lg.Debug("go-redis: " + fmt.Sprintf(format, v...))
	}
}

var setLoggerOnce sync.Once

func setLogger(l *slog.Logger) {
	redisLog.log.Store(l)
	setLoggerOnce.Do(func() { redis.SetLogger(&redisLog) })
}
