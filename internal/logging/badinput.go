package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Defaults of log-bad-input-lines and log-bad-input-interval.
const (
	DefaultBadInputLines    = 5
	DefaultBadInputInterval = 10 * time.Second
)

// MaxExcerpt is how many bytes of input from the network a log line
// carries at most; the rest is cut (the line says how long it was).
const MaxExcerpt = 128

// BadInput is input from the network that rtcgate refuses — an unparsable
// SIP datagram, an ng message without cookie — which anyone who reaches a
// listener can send at line rate. Each is counted in
// rtcgate_bad_input_total{listener,reason}; the log gets at most a few lines
// per interval per subsystem, then one "N more suppressed" line, with the
// input cut to MaxExcerpt bytes. It is a prometheus.Collector.
type BadInput struct {
	total *prometheus.CounterVec

	mu       sync.Mutex
	lines    int
	interval time.Duration
	limiters map[string]*Limiter // by subsystem
}

// NewBadInput counts bad input and logs at most lines of it per interval
// per subsystem.
func NewBadInput(lines int, interval time.Duration) *BadInput {
	b := &BadInput{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_bad_input_total",
			Help: "Input from the network refused, by listener and reason (logged rate-limited).",
		}, []string{"listener", "reason"}),
		limiters: map[string]*Limiter{},
	}
	b.SetLimit(lines, interval)
	return b
}

// BadInput is where every subsystem counts and logs the bad input it sees.
func (l *Logs) BadInput() *BadInput { return l.bad }

// SetLimit changes the number of lines per interval for every subsystem.
func (b *BadInput) SetLimit(lines int, interval time.Duration) {
	if lines < 0 {
		lines = 0
	}
	if interval <= 0 {
		interval = DefaultBadInputInterval
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines, b.interval = lines, interval
	for _, l := range b.limiters {
		l.setLimit(lines, interval)
	}
}

// Describe and Collect make BadInput a prometheus.Collector.
func (b *BadInput) Describe(ch chan<- *prometheus.Desc) { b.total.Describe(ch) }
func (b *BadInput) Collect(ch chan<- prometheus.Metric) { b.total.Collect(ch) }

// Count is the number of bad inputs counted under listener and reason.
func (b *BadInput) Count(listener, reason string) float64 {
	var m dto.Metric
	if err := b.total.WithLabelValues(listener, reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Flush logs every subsystem's "N more suppressed" line now, for lines
// held back in the current interval (at shutdown: none is lost).
func (b *BadInput) Flush() {
	b.mu.Lock()
	ls := make([]*Limiter, 0, len(b.limiters))
	for _, l := range b.limiters {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	for _, l := range ls {
		l.Flush()
	}
}

// limiter returns the subsystem's limiter; its summaries go to log.
func (b *BadInput) limiter(subsystem string, log *slog.Logger) *Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.limiters[subsystem]
	if !ok {
		l = NewLimiter(b.lines, b.interval, log)
		b.limiters[subsystem] = l
	}
	return l
}

// Reporter is where a subsystem reports the bad input it sees.
func (b *BadInput) Reporter(subsystem string, log *slog.Logger) *Reporter {
	return &Reporter{b: b, lim: b.limiter(subsystem, log), log: log}
}

// Reporter reports one subsystem's bad input.
type Reporter struct {
	b   *BadInput
	lim *Limiter
	log *slog.Logger
}

// Report counts one bad input and logs it if the subsystem's budget allows.
func (r *Reporter) Report(listener, reason, from string, data []byte) {
	r.b.total.WithLabelValues(listener, reason).Inc()
	if !r.log.Enabled(context.Background(), slog.LevelWarn) || !r.lim.Allow() {
		return
	}
	r.log.Warn("bad input", "listener", listener, "reason", reason, "from", from, "bytes", len(data),
		"data", Excerpt(string(data)))
}

// Excerpt cuts s to at most MaxExcerpt bytes (cut on a rune boundary),
// saying how long s was if cut. Control characters, invalid bytes and
// other unprintable runes become one '.' each, so that a log line carries
// at most about MaxExcerpt bytes of excerpt however a log format escapes
// (JSON would spell \x01 as six bytes).
func Excerpt(s string) string {
	v := s[:min(len(s), MaxExcerpt)]
	if len(s) > MaxExcerpt {
		cut := len(v)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		v = v[:cut]
	}
	var b strings.Builder
	b.Grow(len(v) + 16)
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) {
			b.WriteByte('.')
		} else {
			b.WriteString(v[i : i+n])
		}
		i += n
	}
	if len(s) > MaxExcerpt {
		fmt.Fprintf(&b, "…(%d bytes)", len(s))
	}
	return b.String()
}

// Classify tells which of a library's log records are about bad input:
// the listener and reason to count it under. attrs are the logger's (from
// With), the record's own are in r.
type Classify func(r slog.Record, attrs []slog.Attr) (listener, reason string, ok bool)

// Wrap returns a logger for a library that logs what it reads from the
// network itself (sipgo logs every unparsable datagram at ERROR with its
// raw bytes). Its records at Info and above share the subsystem's budget
// of lines; those that classify as bad input are counted, whatever the
// log level, and logged at WARN (at most) with their listener and reason;
// string values are cut to MaxExcerpt bytes. Debug records are
// not limited (debugging is asking for them) but are cut too.
func (b *BadInput) Wrap(log *slog.Logger, subsystem string, classify Classify) *slog.Logger {
	return slog.New(&libHandler{b: b, lim: b.limiter(subsystem, log), next: log.Handler(), classify: classify})
}

type libHandler struct {
	b        *BadInput
	lim      *Limiter
	next     slog.Handler
	attrs    []slog.Attr
	classify Classify
}

func (h *libHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// Errors may be bad input, which is counted even when not logged.
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *libHandler) Handle(ctx context.Context, r slog.Record) error {
	var bad []slog.Attr
	if h.classify != nil {
		if listener, reason, ok := h.classify(r, h.attrs); ok {
			h.b.total.WithLabelValues(listener, reason).Inc()
			// What a stranger sends is a warning at most, like the bad
			// input rtcgate reports itself, and says where and why.
			r.Level = min(r.Level, slog.LevelWarn)
			bad = []slog.Attr{slog.String("listener", listener), slog.String("reason", reason)}
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	if r.Level >= slog.LevelInfo && !h.lim.Allow() {
		return nil
	}
	out := cutRecord(r)
	out.AddAttrs(bad...)
	return h.next.Handle(ctx, out)
}

func (h *libHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *libHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// cutRecord copies r with every long value cut to an excerpt.
func cutRecord(r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, Excerpt(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cutAttr(a))
		return true
	})
	return out
}

func cutAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if len(v.String()) > MaxExcerpt {
			return slog.String(a.Key, Excerpt(v.String()))
		}
	case slog.KindAny:
		var s string
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
		if len(s) > MaxExcerpt {
			return slog.String(a.Key, Excerpt(s))
		}
	case slog.KindGroup:
		as := v.Group()
		cut := make([]slog.Attr, len(as))
		for i, g := range as {
			cut[i] = cutAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(cut...)}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Limiter lets at most a number of lines through per interval. The lines
// it holds back are counted, and once the interval is over one line says
// how many ("N more suppressed"), on log.
type Limiter struct {
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	lines      int
	interval   time.Duration
	start      time.Time // of the current interval
	used       int       // lines let through in it
	suppressed int       // held back since the last summary
	timer      *time.Timer
}

// NewLimiter lets lines lines through per interval.
func NewLimiter(lines int, interval time.Duration, log *slog.Logger) *Limiter {
	l := &Limiter{log: log, now: time.Now}
	l.setLimit(lines, interval)
	return l
}

func (l *Limiter) setLimit(lines int, interval time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines, l.interval = lines, interval
}

// Allow reports whether one more line may be logged now. When not, the
// line counts as suppressed and a summary follows at the interval's end.
func (l *Limiter) Allow() bool {
	l.mu.Lock()
	now := l.now()
	if now.Sub(l.start) >= l.interval {
		n := l.suppressed
		l.start, l.used, l.suppressed = now, 0, 0
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
		l.mu.Unlock()
		l.summary(n)
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if l.used < l.lines {
		l.used++
		return true
	}
	l.suppressed++
	if l.timer == nil {
		l.timer = time.AfterFunc(l.start.Add(l.interval).Sub(now), l.flush)
	}
	return false
}

// Flush logs the summary of the lines suppressed so far in the current
// interval.
func (l *Limiter) Flush() {
	l.mu.Lock()
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	l.summary(n)
}

// flush ends an interval that had suppressed lines when nothing else comes
// to end it.
func (l *Limiter) flush() {
	l.mu.Lock()
	if l.now().Sub(l.start) < l.interval {
		// A timer of an interval that Allow already ended and summed up.
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.suppressed, l.timer = 0, nil
	l.mu.Unlock()
	l.summary(n)
}

func (l *Limiter) summary(n int) {
	if n > 0 && l.log != nil {
		l.log.Warn(fmt.Sprintf("%d more suppressed", n), "suppressed", n, "interval", l.interval.String())
	}
}
