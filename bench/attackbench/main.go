// Command attackbench runs hostile traffic and everyday faults against
// rtcgate, each bounded in count and time, and reports how rtcgate held up:
// whether /ping, an ng ping and a client connection were answered during
// and after the attack, whether a call set up before it relayed RTP with no
// loss throughout, its RSS before, at the peak and after, its descriptors
// before and after, and the bytes it logged. It is the long half of the
// hostile suite (`make soak`); e2e/hostile_*_test.go are the short half.
//
// Each attack gets a fresh rtcgate (built without the race detector) as its
// child, JSON logs at the default level. Liveness is probed every 500 ms
// from 127.0.0.250, an address no attack uses; the call's RTP (50 packets
// a second, 127.0.0.1 both ways) runs from before the attack until after it.
//
//	go run ./bench/attackbench                        # every attack
//	go run ./bench/attackbench -scenarios sip-flood,open-flood -keep-logs
//
// Exit status: 0 every attack ran (targets met or not: the table says), 1
// an attack could not run, 2 bad flags, 3 rtcgate failed to build or start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/bench/internal/table"
)

type config struct {
	scenarios  []string
	settle     time.Duration
	rtcgateSrc string
	keepLogs   bool
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("attackbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", strings.Join(attackNames(), ","), "attacks to run, in this order")
	fs.DurationVar(&cfg.settle, "settle", 90*time.Second, "longest an attack's end waits for rtcgate to give memory (within 10 MiB) and descriptors back before 'after' is read")
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep rtcgate's logs and binary after the run")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	var err error
	if cfg.scenarios, err = benchrun.Scenarios(*scen, attackNames()); err != nil {
		return nil, err
	}
	if cfg.settle < 0 || cfg.settle > 10*time.Minute {
		return nil, errors.New("-settle must be in 0..10m")
	}
	return cfg, nil
}

func main() { benchrun.Main("attackbench", parseFlags, run) }

// result is one attack's figures.
type result struct {
	Attack      string  `json:"attack"`
	Sent        string  `json:"sent"`
	Probes      int     `json:"probes"`
	ProbesOK    int     `json:"probes_ok"`
	ProbeErrors string  `json:"probe_errors,omitempty"`
	RSSBefore   float64 `json:"rss_before_mib"`
	RSSPeak     float64 `json:"rss_peak_mib"`
	RSSAfter    float64 `json:"rss_after_mib"`
	FDsBefore   int     `json:"fds_before"`
	FDsAfter    int     `json:"fds_after"`
	LogBytes    int64   `json:"log_bytes"`
	RTPSent     int     `json:"rtp_sent"`
	RTPLost     int     `json:"rtp_lost"`
	Exited      bool    `json:"exited"`
}

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	started := time.Now()
	env := &benchrun.Env{Name: "attackbench", Stderr: stderr, KeepLogs: cfg.keepLogs}
	var notes benchrun.Notes
	if err := env.MakeDir(); err != nil {
		env.FailStart(&notes, err)
		return 3
	}
	defer env.Cleanup()
	bin, err := rtcgatechild.Build(ctx, cfg.rtcgateSrc, env.Dir)
	if err != nil {
		env.FailStart(&notes, err)
		return 3
	}
	var results []result
	code := 0
	for _, name := range cfg.scenarios {
		a := attackByName(name)
		env.Logf("(%s) %s", a.name, a.what)
		r, err := runAttack(ctx, env, bin, cfg, a)
		if err != nil {
			env.Fail(&notes, a.name, err)
			if strings.HasPrefix(err.Error(), "rtcgate did not start") {
				code = 3
			} else if code == 0 {
				code = 1
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, r)
	}
	var rows []table.Row
	for _, r := range results {
		rows = append(rows, rowsOf(r)...)
	}
	benchrun.Report(stdout, "attackbench", started, fmt.Sprintf("settle=%v", cfg.settle), table.Render(rows), notes,
		map[string]any{"attacks": results, "notes": notes})
	return code
}

// rowsOf is an attack's part of the table, with the targets.
func rowsOf(r result) []table.Row {
	live := fmt.Sprintf("%d/%d probes", r.ProbesOK, r.Probes)
	if r.ProbeErrors != "" {
		live += " (" + r.ProbeErrors + ")"
	}
	rss := fmt.Sprintf("%.0f → %.0f → %.0f MiB", r.RSSBefore, r.RSSPeak, r.RSSAfter)
	return []table.Row{
		{r.Attack, "sent", r.Sent, "", ""},
		{"", "liveness during and after", live, "every probe answered", table.Met(r.ProbesOK == r.Probes && !r.Exited)},
		{"", "RSS before → peak → after", rss, "peak < 512, after ≤ before + 50", table.Met(r.RSSPeak < 512 && r.RSSAfter <= r.RSSBefore+50)},
		{"", "descriptors before → after", fmt.Sprintf("%d → %d", r.FDsBefore, r.FDsAfter), "back to before (±10)", table.Met(r.FDsAfter <= r.FDsBefore+10)},
		{"", "log", fmt.Sprintf("%d bytes", r.LogBytes), "< 5 MB", table.Met(r.LogBytes < 5<<20)},
		{"", "RTP of a call set up before", fmt.Sprintf("%d sent, %d lost", r.RTPSent, r.RTPLost), "0 lost", table.Met(r.RTPSent > 0 && r.RTPLost == 0)},
	}
}

// runAttack starts rtcgate, sets up the call, runs the attack with the
// probes and the RSS sampler going, and reads the figures.
func runAttack(ctx context.Context, env *benchrun.Env, bin string, cfg *config, a attack) (result, error) {
	r := result{Attack: a.name}
	logPath := filepath.Join(env.Dir, a.name+".log")
	args := append(rtcgatechild.ServeArgs("", "127.0.0.1:0"), "--listen-sip", "127.0.0.1:0",
		"--port-min", "9000", "--port-max", "9899")
	args = append(args, a.args...)
	child, err := rtcgatechild.Start(ctx, rtcgatechild.Options{Bin: bin, Args: args, LogPath: logPath,
		Want: []string{"listen-http", "listen-ng", "listen-client", "listen-sip"}, ReadyTimeout: 20 * time.Second, Logf: env.Logf})
	if err != nil {
		return r, err
	}
	defer child.Stop()
	t := &target{child: child, pid: child.Pid()}
	if a.nofile > 0 {
		if err := prlimit(t.pid, a.nofile); err != nil {
			return r, err
		}
	}
	call, err := t.newCall(ctx)
	if err != nil {
		return r, fmt.Errorf("setting up the call: %w", err)
	}
	defer call.close()
	t.settleBaseline(ctx)
	r.RSSBefore, r.FDsBefore = rssMiB(t.pid), fdCount(t.pid)
	logBefore := fileSize(logPath)

	probes := startProbes(ctx, t)
	peak := startRSSSampler(ctx, t.pid)
	r.Sent, err = a.run(ctx, t)
	if err != nil {
		probes.stop()
		peak.stop()
		return r, err
	}
	// After: the attacker is gone; rtcgate gets -settle to give back.
	afterProbes := time.After(3 * time.Second)
	select {
	case <-afterProbes:
	case <-ctx.Done():
	}
	t.waitSettled(ctx, cfg.settle, r.FDsBefore, r.RSSBefore)
	probes.stop()
	r.RSSPeak = peak.stop()
	r.RSSAfter, r.FDsAfter = rssMiB(t.pid), fdCount(t.pid)
	r.LogBytes = fileSize(logPath) - logBefore
	r.Probes, r.ProbesOK, r.ProbeErrors = probes.counts()
	r.RTPSent, r.RTPLost = call.stop()
	r.Exited = !child.Alive()
	return r, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
