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
	"strings"
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
// locally.
func (h *Hub) route(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) bool {
	b := h.brokerOf()
	if b == nil || h.fallback.lookup(k) != nil {
		return false
	}
	if _, ok := h.routedIP(r); ok {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	rt, err := b.Owner(ctx, k.hash)
	bySession := false
	if sid := p.get("sessionId"); errors.Is(err, ErrUnbound) && p.get("action") == "open" && sid != "" && h.session(sid) == nil {
		// A resume under a new connectionId: to the node holding the
		// session while it lives (a dead one's is taken over here).
		if st := h.storeOf(); st != nil {
			rt, err = st.SessionOwner(ctx, sid)
			bySession = true
		}
	}
	cancel()
	switch {
	case errors.Is(err, ErrUnbound):
		return false
	case err != nil:
		h.routed.WithLabelValues("redis-down").Inc()
		h.log.Warn("http fallback: cannot find a connection's node", "err", err)
		httpText(w, http.StatusServiceUnavailable, "cluster-redis unreachable: this connection's node cannot be found; try again later")
		return true
	case rt.Local:
		return false // bound here before a restart, or gone: served as unknown
	}
	ip := h.clientIP(r)
	if !bySession && rt.IP != ip { // a resume is proved by its authToken, on the owner
		httpText(w, http.StatusForbidden, "this connectionId belongs to another client")
		return true
	}
	secret := b.Secret()
	if secret == "" {
		h.routed.WithLabelValues("redis-down").Inc()
		httpText(w, http.StatusServiceUnavailable, "cluster-redis unreachable: cannot forward to this connection's node; try again later")
		return true
	}
	var body io.Reader
	ctype := r.Header.Get("Content-Type")
	switch {
	case p.form != nil:
		body, ctype = strings.NewReader(p.form.Encode()), "application/x-www-form-urlencoded"
	case p.raw != nil:
		body = bytes.NewReader(p.raw)
	}
	method := r.Method
	if body == nil {
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
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if o := r.Header.Get("Origin"); o != "" {
		req.Header.Set("Origin", o)
	}
	req.Header.Set(headerRoutedClient, ip)
	req.Header.Set(headerRoutedSecret, secret)
	resp, err := h.forwarder.Do(req)
	if err != nil {
		h.routed.WithLabelValues("owner-unreachable").Inc()
		h.log.Warn("http fallback: owner node unreachable", "node", rt.Node, "err", err)
		httpText(w, http.StatusServiceUnavailable, "the node holding this connection does not answer; try again later")
		return true
	}
	defer resp.Body.Close()
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
		Help: "HTTP fallback requests for a connection, and WebSocket resumes of a session, another node owns, by result: forwarded, owner-unreachable, redis-down."},
		[]string{"result"})
}
