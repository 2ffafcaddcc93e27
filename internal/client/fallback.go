package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// fallbackActions are the HTTP fallback's actions; every one but open needs
// a connectionId that open bound.
var fallbackActions = map[string]func(*Hub, http.ResponseWriter, *http.Request, *fallbackParams, bindingKey){
	"open":     (*Hub).httpOpen,
	"send":     (*Hub).httpSend,
	"sync":     (*Hub).httpSync,
	"close":    (*Hub).httpClose,
	"login":    (*Hub).httpUnsupported,
	"logout":   (*Hub).httpUnsupported,
	"download": (*Hub).httpDownload,
}

const (
	// utidsKept is how many send correlation ids a binding remembers.
	utidsKept = 256
	// endedGrace is how long a binding outlives its session, so that a
	// client between two syncs still collects the last frames and
	// http.command.close.
	endedGrace = 30 * time.Second
	// maxEnded bounds the bindings kept for that grace; beyond it, one is
	// dropped as soon as its session ends.
	maxEnded = 4096
	// defaultSyncWait is the long-poll bound when client-sync-wait is unset.
	defaultSyncWait = 25 * time.Second
)

// bindingKey names a binding: the connectionId's SHA-256. The connectionId
// itself is never stored.
type bindingKey struct {
	hash string
}

func hashConnectionID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// binding ties a connectionId to a session, for one client address.
type binding struct {
	key  bindingKey
	s    *session
	ip   string
	gone chan struct{} // closed when the binding leaves the hub's bindings
	send chan struct{} // one send at a time, in order; waiting is cancellable

	mu        sync.Mutex
	renewed   time.Time     // the broker's TTL was last renewed
	gen       uint64        // the session's attach generation when this binding took it
	delivered uint64        // the last frame a sync returned: the ack of a client that sends none
	release   chan struct{} // closed to release the waiting sync (a newer one came)
	utids     map[int64][]byte
	utidOrder []int64 // oldest first, at most utidsKept
}

// Kind implements Transport.
func (b *binding) Kind() string { return "http" }

// Pending implements Transport: the client's syncs wait on the session.
func (b *binding) Pending() {}

// Replaced implements Transport: the binding sees the generation change.
func (b *binding) Replaced() {}

func (b *binding) generation() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen
}

// current reports whether the session is still this binding's: not ended,
// not resumed on another transport.
func (b *binding) current() bool { return b.s.current(b.generation()) }

func (b *binding) ended() bool {
	select {
	case <-b.s.Done():
		return true
	default:
		return false
	}
}

// bindings are a hub's HTTP fallback connections. A binding leaves when its
// client closes, when another binding takes its session, or endedGrace
// after its session ended, so it never holds more than the live sessions
// and a bounded number of ended ones.
type bindings struct {
	mu        sync.Mutex
	byKey     map[bindingKey]*binding
	bySession map[*session]*binding
	ended     int              // bindings kept past their session's end
	onRemove  func(bindingKey) // a binding left (the broker forgets it)

	// openLocks serialise opens of one connectionId (and, harmlessly, of
	// the others sharing its stripe) without holding mu across h.open.
	openLocks [64]sync.Mutex
}

func newBindings() *bindings {
	return &bindings{byKey: map[bindingKey]*binding{}, bySession: map[*session]*binding{}}
}

func (bs *bindings) openLock(k bindingKey) *sync.Mutex {
	n, _ := strconv.ParseUint(k.hash[:4], 16, 16)
	return &bs.openLocks[n%uint64(len(bs.openLocks))]
}

func (bs *bindings) lookup(k bindingKey) *binding {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.byKey[k]
}

// add registers b and drops the binding that had its session before (a
// resume under a new connectionId); a goroutine removes b once its session
// ended and the grace passed, or as soon as b is dropped.
func (bs *bindings) add(b *binding) {
	bs.mu.Lock()
	if old := bs.byKey[b.key]; old != nil {
		bs.removeLocked(old)
	}
	if old := bs.bySession[b.s]; old != nil {
		bs.removeLocked(old)
	}
	bs.byKey[b.key] = b
	bs.bySession[b.s] = b
	bs.mu.Unlock()
	go func() {
		select {
		case <-b.gone:
			return
		case <-b.s.Done():
		}
		bs.mu.Lock()
		defer bs.mu.Unlock()
		select {
		case <-b.gone:
			return
		default:
		}
		if bs.ended >= maxEnded {
			bs.removeLocked(b)
			return
		}
		bs.ended++
		time.AfterFunc(endedGrace, func() {
			bs.mu.Lock()
			defer bs.mu.Unlock()
			bs.ended--
			bs.removeLocked(b)
		})
	}()
}

func (bs *bindings) remove(b *binding) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.removeLocked(b)
}

func (bs *bindings) removeLocked(b *binding) {
	select {
	case <-b.gone:
		return
	default:
	}
	close(b.gone)
	if bs.byKey[b.key] == b {
		delete(bs.byKey, b.key)
		if bs.onRemove != nil {
			bs.onRemove(b.key)
		}
	}
	if bs.bySession[b.s] == b {
		delete(bs.bySession, b.s)
	}
}

// bound finds the request's binding: 400 when there is none (never opened,
// closed, or its session ended a while ago), 403 when another client address
// opened it.
func (h *Hub) bound(w http.ResponseWriter, r *http.Request, k bindingKey) *binding {
	b := h.fallback.lookup(k)
	if b == nil {
		if _, ok := h.routedIP(r); ok {
			w.Header().Set(headerRoutedUnbound, "1") // the forwarding node's cached route is stale
		}
		httpText(w, http.StatusBadRequest, "unknown connection: open it first (action=open)")
		return nil
	}
	if ip := h.clientIP(r); b.ip != ip {
		h.log.Debug("http fallback: connectionId used from another address", "ip", ip)
		httpText(w, http.StatusForbidden, "this connectionId belongs to another client")
		return nil
	}
	b.s.touch(time.Now(), true)
	h.renewShared(b)
	return b
}

// syncWait is the longest a sync long-polls: client-sync-wait, but under
// half the idle timeout so that a polling client never looks idle.
func (h *Hub) syncWait() time.Duration {
	d := h.opts.SyncWait
	if d <= 0 {
		d = defaultSyncWait
	}
	if h.opts.IdleTimeout > 0 {
		d = min(d, h.opts.IdleTimeout/2)
	}
	return d
}

type welcome struct {
	Type         string  `json:"type"`
	NS           string  `json:"ns"`
	SourceID     string  `json:"sourceId"`
	MaxFrameSize int     `json:"maxFrameSize"`
	Timeout      float64 `json:"timeout"`  // seconds: the idle timeout
	SyncWait     float64 `json:"syncWait"` // seconds: the longest a sync waits
	LastSeq      uint64  `json:"lastSeq"`  // the newest frame queued so far
}

func (h *Hub) writeWelcome(w http.ResponseWriter, s *session) {
	writeJSON(w, http.StatusOK, welcome{
		Type: "welcome", NS: "org.jwebsocket.plugins.system", SourceID: s.id,
		MaxFrameSize: h.maxFrame(), Timeout: h.opts.IdleTimeout.Seconds(),
		SyncWait: h.syncWait().Seconds(), LastSeq: s.lastSeq(),
	})
}

// httpOpen binds the connectionId to a new session, or with sessionId and
// authToken (and ack) to the session a client resumes. Opening a bound
// connectionId again from its address is answered with the same session.
func (h *Hub) httpOpen(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	ip := h.clientIP(r)
	sid, token, ack := p.get("sessionId"), p.get("authToken"), p.get("ack")
	lock := h.fallback.openLock(k)
	lock.Lock()
	defer lock.Unlock()

	if b := h.fallback.lookup(k); b != nil {
		if b.ip != ip {
			h.log.Debug("http fallback: connectionId used from another address", "ip", ip)
			httpText(w, http.StatusForbidden, "this connectionId belongs to another client")
			return
		}
		if !b.ended() {
			if sid != "" && sid != b.s.id {
				httpText(w, http.StatusBadRequest, "this connectionId is bound to another session")
				return
			}
			b.s.touch(time.Now(), true)
			if b.current() {
				h.writeWelcome(w, b.s)
				return
			}
			// Another transport resumed the session since: only its
			// credentials take it back.
			if sid == "" {
				httpText(w, http.StatusConflict, "the session was resumed on another connection; open with sessionId and authToken to take it back")
				return
			}
			if h.resume(sid, token, ack) == nil {
				httpText(w, http.StatusBadRequest, "unknown session or wrong authToken")
				return
			}
			gen := b.s.attach(b, time.Now())
			b.mu.Lock()
			b.gen, b.delivered = gen, max(b.delivered, b.s.ackedSeq())
			b.mu.Unlock()
			h.writeWelcome(w, b.s)
			return
		}
		// Its session ended: the connectionId starts afresh.
		h.fallback.remove(b)
	}

	var s *session
	if sid != "" {
		if s = h.resume(sid, token, ack); s == nil {
			httpText(w, http.StatusBadRequest, "unknown session or wrong authToken")
			return
		}
	} else {
		var err error
		if s, err = h.open(ip); err != nil {
			if errors.Is(err, ErrTooManyFromAddress) {
				httpText(w, http.StatusTooManyRequests, "too many sessions from this address: try again later")
				return
			}
			httpText(w, http.StatusServiceUnavailable, "too many connections (client-max-connections): try again later")
			return
		}
	}
	b := &binding{key: k, s: s, ip: ip, delivered: s.ackedSeq(),
		gone: make(chan struct{}), send: make(chan struct{}, 1), utids: map[int64][]byte{}}
	gen := s.attach(b, time.Now())
	b.mu.Lock()
	b.gen = gen
	b.mu.Unlock()
	h.fallback.add(b)
	h.bindShared(k, ip)
	b.mu.Lock()
	b.renewed = time.Now()
	b.mu.Unlock()
	h.log.Debug("http fallback: connection opened", "ip", ip, "resumed", sid != "")
	h.writeWelcome(w, s)
}

// response is jWebSocket's answer to a request.
type response struct {
	Type string `json:"type"`
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	UTID int64  `json:"utid"`
	// A refused frame's `fail`, as the WebSocket would have sent it: the
	// browser shim hands it to the page as that frame.
	APIMethod string `json:"apiMethod,omitempty"`
	Info      string `json:"info,omitempty"`
}

// utid reads the optional correlation id.
func utid(p *fallbackParams) (int64, bool, bool) {
	v, ok := p.lookup("utid")
	if !ok || v == "" {
		return 0, false, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, true, true
}

// httpSend runs one client frame. A send repeated with a utid the binding
// remembers is answered again without running twice.
func (h *Hub) httpSend(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	b := h.bound(w, r, k)
	if b == nil {
		return
	}
	if b.ended() {
		httpText(w, http.StatusBadRequest, "unknown connection: the session has ended")
		return
	}
	data, ok := p.data()
	if !ok {
		httpText(w, http.StatusBadRequest, "send needs data: one frame, as the data parameter or the POST body")
		return
	}
	if len(data) > h.maxFrame() {
		httpText(w, http.StatusRequestEntityTooLarge, "frame too large (client-max-frame)")
		return
	}
	id, hasID, valid := utid(p)
	if !valid {
		httpText(w, http.StatusBadRequest, "utid must be an integer")
		return
	}

	select {
	case b.send <- struct{}{}:
	case <-r.Context().Done():
		httpText(w, http.StatusServiceUnavailable, "request cancelled")
		return
	case <-b.gone:
		httpText(w, http.StatusBadRequest, "unknown connection: it was closed")
		return
	}
	defer func() { <-b.send }()

	if hasID {
		b.mu.Lock()
		prev, seen := b.utids[id]
		b.mu.Unlock()
		if seen {
			writeJSONBytes(w, http.StatusOK, prev)
			return
		}
	}
	if b.ended() {
		httpText(w, http.StatusBadRequest, "unknown connection: the session has ended")
		return
	}
	if !b.current() {
		httpText(w, http.StatusConflict, "the session was resumed on another connection")
		return
	}
	if ref := h.handle(r.Context(), b.s, data); ref != nil {
		// Refused before it ran: a retry with the same utid may run.
		writeJSON(w, http.StatusBadRequest, response{Type: "response", Code: -1, Msg: ref.message + ": " + ref.info, UTID: id,
			APIMethod: ref.message, Info: ref.info})
		return
	}
	resp, _ := json.Marshal(response{Type: "response", Code: 0, Msg: "ok", UTID: id})
	if hasID {
		b.mu.Lock()
		if len(b.utidOrder) >= utidsKept {
			delete(b.utids, b.utidOrder[0])
			b.utidOrder = b.utidOrder[1:]
		}
		b.utids[id] = resp
		b.utidOrder = append(b.utidOrder, id)
		b.mu.Unlock()
	}
	writeJSONBytes(w, http.StatusOK, resp)
}

// httpSync acks the frames up to `ack` and returns those after it, waiting
// up to `wait` seconds for a first one. Without ack, the frames the last
// sync returned count as delivered (jWebSocket's at-most-once).
func (h *Hub) httpSync(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	b := h.bound(w, r, k)
	if b == nil {
		return
	}
	var ack uint64
	hasAck := false
	if v, ok := p.lookup("ack"); ok && v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			httpText(w, http.StatusBadRequest, "ack must be a frame number (an integer from 0)")
			return
		}
		ack, hasAck = n, true
	}
	wait := h.syncWait()
	if v, ok := p.lookup("wait"); ok && v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(secs) || secs < 0 {
			httpText(w, http.StatusBadRequest, "wait must be a number of seconds from 0")
			return
		}
		if secs*float64(time.Second) < float64(wait) {
			wait = time.Duration(secs * float64(time.Second))
		}
	}
	s := b.s
	if !b.ended() && !b.current() {
		httpText(w, http.StatusConflict, "the session was resumed on another connection")
		return
	}

	// This sync replaces any older one still waiting on the binding.
	release := make(chan struct{})
	b.mu.Lock()
	if b.release != nil {
		close(b.release)
	}
	b.release = release
	if !hasAck {
		ack = b.delivered
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.release == release {
			b.release = nil
		}
		b.mu.Unlock()
	}()

	s.ack(ack)
	ack = min(ack, s.lastSeq())
	frames, wake, closed := s.pending(ack)
	if len(frames) == 0 && !closed && wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
	poll:
		for len(frames) == 0 && !closed && b.current() {
			select {
			case <-wake:
			case <-timer.C:
				break poll
			case <-release:
				break poll
			case <-r.Context().Done():
				return
			}
			frames, wake, closed = s.pending(ack)
		}
	}
	if !closed && !b.current() {
		httpText(w, http.StatusConflict, "the session was resumed on another connection")
		return
	}

	// One response carries a bounded number of bytes; the rest come with
	// the next sync, at once.
	budget := max(4*h.maxFrame(), 1<<20)
	out := make([]string, 0, len(frames)+1)
	size := 0
	for _, f := range frames {
		if len(out) > 0 && size+len(f.data) > budget {
			break
		}
		out = append(out, string(f.data))
		size += len(f.data)
	}
	last := ack
	if len(out) > 0 {
		w.Header().Set(headerFirstSeq, strconv.FormatUint(frames[0].seq, 10))
		last = frames[len(out)-1].seq
	}
	w.Header().Set(headerLastSeq, strconv.FormatUint(last, 10))
	if closed && len(out) == len(frames) {
		out = append(out, httpCloseCommand)
	}
	b.mu.Lock()
	b.delivered = max(b.delivered, last)
	b.mu.Unlock()
	s.touch(time.Now(), false)
	body, _ := json.Marshal(out)
	writeJSONBytes(w, http.StatusOK, body)
}

// httpClose ends the session: the client is done with it.
func (h *Hub) httpClose(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	b := h.bound(w, r, k)
	if b == nil {
		return
	}
	h.fallback.remove(b)
	if b.current() {
		b.s.Close("closed by client")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, httpCloseCommand)
}

// httpUnsupported answers jWebSocket's login and logout: a session is
// authenticated once, by its connection frame (the app's connect hook sees
// its credentials), and ends with close.
func (h *Hub) httpUnsupported(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	if h.bound(w, r, k) == nil {
		return
	}
	id, _, _ := utid(p)
	writeJSON(w, http.StatusNotImplemented, response{Type: "response", Code: -1,
		Msg: "login and logout are not supported: authenticate with the connection frame (the app's connect hook), end with close", UTID: id})
}

// httpDownload: rtcgate keeps no files for sessions.
func (h *Hub) httpDownload(w http.ResponseWriter, r *http.Request, p *fallbackParams, k bindingKey) {
	if h.bound(w, r, k) == nil {
		return
	}
	id, _, _ := utid(p)
	if p.get("filename") == "" {
		writeJSON(w, http.StatusBadRequest, response{Type: "response", Code: -1, Msg: "download needs a filename", UTID: id})
		return
	}
	writeJSON(w, http.StatusNotFound, response{Type: "response", Code: -1, Msg: "no downloadable files for this session", UTID: id})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpText(w, http.StatusInternalServerError, "could not encode the response")
		return
	}
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
