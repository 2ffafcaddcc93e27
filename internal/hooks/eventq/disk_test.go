package eventq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func openDisk(t testing.TB, dir string, maxBytes int64) *Disk {
	t.Helper()
	d, err := OpenDisk(dir, maxBytes, time.Millisecond)
	if err != nil {
		t.Fatalf("OpenDisk: %v", err)
	}
	return d
}

func bodies(t *testing.T, d *Disk) []string {
	t.Helper()
	p, err := d.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range p {
		out = append(out, e.Key+":"+string(e.Body))
	}
	return out
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	slices.Sort(m)
	return m
}

// lastWritten is the newest segment holding records (the active one of a
// reopened store holds only a header).
func lastWritten(t *testing.T, dir string) string {
	t.Helper()
	fs := segFiles(t, dir)
	for i := len(fs) - 1; i >= 0; i-- {
		if st, _ := os.Stat(fs[i]); st.Size() > headerSize {
			return fs[i]
		}
	}
	t.Fatal("no segment with records")
	return ""
}

func TestDiskRestartResumesInOrder(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 1<<20)
	// First life: the backend is down; every attempt fails.
	started := make(chan struct{}, 100)
	down := func(ctx context.Context, e *Event) (bool, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		return true, errDown
	}
	q, err := New(Options{Store: d, Send: down, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := q.Enqueue("s"+strconv.Itoa(i%3), "app", "ConnectionStatusEvent", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	closeQ(t, q)
	// Ack a few directly, as if delivered just before the crash.
	for _, id := range []uint64{1, 2, 3} {
		if err := d.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Second life.
	d = openDisk(t, dir, 1<<20)
	if got := bodies(t, d); len(got) != 27 || got[0] != "s0:3" || got[26] != "s2:29" {
		t.Fatalf("pending after restart: %v", got)
	}
	rec := newRecorder(nil)
	q, err = New(Options{Store: d, Send: rec.send, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue("s0", "app", "m", []byte("30")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "resumed delivery", func() bool { return rec.count.Load() == 28 })
	waitFor(t, time.Second, "depth 0", func() bool { return q.Depth() == 0 })
	closeQ(t, q)
	for k := range 3 {
		var want []string
		for i := 3; i <= 30; i++ {
			if i%3 == k {
				want = append(want, strconv.Itoa(i))
			}
		}
		if got := rec.got["s"+strconv.Itoa(k)]; !slices.Equal(got, want) {
			t.Errorf("key %d: got %v want %v", k, got, want)
		}
	}
	d.Close()

	// Third life: nothing comes back, IDs keep increasing.
	d = openDisk(t, dir, 1<<20)
	defer d.Close()
	if got := bodies(t, d); len(got) != 0 {
		t.Fatalf("acked events came back: %v", got)
	}
	e := &Event{Key: "k"}
	if err := d.Append(e); err != nil || e.ID != 32 {
		t.Errorf("next id %d err %v", e.ID, err)
	}
}

func TestDiskCorruptTail(t *testing.T) {
	for _, mode := range []string{"truncate", "flip", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			d := openDisk(t, dir, 1<<20)
			for i := range 5 {
				if err := d.Append(&Event{Key: "k", Body: []byte(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}
			d.Close()
			f := lastWritten(t, dir)
			b, _ := os.ReadFile(f)
			switch mode {
			case "truncate":
				b = b[:len(b)-3]
			case "flip":
				b[len(b)-2] ^= 0x40
			case "garbage":
				b = append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3)
			}
			os.WriteFile(f, b, 0o640)
			d = openDisk(t, dir, 1<<20)
			want := []string{"k:0", "k:1", "k:2", "k:3"}
			if mode == "garbage" {
				want = append(want, "k:4")
			}
			if got := bodies(t, d); !slices.Equal(got, want) {
				t.Fatalf("got %v", got)
			}
			if d.Truncated() == 0 {
				t.Error("truncation not reported")
			}
			if err := d.Append(&Event{Key: "k", Body: []byte("new")}); err != nil {
				t.Fatal(err)
			}
			d.Close()
			d = openDisk(t, dir, 1<<20)
			defer d.Close()
			if got := bodies(t, d); !slices.Equal(got, append(want, "k:new")) || d.Truncated() != 0 {
				t.Fatalf("after repair: %v truncated %d", got, d.Truncated())
			}
		})
	}
}

func TestDiskBadMagicIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, segName(1)), []byte("this is not a segment file"), 0o640)
	if _, err := OpenDisk(dir, 1<<20, time.Millisecond); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v", err)
	}
}

func TestDiskFull(t *testing.T) {
	d := openDisk(t, t.TempDir(), 4096)
	defer d.Close()
	body := make([]byte, 100)
	var ids []uint64
	for {
		e := &Event{Key: "k", Body: body}
		err := d.Append(e)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		if len(ids) > 100 {
			t.Fatal("bound not enforced")
		}
	}
	if d.PendingBytes() > 4096 || len(ids) < 30 {
		t.Fatalf("pending %d bytes in %d events", d.PendingBytes(), len(ids))
	}
	if err := d.Append(&Event{Body: make([]byte, 5000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge: %v", err)
	}
	d.Ack(ids[0])
	if err := d.Append(&Event{Key: "k", Body: body}); err != nil {
		t.Errorf("after ack: %v", err)
	}
}

func TestDiskGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir, 8<<20, 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 40, 25
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			last := uint64(0)
			for i := range each {
				e := &Event{Key: "w" + strconv.Itoa(w), Body: []byte(strconv.Itoa(i))}
				if err := d.Append(e); err != nil {
					t.Error(err)
					return
				}
				if e.ID <= last {
					t.Errorf("ids not increasing for one writer: %d after %d", e.ID, last)
				}
				last = e.ID
				mu.Lock()
				seen[e.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d.mu.Lock()
	syncs := d.syncs
	d.mu.Unlock()
	if len(seen) != writers*each {
		t.Fatalf("%d distinct ids", len(seen))
	}
	if syncs >= writers*each/2 {
		t.Errorf("%d fsyncs for %d appends: not batched", syncs, writers*each)
	}
	d.Close()
	d = openDisk(t, dir, 8<<20)
	defer d.Close()
	if n := len(bodies(t, d)); n != writers*each {
		t.Fatalf("%d after reopen", n)
	}
}

func TestDiskCompaction(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, dir, 16<<10) // 4 KiB segments
	stuck := &Event{Key: "stuck", Body: []byte("s")}
	if err := d.Append(stuck); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 200)
	for i := range 500 {
		e := &Event{Key: "k", Body: body}
		if err := d.Append(e); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if err := d.Ack(e.ID); err != nil {
			t.Fatal(err)
		}
		if n := len(segFiles(t, dir)); n > 4 {
			t.Fatalf("after %d events: %d segment files", i, n)
		}
	}
	keep := &Event{Key: "k", Body: []byte("last")}
	d.Append(keep)
	d.Close()
	d = openDisk(t, dir, 16<<10)
	defer d.Close()
	if got := bodies(t, d); !slices.Equal(got, []string{"stuck:s", "k:last"}) {
		t.Fatalf("after compaction and restart: %v", got)
	}
	p, _ := d.Pending()
	if p[0].ID != stuck.ID || p[1].ID != keep.ID {
		t.Errorf("ids changed by relocation: %d %d", p[0].ID, p[1].ID)
	}
}

func FuzzDiskOpen(f *testing.F) {
	// Seeds: a real segment, a torn one, garbage.
	dir := f.TempDir()
	d := openDisk(f, dir, 1<<20)
	for i := range 3 {
		e := &Event{Key: "k", App: "a", Method: "m", Body: []byte(strconv.Itoa(i))}
		d.Append(e)
		if i == 1 {
			d.Ack(e.ID)
		}
	}
	d.Close()
	fs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	for _, p := range fs {
		b, _ := os.ReadFile(p)
		f.Add(b)
		if len(b) > 20 {
			f.Add(b[:len(b)-5])
		}
	}
	f.Add([]byte(segMagic))
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDisk(dir, 1<<20, 0)
		if err != nil {
			return
		}
		p, err := d.Pending()
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		for _, e := range p {
			d.Ack(e.ID)
		}
		if err := d.Append(&Event{Key: "x"}); err != nil {
			t.Fatalf("Append after open: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		d, err = OpenDisk(dir, 1<<20, 0)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if p, _ := d.Pending(); len(p) != 1 || p[0].Key != "x" {
			t.Fatalf("reopen pending %v", p)
		}
		d.Close()
	})
}
