package proc

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDisturbance(t *testing.T) {
	if d := Disturbance(0.1, 2, "x"); d != "" {
		t.Fatalf("quiet window flagged: %q", d)
	}
	if d := Disturbance(1, 0, ""); d != "" {
		t.Fatalf("empty window flagged: %q", d)
	}
	want := "other processes used 1.2 CPU-s (0.60 cores) during the window (make[12] 0.8s)"
	if d := Disturbance(1.2, 2, "make[12] 0.8s"); d != want {
		t.Fatalf("got %q, want %q", d, want)
	}
}

func TestNameOthers(t *testing.T) {
	if got := NameOthers([]string{"a[1] 1.0s"}, 1.02, 1.0); got != "a[1] 1.0s" {
		t.Fatalf("got %q", got)
	}
	if got := NameOthers([]string{"a[1] 1.0s"}, 1.5, 1.0); got != "a[1] 1.0s, 0.5s in no running process" {
		t.Fatalf("got %q", got)
	}
}

func TestQuietAwait(t *testing.T) {
	var logged []string
	q := Quiet{Limit: time.Hour, Step: time.Millisecond, Who: "other processes",
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	loads := []float64{1, 0.5, 0.1}
	steps := 0
	q.Await(context.Background(), "x", func(sleep func()) float64 {
		sleep()
		steps++
		return loads[steps-1]
	})
	if steps != 3 || len(logged) != 0 {
		t.Fatalf("%d steps, logged %q", steps, logged)
	}

	q.Limit = 5 * time.Millisecond
	q.Await(context.Background(), "busy", func(sleep func()) float64 { sleep(); return 0.5 })
	if len(logged) != 1 || !strings.HasPrefix(logged[0], "(busy) box still busy after 5ms (other processes use 0.50 cores)") {
		t.Fatalf("logged %q", logged)
	}

	q.Limit = 0
	if w := q.Await(context.Background(), "off", func(func()) float64 { t.Fatal("measured"); return 0 }); w != 0 {
		t.Fatalf("waited %v with no limit", w)
	}
}

func TestParseStatPgrp(t *testing.T) {
	stat := "4242 (rtp (engine) x) S 1 4200 4242 0 -1\n"
	if g, err := ParseStatPgrp([]byte(stat)); err != nil || g != 4200 {
		t.Fatalf("got %d, %v", g, err)
	}
	if _, err := ParseStatPgrp([]byte("4242 (x) S 1")); err == nil {
		t.Fatal("short stat accepted")
	}
}

func TestGroupCPUSecondsSelf(t *testing.T) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseStatPgrp(stat)
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
	}
	self := ThreadCPUSeconds(os.Getpid())
	sum, n := GroupCPUSeconds(g)
	if self <= 0 || n < 1 || sum < self {
		t.Fatalf("self %v s, group %v s over %d processes", self, sum, n)
	}
}
