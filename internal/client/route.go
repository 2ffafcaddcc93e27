package client

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The headers a node forwarding a fallback request to the connection's
// owner adds: the client address it read (X-Forwarded-For and
// client-trusted-proxies, on the node the load balancer chose), proved by
// the cluster's secret. A client's own copies are overwritten.
const (
	headerRoutedClient = "X-Rtcgate-Client"
	headerRoutedSecret = "X-Rtcgate-Route"
	// headerRoutedUnbound marks an owner's answer to a forwarded request
	// for a connection it does not hold (any more).
	headerRoutedUnbound = "X-Rtcgate-Unbound"
)

// brokerBox holds the hub's broker (set once the node joined a cluster),
// and its session store with the queue of its writes.
type brokerBox struct {
	b     Broker
	store SessionStore
	ops   chan StoreOp
}

// SetBroker makes the fallback's bindings shared through b (a cluster);
// without it the hub is a single node. A broker that is a SessionStore
// keeps the established sessions for a takeover. Called once.
func (h *Hub) SetBroker(b Broker) {
	bb := &brokerBox{b: b}
	if st, ok := b.(SessionStore); ok {
		bb.store, bb.ops = st, make(chan StoreOp, persistQueue)
		go h.persist(st, bb.ops)
	}
	h.broker.Store(bb)
}

func (h *Hub) brokerOf() Broker {
	if bb := h.broker.Load(); bb != nil {
		return bb.b
	}
	return nil
}

// routedIP is the client address a peer node vouched for, when r was
// forwarded by one.
func (h *Hub) routedIP(r *http.Request) (string, bool) {
	got := r.Header.Get(headerRoutedSecret)
	if got == "" {
		return "", false
	}
	b := h.brokerOf()
	if b == nil {
		return "", false
	}
	secret := b.Secret()
	if secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
		return "", false
	}
	ip := r.Header.Get(headerRoutedClient)
	return ip, ip != ""
}

// route forwards a fallback request for a connection another node owns to
// that node, and reports whether it answered the request. A connection
// bound here, a request already forwarded, and a single node are served
// locally. The owner is looked up in Redis, or in h.owners for a while
// after; an owner answering that it no longer holds the binding drops that
// entry, and the request is looked up in Redis and forwarded once more.
func (h *Hub) route(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) bool {
	b := h.brokerOf()
	if b == nil || h.fallback.lookup(k) != nil {
		return false
	}
	if _, ok := h.routedIP(r); ok {
		return false
	}
	ip := h.clientIP(r)
	// open is looked up in Redis: it may bind the connection here.
	if rt, ok := h.owners.get(k.hash, ip); ok && p.get("action") != "open" {
		if h.forward(w, r, p, b, k, rt, ip, true) {
			return true
		}
	}
	rt, bySession, done := h.lookupOwner(w, r, p, b, k)
	if done || rt.Local {
		return done
	}
	if !bySession && rt.IP != ip { // a resume is proved by its authToken, on the owner
		httpText(w, http.StatusForbidden, "this connectionId belongs to another client")
		return true
	}
	if !bySession {
		h.owners.put(k.hash, rt)
	}
	h.forward(w, r, p, b, k, rt, ip, false)
	return true
}

// lookupOwner finds the node owning k in Redis: rt.Local when it is this
// node or none (served here), done when it answered the request (Redis
// down). bySession: a resume under a new connectionId, found by its
// sessionId.
func (h *Hub) lookupOwner(w http.ResponseWriter, r *http.Request, p *fallbackParams, b Broker, k bindingKey) (rt Route, bySession, done bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rt, err := b.Owner(ctx, k.hash)
	if sid := p.get("sessionId"); errors.Is(err, ErrUnbound) && p.get("action") == "open" && sid != "" && h.session(sid) == nil {
		// A resume under a new connectionId: to the node holding the
		// session while it lives (a dead one's is taken over here).
		if st := h.storeOf(); st != nil {
			rt, err = st.SessionOwner(ctx, sid)
			bySession = true
		}
	}
	switch {
	case errors.Is(err, ErrUnbound):
		return Route{Local: true}, false, false
	case err != nil:
		h.routed.WithLabelValues("redis-down").Inc()
		h.log.Warn("http fallback: cannot find a connection's node", "err", err)
		httpText(w, http.StatusServiceUnavailable, "cluster-redis unreachable: this connection's node cannot be found; try again later")
		return rt, false, true
	}
	return rt, bySession, false // rt.Local: bound here before a restart, or gone: served as unknown
}

// forward sends r to the owner rt with the client address ip, and reports
// whether it answered w. A cached route the owner disowns (the binding
// left it) is not answered: the caller looks the owner up again.
func (h *Hub) forward(w http.ResponseWriter, r *http.Request, p *fallbackParams, b Broker, k bindingKey, rt Route, ip string, cached bool) bool {
	secret := b.Secret()
	if secret == "" {
		h.routed.WithLabelValues("redis-down").Inc()
		httpText(w, http.StatusServiceUnavailable, "cluster-redis unreachable: cannot forward to this connection's node; try again later")
		return true
	}
	// The body goes as the client sent it: neither parsed again here nor
	// encoded again.
	var body io.Reader
	method := r.Method
	if method == http.MethodPost && len(p.body) > 0 {
		body = bytes.NewReader(p.body)
	} else {
		method = http.MethodGet
	}
	fctx, fcancel := context.WithTimeout(r.Context(), h.syncWait()+h.opts.ReadTimeout+5*time.Second)
	defer fcancel()
	req, err := http.NewRequestWithContext(fctx, method, "http://"+rt.Addr+r.URL.Path+"?"+r.URL.RawQuery, body)
	if err != nil {
		httpText(w, http.StatusInternalServerError, "cannot forward")
		return true
	}
	req.Host = r.Host
	for _, name := range []string{"Content-Type", "Origin"} {
		if v := r.Header.Get(name); v != "" {
			req.Header.Set(name, v)
		}
	}
	req.Header.Set(headerRoutedClient, ip)
	req.Header.Set(headerRoutedSecret, secret)
	resp, err := h.forwarder.Do(req)
	if err != nil {
		h.owners.drop(k.hash)
		if r.Context().Err() != nil {
			// The client left (a long-poll it gave up): not the owner's fault.
			h.routed.WithLabelValues("client-gone").Inc()
			return true
		}
		h.routed.WithLabelValues("owner-unreachable").Inc()
		h.log.Warn("http fallback: owner node unreachable", "node", rt.Node, "err", err)
		httpText(w, http.StatusServiceUnavailable, "the node holding this connection does not answer; try again later")
		return true
	}
	defer resp.Body.Close()
	if resp.Header.Get(headerRoutedUnbound) != "" {
		h.owners.drop(k.hash)
		if cached {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keeps the connection
			h.routed.WithLabelValues("stale-owner").Inc()
			return false
		}
	}
	h.routed.WithLabelValues("forwarded").Inc()
	hd := w.Header()
	for _, name := range []string{"Content-Type", headerFirstSeq, headerLastSeq} {
		if v := resp.Header.Get(name); v != "" {
			hd.Set(name, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true
}

// routeResume proxies a WebSocket resume (?sessionId=…) for a session
// another live node holds to that node, and reports whether it answered
// the request. A session of this node, one whose owner's lease ended (a
// takeover, here), a request already forwarded, a single node, and Redis
// down are served locally. The owner gets the client address this node
// read, vouched for as a forwarded fallback request's is; it checks the
// Origin and the authToken itself.
func (h *Hub) routeResume(w http.ResponseWriter, r *http.Request, sid string) bool {
	st, b := h.storeOf(), h.brokerOf()
	if st == nil || b == nil || h.session(sid) != nil {
		return false
	}
	if _, ok := h.routedIP(r); ok {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	rt, err := st.SessionOwner(ctx, sid)
	cancel()
	if err != nil || rt.Local {
		return false
	}
	secret := b.Secret()
	if secret == "" {
		return false
	}
	ip := h.clientIP(r)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: rt.Addr})
			pr.Out.Host = r.Host
			pr.Out.Header.Set(headerRoutedClient, ip)
			pr.Out.Header.Set(headerRoutedSecret, secret)
		},
		Transport: h.forwarder.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if r.Context().Err() != nil {
				h.routed.WithLabelValues("client-gone").Inc() // the client left first
				return
			}
			h.routed.WithLabelValues("owner-unreachable").Inc()
			h.log.Warn("websocket resume: owner node unreachable", "node", rt.Node, "err", err)
			httpText(w, http.StatusServiceUnavailable, "the node holding this session does not answer; try again later")
		},
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.routed.WithLabelValues("forwarded").Inc()
	proxy.ServeHTTP(w, r)
	return true
}

// bindShared records a binding opened here in the broker.
func (h *Hub) bindShared(k bindingKey, ip string) {
	b := h.brokerOf()
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Bind(ctx, k.hash, ip); err != nil {
		h.log.Warn("http fallback: cannot share a binding in cluster-redis; other nodes cannot route it", "err", err)
	}
}

// renewShared renews a binding's TTL on client activity, at most every
// quarter of client-idle-timeout.
func (h *Hub) renewShared(bd *binding) {
	if h.brokerOf() == nil {
		return
	}
	every := h.opts.IdleTimeout / 4
	now := time.Now()
	bd.mu.Lock()
	due := now.Sub(bd.renewed) >= every
	if due {
		bd.renewed = now
	}
	bd.mu.Unlock()
	if due {
		go h.bindShared(bd.key, bd.ip)
	}
}

// unbindShared forgets a binding that left this node, unless the
// connectionId was bound here again since.
func (h *Hub) unbindShared(k bindingKey) {
	b := h.brokerOf()
	if b == nil {
		return
	}
	go func() {
		if h.fallback.lookup(k) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = b.Unbind(ctx, k.hash)
	}()
}

func newTakeoverCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_sessions_taken_over_total",
		Help: "Client sessions of a lost node resumed on this one (cluster)."})
}

func newPersistDroppedCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_session_store_dropped_total",
		Help: "Session writes to cluster-redis given up (queue full or Redis down): a takeover may miss frames."})
}

func newRoutedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_client_requests_routed_total",
		Help: "HTTP fallback requests for a connection, and WebSocket resumes of a session, another node owns, by result: forwarded, owner-unreachable, client-gone (the client left before the owner answered), stale-owner (a remembered owner no longer held the connection: looked up again), redis-down."},
		[]string{"result"})
}

// The owner cache: a node forwarding fallback requests remembers each
// connection's owner for ownerCacheTTL, so that a client's requests after
// the first one cost no Redis lookup. An entry is dropped when its owner
// answers that it no longer holds the binding (the request is then looked
// up again and forwarded once more), when the owner does not answer, and
// when the client address differs from the one remembered. It is bounded by
// ownerCacheSize, a fixed bound rather than a config key: an entry is a
// hash, a node-id and two addresses (~250 bytes, 1 MB in all), and a miss
// only costs the Redis GET every request made before; no operator has a
// reason to tune it.
const (
	ownerCacheSize = 4096
	ownerCacheTTL  = 10 * time.Second
)

type ownerEntry struct {
	rt    Route
	until time.Time
}

type ownerCache struct {
	mu sync.Mutex
	m  map[string]ownerEntry // by connectionId hash
}

func newOwnerCache() *ownerCache { return &ownerCache{m: map[string]ownerEntry{}} }

// get is hash's remembered owner, when it is fresh and was bound from ip.
func (c *ownerCache) get(hash, ip string) (Route, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok {
		return Route{}, false
	}
	if time.Now().After(e.until) || e.rt.IP != ip {
		delete(c.m, hash)
		return Route{}, false
	}
	return e.rt, true
}

// put remembers hash's owner; when full, it drops the expired entries
// among a few it looks at, or else one of them.
func (c *ownerCache) put(hash string, rt Route) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[hash]; !ok && len(c.m) >= ownerCacheSize {
		seen, dropped := 0, false
		for h, e := range c.m { // map order: a random sample
			if now.After(e.until) {
				delete(c.m, h)
				dropped = true
			}
			if seen++; seen == 16 {
				if !dropped {
					delete(c.m, h)
				}
				break
			}
		}
	}
	c.m[hash] = ownerEntry{rt: rt, until: now.Add(ownerCacheTTL)}
}

func (c *ownerCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}

func (c *ownerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
