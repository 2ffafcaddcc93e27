package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
)

// mediaSockets are the generator's few UDP sockets: calls share them (call i
// uses pair i mod n), which keeps the generator to a handful of batched
// syscalls per millisecond however many calls there are.
type mediaSockets struct {
	caller, callee     []*net.UDPConn
	callerPC, calleePC []*ipv4.PacketConn
}

func openMediaSockets(n int) (*mediaSockets, error) {
	ms := &mediaSockets{}
	open := func() (*net.UDPConn, error) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		// A few MB absorb scheduling hiccups of the receiver goroutines, so
		// that loss measures the relay and not the generator.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		return c, nil
	}
	for range max(n, 1) {
		a, err := open()
		if err != nil {
			ms.close()
			return nil, err
		}
		ms.caller = append(ms.caller, a)
		ms.callerPC = append(ms.callerPC, ipv4.NewPacketConn(a))
		b, err := open()
		if err != nil {
			ms.close()
			return nil, err
		}
		ms.callee = append(ms.callee, b)
		ms.calleePC = append(ms.calleePC, ipv4.NewPacketConn(b))
	}
	return ms, nil
}

func (ms *mediaSockets) close() {
	for _, c := range ms.caller {
		c.Close()
	}
	for _, c := range ms.callee {
		c.Close()
	}
}

func (ms *mediaSockets) callerPort(i int) int {
	return ms.caller[i%len(ms.caller)].LocalAddr().(*net.UDPAddr).Port
}

func (ms *mediaSockets) calleePort(i int) int {
	return ms.callee[i%len(ms.callee)].LocalAddr().(*net.UDPAddr).Port
}

// mediaCall is one established call: where each side must send to reach
// the other through the relay.
type mediaCall struct {
	idx      int
	toCallee *net.UDPAddr // relay port the caller sends to (from the answer's SDP)
	toCaller *net.UDPAddr // relay port the callee sends to (from the offer's SDP)
}

// mediaPlan is the timing of one load run, in mono() nanoseconds.
type mediaPlan struct {
	rate     int   // packets/s per direction per call
	t0       int64 // first packet
	ws, we   int64 // measured window [ws, we): by the send time in each packet
	hardStop int64 // nothing runs past this, whatever happens
	tick     time.Duration
}

// sendStats is one sender's account.
type sendStats struct {
	sent, sentWin uint64
	errors        uint64
	late          uint64 // window packets sent more than 5 ms after they were due
	maxLagNs      int64
	firstErr      error
}

// recvStats is one receiver's account.
type recvStats struct {
	recv, recvWin uint64
	foreign       uint64 // not one of our packets
	misrouted     uint64 // one of ours, on the wrong side's socket
	lat           hist.Histogram
	errors        uint64
	firstErr      error
}

// mediaLoad sends and receives the RTP of all calls for one plan.
type mediaLoad struct {
	socks    *mediaSockets
	calls    []mediaCall
	plan     mediaPlan
	perRecv  []atomic.Uint32 // window packets received per stream (call*2+dir)
	stopping atomic.Bool     // receivers: the deadline that follows is the end
	abort    atomic.Bool     // senders: interrupted, stop now
}

// sender paces one direction of every call. Packet k of the direction is
// stream k mod N's packet k div N and is due at t0 + off + k·period/N: the
// N streams are spread evenly over the 20 ms period (and the two directions
// half a slot apart), which is how independent phones look in aggregate and
// keeps the load smooth instead of 500 packets at once every 20 ms.
func (m *mediaLoad) sender(dir uint8, st *sendStats) {
	n := int64(len(m.calls))
	if n == 0 {
		return
	}
	period := int64(time.Second) / int64(m.plan.rate)
	off := int64(dir) * period / (2 * n)
	due := func(k int64) int64 { return m.plan.t0 + off + k*period/n }

	pcs, nsock := m.socks.callerPC, len(m.socks.caller)
	if dir == dirToCaller {
		pcs = m.socks.calleePC
	}
	batches := make([][]ipv4.Message, nsock)
	bufs := make([][][]byte, nsock) // reused packet buffers per socket
	var k int64
	for {
		now := mono()
		if now >= m.plan.hardStop || m.abort.Load() {
			return
		}
		for s := range batches {
			batches[s] = batches[s][:0]
		}
		for ; due(k) <= now && due(k) < m.plan.we; k++ {
			// Lateness is judged in the window only, like every figure.
			if d := due(k); d >= m.plan.ws {
				lag := now - d
				st.maxLagNs = max(st.maxLagNs, lag)
				if lag > int64(5*time.Millisecond) {
					st.late++
				}
			}
			c := &m.calls[k%n]
			s := c.idx % nsock
			j := len(batches[s])
			if j == len(bufs[s]) {
				bufs[s] = append(bufs[s], make([]byte, rtpPacketLen))
			}
			b := bufs[s][j]
			encodeRTP(b, uint32(c.idx), dir, uint32(k/n))
			dst := c.toCallee
			if dir == dirToCaller {
				dst = c.toCaller
			}
			batches[s] = append(batches[s], ipv4.Message{Buffers: [][]byte{b}, Addr: dst})
		}
		for s, batch := range batches {
			if len(batch) == 0 {
				continue
			}
			ts := mono()
			for _, msg := range batch {
				stampSendTime(msg.Buffers[0], ts)
			}
			sent := 0
			for sent < len(batch) {
				w, err := pcs[s].WriteBatch(batch[sent:], 0)
				if err != nil {
					st.errors += uint64(len(batch) - sent)
					if st.firstErr == nil {
						st.firstErr = err
					}
					break
				}
				sent += w
			}
			st.sent += uint64(sent)
			if ts >= m.plan.ws && ts < m.plan.we {
				st.sentWin += uint64(sent)
			}
		}
		next := due(k)
		if next >= m.plan.we {
			return // every packet of the run has been sent
		}
		wake := max(next, now+int64(m.plan.tick))
		if d := wake - mono(); d > 0 {
			time.Sleep(time.Duration(d))
		}
	}
}

// receiver drains one socket with batched reads until run ends it (by
// setting stopping and a past read deadline) or the hard stop passes. dir is the direction whose packets belong on this socket.
func (m *mediaLoad) receiver(pc *ipv4.PacketConn, conn *net.UDPConn, dir uint8, st *recvStats) {
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Duration(m.plan.hardStop - mono())))
	for {
		n, err := pc.ReadBatch(ms, 0)
		now := mono()
		if err != nil {
			if m.stopping.Load() || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
				return
			}
			st.errors++
			if st.firstErr == nil {
				st.firstErr = err
			}
			if st.errors > 1000 {
				return
			}
			continue
		}
		for i := range n {
			p, ok := decodeProbe(ms[i].Buffers[0][:ms[i].N])
			if !ok || int(p.call) >= len(m.perRecv)/2 {
				st.foreign++
				continue
			}
			if p.dir != dir {
				st.misrouted++
				continue
			}
			st.recv++
			if p.sendNs >= m.plan.ws && p.sendNs < m.plan.we {
				st.recvWin++
				st.lat.Record(time.Duration(now - p.sendNs))
				m.perRecv[p.call*2+uint32(p.dir)].Add(1)
			}
		}
	}
}

// mediaResult is the whole generator's account of a run.
type mediaResult struct {
	sent, sentWin, recv, recvWin uint64
	sendErrors, recvErrors       uint64
	foreign, misrouted           uint64
	late                         uint64
	maxLag                       time.Duration
	silentStreams                int // streams with nothing received in the window
	lat                          hist.Histogram
	firstErr                     error
}

// run starts receivers and senders, calls atWS and atWE at the window's
// edges (to read CPU counters), waits for the senders, lets in-flight
// packets drain, and stops the receivers.
//
// An interrupted ctx stops the senders early; the caller then discards the
// figures.
func (m *mediaLoad) run(ctx context.Context, drain time.Duration, atWS, atWE func()) *mediaResult {
	// Indexed by the call's original index: calls that failed to set up
	// leave holes, which are not counted as silent below.
	maxIdx := -1
	for _, c := range m.calls {
		maxIdx = max(maxIdx, c.idx)
	}
	m.perRecv = make([]atomic.Uint32, 2*(maxIdx+1))
	nsock := len(m.socks.caller)
	rstats := make([]recvStats, 2*nsock)
	var rwg sync.WaitGroup
	for s := range nsock {
		rwg.Add(2)
		go func() {
			defer rwg.Done()
			m.receiver(m.socks.calleePC[s], m.socks.callee[s], dirToCallee, &rstats[2*s])
		}()
		go func() {
			defer rwg.Done()
			m.receiver(m.socks.callerPC[s], m.socks.caller[s], dirToCaller, &rstats[2*s+1])
		}()
	}
	var sstats [2]sendStats
	var swg sync.WaitGroup
	for d := range 2 {
		swg.Add(1)
		go func() { defer swg.Done(); m.sender(uint8(d), &sstats[d]) }()
	}

	sleepUntilCtx(ctx, m.plan.ws)
	atWS()
	sleepUntilCtx(ctx, m.plan.we)
	atWE()
	if ctx.Err() != nil {
		m.abort.Store(true)
	}
	swg.Wait()
	sleepUntilCtx(ctx, mono()+int64(drain))
	m.stopping.Store(true)
	for s := range nsock {
		_ = m.socks.caller[s].SetReadDeadline(time.Now())
		_ = m.socks.callee[s].SetReadDeadline(time.Now())
	}
	rwg.Wait()

	r := &mediaResult{}
	for _, s := range sstats {
		r.sent += s.sent
		r.sentWin += s.sentWin
		r.sendErrors += s.errors
		r.late += s.late
		r.maxLag = max(r.maxLag, time.Duration(s.maxLagNs))
		if r.firstErr == nil && s.firstErr != nil {
			r.firstErr = fmt.Errorf("send: %w", s.firstErr)
		}
	}
	for i := range rstats {
		s := &rstats[i]
		r.recv += s.recv
		r.recvWin += s.recvWin
		r.recvErrors += s.errors
		r.foreign += s.foreign
		r.misrouted += s.misrouted
		r.lat.Merge(&s.lat)
		if r.firstErr == nil && s.firstErr != nil {
			r.firstErr = fmt.Errorf("receive: %w", s.firstErr)
		}
	}
	for _, c := range m.calls {
		for d := range 2 {
			if m.perRecv[2*c.idx+d].Load() == 0 {
				r.silentStreams++
			}
		}
	}
	return r
}

// sleepUntilCtx is sleepUntil that returns early when ctx is done.
func sleepUntilCtx(ctx context.Context, t int64) {
	d := t - mono()
	if d <= 0 {
		return
	}
	timer := time.NewTimer(time.Duration(d))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
