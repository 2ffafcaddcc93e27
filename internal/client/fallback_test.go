package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fbApp is the test app: BuiltIn, refusing appKey "refuse", counting
// sendData and telling the test of each established session and each end.
type fbApp struct {
	BuiltIn
	mu          sync.Mutex
	sendData    int
	established chan Session
	ended       chan string
}

func newFBApp() *fbApp {
	return &fbApp{established: make(chan Session, 16), ended: make(chan string, 16)}
}

func (a *fbApp) Connect(ctx context.Context, s Session, req map[string]any) (map[string]any, error) {
	if req["appKey"] == "refuse" {
		return nil, errors.New("refused by the test app")
	}
	if v, ok := req["keep"].(string); ok {
		s.SetStored("connect", []byte(v)) // kept before the session is established
	}
	return BuiltIn{}.Connect(ctx, s, req)
}

func (a *fbApp) Established(s Session) {
	select {
	case a.established <- s:
	default:
	}
}

func (a *fbApp) Handle(ctx context.Context, s Session, act *Action, data json.RawMessage) error {
	if act.Message == "sendData" {
		a.mu.Lock()
		a.sendData++
		a.mu.Unlock()
	}
	return BuiltIn{}.Handle(ctx, s, act, data)
}

func (a *fbApp) Disconnected(_ Session, reason string) {
	select {
	case a.ended <- reason:
	default:
	}
}

func (a *fbApp) sendDataCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sendData
}

type fbEnv struct {
	t   *testing.T
	hub *Hub
	app *fbApp
	srv *httptest.Server
	hc  *http.Client
}

// newFBEnv runs a client listener on 127.0.0.1 with the test app.
func newFBEnv(t *testing.T, mod func(*Options)) *fbEnv {
	t.Helper()
	opts := Options{MaxFrame: 64 << 10, IdleTimeout: time.Minute, SyncWait: 10 * time.Second, MaxPending: 100}
	if mod != nil {
		mod(&opts)
	}
	app := newFBApp()
	hub := NewHub(opts, app)
	srv := httptest.NewServer(NewServer(hub, nil))
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close) // first: ends sessions, so no sync still waits at srv.Close
	return &fbEnv{t: t, hub: hub, app: app, srv: srv, hc: &http.Client{Timeout: 20 * time.Second}}
}

func fbRandomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type fbConn struct {
	env *fbEnv
	id  string
	hc  *http.Client
}

func (e *fbEnv) conn() *fbConn { return &fbConn{env: e, id: fbRandomID(), hc: e.hc} }

type fbResp struct {
	status int
	header http.Header
	body   []byte
}

func (r fbResp) String() string {
	return strconv.Itoa(r.status) + " " + strings.TrimSpace(string(r.body))
}

func (e *fbEnv) do(hc *http.Client, req *http.Request) fbResp {
	e.t.Helper()
	res, err := hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return fbResp{res.StatusCode, res.Header, body}
}

// post sends the connectionId, action and kv pairs as a form body.
func (c *fbConn) post(action string, kv ...string) fbResp {
	c.env.t.Helper()
	v := url.Values{"connectionId": {c.id}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	req, _ := http.NewRequest("POST", c.env.srv.URL+"/http", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.env.do(c.hc, req)
}

// get sends everything in the query string.
func (c *fbConn) get(action string, kv ...string) fbResp {
	c.env.t.Helper()
	v := url.Values{"connectionId": {c.id}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	req, _ := http.NewRequest("GET", c.env.srv.URL+"/http?"+v.Encode(), nil)
	return c.env.do(c.hc, req)
}

// raw POSTs body as action=send's data, the rest in the query.
func (c *fbConn) raw(body string, kv ...string) fbResp {
	c.env.t.Helper()
	v := url.Values{"connectionId": {c.id}, "action": {"send"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	req, _ := http.NewRequest("POST", c.env.srv.URL+"/http?"+v.Encode(), strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	return c.env.do(c.hc, req)
}

func (c *fbConn) open(kv ...string) welcome {
	c.env.t.Helper()
	r := c.post("open", kv...)
	if r.status != 200 {
		c.env.t.Fatalf("open: %v", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		c.env.t.Fatalf("open: Content-Type %q", ct)
	}
	var w welcome
	if err := json.Unmarshal(r.body, &w); err != nil || w.Type != "welcome" {
		c.env.t.Fatalf("open: no welcome: %v (%v)", r, err)
	}
	return w
}

func (c *fbConn) send(frame string, utid int) {
	c.env.t.Helper()
	r := c.post("send", "data", frame, "utid", strconv.Itoa(utid))
	want := `{"type":"response","code":0,"msg":"ok","utid":` + strconv.Itoa(utid) + `}`
	if r.status != 200 || string(r.body) != want {
		c.env.t.Fatalf("send %s: %v, want 200 %s", frame, r, want)
	}
}

type fbSync struct {
	frames      []string
	first, last string // the X-Rtcgate-First-Seq and -Last-Seq headers
}

func (c *fbConn) sync(kv ...string) fbSync {
	c.env.t.Helper()
	r := c.post("sync", kv...)
	if r.status != 200 {
		c.env.t.Fatalf("sync: %v", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		c.env.t.Fatalf("sync: Content-Type %q", ct)
	}
	var out fbSync
	if err := json.Unmarshal(r.body, &out.frames); err != nil {
		c.env.t.Fatalf("sync: not an array of strings: %v (%v)", r, err)
	}
	out.first, out.last = r.header.Get(headerFirstSeq), r.header.Get(headerLastSeq)
	return out
}

// messages are the frames' message names.
func (s fbSync) messages(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, raw := range s.frames {
		if raw == httpCloseCommand {
			names = append(names, raw)
			continue
		}
		f, err := ParseFrame([]byte(raw), 0)
		if err != nil {
			t.Fatalf("frame %q: %v", raw, err)
		}
		names = append(names, f.Message)
	}
	return names
}

// arg is frame i's first data element as an object.
func (s fbSync) arg(t *testing.T, i int) map[string]any {
	t.Helper()
	f, err := ParseFrame([]byte(s.frames[i]), 0)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(f.Arg(), &m); err != nil {
		t.Fatalf("frame %q: %v", s.frames[i], err)
	}
	return m
}

const fbConnection = `{"message":"connection","data":[{"appKey":"defaultApp","clientVersion":"2.0"}]}`

func wantMessages(t *testing.T, s fbSync, want ...string) {
	t.Helper()
	if got := s.messages(t); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("frames %v, want %v (%q)", got, want, s.frames)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFallbackOpenWelcome(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	w := c.open()
	if w.NS != "org.jwebsocket.plugins.system" || w.MaxFrameSize != 64<<10 || w.Timeout != 60 || w.SyncWait != 10 || w.LastSeq != 0 {
		t.Fatalf("welcome %+v", w)
	}
	if e.hub.session(w.SourceID) == nil {
		t.Fatalf("welcome names session %q, which the hub does not have", w.SourceID)
	}
	// Opening again from the same address is the same session.
	if again := c.open(); again.SourceID != w.SourceID || e.hub.Len() != 1 {
		t.Fatalf("second open gave session %q (hub has %d), want %q", again.SourceID, e.hub.Len(), w.SourceID)
	}
	// GET works as POST does.
	r := c.get("open")
	if r.status != 200 || !strings.Contains(string(r.body), w.SourceID) {
		t.Fatalf("GET open: %v", r)
	}
}

func TestFallbackProtocol(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	w := c.open()

	c.send(fbConnection, 1)
	s := c.sync("ack", "0")
	wantMessages(t, s, "getUserData")
	ud := s.arg(t, 0)
	if ud["sessionId"] != w.SourceID || ud["authToken"] == "" || ud["authToken"] == nil || ud["appKey"] != "defaultApp" {
		t.Fatalf("getUserData %v", ud)
	}
	if s.first != "1" || s.last != "1" {
		t.Fatalf("sync headers first %q last %q, want 1 1", s.first, s.last)
	}
	select {
	case <-e.app.established:
	case <-time.After(5 * time.Second):
		t.Fatal("the app was not told the session is established")
	}

	// ping, as a query parameter of a GET.
	if r := c.get("send", "data", `{"message":"ping","data":[]}`); r.status != 200 || !strings.Contains(string(r.body), `"utid":0`) {
		t.Fatalf("GET send: %v", r)
	}
	s = c.sync("ack", "1")
	wantMessages(t, s, "pong")

	// sendData, as a raw POST body.
	if r := c.raw(`{"message":"sendData","data":[{"operationId":"op-1","payload":{"hello":"rtcgate"}}]}`, "utid", "2"); r.status != 200 {
		t.Fatalf("raw send: %v", r)
	}
	s = c.sync("ack", s.last)
	wantMessages(t, s, "DataStatusEvent")
	if st := s.arg(t, 0); st["operationId"] != "op-1" || st["status"] != "ACCEPTED" {
		t.Fatalf("DataStatusEvent %v", st)
	}
	if s.first != "3" || s.last != "3" {
		t.Fatalf("sync headers first %q last %q, want 3 3", s.first, s.last)
	}

	// A frame refused before it ran is answered 400 with the reason, and
	// nothing arrives by sync for it.
	for _, tc := range []struct{ frame, want string }{
		{`not json`, "a frame is a JSON object"},
		{`{"message":"` + strings.Repeat("x", 10000) + `","data":[]}`, "unknown message"},
		{`{"message":"playStream","data":[{}]}`, "playStream: not supported"},
	} {
		r := c.post("send", "data", tc.frame, "utid", "9")
		if r.status != 400 || !strings.Contains(string(r.body), tc.want) || len(r.body) > 300 {
			t.Fatalf("send %.40s: %v, want 400 naming %q (short)", tc.frame, r, tc.want)
		}
	}
	// A raw JSON body is a frame whatever its Content-Type (curl's and
	// jQuery's default is form-encoded).
	req, _ := http.NewRequest("POST", e.srv.URL+"/http?"+url.Values{"connectionId": {c.id}, "action": {"send"}, "utid": {"10"}}.Encode(),
		strings.NewReader(`{"message":"ping","data":[]}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := e.do(c.hc, req); r.status != 200 {
		t.Fatalf("raw JSON as form-encoded: %v", r)
	}
	s = c.sync("ack", "3", "wait", "5")
	wantMessages(t, s, "pong")
	// login and logout say plainly they are not supported.
	for _, action := range []string{"login", "logout"} {
		if r := c.post(action, "username", "u", "password", "p"); r.status != 501 || !strings.Contains(string(r.body), "not supported") {
			t.Fatalf("%s: %v, want 501 not supported", action, r)
		}
	}
}

// TestFallbackRefusesBeforeConnection: a message before connection is
// answered 400 at once, not by a later sync.
func TestFallbackRefusesBeforeConnection(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	r := c.post("send", "data", `{"message":"call","data":[{"callId":"c1"}]}`)
	if r.status != 400 || !strings.Contains(string(r.body), "call: not connected") {
		t.Fatalf("call before connection: %v, want 400 not connected", r)
	}
	if s := c.sync("ack", "0", "wait", "0"); len(s.frames) != 0 {
		t.Fatalf("the refusal also came by sync: %v", s.frames)
	}
}

func TestFallbackSyncLosesNothing(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	c.send(fbConnection, 1)
	c.send(`{"message":"ping","data":[]}`, 2)
	c.send(`{"message":"ping","data":[]}`, 3)

	// The first response is lost: the client asks again with the same ack.
	lost := c.sync("ack", "0")
	again := c.sync("ack", "0")
	wantMessages(t, again, "getUserData", "pong", "pong")
	if !reflect.DeepEqual(lost, again) {
		t.Fatalf("repeated sync differs:\n%+v\n%+v", lost, again)
	}
	if again.first != "1" || again.last != "3" {
		t.Fatalf("headers first %q last %q, want 1 3", again.first, again.last)
	}
	// Acked, they are gone.
	empty := c.sync("ack", "3", "wait", "0")
	wantMessages(t, empty)
	if empty.first != "" || empty.last != "3" || string(mustJSON(t, empty.frames)) != "[]" {
		t.Fatalf("after ack: %+v", empty)
	}
	s := e.hub.session(e.hub.fallback.lookup(bindingKey{hashConnectionID(c.id)}).s.id)
	if frames, _, _ := s.pending(0); len(frames) != 0 {
		t.Fatalf("%d frames still queued after the ack", len(frames))
	}

	// A client that sends no ack (jWebSocket's) gets each frame once.
	c.send(`{"message":"ping","data":[]}`, 4)
	wantMessages(t, c.sync(), "pong")
	wantMessages(t, c.sync("wait", "0"))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == "null" {
		return []byte("[]")
	}
	return b
}

// syncWaiting waits until a sync of c is parked on its binding.
func syncWaiting(t *testing.T, e *fbEnv, c *fbConn) {
	t.Helper()
	b := e.hub.fallback.lookup(bindingKey{hashConnectionID(c.id)})
	waitFor(t, "a waiting sync", 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.release != nil
	})
}

type fbTimed struct {
	s   fbSync
	r   fbResp
	dur time.Duration
}

func (c *fbConn) syncAsync(kv ...string) <-chan fbTimed {
	ch := make(chan fbTimed, 1)
	start := time.Now()
	go func() {
		v := url.Values{"connectionId": {c.id}, "action": {"sync"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		var out fbTimed
		res, err := c.hc.PostForm(c.env.srv.URL+"/http", v)
		if err == nil {
			out.r.status, out.r.header = res.StatusCode, res.Header
			out.r.body, _ = io.ReadAll(res.Body)
			res.Body.Close()
			json.Unmarshal(out.r.body, &out.s.frames)
			out.s.first, out.s.last = res.Header.Get(headerFirstSeq), res.Header.Get(headerLastSeq)
		}
		out.dur = time.Since(start)
		ch <- out
	}()
	return ch
}

func awaitSync(t *testing.T, ch <-chan fbTimed, within time.Duration) fbTimed {
	t.Helper()
	select {
	case out := <-ch:
		if out.r.status != 200 {
			t.Fatalf("sync: %v", out.r)
		}
		if out.dur >= within {
			t.Fatalf("sync took %v, want well under %v", out.dur, within)
		}
		return out
	case <-time.After(within):
		t.Fatalf("sync did not return within %v", within)
	}
	panic("unreachable")
}

func TestFallbackLongPollWakes(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	c.send(fbConnection, 1)
	wantMessages(t, c.sync("ack", "0"), "getUserData")

	ch := c.syncAsync("ack", "1", "wait", "10")
	syncWaiting(t, e, c)
	c.send(`{"message":"ping","data":[]}`, 2)
	out := awaitSync(t, ch, 5*time.Second)
	wantMessages(t, out.s, "pong")
	t.Logf("the waiting sync returned %v after it started", out.dur)
}

func TestFallbackNewerSyncReleasesOlder(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	older := c.syncAsync("ack", "0", "wait", "10")
	syncWaiting(t, e, c)
	wantMessages(t, c.sync("ack", "0", "wait", "0"))
	wantMessages(t, awaitSync(t, older, 5*time.Second).s)
}

func TestFallbackUTIDRunsOnce(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	c.send(fbConnection, 1)
	sendData := `{"message":"sendData","data":[{"operationId":"op-7","payload":{}}]}`
	c.send(sendData, 7)
	c.send(sendData, 7) // a retry after a lost response
	if n := e.app.sendDataCount(); n != 1 {
		t.Fatalf("the app saw %d sendData, want 1", n)
	}
	s := c.sync("ack", "0")
	wantMessages(t, s, "getUserData", "DataStatusEvent")

	// Retries racing each other still run once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := url.Values{"connectionId": {c.id}, "action": {"send"}, "utid": {"8"}, "data": {sendData}}
			res, err := c.hc.PostForm(e.srv.URL+"/http", v)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("send: %d", res.StatusCode)
			}
		}()
	}
	wg.Wait()
	if n := e.app.sendDataCount(); n != 2 {
		t.Fatalf("the app saw %d sendData, want 2", n)
	}
	wantMessages(t, c.sync("ack", s.last, "wait", "0"), "DataStatusEvent")
}

// loopbackClient dials from another loopback address.
func loopbackClient(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	probe, err := d.Dial("tcp", "127.0.0.1:1")
	if probe != nil {
		probe.Close()
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("cannot dial from %s: %v", ip, err)
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func TestFallbackOtherAddress(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	c.open()
	thief := &fbConn{env: e, id: c.id, hc: loopbackClient(t, "127.0.0.2")}
	for _, action := range []string{"open", "sync", "send", "close", "login"} {
		if r := thief.post(action, "data", `{"message":"ping","data":[]}`, "wait", "0"); r.status != 403 {
			t.Fatalf("%s from 127.0.0.2: %v, want 403", action, r)
		}
	}
	// The owner is unaffected.
	wantMessages(t, c.sync("wait", "0"))
	// Another address opens its own connectionId.
	other := &fbConn{env: e, id: fbRandomID(), hc: thief.hc}
	other.open()
}

func TestFallbackErrors(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.MaxFrame = 1024 })
	c := e.conn()
	c.open()
	big := `{"message":"ping","data":["` + strings.Repeat("x", 2000) + `"]}`
	for _, tc := range []struct {
		name   string
		r      fbResp
		status int
		body   string
	}{
		{"short connectionId", (&fbConn{e, "abc", e.hc}).post("open"), 400, "invalid connectionId"},
		{"bad characters", (&fbConn{e, "0123456789abcdef!", e.hc}).post("open"), 400, "invalid connectionId"},
		{"too long", (&fbConn{e, strings.Repeat("a", 129), e.hc}).post("open"), 400, "invalid connectionId"},
		{"missing connectionId", (&fbConn{e, "", e.hc}).post("open"), 400, "invalid connectionId"},
		{"unknown action", c.post("frobnicate"), 404, "unknown action"},
		{"missing action", c.post(""), 400, "missing action"},
		{"never opened", e.conn().post("sync"), 400, "unknown connection"},
		{"send without data", c.post("send"), 400, "send needs data"},
		{"oversized form data", c.post("send", "data", big), 413, "frame too large"},
		{"oversized raw body", c.raw(big), 413, "frame too large"},
		{"oversized query data", c.get("send", "data", big), 413, "frame too large"},
		{"bad utid", c.post("send", "data", "{}", "utid", "x"), 400, "utid"},
		{"bad ack", c.post("sync", "ack", "-1"), 400, "ack"},
		{"bad wait", c.post("sync", "wait", "soon"), 400, "wait"},
		{"login", c.post("login", "username", "root", "password", "root", "utid", "5"), 501,
			`{"type":"response","code":-1,"msg":"login and logout are not supported: authenticate with the connection frame (the app's connect hook), end with close","utid":5}`},
		{"logout", c.post("logout"), 501, `"msg":"login and logout are not supported`},
		{"download", c.post("download", "filename", "avatar.png", "utid", "6"), 404,
			`{"type":"response","code":-1,"msg":"no downloadable files for this session","utid":6}`},
		{"download without filename", c.post("download"), 400, `"code":-1`},
		{"resume, wrong token", e.conn().post("open", "sessionId", e.hub.session(c.open().SourceID).id, "authToken", "nope"), 400, "wrong authToken"},
	} {
		if tc.r.status != tc.status || !strings.Contains(string(tc.r.body), tc.body) {
			t.Errorf("%s: %v, want %d %s", tc.name, tc.r, tc.status, tc.body)
		}
		if tc.status == 501 && tc.r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.name, tc.r.header.Get("Content-Type"))
		}
	}
	// An oversized body is refused before it is read through.
	huge := strings.Repeat("x", 4<<20)
	if r := c.raw(huge); r.status != 413 {
		t.Errorf("4 MiB body: %v, want 413", r)
	}
	req, _ := http.NewRequest("PUT", e.srv.URL+"/http", nil)
	if r := e.do(e.hc, req); r.status != 405 {
		t.Errorf("PUT: %v, want 405", r)
	}
	// The session survived all that.
	wantMessages(t, c.sync("wait", "0"))
}

func TestFallbackClose(t *testing.T) {
	e := newFBEnv(t, nil)
	c := e.conn()
	w := c.open()
	c.send(fbConnection, 1)
	r := c.post("close")
	if r.status != 200 || string(r.body) != httpCloseCommand || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("close: %v (%s)", r, r.header.Get("Content-Type"))
	}
	if e.hub.Len() != 0 {
		t.Fatalf("hub has %d sessions after close", e.hub.Len())
	}
	select {
	case reason := <-e.app.ended:
		if reason != "closed by client" {
			t.Fatalf("the app was told %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app was not told the session ended")
	}
	for _, action := range []string{"sync", "send", "close"} {
		if r := c.post(action, "data", "{}"); r.status != 400 || !strings.Contains(string(r.body), "unknown connection") {
			t.Fatalf("%s after close: %v, want 400 unknown connection", action, r)
		}
	}
	if e.hub.fallback.lookup(bindingKey{hashConnectionID(c.id)}) != nil {
		t.Fatal("the binding outlived close")
	}
	// The connectionId may start afresh.
	if again := c.open(); again.SourceID == w.SourceID {
		t.Fatal("reopening a closed connectionId gave the ended session")
	}
}

func TestFallbackServerEndsSession(t *testing.T) {
	e := newFBEnv(t, nil)

	// A refused connection: fail, then http.command.close, and again for a
	// client that lost the response.
	c := e.conn()
	c.open()
	c.send(`{"message":"connection","data":[{"appKey":"refuse"}]}`, 1)
	wantMessages(t, c.sync("ack", "0"), "fail", httpCloseCommand)
	wantMessages(t, c.sync("ack", "0"), "fail", httpCloseCommand)
	wantMessages(t, c.sync("ack", "1"), httpCloseCommand)
	if r := c.post("send", "data", "{}"); r.status != 400 {
		t.Fatalf("send to an ended session: %v, want 400", r)
	}

	// A waiting sync learns at once.
	c = e.conn()
	w := c.open()
	ch := c.syncAsync("ack", "0", "wait", "10")
	syncWaiting(t, e, c)
	e.hub.session(w.SourceID).Close("shutdown")
	wantMessages(t, awaitSync(t, ch, 5*time.Second).s, httpCloseCommand)
	// The same connectionId opens a new session.
	if c.open().SourceID == w.SourceID {
		t.Fatal("reopen after the session ended gave the ended session")
	}
}

func TestFallbackIdleTimeout(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond; o.Keepalive = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c := e.conn()
	w := c.open()
	if w.SyncWait != 0.15 {
		t.Fatalf("syncWait %v, want half the idle timeout (0.15)", w.SyncWait)
	}
	// A polling client stays, for well over the idle timeout.
	for until := time.Now().Add(time.Second); time.Now().Before(until); {
		wantMessages(t, c.sync())
	}
	if e.hub.Len() != 1 {
		t.Fatal("the session of a polling client ended")
	}
	// A silent one goes.
	waitFor(t, "the idle session to end", 5*time.Second, func() bool { return e.hub.Len() == 0 })
	wantMessages(t, c.sync(), httpCloseCommand)
}

func TestFallbackResumeFromWebSocket(t *testing.T) {
	e := newFBEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsURL := "ws://" + e.srv.Listener.Addr().String() + "/"
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(fbConnection)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFrame(msg, 0)
	if err != nil || f.Message != "getUserData" {
		t.Fatalf("first WebSocket frame %s (%v)", msg, err)
	}
	var ud struct{ SessionID, AuthToken string }
	json.Unmarshal(f.Arg(), &ud)
	ws.CloseNow() // lost without a close frame: the session waits for a resume

	var s *session
	select {
	case es := <-e.app.established:
		s = es.(*session)
	case <-ctx.Done():
		t.Fatal("the app was not told the session is established")
	}
	waitFor(t, "the session to detach", 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.transport == nil
	})
	if !s.Send("custom", map[string]any{"while": "detached"}) {
		t.Fatal("the session did not take a frame while detached")
	}

	if r := e.conn().post("open", "sessionId", ud.SessionID, "authToken", "wrong"); r.status != 400 {
		t.Fatalf("resume with a wrong token: %v, want 400", r)
	}
	c := e.conn()
	w := c.open("sessionId", ud.SessionID, "authToken", ud.AuthToken, "ack", "1")
	if w.SourceID != ud.SessionID || w.LastSeq != 2 {
		t.Fatalf("resume welcome %+v", w)
	}
	got := c.sync("ack", "1")
	wantMessages(t, got, "custom")
	if got.first != "2" || got.arg(t, 0)["while"] != "detached" {
		t.Fatalf("resumed sync %+v", got)
	}

	// Back to a WebSocket: the HTTP binding is superseded (409), and the
	// HTTP client may take the session back with its credentials.
	q := url.Values{"sessionId": {ud.SessionID}, "authToken": {ud.AuthToken}, "ack": {"2"}}
	ws2, _, err := websocket.Dial(ctx, wsURL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.CloseNow()
	waitFor(t, "the WebSocket to take the session", 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.transport != nil && s.transport.Kind() == "websocket"
	})
	if r := c.post("sync", "wait", "0"); r.status != 409 {
		t.Fatalf("sync of a superseded binding: %v, want 409", r)
	}
	if r := c.post("open"); r.status != 409 {
		t.Fatalf("plain reopen of a superseded binding: %v, want 409", r)
	}
	c.open("sessionId", ud.SessionID, "authToken", ud.AuthToken)
	if _, _, err := ws2.Read(ctx); websocket.CloseStatus(err) != closeResumedElsewhere {
		t.Fatalf("the WebSocket was not closed as resumed elsewhere: %v", err)
	}
	c.send(`{"message":"ping","data":[]}`, 9)
	wantMessages(t, c.sync("ack", "2"), "pong")
}

func TestFallbackMaxConnections(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.MaxConnections = 1; o.Strategy = "reject" })
	a := e.conn()
	a.open()
	r := e.conn().post("open")
	if r.status != 503 || !strings.Contains(string(r.body), "too many connections") {
		t.Fatalf("second connection: %v, want 503 too many connections", r)
	}
	a.open() // the bound one is no new connection
}

func TestFallbackOrigins(t *testing.T) {
	e := newFBEnv(t, nil)
	withOrigin := func(e *fbEnv, origin, host, method string) fbResp {
		t.Helper()
		v := url.Values{"connectionId": {fbRandomID()}, "action": {"open"}}
		req, _ := http.NewRequest(method, e.srv.URL+"/http", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		if method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		if host != "" {
			req.Host = host
		}
		return e.do(e.hc, req)
	}
	if r := withOrigin(e, "http://evil.example.net", "", "POST"); r.status != 403 {
		t.Fatalf("foreign origin: %v, want 403", r)
	}
	if r := withOrigin(e, "http://evil.example.net", "", "OPTIONS"); r.status != 403 {
		t.Fatalf("foreign origin preflight: %v, want 403", r)
	}
	r := withOrigin(e, "http://localhost:5173", "", "POST")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), headerLastSeq) ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), headerFirstSeq) {
		t.Fatalf("localhost origin: %v %v", r, r.header)
	}
	if r := withOrigin(e, "https://rtc.example.org", "rtc.example.org:8443", "POST"); r.status != 200 {
		t.Fatalf("the listener's own host: %v, want 200", r)
	}
	if r := withOrigin(e, "http://"+e.srv.Listener.Addr().String(), "", "POST"); r.status != 200 {
		t.Fatalf("the listener's address: %v, want 200", r)
	}
	r = withOrigin(e, "http://localhost:5173", "", "OPTIONS")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Methods") != "GET, POST" ||
		r.header.Get("Access-Control-Allow-Headers") != "Content-Type" || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("preflight: %v %v", r, r.header)
	}
	if r := (&fbConn{e, fbRandomID(), e.hc}).post("open"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers without an Origin")
	}

	p := newFBEnv(t, func(o *Options) { o.Origins = []string{"http*://*.example.com"} })
	if r := withOrigin(p, "https://a.example.com", "", "POST"); r.status != 200 {
		t.Fatalf("https://a.example.com against http*://*.example.com: %v, want 200", r)
	}
	if r := withOrigin(p, "http://localhost", "", "POST"); r.status != 403 {
		t.Fatalf("localhost with patterns configured: %v, want 403", r)
	}
}

func TestShimServed(t *testing.T) {
	e := newFBEnv(t, nil)
	res, err := e.hc.Get(e.srv.URL + "/rtcgate-http-websocket.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/javascript") {
		t.Fatalf("shim: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"HTTPWebSocket", "enableHTTPFallback", "disableHTTPFallback", "NativeWebSocket"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("the shim lacks %s", want)
		}
	}
	etag := res.Header.Get("ETag")
	if etag == "" || !strings.Contains(res.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("caching headers: %v", res.Header)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/rtcgate-http-websocket.js", nil)
	req.Header.Set("If-None-Match", etag)
	if r := e.do(e.hc, req); r.status != 304 {
		t.Fatalf("revalidation: %v, want 304", r)
	}
}
