package childproc

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuf records what a child writes through Options.Output.
type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   io.Writer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	return b.w.Write(p)
}

func TestCrash(t *testing.T) {
	log := filepath.Join(t.TempDir(), "child.log")
	if err := os.WriteFile(log, []byte("build output\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := &lockedBuf{}
	p, err := Start("/bin/sh", []string{"-c", `echo "one $X"; echo two >&2; exit 3`}, Options{
		Name: "relay", LogPath: log, Append: true, Env: []string{"X=x"},
		Output: func(w io.Writer) io.Writer { seen.w = w; return seen },
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit")
	}
	if p.Alive() {
		t.Fatal("Alive after Exited")
	}
	want := "build output\n$ X=x /bin/sh -c " + `echo "one $X"; echo two >&2; exit 3` + "\none x\ntwo"
	if got := LogTail(p.LogPath(), 10); got != want {
		t.Fatalf("log = %q, want %q", got, want)
	}
	if got := LogTail(log, 2); got != "one x\ntwo" {
		t.Fatalf("tail 2 = %q", got)
	}
	if got := seen.buf.String(); got != "one x\ntwo\n" {
		t.Fatalf("Output saw %q", got)
	}
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "relay exited: exit status 3") {
		t.Fatalf("Stop of a crashed child = %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop = %v, want nil (reported once)", err)
	}
	if got := LogTail(filepath.Join(t.TempDir(), "none"), 3); !strings.HasPrefix(got, "(no log: ") {
		t.Fatalf("LogTail of a missing file = %q", got)
	}
}

func TestMarkReported(t *testing.T) {
	p, err := Start("/bin/true", nil, Options{Name: "t", LogPath: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if err := p.ExitError(); err.Error() != "t exited with status 0" {
		t.Fatalf("ExitError = %v", err)
	}
	p.MarkReported()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop after MarkReported = %v", err)
	}
}

func TestStop(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(log, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The child leaves a grandchild in its group: Stop must end both.
	p, err := Start("/bin/sh", []string{"-c", "sleep 60 & echo started; wait"}, Options{Name: "s", LogPath: log})
	if err != nil {
		t.Fatal(err)
	}
	p.MarkReported() // alive: no effect
	deadline := time.Now().Add(10 * time.Second)
	for LogTail(log, 1) != "started" {
		if time.Now().After(deadline) {
			t.Fatalf("log = %q", LogTail(log, 5))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !p.Alive() {
		t.Fatal("not alive")
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if p.Alive() {
		t.Fatal("alive after Stop")
	}
	if got := LogTail(log, 5); strings.Contains(got, "old") {
		t.Fatalf("log not truncated: %q", got)
	}
}
