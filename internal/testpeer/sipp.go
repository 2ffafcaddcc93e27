package testpeer

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/sipp/*.xml
var sippScenarios embed.FS

// sippDefaults are options a scenario needs, each added unless the
// caller's args have that option.
var sippDefaults = map[string][][]string{
	"uas_echo": {{"-rtp_echo"}},
	"uac_call": {{"-d", "500"}}, // the pause between ACK and BYE
}

// Scenarios lists the embedded sipp scenario names.
func Scenarios() []string {
	var names []string
	ents, _ := fs.ReadDir(sippScenarios, "testdata/sipp")
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".xml"))
	}
	return names
}

// Sipp is one running sipp.
type Sipp struct {
	Addr      string // 127.0.0.1:PORT where this sipp listens (UDP; TCP with -t t1)
	MediaPort int    // its RTP port ([media_port]; echoed with -rtp_echo)

	scenario string
	dir      string
	tmpDir   string // removed by Stop: the Dir RunSipp made
	p        *proc
}

// SippOptions configure RunSipp.
type SippOptions struct {
	// Scenario names an embedded scenario (see Scenarios); with XML set,
	// it only names that one (its file, and errors).
	Scenario string
	// XML is a scenario of the caller's own, such as a UAS built for load.
	XML []byte
	// Args are appended to what RunSipp sets, as StartSipp's args are.
	Args []string
	// Dir holds the scenario file and sipp's trace files; "": a new
	// temporary directory, which Stop removes (StartSipp: t.TempDir).
	Dir string
	// LogPath, when set, is a file that gets sipp's output too, for a
	// program to keep; an error then quotes its last lines, not all of it.
	LogPath string
	// Quiet leaves out the message and screen traces, which tests read
	// (Logs) but which under load would be much of sipp's work and grow
	// without bound.
	Quiet bool
}

// StartSipp runs sipp with the embedded scenario (see Scenarios) on a free
// loopback port and returns once that port is bound. args are appended to
// what StartSipp sets (-sf, -i 127.0.0.1, -p, -mp, -nostdin, the trace
// files): a UAC scenario needs the remote "host:port", and "-m", "1" makes
// sipp exit after one call. "-key", "domain", D sets [domain], the R-URI
// and From host of the UAC scenarios (default DefaultDomain). Stopped at
// cleanup; its logs go to t.Log when the test failed.
func StartSipp(t testing.TB, scenario string, args ...string) *Sipp {
	t.Helper()
	s, err := RunSipp(SippOptions{Scenario: scenario, Args: args, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sipp %s (%s) logs:\n%s", scenario, s.Addr, s.Logs())
		}
	})
	return s
}

// RunSipp is StartSipp without a test: it returns an error instead of
// failing one, and the caller calls Stop.
func RunSipp(o SippOptions) (*Sipp, error) {
	bin, err := findBin("sipp", "/usr/bin/sipp", "sip-tester")
	if err != nil {
		return nil, err
	}
	scenario, xml, args := o.Scenario, o.XML, o.Args
	if xml == nil {
		if xml, err = sippScenarios.ReadFile("testdata/sipp/" + scenario + ".xml"); err != nil {
			return nil, fmt.Errorf("no sipp scenario %q (have %v)", scenario, Scenarios())
		}
	} else if !cfgToken.MatchString(scenario) {
		return nil, fmt.Errorf("sipp scenario name %q: want a file name", scenario)
	}
	for _, a := range args {
		if slices.Contains([]string{"-sf", "-sn", "-i", "-p", "-mp", "-bg"}, a) {
			return nil, fmt.Errorf("StartSipp sets %s itself", a)
		}
	}
	s := &Sipp{scenario: scenario, dir: o.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "testpeer-sipp-"); err != nil {
			return nil, err
		}
		s.tmpDir = s.dir
	}
	fail := func(err error) (*Sipp, error) {
		s.Stop()
		return nil, err
	}
	sf := filepath.Join(s.dir, scenario+".xml")
	if err := os.WriteFile(sf, xml, 0o644); err != nil {
		return fail(err)
	}
	var lastErr error
	// A port picked free may be taken before sipp binds it (exit 254):
	// try again with others. 255 is a fatal error (arguments, scenario).
	for range 3 {
		// A new try's traces start empty, as a test's Logs expects.
		for _, f := range []string{"errors.log", "messages.log", "screen.log"} {
			os.Remove(filepath.Join(s.dir, f))
		}
		port, err := freeSIPPort()
		if err != nil {
			return fail(err)
		}
		media, err := freeMediaPort()
		if err != nil {
			return fail(err)
		}
		s.Addr, s.MediaPort = fmt.Sprintf("127.0.0.1:%d", port), media
		full := []string{
			"-sf", sf, "-i", "127.0.0.1", "-bind_local",
			"-p", strconv.Itoa(port), "-mp", strconv.Itoa(media),
			"-nostdin",
			"-trace_err", "-error_file", filepath.Join(s.dir, "errors.log"),
		}
		if !o.Quiet {
			full = append(full,
				"-trace_msg", "-message_file", filepath.Join(s.dir, "messages.log"),
				"-trace_screen", "-screen_file", filepath.Join(s.dir, "screen.log"))
		}
		if o.XML == nil {
			for _, opt := range sippDefaults[scenario] {
				if !slices.Contains(args, opt[0]) {
					full = append(full, opt...)
				}
			}
		}
		if !hasKey(args, "domain") {
			full = append(full, "-key", "domain", DefaultDomain)
		}
		full = append(full, args...)
		s.p, err = startProc(bin, s.dir, o.LogPath, full...)
		if err != nil {
			return fail(fmt.Errorf("starting sipp: %v", err))
		}
		lastErr = waitBound(s.p, 10*time.Second, sippTCP(args), port, media)
		if lastErr == nil || !s.p.done() {
			break
		}
		if code := s.p.exitCode(); code == 254 {
			continue
		} else if code != 255 {
			// It ran and exited already (a quick UAC): Wait tells how.
			lastErr = nil
		}
		break
	}
	if lastErr != nil {
		if o.LogPath != "" {
			return fail(failedStart(fmt.Sprintf("sipp %s did not start", scenario), lastErr, s.p, o.LogPath))
		}
		logs := s.Logs()
		s.Stop()
		return nil, fmt.Errorf("sipp %s did not start: %v\n%s", scenario, lastErr, logs)
	}
	return s, nil
}

// Wait waits for sipp to exit. It returns nil when sipp exited 0 (every
// call succeeded); otherwise an error with the exit code and sipp's error
// log and final screen. After timeout it kills sipp and says so.
func (s *Sipp) Wait(timeout time.Duration) error {
	select {
	case <-s.p.exited:
	case <-time.After(timeout):
		s.p.stop(2 * time.Second)
		return fmt.Errorf("sipp %s still running after %v, killed\n%s", s.scenario, timeout, s.report())
	}
	if s.p.killed.Load() {
		return fmt.Errorf("sipp %s was stopped before it exited\n%s", s.scenario, s.report())
	}
	code := s.p.exitCode()
	if code == 0 {
		return nil
	}
	return fmt.Errorf("sipp %s exited %d (%s)\n%s", s.scenario, code, sippExit(code), s.report())
}

// Stop ends sipp: SIGTERM, then SIGKILL after a second. It removes the
// directory RunSipp made, and may be called more than once.
func (s *Sipp) Stop() {
	if s.p != nil {
		s.p.stop(time.Second)
	}
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// Pid is sipp's process id.
func (s *Sipp) Pid() int { return s.p.cmd.Process.Pid }

// Logs is sipp's output and its trace files (errors, messages, screen).
func (s *Sipp) Logs() string {
	var b strings.Builder
	b.WriteString("--- output\n")
	b.WriteString(s.p.out.String())
	for _, f := range []string{"errors.log", "messages.log", "screen.log"} {
		if data, err := os.ReadFile(filepath.Join(s.dir, f)); err == nil {
			fmt.Fprintf(&b, "\n--- %s\n%s", f, data)
		}
	}
	return b.String()
}

func (s *Sipp) report() string {
	var b strings.Builder
	for _, f := range []string{"errors.log", "screen.log"} {
		if data, err := os.ReadFile(filepath.Join(s.dir, f)); err == nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", f, data)
		}
	}
	if b.Len() == 0 {
		out := s.p.out.String()
		b.WriteString(out[max(0, len(out)-4000):])
	}
	return b.String()
}

// sippTCP tells whether args choose a TCP or TLS transport (-t t1, tn, l1, ln).
func sippTCP(args []string) bool {
	i := slices.Index(args, "-t")
	return i >= 0 && i+1 < len(args) && (strings.HasPrefix(args[i+1], "t") || strings.HasPrefix(args[i+1], "l"))
}

func hasKey(args []string, key string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-key" && args[i+1] == key {
			return true
		}
	}
	return false
}

func sippExit(code int) string {
	switch code {
	case 1:
		return "at least one call failed"
	case 97:
		return "exit on internal command"
	case 99:
		return "no call processed"
	case 254:
		return "could not bind a socket"
	case 255:
		return "fatal error"
	case -1:
		return "killed by a signal"
	}
	return "unknown"
}

// waitBound polls /proc/net until sipp's SIP port (UDP, or TCP listening
// with -t t1/tn/l1/ln) and its RTP port (UDP) are bound, which is less
// intrusive than binding a port to test it.
func waitBound(p *proc, limit time.Duration, sipTCP bool, sipPort, mediaPort int) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if p.done() {
			return fmt.Errorf("exited with %d (%s)", p.exitCode(), sippExit(p.exitCode()))
		}
		udp, err := boundPorts("/proc/net/udp", "")
		if err != nil {
			return err
		}
		sip := udp
		if sipTCP {
			if sip, err = boundPorts("/proc/net/tcp", "0A"); err != nil {
				return err
			}
		}
		if sip[sipPort] && udp[mediaPort] {
			return nil
		}
		<-tick.C
	}
	return fmt.Errorf("SIP port %d and RTP port %d not both bound within %v", sipPort, mediaPort, limit)
}

// boundPorts are the local ports on 127.0.0.1 or 0.0.0.0 in a /proc/net
// table, only those in state when it is not "" (0A: TCP LISTEN).
func boundPorts(table, state string) (map[int]bool, error) {
	data, err := os.ReadFile(table)
	if err != nil {
		return nil, err
	}
	ports := map[int]bool{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line) // sl local_address rem_address st ...
		if len(f) < 4 || (state != "" && f[3] != state) {
			continue
		}
		ip, hexPort, ok := strings.Cut(f[1], ":")
		if !ok || (ip != "0100007F" && ip != "00000000") {
			continue
		}
		if port, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			ports[int(port)] = true
		}
	}
	return ports, nil
}
