package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
)

// mediaSockets are the generator's few UDP sockets: calls share them (call i
// uses pair i mod n), which keeps the generator to a handful of batched
// syscalls per millisecond however many calls there are. Several calls'
// parties on one address is what a phone gateway in front of a relay looks
// like; the relay latches each call's side apart.
type mediaSockets struct {
	caller, callee []udpSock
}

func openMediaSockets(n int) (*mediaSockets, error) {
	ms := &mediaSockets{}
	for range max(n, 1) {
		a, err := openUDPSock()
		if err != nil {
			ms.close()
			return nil, err
		}
		ms.caller = append(ms.caller, a)
		b, err := openUDPSock()
		if err != nil {
			ms.close()
			return nil, err
		}
		ms.callee = append(ms.callee, b)
	}
	return ms, nil
}

func (ms *mediaSockets) close() {
	for _, s := range ms.caller {
		s.close()
	}
	for _, s := range ms.callee {
		s.close()
	}
}

func (ms *mediaSockets) callerPort(i int) int { return ms.caller[i%len(ms.caller)].port }

func (ms *mediaSockets) calleePort(i int) int { return ms.callee[i%len(ms.callee)].port }

// sinkCalls are n calls that go straight from socket to socket, no relay:
// the baseline.
func (ms *mediaSockets) sinkCalls(n int) []mediaCall {
	addr := func(port int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	calls := make([]mediaCall, n)
	for i := range calls {
		calls[i] = mediaCall{idx: i, toCallee: addr(ms.calleePort(i)), toCaller: addr(ms.callerPort(i))}
	}
	return calls
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
	drain    int64 // reading goes on this long after the last send
	hardStop int64 // nothing runs past this, whatever happens
	tick     time.Duration
}

// sendStats is one direction's sending account.
type sendStats struct {
	sent, sentWin uint64
	errors        uint64
	late          uint64 // window packets sent more than 5 ms after they were due
	maxLagNs      int64
	firstErr      error
}

// recvStats is one direction's receiving account.
type recvStats struct {
	recv, recvWin uint64
	foreign       uint64         // not one of our packets
	misrouted     uint64         // one of ours, on the wrong side's socket
	userStamps    uint64         // window packets without a kernel receive time
	lat           hist.Histogram // kernel receive time − send time
	readLat       hist.Histogram // time the generator read it − send time
	errors        uint64
	firstErr      error
}

// mediaLoad sends and receives the RTP of all calls for one plan.
type mediaLoad struct {
	socks   *mediaSockets
	calls   []mediaCall
	plan    mediaPlan
	perRecv []atomic.Uint32 // window packets received per stream (call*2+dir)
	abort   atomic.Bool     // interrupted, stop now
}

// wallBase is the wall clock at monoBase, to turn the kernel's receive
// times (CLOCK_REALTIME) into mono() time.
var wallBase = monoBase.UnixNano()

// pump is one direction of every call, on one goroutine: it sends the
// direction's packets from the sending side's sockets and reads them back
// from the other side's, in batches, until the last packet has been sent
// and the drain time has passed.
//
// Packet k of the direction is stream k mod N's packet k div N and is due
// at t0 + off + k·period/N: the N streams are spread evenly over the 20 ms
// period (and the two directions half a slot apart), which is how
// independent phones look in aggregate and keeps the load smooth instead of
// 2000 packets at once every 20 ms. Each tick (1 ms) sends what is due in
// one sendmmsg per socket and reads every socket of the other side until it
// is empty.
// maxTick bounds the packets one direction sends between two reads;
// sendChunk is the packets of one sendmmsg.
const (
	maxTick   = 1024
	sendChunk = 32
)

func (m *mediaLoad) pump(dir uint8, st *sendStats, rs *recvStats) error {
	n := int64(len(m.calls))
	tx, rx := m.socks.caller, m.socks.callee
	if dir == dirToCaller {
		tx, rx = rx, tx
	}
	// Where each call's packets go, built once.
	dsts := make([]unix.RawSockaddrInet4, n)
	for i, c := range m.calls {
		a := c.toCallee
		if dir == dirToCaller {
			a = c.toCaller
		}
		sa, err := inet4(a)
		if err != nil {
			return err
		}
		dsts[i] = sa
	}
	period := int64(time.Second) / int64(m.plan.rate)
	off := int64(0)
	if n > 0 {
		off = int64(dir) * period / (2 * n)
	}
	due := func(k int64) int64 { return m.plan.t0 + off + k*period/n }

	batches := make([]txBatch, len(tx))
	rxb := newRxBatch(256)
	var k int64
	sending := n > 0
	end := m.plan.hardStop // reading stops here; set when the sending is done
	if !sending {
		end = min(end, m.plan.we+m.plan.drain)
	}
	for {
		now := mono()
		if now >= m.plan.hardStop || m.abort.Load() {
			break
		}
		if sending {
			// At most maxTick packets per tick: a generator that fell
			// behind catches up in steps, reading in between, so that its
			// own receive buffers never overflow.
			for q := 0; q < maxTick && due(k) <= now && due(k) < m.plan.we; k, q = k+1, q+1 {
				// Lateness is judged in the window only, like every figure.
				if d := due(k); d >= m.plan.ws {
					lag := now - d
					st.maxLagNs = max(st.maxLagNs, lag)
					if lag > int64(5*time.Millisecond) {
						st.late++
					}
				}
				i := k % n
				c := &m.calls[i]
				encodeRTP(batches[c.idx%len(tx)].add(&dsts[i]), uint32(c.idx), dir, uint32(k/n))
			}
			for s := range batches {
				b := &batches[s]
				if len(b.hdrs) == 0 {
					continue
				}
				// Stamped a chunk at a time, right before its syscall:
				// a packet's send time is off by the chunk ahead of it
				// only (some 30 packets' kernel time), not the batch's.
				for c := 0; c < len(b.hdrs); c += sendChunk {
					e := min(c+sendChunk, len(b.hdrs))
					ts := mono()
					for j := c; j < e; j++ {
						stampSendTime(b.bufs[j], ts)
					}
					sent, failed, err := sendAll(tx[s].fd, b.hdrs[c:e])
					st.sent += uint64(sent)
					if ts >= m.plan.ws && ts < m.plan.we {
						st.sentWin += uint64(sent)
					}
					st.errors += uint64(failed)
					if st.firstErr == nil && err != nil {
						st.firstErr = err
					}
				}
				b.hdrs = b.hdrs[:0]
			}
			if due(k) >= m.plan.we {
				sending = false // every packet of the run has been sent
				end = min(m.plan.hardStop, max(mono(), m.plan.we)+m.plan.drain)
			}
		}
		for _, s := range rx {
			m.read(s.fd, dir, rxb, rs)
		}
		if !sending && mono() >= end {
			break
		}
		// A tick's worth of packets per batch; none at all when behind.
		wake := now + int64(m.plan.tick)
		if sending {
			wake = max(due(k), wake)
			if due(k) <= mono() {
				continue
			}
		}
		if d := wake - mono(); d > 0 {
			time.Sleep(time.Duration(d))
		}
	}
	for _, s := range rx {
		m.read(s.fd, dir, rxb, rs)
	}
	return nil
}

// read takes everything waiting on one socket. dir is the direction whose
// packets belong there.
func (m *mediaLoad) read(fd int, dir uint8, b *rxBatch, st *recvStats) {
	// Bounded: 64 full batches is 16k packets, more than a socket holds.
	for range 64 {
		n, err := b.recv(fd)
		if err != nil {
			st.errors++
			if st.firstErr == nil {
				st.firstErr = err
			}
			return
		}
		now := mono()
		for i := range n {
			pkt, rxWall := b.packet(i)
			p, ok := decodeProbe(pkt)
			if !ok || int(p.call) >= len(m.perRecv)/2 {
				st.foreign++
				continue
			}
			if p.dir != dir {
				st.misrouted++
				continue
			}
			st.recv++
			if p.sendNs < m.plan.ws || p.sendNs >= m.plan.we {
				continue
			}
			st.recvWin++
			m.perRecv[p.call*2+uint32(p.dir)].Add(1)
			st.readLat.Record(time.Duration(now - p.sendNs))
			// The kernel's time, when it gave one that makes sense (a
			// stepped wall clock does not), is when the packet entered
			// the loopback's receive queue: what the generator's own
			// scheduling adds after that is not the relay's.
			if rx := rxWall - wallBase; rxWall != 0 && rx >= p.sendNs && rx <= now {
				st.lat.Record(time.Duration(rx - p.sendNs))
			} else {
				st.userStamps++
				st.lat.Record(time.Duration(now - p.sendNs))
			}
		}
		if n < len(b.hdrs) {
			return
		}
	}
}

// mediaResult is the whole generator's account of a run.
type mediaResult struct {
	sent, sentWin, recv, recvWin uint64
	sendErrors, recvErrors       uint64
	foreign, misrouted           uint64
	userStamps                   uint64
	late                         uint64
	maxLag                       time.Duration
	silentStreams                int // streams with nothing received in the window
	lat, readLat                 hist.Histogram
	firstErr                     error
}

// run starts the two directions' pumps, calls atWS and atWE at the
// window's edges (to read CPU counters), and waits for the pumps to send
// everything and read what comes back.
//
// An interrupted ctx stops the pumps early; the caller then discards the
// figures.
func (m *mediaLoad) run(ctx context.Context, atWS, atWE func()) *mediaResult {
	// Indexed by the call's original index: calls that failed to set up
	// leave holes, which are not counted as silent below.
	maxIdx := -1
	for _, c := range m.calls {
		maxIdx = max(maxIdx, c.idx)
	}
	m.perRecv = make([]atomic.Uint32, 2*(maxIdx+1))
	var sstats [2]sendStats
	var rstats [2]recvStats
	var perr [2]error
	var wg sync.WaitGroup
	for d := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); perr[d] = m.pump(uint8(d), &sstats[d], &rstats[d]) }()
	}

	stop := context.AfterFunc(ctx, func() { m.abort.Store(true) })
	defer stop()
	sleepUntilCtx(ctx, m.plan.ws)
	atWS()
	sleepUntilCtx(ctx, m.plan.we)
	atWE()
	wg.Wait()

	r := &mediaResult{}
	for d := range 2 {
		s := &sstats[d]
		r.sent += s.sent
		r.sentWin += s.sentWin
		r.sendErrors += s.errors
		r.late += s.late
		r.maxLag = max(r.maxLag, time.Duration(s.maxLagNs))
		if r.firstErr == nil && perr[d] != nil {
			r.firstErr = perr[d]
		}
		if r.firstErr == nil && s.firstErr != nil {
			r.firstErr = fmt.Errorf("send: %w", s.firstErr)
		}
		rs := &rstats[d]
		r.recv += rs.recv
		r.recvWin += rs.recvWin
		r.recvErrors += rs.errors
		r.foreign += rs.foreign
		r.misrouted += rs.misrouted
		r.userStamps += rs.userStamps
		r.lat.Merge(&rs.lat)
		r.readLat.Merge(&rs.readLat)
		if r.firstErr == nil && rs.firstErr != nil {
			r.firstErr = fmt.Errorf("receive: %w", rs.firstErr)
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
