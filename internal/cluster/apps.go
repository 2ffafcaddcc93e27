package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/hooks"
)

// AppStore keeps the runtime apps in Redis (hooks.AppStore): the hash
// rtcgate:apps, name → app JSON. Every change increments
// rtcgate:apps:version and publishes it on rtcgate:apps:changed; every node
// reloads on a message, on (re)subscribing, and when the version it polls
// every cluster-heartbeat is not the one it loaded (a message it missed).
type AppStore struct {
	c      *Cluster
	loaded atomic.Int64 // version of the last Load; -1: none yet
	// started: Load was called once. The first Load, at start, tolerates
	// an unreachable Redis (the node starts with its configuration's apps
	// and loads the rest when Redis answers); later ones report it.
	started atomic.Bool
}

// NewAppStore is the cluster's app store.
func NewAppStore(c *Cluster) *AppStore {
	s := &AppStore{c: c}
	s.loaded.Store(-1)
	return s
}

func (s *AppStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.c.o.Timeout)
}

// ErrUnreachable is Redis not answering: nothing was read or changed.
var ErrUnreachable = errors.New("cluster-redis unreachable")

// Load reads every app and the version they are at.
func (s *AppStore) Load() ([]hooks.App, error) {
	first := !s.started.Swap(true)
	ctx, cancel := s.ctx()
	defer cancel()
	var all *redis.MapStringStringCmd
	var ver *redis.StringCmd
	_, err := s.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, keyApps)
		ver = p.Get(ctx, keyAppsVersion)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		if first {
			s.c.o.Log.Warn("cluster: Redis unreachable at start: serving the configuration's apps; the runtime apps follow when Redis answers",
				"cluster-redis", RedactURL(s.c.o.URL), "err", redactErr(err, s.c.o.URL))
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnreachable, redactErr(err, s.c.o.URL))
	}
	v, _ := strconv.ParseInt(ver.Val(), 10, 64)
	var apps []hooks.App
	var bad []error
	for name, js := range all.Val() {
		var a hooks.App
		if err := json.Unmarshal([]byte(js), &a); err != nil || a.Name != name {
			bad = append(bad, fmt.Errorf("app %s in %s is not an app's JSON", name, keyApps))
			continue
		}
		apps = append(apps, a)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	s.loaded.Store(v)
	if len(bad) > 0 {
		s.c.o.Log.Error("cluster: apps left out", "err", errors.Join(bad...))
	}
	return apps, nil
}

// putScript keeps an app unless another app has its key (or, creating, its
// name is taken): two nodes cannot give one key to two apps.
var putScript = redis.NewScript(`
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return redis.error_reply('app ' .. ARGV[1] .. ' exists already')
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local ok, a = pcall(cjson.decode, all[i + 1])
    if ok and type(a) == 'table' and a.key == ARGV[2] then
      return redis.error_reply('app key ' .. ARGV[2] .. ' exists already (app ' .. all[i] .. ')')
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], v)
return v
`)

var deleteScript = redis.NewScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], v)
return v
`)

// Put keeps a in Redis; every node applies it within a message.
func (s *AppStore) Put(a hooks.App, create bool) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	c := "0"
	if create {
		c = "1"
	}
	err = putScript.Run(ctx, s.c.rdb, []string{keyApps, keyAppsVersion}, a.Name, a.Key, string(b), c, chanApps).Err()
	return s.storeErr(err)
}

// Delete forgets the app of that name on every node.
func (s *AppStore) Delete(name string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.storeErr(deleteScript.Run(ctx, s.c.rdb, []string{keyApps, keyAppsVersion}, name, chanApps).Err())
}

func (s *AppStore) storeErr(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return errors.New(rerr.Error()) // the script's refusal: the app's name or key is taken
	}
	return fmt.Errorf("%w, nothing changed: %s", ErrUnreachable, redactErr(err, s.c.o.URL))
}

// Watch calls reload (the apps registry's Reload) whenever another node may
// have changed the apps, until the cluster stops: on every message of
// rtcgate:apps:changed, when the subscription is (re)made, and when the
// version polled every cluster-heartbeat is not the one last loaded.
func (s *AppStore) Watch(reload func() error) {
	log := s.c.o.Log
	var failing atomic.Bool
	run := func(why string) {
		err := reload()
		if err == nil {
			if failing.Swap(false) {
				log.Info("cluster: apps reloaded from Redis", "why", why)
			}
			return
		}
		if errors.Is(err, ErrUnreachable) {
			failing.Store(true)
			log.Debug("cluster: apps not reloaded", "why", why, "err", err)
			return
		}
		// Apps that clash with this node's configuration: said at each reload.
		log.Warn("cluster: apps of the cluster left out on this node", "err", err)
	}
	s.c.Go(s.c.Context(), func(ctx context.Context) { s.subscribe(ctx, run) })
	s.c.Go(s.c.Context(), func(ctx context.Context) { s.poll(ctx, run) })
}

func (s *AppStore) subscribe(ctx context.Context, run func(string)) {
	ps := s.c.rdb.Subscribe(ctx, chanApps)
	defer ps.Close()
	for {
		// Bounded, so that Stop ends the loop: go-redis's read does not
		// watch ctx. A timeout keeps the connection.
		msg, err := ps.ReceiveTimeout(ctx, s.c.o.Heartbeat)
		if ctx.Err() != nil {
			return
		}
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				run("subscribed")
			}
			continue
		case *redis.Message:
			if v, _ := strconv.ParseInt(m.Payload, 10, 64); v != s.loaded.Load() {
				run("message")
			}
			continue
		case *redis.Pong:
			continue
		}
		if err != nil {
			// Redis is away: go-redis dials again at the next Receive
			// and subscribes again (a "subscribe" then reloads).
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.c.o.Heartbeat):
			}
		}
	}
}

func (s *AppStore) poll(ctx context.Context, run func(string)) {
	t := time.NewTicker(s.c.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := s.ctx()
		v, err := s.c.rdb.Get(cctx, keyAppsVersion).Int64()
		cancel()
		if errors.Is(err, redis.Nil) {
			v, err = 0, nil
		}
		if err == nil && v != s.loaded.Load() {
			run("version")
		}
	}
}

var _ hooks.AppStore = (*AppStore)(nil)
