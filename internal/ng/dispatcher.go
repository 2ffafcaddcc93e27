package ng

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// commandInfo is one ng command rtpengine knows, with the names its control
// statistics use.
type commandInfo struct {
	name   string // on the wire
	column string // `list totals` Control statistics column
	key    string // statistics reply: <key>count, <key>duration
}

// rtpengineCommands are rtpengine's commands in its statistics' order. Those
// without a handler answer "Unsupported command" but are still counted.
var rtpengineCommands = []commandInfo{
	{"ping", "Ping", "ping"}, {"offer", "Offer", "offer"}, {"answer", "Answer", "answer"},
	{"delete", "Delete", "delete"}, {"query", "Query", "query"}, {"list", "List", "list"},
	{"start recording", "StartRec", "startrec"}, {"stop recording", "StopRec", "stoprec"},
	{"start forwarding", "StartFwd", "startfwd"}, {"stop forwarding", "StopFwd", "stopfwd"},
	{"block DTMF", "BlkDTMF", "blkdtmf"}, {"unblock DTMF", "UnblkDTMF", "unblkdtmf"},
	{"block media", "BlkMedia", "blkmedia"}, {"unblock media", "UnblkMedia", "unblkmedia"},
	{"play media", "PlayMedia", "playmedia"}, {"stop media", "StopMedia", "stopmedia"},
	{"play DTMF", "PlayDTMF", "playdtmf"}, {"statistics", "Stats", "stats"},
	{"silence media", "SlnMedia", "slnmedia"}, {"unsilence media", "UnslnMedia", "unslnmedia"},
	{"publish", "Pub", "pub"}, {"subscribe request", "SubReq", "subreq"},
	{"subscribe answer", "SubAns", "subans"}, {"unsubscribe", "Unsub", "unsub"},
}

// otherCommands are further rtpengine commands, refused as unsupported.
var otherCommands = []string{"pause recording", "connect", "transform", "create"}

// Request is one decoded ng message as a handler sees it.
type Request struct {
	Command string
	Dict    message
	// Source is the sender's address ("IP:port"); Proxy its IP, by which
	// control statistics are kept.
	Source, Proxy string
}

// Handler answers one command with the reply's keys (without "result"). An
// error becomes an error reply with the error's text as error-reason.
type Handler func(ctx context.Context, req *Request) (*bencode.Dict, error)

// Dispatcher decodes ng messages, runs their command and encodes the reply:
// the one place every transport hands its messages to.
type Dispatcher struct {
	log      *slog.Logger
	handlers map[string]Handler
	known    map[string]int // command → index in rtpengineCommands, or -1

	mu      sync.Mutex
	proxies map[string]*proxyStats // by proxy IP
	totals  [](atomic.Uint64)      // per rtpengineCommands entry
	errs    atomic.Uint64

	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

type proxyStats struct {
	count    []uint64
	duration []time.Duration
	errors   uint64
}

// New builds a dispatcher with ping and, as unsupported, every other
// rtpengine command; Handle adds the real ones.
func New(log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		log: log, handlers: map[string]Handler{}, known: map[string]int{},
		proxies: map[string]*proxyStats{}, totals: make([]atomic.Uint64, len(rtpengineCommands)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtpengine_requests_total", Help: "ng requests by command.",
		}, []string{"request"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_ng_errors_total", Help: "ng requests answered with an error, by command.",
		}, []string{"request"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rtcgate_ng_request_seconds", Help: "Time to process an ng request, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}, []string{"request"}),
	}
	for i, c := range rtpengineCommands {
		d.known[c.name] = i
	}
	for _, c := range otherCommands {
		d.known[c] = -1
	}
	d.Handle("ping", func(context.Context, *Request) (*bencode.Dict, error) {
		r := &bencode.Dict{}
		r.Set("result", "pong")
		return r, nil
	})
	return d
}

// Handle sets the handler of a command.
func (d *Dispatcher) Handle(command string, h Handler) { d.handlers[command] = h }

// Collectors are the dispatcher's metrics, for registration.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{d.requests, d.errors, d.latency}
}

// replyError is an error reply in the request's encoding.
func replyError(enc Encoding, reason string) []byte {
	r := &bencode.Dict{}
	r.Set("result", "error")
	r.Set("error-reason", reason)
	out, _ := Encode(nil, r, enc)
	return out
}

type badInputKey struct{}

// badInputFunc is told of a message Process cannot decode.
type badInputFunc func(reason, source string, data []byte)

// withBadInput returns ctx carrying report, which Process calls for each
// message it cannot decode: the transport counts it as bad input.
func withBadInput(ctx context.Context, report badInputFunc) context.Context {
	return context.WithValue(ctx, badInputKey{}, report)
}

// Process runs one message body (without cookie) and returns the reply body,
// always a reply: bad input gets an error reply, never silence.
func (d *Dispatcher) Process(ctx context.Context, body []byte, source, proxy string) []byte {
	dict, enc, err := Decode(body)
	if err != nil {
		d.log.Debug("undecodable ng message", "from", source, "err", err)
		if report, ok := ctx.Value(badInputKey{}).(badInputFunc); ok {
			report("undecodable", source, body)
		}
		d.countError("invalid", proxy)
		return replyError(enc, errBadData.Error())
	}
	m := newMessage(dict)
	cmd, ok := m.str("command")
	if !ok {
		d.countError("invalid", proxy)
		return replyError(enc, `Dictionary contains no key "command"`)
	}
	idx, known := d.known[cmd]
	label := cmd
	if !known {
		label, idx = "unknown", -1
	}
	d.requests.WithLabelValues(label).Inc()
	h := d.handlers[cmd]
	if h == nil {
		d.count(idx, proxy, 0) // rtpengine counts requests it refuses too
		d.countError(label, proxy)
		if known {
			return replyError(enc, "Unsupported command")
		}
		return replyError(enc, "Unrecognized command")
	}

	start := time.Now()
	reply, err := d.run(ctx, h, &Request{Command: cmd, Dict: m, Source: source, Proxy: proxy})
	elapsed := time.Since(start)
	d.latency.WithLabelValues(label).Observe(elapsed.Seconds())
	d.count(idx, proxy, elapsed)
	if err != nil {
		d.countError(label, proxy)
		d.log.Info("ng request failed", "command", cmd, "from", source, "reason", err.Error())
		return replyError(enc, err.Error())
	}
	if _, has := reply.Get("result"); !has {
		reply.Set("result", "ok")
	}
	out, err := Encode(nil, reply, enc)
	if err != nil {
		d.log.Error("ng reply not encodable", "command", cmd, "err", err)
		return replyError(enc, "Internal error")
	}
	return out
}

// run calls the handler, turning a panic into an error reply: one bad
// message must not take the relay down.
func (d *Dispatcher) run(ctx context.Context, h Handler, req *Request) (reply *bencode.Dict, err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("ng handler panicked", "command", req.Command, "panic", p)
			reply, err = nil, errors.New("Internal error")
		}
	}()
	reply, err = h(ctx, req)
	if err == nil && reply == nil {
		reply = &bencode.Dict{}
	}
	return reply, err
}

func (d *Dispatcher) proxy(ip string) *proxyStats {
	p := d.proxies[ip]
	if p == nil {
		p = &proxyStats{count: make([]uint64, len(rtpengineCommands)), duration: make([]time.Duration, len(rtpengineCommands))}
		d.proxies[ip] = p
	}
	return p
}

func (d *Dispatcher) count(idx int, proxy string, elapsed time.Duration) {
	if idx < 0 {
		return
	}
	d.totals[idx].Add(1)
	d.mu.Lock()
	p := d.proxy(proxy)
	p.count[idx]++
	p.duration[idx] += elapsed
	d.mu.Unlock()
}

func (d *Dispatcher) countError(label, proxy string) {
	d.errs.Add(1)
	d.errors.WithLabelValues(label).Inc()
	d.mu.Lock()
	d.proxy(proxy).errors++
	d.mu.Unlock()
}

// controlStatistics builds the statistics reply's "controlstatistics".
func (d *Dispatcher) controlStatistics() *bencode.Dict {
	d.mu.Lock()
	ips := make([]string, 0, len(d.proxies))
	for ip := range d.proxies {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	proxies := make([]any, 0, len(ips))
	for _, ip := range ips {
		p := d.proxies[ip]
		pd := &bencode.Dict{}
		pd.Set("proxy", ip)
		for i, c := range rtpengineCommands {
			pd.Set(c.key+"count", int64(p.count[i]))
			pd.Set(c.key+"duration", fmt.Sprintf("%.6f", p.duration[i].Seconds()))
		}
		pd.Set("errorcount", int64(p.errors))
		proxies = append(proxies, pd)
	}
	d.mu.Unlock()
	cs := &bencode.Dict{}
	cs.Set("proxies", proxies)
	for i, c := range rtpengineCommands {
		cs.Set("total"+c.key+"count", int64(d.totals[i].Load()))
	}
	return cs
}

// RegisterTotals adds rtpengine's "Control statistics" table to `list totals`.
func (d *Dispatcher) RegisterTotals(s *stats.Stats) {
	s.AddSection(stats.Section{Title: "Control statistics", Write: func(w io.Writer) {
		fmt.Fprintf(w, " %20s ", "Proxy")
		for _, c := range rtpengineCommands {
			fmt.Fprintf(w, "| %10s ", c.column)
		}
		fmt.Fprintf(w, "| %10s \n", "Errors")
		d.mu.Lock()
		defer d.mu.Unlock()
		ips := make([]string, 0, len(d.proxies))
		for ip := range d.proxies {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		for _, ip := range ips {
			p := d.proxies[ip]
			fmt.Fprintf(w, " %20s ", ip)
			for i := range rtpengineCommands {
				fmt.Fprintf(w, "| %10d ", p.count[i])
			}
			fmt.Fprintf(w, "| %10d \n", p.errors)
		}
	}})
}
