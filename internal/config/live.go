package config

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// Live holds the settings an operator may change while rtcgate runs (as
// rtpengine-ctl's `set` commands do). Readers load them atomically on every
// use, so a change applies to the next session check without a restart.
type Live struct {
	maxSessions   atomic.Int64
	timeout       atomic.Int64 // nanoseconds
	silentTimeout atomic.Int64
	finalTimeout  atomic.Int64
}

// NewLive seeds the live settings from the configuration.
func NewLive(c *Config) *Live {
	l := &Live{}
	l.maxSessions.Store(int64(c.MaxSessions))
	l.timeout.Store(int64(c.Timeout))
	l.silentTimeout.Store(int64(c.SilentTimeout))
	l.finalTimeout.Store(int64(c.FinalTimeout))
	return l
}

// MaxSessions is the session limit; -1 means unlimited.
func (l *Live) MaxSessions() int64 { return l.maxSessions.Load() }

// Timeout is how long a call may see no media at all before it ends.
func (l *Live) Timeout() time.Duration { return time.Duration(l.timeout.Load()) }

// SilentTimeout is the same for one-way media.
func (l *Live) SilentTimeout() time.Duration { return time.Duration(l.silentTimeout.Load()) }

// FinalTimeout ends every call after this long, media or not; 0 disables it.
func (l *Live) FinalTimeout() time.Duration { return time.Duration(l.finalTimeout.Load()) }

// RegisterCLI adds the list/set commands for the live settings, with
// rtpengine-ctl's wording.
func (l *Live) RegisterCLI(r *cli.Registry) {
	r.Handle("list maxsessions", "", "print the number of allowed sessions", func(_ context.Context, _ []string, w io.Writer) {
		fmt.Fprintf(w, "Maximum sessions configured on rtpengine: %d\n", l.MaxSessions())
	})
	r.Handle("set maxsessions", "<int>", "set the max nr of allowed sessions (-1: unlimited)", func(_ context.Context, args []string, w io.Writer) {
		if len(args) == 0 {
			io.WriteString(w, "More parameters required.\n")
			return
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		switch {
		case err != nil:
			fmt.Fprintf(w, "Fail setting maxsessions to %s; not a whole number\n", args[0])
		case n < -1:
			fmt.Fprintf(w, "Fail setting maxsessions to %d; either positive or -1 values allowed\n", n)
		case n == -1:
			l.maxSessions.Store(n)
			fmt.Fprintf(w, "Success setting maxsessions to %d; disable feature\n", n)
		default:
			l.maxSessions.Store(n)
			fmt.Fprintf(w, "Success setting maxsessions to %d\n", n)
		}
	})
	for _, t := range []struct {
		cmd, label, help string
		v                *atomic.Int64
	}{
		{"timeout", "TIMEOUT", "the --timeout parameter", &l.timeout},
		{"silenttimeout", "SILENT_TIMEOUT", "the --silent-timeout parameter", &l.silentTimeout},
		{"finaltimeout", "FINAL_TIMEOUT", "the --final-timeout parameter", &l.finalTimeout},
	} {
		r.Handle("list "+t.cmd, "", "print "+t.help, func(_ context.Context, _ []string, w io.Writer) {
			fmt.Fprintf(w, "%s=%d\n", t.label, time.Duration(t.v.Load())/time.Second)
		})
		r.Handle("set "+t.cmd, "<uint>", "set "+t.help+" (seconds)", func(_ context.Context, args []string, w io.Writer) {
			if len(args) == 0 {
				io.WriteString(w, "More parameters required.\n")
				return
			}
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil {
				fmt.Fprintf(w, "Fail setting %s to %s; not a whole number of seconds\n", t.cmd, args[0])
				return
			}
			t.v.Store(int64(time.Duration(n) * time.Second))
			fmt.Fprintf(w, "Success setting %s to %d\n", t.cmd, n)
		})
	}
}
