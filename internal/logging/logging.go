// Package logging sets up rtcgate's structured logs (log/slog, text or
// JSON) with one level per subsystem, in syslog numbers as rtpengine has them
// (1 alert … 7 debug), changeable at runtime through `set loglevel`.
package logging

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// Syslog levels as rtpengine numbers them.
const (
	LevelAlert   = 1
	LevelCrit    = 2
	LevelErr     = 3
	LevelWarning = 4
	LevelNotice  = 5
	LevelInfo    = 6
	LevelDebug   = 7
)

// LevelNotice in slog terms: between Info and Warn, so that level 5 hides
// Info but keeps notices.
const SlogNotice = slog.LevelInfo + 2

// ToSlog maps a syslog level (1-7) to the lowest slog level it lets through.
func ToSlog(syslog int) slog.Level {
	switch {
	case syslog >= LevelDebug:
		return slog.LevelDebug
	case syslog == LevelInfo:
		return slog.LevelInfo
	case syslog == LevelNotice:
		return SlogNotice
	case syslog == LevelWarning:
		return slog.LevelWarn
	case syslog == LevelErr:
		return slog.LevelError
	case syslog == LevelCrit:
		return slog.LevelError + 4
	default:
		return slog.LevelError + 8
	}
}

// Subsystem describes one named log source.
type Subsystem struct {
	Name        string
	Description string
}

// Logs owns the output handler and the per-subsystem levels.
type Logs struct {
	out slog.Handler

	mu     sync.RWMutex
	levels map[string]*level
	order  []Subsystem
	deflt  int

	bad *BadInput
}

type level struct {
	syslog int
	slog   slog.LevelVar
}

// New writes logs to w in format "text" or "json" with every subsystem at
// the syslog level given.
func New(w io.Writer, format string, syslogLevel int) *Logs {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug - 4} // each subsystem filters itself
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return &Logs{out: h, levels: map[string]*level{}, deflt: syslogLevel,
		bad: NewBadInput(DefaultBadInputLines, DefaultBadInputInterval)}
}

// Logger returns the logger of a subsystem, creating the subsystem (at the
// default level) the first time it is named.
func (l *Logs) Logger(name, description string) *slog.Logger {
	l.mu.Lock()
	lv, ok := l.levels[name]
	if !ok {
		lv = &level{syslog: l.deflt}
		lv.slog.Set(ToSlog(l.deflt))
		l.levels[name] = lv
		l.order = append(l.order, Subsystem{name, description})
	}
	l.mu.Unlock()
	return slog.New(&filter{next: l.out, level: &lv.slog}).With("subsys", name)
}

// Subsystems lists the subsystems in the order they were created.
func (l *Logs) Subsystems() []Subsystem {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Subsystem(nil), l.order...)
}

// Level returns a subsystem's syslog level.
func (l *Logs) Level(name string) (int, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	lv, ok := l.levels[name]
	if !ok {
		return 0, false
	}
	return lv.syslog, true
}

// SetLevel sets one subsystem's level, or every subsystem's when name is "".
// It reports false for an unknown subsystem.
func (l *Logs) SetLevel(name string, syslog int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if name == "" {
		l.deflt = syslog
		for _, lv := range l.levels {
			lv.syslog = syslog
			lv.slog.Set(ToSlog(syslog))
		}
		return true
	}
	lv, ok := l.levels[name]
	if !ok {
		return false
	}
	lv.syslog = syslog
	lv.slog.Set(ToSlog(syslog))
	return true
}

// filter lets a record through when its subsystem's level allows it.
type filter struct {
	next  slog.Handler
	level *slog.LevelVar
}

func (f *filter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.level.Level() && f.next.Enabled(ctx, l)
}

func (f *filter) Handle(ctx context.Context, r slog.Record) error { return f.next.Handle(ctx, r) }

func (f *filter) WithAttrs(as []slog.Attr) slog.Handler {
	return &filter{next: f.next.WithAttrs(as), level: f.level}
}

func (f *filter) WithGroup(name string) slog.Handler {
	return &filter{next: f.next.WithGroup(name), level: f.level}
}
