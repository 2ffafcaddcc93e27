package main

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// The SIP side: Debian's Kamailio as registrar and proxy, and sipp as the
// far end, run by internal/testpeer as they are for the tests, with the
// options for load: N workers, no log line per request, more memory, and
// sipp without its message trace. Their logs go to the run's directory.

// uasScenario is sipp's far end here: the simplest UAS that completes a
// call, built to run many calls at once (see the file).
//
//go:embed uas.xml
var uasScenario []byte

// domain is the SIP domain the users register in. It does not resolve:
// clients send everything to Kamailio's address (sipOutboundProxy).
const domain = "sipbench.test"

// user is one Kamailio account.
type user struct{ Name, Password string }

// benchUsers are the accounts u0000, u0001… with passwords that differ per
// user, so that a mix-up between sessions fails to register.
func benchUsers(n int) []user {
	width := max(4, len(strconv.Itoa(n-1)))
	out := make([]user, n)
	for i := range out {
		name := fmt.Sprintf("u%0*d", width, i)
		out[i] = user{Name: name, Password: "pw-" + name}
	}
	return out
}

// startKamailio runs Kamailio for users, with the route callee → uas, and
// -kamailio-children workers. It runs in the foreground (its main process
// stays our child; its workers are forked into its process group, which is
// how their CPU is summed). It returns once Kamailio answers an OPTIONS.
func startKamailio(env *runEnv, users []user, callee, uas string) (*testpeer.Kamailio, error) {
	accounts := make(map[string]string, len(users))
	for _, u := range users {
		accounts[u.Name] = u.Password
	}
	dir := filepath.Join(env.Dir, "kamailio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Shared memory for a few thousand transactions in flight and the
	// usrloc of every user.
	return testpeer.RunKamailio(testpeer.KamailioOptions{
		Users: accounts, Routes: map[string]string{callee: uas}, Domain: domain,
		Children: env.cfg.kamChildren, Quiet: true, SharedMemMB: 256, PrivateMemMB: 16,
		Dir: dir, LogPath: filepath.Join(env.Dir, "kamailio.log"),
	})
}

// sipp is the running UAS.
type sipp struct {
	*testpeer.Sipp
	statCSV string // its -trace_stat file
}

// startSipp runs the UAS scenario: no -m (it answers until stopped), -l
// high so that it never refuses a call for having too many open, and its
// counters in a CSV each second (-trace_stat), read at the end.
func startSipp(env *runEnv) (*sipp, error) {
	dir := filepath.Join(env.Dir, "sipp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stat := filepath.Join(dir, "stat.csv")
	s, err := testpeer.RunSipp(testpeer.SippOptions{
		Scenario: "uas", XML: uasScenario, Quiet: true,
		Args: []string{"-l", "100000", "-trace_stat", "-stf", stat, "-fd", "1"},
		Dir:  dir, LogPath: filepath.Join(env.Dir, "sipp.log"),
	})
	if err != nil {
		return nil, err
	}
	return &sipp{Sipp: s, statCSV: stat}, nil
}

// sippCounts are sipp's own cumulative counters.
type sippCounts struct {
	Successful int64 `json:"successful_calls"`
	Failed     int64 `json:"failed_calls"`
	Total      int64 `json:"incoming_calls"`
}

// counts reads the last line of sipp's statistics file: the columns
// SuccessfulCall(C), FailedCall(C) and TotalCallCreated, cumulative.
func (s *sipp) counts() (sippCounts, error) {
	var c sippCounts
	b, err := os.ReadFile(s.statCSV)
	if err != nil {
		return c, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return c, errors.New("sipp statistics: no data line yet")
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	want := map[string]*int64{"SuccessfulCall(C)": &c.Successful, "FailedCall(C)": &c.Failed, "TotalCallCreated": &c.Total}
	found := 0
	for i, h := range head {
		if p, ok := want[strings.TrimSpace(h)]; ok && i < len(last) {
			if v, err := strconv.ParseInt(strings.TrimSpace(last[i]), 10, 64); err == nil {
				*p = v
				found++
			}
		}
	}
	if found < len(want) {
		return c, fmt.Errorf("sipp statistics: %d of %d columns found", found, len(want))
	}
	return c, nil
}
