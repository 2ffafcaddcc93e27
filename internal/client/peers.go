package client

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrTooManyFromAddress is a new session over client-max-sessions-per-ip
// or client-new-sessions-per-ip.
var ErrTooManyFromAddress = errors.New("too many sessions from this address")

// peers bounds what one client address may hold: sessions at once, and new
// sessions per second (a token bucket of Rate per second, bursts of twice
// that). An address's entry lives while it has sessions or its bucket is
// refilling, so the map holds the active addresses only.
type peers struct {
	maxSessions int     // 0: no limit
	rate        float64 // new sessions per second; 0: no limit

	mu   sync.Mutex
	byIP map[string]*peer
}

type peer struct {
	sessions int
	tokens   float64
	at       time.Time // when tokens was computed
}

func newPeers(maxSessions, rate int) *peers {
	return &peers{maxSessions: maxSessions, rate: float64(rate), byIP: map[string]*peer{}}
}

// take counts a new session from ip, or refuses it.
func (ps *peers) take(ip string, now time.Time) error {
	if ps.maxSessions <= 0 && ps.rate <= 0 {
		return nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byIP[ip]
	if p == nil {
		p = &peer{tokens: 2 * ps.rate, at: now}
		ps.byIP[ip] = p
	}
	if ps.maxSessions > 0 && p.sessions >= ps.maxSessions {
		return ErrTooManyFromAddress
	}
	if ps.rate > 0 {
		p.tokens = min(2*ps.rate, p.tokens+now.Sub(p.at).Seconds()*ps.rate)
		p.at = now
		if p.tokens < 1 {
			return ErrTooManyFromAddress
		}
		p.tokens--
	}
	p.sessions++
	return nil
}

// adopt counts a session of ip that another node admitted (a takeover),
// whatever the limits.
func (ps *peers) adopt(ip string, now time.Time) {
	if ps.maxSessions <= 0 && ps.rate <= 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byIP[ip]
	if p == nil {
		p = &peer{tokens: 2 * ps.rate, at: now}
		ps.byIP[ip] = p
	}
	p.sessions++
}

// release gives back a session of ip.
func (ps *peers) release(ip string) {
	if ps.maxSessions <= 0 && ps.rate <= 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.byIP[ip]; p != nil {
		p.sessions--
	}
}

// sweep forgets addresses without sessions whose bucket is full again.
func (ps *peers) sweep(now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for ip, p := range ps.byIP {
		if p.sessions <= 0 && (ps.rate <= 0 || p.tokens+now.Sub(p.at).Seconds()*ps.rate >= 2*ps.rate) {
			delete(ps.byIP, ip)
		}
	}
}

// clientIP is the request's client address: the TCP peer's, or — when the
// peer is a trusted proxy — the last address in X-Forwarded-For that is not
// one of the trusted proxies.
func (h *Hub) clientIP(r *http.Request) string {
	if ip, ok := h.routedIP(r); ok {
		return ip // forwarded by the node the load balancer chose
	}
	ip := remoteIP(r)
	if len(h.opts.TrustedProxies) == 0 || !h.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(hop)
		if err != nil {
			break // a forged or broken list: the proxy's own address stands
		}
		ip = a.Unmap().String()
		if !h.trusted(ip) {
			break
		}
	}
	return ip
}

func (h *Hub) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseProxies reads client-trusted-proxies: addresses or CIDRs.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
