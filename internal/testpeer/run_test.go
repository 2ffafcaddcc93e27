package testpeer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunForLoad runs the peers as bench/sipbench does: without a test's
// cleanup, with their logs in files, Kamailio with two workers and no line
// per request, sipp with a scenario of the caller's own and no message
// trace. A call goes through, and Stop removes the directories they made.
func TestRunForLoad(t *testing.T) {
	t.Parallel()
	logs := t.TempDir()
	busy, err := sippScenarios.ReadFile("testdata/sipp/uas_busy.xml")
	if err != nil {
		t.Fatal(err)
	}
	uas, err := RunSipp(SippOptions{Scenario: "load_uas", XML: busy, Args: []string{"-m", "1"}, Quiet: true,
		LogPath: filepath.Join(logs, "sipp.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Stop()
	k, err := RunKamailio(KamailioOptions{
		Users: map[string]string{"u0000": "pw-u0000"}, Routes: map[string]string{"busy": uas.Addr},
		Children: 2, Quiet: true, SharedMemMB: 128, LogPath: filepath.Join(logs, "kamailio.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()

	cfg, err := os.ReadFile(filepath.Join(k.tmpDir, "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "\nchildren=2\n") || strings.Contains(string(cfg), `xlog("L_INFO", "req `) ||
		!strings.Contains(string(cfg), `$sht(auth=>u0000) = "pw-u0000";`) {
		t.Fatalf("kamailio.cfg is not the one asked for:\n%s", cfg)
	}
	reg := StartSipp(t, "register_auth", k.Addr, "-s", "u0000", "-ap", "pw-u0000", "-m", "1")
	uac := StartSipp(t, "uac_call_rejected", k.Addr, "-s", "busy", "-m", "1")
	if err := reg.Wait(wait); err != nil {
		t.Errorf("register: %v", err)
	}
	if err := uac.Wait(wait); err != nil {
		t.Errorf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Errorf("uas: %v", err)
	}
	if strings.Contains(k.Logs(), "req REGISTER") {
		t.Error("Quiet Kamailio logged a line per request")
	}
	if _, err := os.Stat(filepath.Join(uas.dir, "messages.log")); !os.IsNotExist(err) {
		t.Errorf("Quiet sipp wrote a message trace: %v", err)
	}
	for _, f := range []string{"kamailio.log", "sipp.log"} {
		b, err := os.ReadFile(filepath.Join(logs, f))
		if err != nil || !strings.HasPrefix(string(b), "$ /") {
			t.Errorf("%s: %v %.100q", f, err, b)
		}
	}

	kDir, sDir := k.tmpDir, uas.tmpDir
	k.Stop()
	uas.Stop()
	for _, d := range []string{kDir, sDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", d, err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	if _, err := RunKamailio(KamailioOptions{Domain: `bad"domain`}); err == nil || !strings.Contains(err.Error(), "bad domain") {
		t.Errorf("bad domain: %v", err)
	}
	if _, err := RunSipp(SippOptions{Scenario: "nope"}); err == nil || !strings.Contains(err.Error(), `no sipp scenario "nope"`) {
		t.Errorf("unknown scenario: %v", err)
	}
	if _, err := RunSipp(SippOptions{Scenario: "../x", XML: []byte("<scenario/>")}); err == nil {
		t.Error("a scenario name with a path accepted")
	}
	if _, err := RunSipp(SippOptions{Scenario: "uas_busy", Args: []string{"-p", "5060"}}); err == nil || !strings.Contains(err.Error(), "sets -p itself") {
		t.Errorf("-p: %v", err)
	}
}
