package config

import (
	"context"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/cli"
)

func TestLiveCLI(t *testing.T) {
	c := Defaults()
	live := NewLive(c)
	r := cli.New(nil)
	live.RegisterCLI(r)
	ctx := context.Background()
	for _, s := range []struct{ cmd, want string }{
		{"list maxsessions", "Maximum sessions configured on rtpengine: -1\n"},
		{"set maxsessions 5", "Success setting maxsessions to 5\n"},
		{"list maxsessions", "Maximum sessions configured on rtpengine: 5\n"},
		{"set maxsessions -1", "Success setting maxsessions to -1; disable feature\n"},
		{"set maxsessions -5", "Fail setting maxsessions to -5; either positive or -1 values allowed\n"},
		{"set maxsessions 12abc", "Fail setting maxsessions to 12abc; not a whole number\n"},
		{"set maxsessions", "More parameters required.\n"},
		{"set maxsessions 0", "Success setting maxsessions to 0\n"},
		{"list timeout", "TIMEOUT=60\n"},
		{"list silenttimeout", "SILENT_TIMEOUT=3600\n"},
		{"list finaltimeout", "FINAL_TIMEOUT=0\n"},
		{"set timeout 30", "Success setting timeout to 30\n"},
		{"list timeout", "TIMEOUT=30\n"},
		{"set silenttimeout x", "Fail setting silenttimeout to x; not a whole number of seconds\n"},
		{"set finaltimeout", "More parameters required.\n"},
	} {
		if got := r.Run(ctx, s.cmd); got != s.want {
			t.Errorf("%s = %q, want %q", s.cmd, got, s.want)
		}
	}
	if live.MaxSessions() != 0 || live.Timeout() != 30*time.Second || live.SilentTimeout() != time.Hour {
		t.Errorf("live values = %d %v %v", live.MaxSessions(), live.Timeout(), live.SilentTimeout())
	}
}
