package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

// takeoverResult is (3) for one lease setting, over its rounds.
type takeoverResult struct {
	Lease    lease `json:"lease"`
	Sessions int   `json:"sessions"`
	Rounds   int   `json:"rounds"`
	// LeaseEndMs is, per round, when the killed node's lease left Redis,
	// after the kill: ttl − the time since its last renewal.
	LeaseEndMs []float64 `json:"lease_end_ms"`
	// From the kill to each session's first replayed frame, and to its
	// next sendData answered by the new owner.
	First quantiles `json:"first_replayed_frame"`
	Send  quantiles `json:"send_data_answered"`
	// From the lease's end to the first replayed frame: the claim, the
	// replay and the client's retry pacing.
	AfterLease quantiles `json:"first_frame_after_lease_end"`
	Resumed    int       `json:"resumed"`
	Failed     int       `json:"failed"`
	TriesMean  float64   `json:"resume_tries_mean"` // refused ones (close 4001) included
	ErrorFirst string    `json:"error_first,omitempty"`
}

// quantiles of a set of durations, in ms.
type quantiles struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// quantilesOf is nearest-rank quantiles of ds (sorted in place).
func quantilesOf(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration { return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)] }
	return quantiles{N: len(ds), P50Ms: ms(rank(0.5)), P99Ms: ms(rank(0.99)), MaxMs: ms(ds[len(ds)-1])}
}

// wsSession is one client of (3): a WebSocket session and what it has
// received.
type wsSession struct {
	i      int
	sid    string
	token  string
	conn   *websocket.Conn
	frames int    // frames received: the last one's number
	last   []byte // the last frame received (a DataStatusEvent)
}

// wsHTTP dials the WebSockets: no proxy from the environment.
var wsHTTP = &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}}

// wsTimeout bounds one read or write of (3).
const wsTimeout = 10 * time.Second

func (s *wsSession) write(ctx context.Context, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, wsTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, frame)
}

// readUntil reads frames until one named message, counting them all.
func (s *wsSession) readUntil(ctx context.Context, message string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, wsTimeout)
	defer cancel()
	for range 100 {
		_, m, err := s.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		s.frames++
		if sdkclient.JSONField(m, "message") == message {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no %s within 100 frames", message)
}

// connectWS opens session i on the node at addr.
func connectWS(ctx context.Context, addr string, i int) (*wsSession, error) {
	dctx, cancel := context.WithTimeout(ctx, wsTimeout)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+addr+"/", &websocket.DialOptions{HTTPClient: wsHTTP})
	if err != nil {
		return nil, err
	}
	s := &wsSession{i: i, conn: c}
	if err := s.write(ctx, sdkclient.ConnectFrame(appKey, "clusterbench")); err != nil {
		c.CloseNow()
		return nil, err
	}
	m, err := s.readUntil(ctx, "getUserData")
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	s.sid, s.token = sdkclient.JSONField(m, "sessionId"), sdkclient.JSONField(m, "authToken")
	if s.sid == "" || s.token == "" {
		c.CloseNow()
		return nil, fmt.Errorf("getUserData without sessionId or authToken: %s", sdkclient.Clip(m, 200))
	}
	return s, nil
}

// sendData is one round trip on the session's WebSocket; its
// DataStatusEvent becomes the session's last frame.
func (s *wsSession) sendData(ctx context.Context, op string) error {
	if err := s.write(ctx, sdkclient.SendDataFrame(nil, op)); err != nil {
		return err
	}
	m, err := s.readUntil(ctx, "DataStatusEvent")
	if err != nil {
		return err
	}
	if err := sdkclient.CheckStatus(m, op); err != nil {
		return err
	}
	s.last = m
	return nil
}

// resumed is one session's takeover.
type resumed struct {
	first, send time.Time
	tries       int
	err         error
}

// resume closes the dead node's WebSocket and resumes the session on addr
// with its sessionId, authToken and ack = the frame before its last, one
// try every every (the first after a random part of it, as clients notice
// a drop at different times) until deadline. The first frame must be the
// last one it got; then a sendData must be answered.
func (s *wsSession) resume(ctx context.Context, addr string, every time.Duration, deadline time.Time, round int) resumed {
	s.conn.CloseNow()
	var r resumed
	url := "ws://" + addr + "/?sessionId=" + s.sid + "&authToken=" + s.token + "&ack=" + strconv.Itoa(s.frames-1)
	proc.SleepCtx(ctx, rand.N(every))
	for {
		r.tries++
		c, m, err := tryResume(ctx, url)
		if err == nil {
			r.first = time.Now()
			s.conn = c
			if !bytes.Equal(m, s.last) {
				r.err = fmt.Errorf("session %d: first frame after the resume %s, want the unacknowledged %s", s.i, sdkclient.Clip(m, 160), sdkclient.Clip(s.last, 160))
				return r
			}
			if err := s.sendData(ctx, "t"+strconv.Itoa(round)+"-"+strconv.Itoa(s.i)); err != nil {
				r.err = fmt.Errorf("session %d: sendData after the resume: %w", s.i, err)
				return r
			}
			r.send = time.Now()
			return r
		}
		if ctx.Err() != nil || time.Now().Add(every).After(deadline) {
			r.err = fmt.Errorf("session %d: not resumed after %d tries: %v", s.i, r.tries, err)
			return r
		}
		proc.SleepCtx(ctx, every)
	}
}

// tryResume dials a resume and reads its first frame; a node that refuses
// (the owner's lease lives) closes with 4001.
func tryResume(ctx context.Context, url string) (*websocket.Conn, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: wsHTTP})
	if err != nil {
		return nil, nil, err
	}
	_, m, err := c.Read(ctx)
	if err != nil {
		c.CloseNow()
		return nil, nil, err
	}
	return c, m, nil
}

// awaitPersisted waits until Redis holds every session's frames up to its
// last (rtcgate:session:<id> "last"): the owner writes them off the
// session's path, and a frame not yet written cannot be replayed.
func (e *runEnv) awaitPersisted(ctx context.Context, sessions []*wsSession, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		pipe := e.rdb.Pipeline()
		cmds := make([]interface{ Int() (int, error) }, len(sessions))
		for i, s := range sessions {
			cmds[i] = pipe.HGet(ctx, "rtcgate:session:"+s.sid, "last")
		}
		pipe.Exec(ctx)
		behind := 0
		for i, s := range sessions {
			if n, err := cmds[i].Int(); err != nil || n < s.frames {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sessions' frames not in Redis after %v", behind, len(sessions), limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eachSession runs f on every session at once and joins the errors.
func eachSession(sessions []*wsSession, f func(s *wsSession) error) error {
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() { errs[i] = f(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// scenarioTakeover is (3) for lease l.
func scenarioTakeover(ctx context.Context, env *runEnv, l lease) (_ *takeoverResult, err error) {
	cfg := env.cfg
	r := &takeoverResult{Lease: l, Sessions: cfg.tkSessions, Rounds: cfg.tkRounds}
	if err := env.flushRedis(ctx); err != nil {
		return r, fmt.Errorf("FLUSHALL: %w", err)
	}
	owner, err := env.startNode(ctx, l)
	if err != nil {
		return r, err
	}
	all := []*node{owner}
	defer func() { err = errors.Join(err, stopNodes(all)) }() // the killed ones are not errors

	sessions := make([]*wsSession, cfg.tkSessions)
	var mu sync.Mutex
	var openErrs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range sessions {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := connectWS(ctx, owner.Addr("listen-client"), i)
			if err != nil {
				mu.Lock()
				openErrs = append(openErrs, fmt.Errorf("session %d: %w", i, err))
				mu.Unlock()
				return
			}
			sessions[i] = s
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.conn.CloseNow()
			}
		}
	}()
	if len(openErrs) > 0 {
		return r, fmt.Errorf("%d sessions did not open on %s, the first: %w", len(openErrs), owner.id, openErrs[0])
	}
	env.Logf("(3) %d WebSocket sessions on %s", len(sessions), owner.id)

	var first, send, afterLease []time.Duration
	tries := 0
	for round := range cfg.tkRounds {
		if ctx.Err() != nil {
			break
		}
		spare, err := env.startNode(ctx, l)
		if err != nil {
			return r, err
		}
		all = append(all, spare)
		// Each session gets a frame it will not acknowledge: the one
		// the new owner must replay.
		if err := eachSession(sessions, func(s *wsSession) error {
			return s.sendData(ctx, "pre"+strconv.Itoa(round)+"-"+strconv.Itoa(s.i))
		}); err != nil {
			return r, fmt.Errorf("round %d: sendData on %s: %w", round, owner.id, err)
		}
		if err := env.awaitPersisted(ctx, sessions, 10*time.Second); err != nil {
			return r, fmt.Errorf("round %d: %w", round, err)
		}
		env.awaitQuiet(ctx, procs{nodes: []*node{owner, spare}, redis: env.redis.Pid()}, "takeover")

		killed := time.Now()
		owner.kill()
		leaseEnd := make(chan time.Time, 1)
		go func() {
			if err := env.awaitLease(ctx, owner, false, l.TTL+10*time.Second); err != nil {
				env.Logf("warning: (3) %v", err)
				leaseEnd <- time.Time{}
				return
			}
			leaseEnd <- time.Now()
		}()
		deadline := killed.Add(l.TTL + 20*time.Second)
		outs := make([]resumed, len(sessions))
		eachSession(sessions, func(s *wsSession) error {
			outs[s.i] = s.resume(ctx, spare.Addr("listen-client"), cfg.retryEvery, deadline, round)
			return nil
		})
		le := <-leaseEnd
		if !le.IsZero() {
			r.LeaseEndMs = append(r.LeaseEndMs, ms(le.Sub(killed)))
		}
		back := 0
		for _, o := range outs {
			tries += o.tries
			if o.err != nil {
				r.Failed++
				if r.ErrorFirst == "" {
					r.ErrorFirst = o.err.Error()
				}
				continue
			}
			r.Resumed++
			back++
			first = append(first, o.first.Sub(killed))
			send = append(send, o.send.Sub(killed))
			if !le.IsZero() {
				afterLease = append(afterLease, o.first.Sub(le))
			}
		}
		env.Logf("(3) round %d: %s killed, its lease gone %v after, %d of %d sessions resumed on %s", round, owner.id, le.Sub(killed).Round(time.Millisecond), back, len(sessions), spare.id)
		if r.Failed > 0 {
			break
		}
		owner = spare
	}
	r.First, r.Send, r.AfterLease = quantilesOf(first), quantilesOf(send), quantilesOf(afterLease)
	if n := r.Resumed + r.Failed; n > 0 {
		r.TriesMean = float64(tries) / float64(n)
	}
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d takeovers failed, the first: %s", r.Failed, r.Failed+r.Resumed, r.ErrorFirst)
	}
	return r, nil
}
