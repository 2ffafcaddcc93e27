package sipua

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestLogBadInput(t *testing.T) {
	rec := func(msg string, args ...any) slog.Record {
		r := slog.NewRecord(time.Now(), slog.LevelError, msg, 0)
		r.Add(args...)
		return r
	}
	caller := func(c ...string) []slog.Attr {
		var as []slog.Attr
		for _, v := range c {
			as = append(as, slog.String("component", "sipua"), slog.String("caller", v))
		}
		return as
	}
	for _, tt := range []struct {
		r                slog.Record
		attrs            []slog.Attr
		listener, reason string
		ok               bool
	}{
		{rec("failed to parse", "data", "x"), caller("TransportLayer", "Transport<UDP>"), "listen-sip/udp", "parse", true},
		{rec("failed to parse", "error", errors.New("x")), caller("TransportLayer", "Transport<TCP>"), "listen-sip/tcp", "parse", true},
		{rec("failed to parse"), nil, "listen-sip", "parse", true},
		{rec("Server tx failed to handle request", "error", errors.New("make key failed: missing Via")), caller("TransactionLayer"), "listen-sip", "malformed", true},
		{rec("Server tx failed to handle request", "error", errors.New("failed to receive req")), nil, "", "", false},
		{rec("registration refused"), nil, "", "", false},
	} {
		l, r, ok := LogBadInput(tt.r, tt.attrs)
		if l != tt.listener || r != tt.reason || ok != tt.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", tt.r.Message, l, r, ok, tt.listener, tt.reason, tt.ok)
		}
	}
}
