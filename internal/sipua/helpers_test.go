package sipua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

const offerSDP = "v=0\r\no=rtcgate 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

var holdSDP = strings.Replace(strings.Replace(offerSDP, "a=sendrecv", "a=sendonly", 1), "1 1 IN", "1 2 IN", 1)

// answerSDP is what our test handlers answer with.
const answerSDP = "v=0\r\no=rtcgate 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"

// logs maps a test's Stack to its log, for tests that look into it.
var logs sync.Map // *Stack -> *testutil.SyncBuffer

// testLogger logs at debug level into a buffer printed if the test failed
// (or SIPUA_TEST_LOG is set).
func testLogger(t *testing.T) (*slog.Logger, *testutil.SyncBuffer) {
	b := &testutil.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SIPUA_TEST_LOG") != "" {
			t.Logf("sipua log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// newStack starts a Stack on loopback, served until the test ends.
func newStack(t *testing.T, mod func(*Config)) *Stack {
	t.Helper()
	log, buf := testLogger(t)
	cfg := Config{
		Listen:          "127.0.0.1:0",
		UserAgent:       "rtcgate-test",
		RequestTimeout:  5 * time.Second,
		RingTimeout:     20 * time.Second,
		RegisterExpires: 60 * time.Second,
		Log:             log,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs.Store(s, buf)
	t.Cleanup(func() { logs.Delete(s) })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		s.Close()
		cancel()
		select {
		case err := <-served:
			// ErrClosed: the test was over before Serve started.
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(wait):
			t.Error("Serve did not return after Close")
		}
	})
	return s
}

// accountConfig is user's account on k, over transport.
func accountConfig(t *testing.T, k *testpeer.Kamailio, user, transport string, register bool) AccountConfig {
	t.Helper()
	host, port, err := net.SplitHostPort(k.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return AccountConfig{
		Login:         user,
		Password:      k.Users[user],
		Domain:        k.Domain,
		OutboundProxy: host,
		Port:          p,
		Transport:     transport,
		VisibleName:   strings.ToUpper(user[:1]) + user[1:],
		Register:      register,
	}
}

type regEvent struct {
	status RegistrationStatus
	code   int
	reason string
}

type endEvent struct {
	code   int
	reason string
}

// handler records an Account's events; it also checks that no two
// callbacks of the account (its CallHandlers' included) overlap.
type handler struct {
	t         *testing.T
	regs      chan regEvent
	msgs      chan Message
	incoming  chan *Call
	msgStatus atomic.Int32
	// onIncoming, if set, decides what IncomingCall returns.
	onIncoming func(c *Call) CallHandler

	inside  atomic.Int32
	overlap atomic.Bool
}

func newHandler(t *testing.T) *handler {
	h := &handler{t: t, regs: make(chan regEvent, 64), msgs: make(chan Message, 64), incoming: make(chan *Call, 16)}
	h.msgStatus.Store(200)
	t.Cleanup(func() {
		if h.overlap.Load() {
			t.Error("two Handler calls of one account overlapped")
		}
	})
	return h
}

func (h *handler) enter() func() {
	if h.inside.Add(1) != 1 {
		h.overlap.Store(true)
	}
	// Widen the window in which an overlap would show.
	time.Sleep(time.Millisecond)
	return func() { h.inside.Add(-1) }
}

func (h *handler) Registration(status RegistrationStatus, code int, reason string) {
	defer h.enter()()
	h.regs <- regEvent{status, code, reason}
}

func (h *handler) Message(m Message) int {
	defer h.enter()()
	h.msgs <- m
	return int(h.msgStatus.Load())
}

func (h *handler) IncomingCall(c *Call) CallHandler {
	defer h.enter()()
	var ch CallHandler
	if h.onIncoming != nil {
		ch = h.onIncoming(c)
	}
	h.incoming <- c
	return ch
}

func (h *handler) expectReg(t *testing.T, status RegistrationStatus) regEvent {
	t.Helper()
	select {
	case e := <-h.regs:
		if e.status != status {
			t.Fatalf("registration %v %d %q, want %v", e.status, e.code, e.reason, status)
		}
		return e
	case <-time.After(wait):
		t.Fatalf("no %v registration within %v", status, wait)
	}
	return regEvent{}
}

// callHandler records one call's events.
type callHandler struct {
	acct      *handler // for the overlap check
	progress  chan int
	answered  chan []byte
	ended     chan endEvent
	reinvites chan []byte
	infos     chan string
	refers    chan endEvent
	// answer is what Reinvite answers with ("" refuses).
	answer atomic.Value
}

func newCallHandler(h *handler) *callHandler {
	c := &callHandler{
		acct: h, progress: make(chan int, 16), answered: make(chan []byte, 4), ended: make(chan endEvent, 4),
		reinvites: make(chan []byte, 8), infos: make(chan string, 8), refers: make(chan endEvent, 8),
	}
	c.answer.Store(answerSDP)
	return c
}

func (c *callHandler) Progress(code int, reason string, sdp []byte) {
	defer c.acct.enter()()
	c.progress <- code
}

func (c *callHandler) Answered(sdp []byte) {
	defer c.acct.enter()()
	c.answered <- sdp
}

func (c *callHandler) Ended(code int, reason string) {
	defer c.acct.enter()()
	c.ended <- endEvent{code, reason}
}

func (c *callHandler) Reinvite(offer []byte) ([]byte, error) {
	defer c.acct.enter()()
	c.reinvites <- offer
	answer := c.answer.Load().(string)
	if answer == "" {
		return nil, fmt.Errorf("refused")
	}
	return []byte(answer), nil
}

func (c *callHandler) Info(contentType string, body []byte) {
	defer c.acct.enter()()
	c.infos <- contentType + "|" + string(body)
}

func (c *callHandler) ReferStatus(code int, reason string) {
	defer c.acct.enter()()
	c.refers <- endEvent{code, reason}
}

func (c *callHandler) expectProgress(t *testing.T, code int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case got := <-c.progress:
			if got == code {
				return
			}
		case e := <-c.ended:
			t.Fatalf("call ended %d %q waiting for %d", e.code, e.reason, code)
		case <-deadline:
			t.Fatalf("no %d within %v", code, wait)
		}
	}
}

func (c *callHandler) expectAnswered(t *testing.T) []byte {
	t.Helper()
	select {
	case sdp := <-c.answered:
		return sdp
	case e := <-c.ended:
		t.Fatalf("call ended %d %q, want answered", e.code, e.reason)
	case <-time.After(wait):
		t.Fatalf("not answered within %v", wait)
	}
	return nil
}

func (c *callHandler) expectEnded(t *testing.T) endEvent {
	t.Helper()
	select {
	case e := <-c.ended:
		return e
	case <-time.After(wait):
		t.Fatalf("call not ended within %v", wait)
	}
	return endEvent{}
}

// expectNoMore fails if an event comes within d: Ended is once per call.
func (c *callHandler) expectNoMore(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-c.ended:
		t.Fatalf("second Ended %d %q", e.code, e.reason)
	case <-c.answered:
		t.Fatal("Answered after Ended")
	case <-time.After(d):
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// waitReg skips registration events until one with status.
func (h *handler) waitReg(t *testing.T, status RegistrationStatus) regEvent {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-h.regs:
			if e.status == status {
				return e
			}
		case <-deadline:
			t.Fatalf("no %v registration within %v", status, wait)
		}
	}
}

// checkNoSecrets fails if the Stack's log holds a password or digest
// credentials.
func checkNoSecrets(t *testing.T, s *Stack, passwords ...string) {
	t.Helper()
	v, _ := logs.Load(s)
	log := v.(*testutil.SyncBuffer).String()
	for _, p := range passwords {
		if strings.Contains(log, p) {
			t.Errorf("the log holds password %q", p)
		}
	}
	if strings.Contains(log, "response=") || strings.Contains(log, "Authorization") {
		t.Error("the log holds digest credentials")
	}
}
