package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// Redis is a running redis-server on a loopback port, for the cluster's
// tests: no persistence unless asked, no protected mode.
type Redis struct {
	Addr string // "127.0.0.1:PORT"
	URL  string // "redis://127.0.0.1:PORT/0", for cluster-redis

	p   *proc
	dir string
}

// RedisOptions configure RunRedis.
type RedisOptions struct {
	// Dir holds the server's files (its append-only file with AOF); "": a
	// new temporary directory.
	Dir string
	// Port is the port to listen on; 0 picks a free one below the
	// ephemeral range. A restarted server takes its predecessor's Port.
	Port int
	// AOF turns on the append-only file, so that a restart in the same Dir
	// keeps the data: fsync'd on every write (appendfsync always), since
	// with everysec a loaded machine may postpone the write past a kill
	// and the restarted server count event numbers again.
	AOF bool
}

// StartRedis runs redis-server and returns once it answers PING; it is
// stopped at cleanup, and its log goes to t.Log when the test failed.
func StartRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = FreeUDPPort(t) // free for TCP too
	}
	r, err := RunRedis(o)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("redis-server %s log:\n%s", r.Addr, lastLines(r.p.out.String(), 30))
		}
	})
	return r
}

// RunRedis is StartRedis without a test; the caller calls Stop.
func RunRedis(o RedisOptions) (*Redis, error) {
	bin, err := findBin("redis-server", "/usr/bin/redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	if o.Port == 0 {
		if o.Port, err = freeSIPPort(); err != nil {
			return nil, err
		}
	}
	aof, fsync := "no", "everysec"
	if o.AOF {
		aof, fsync = "yes", "always"
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port))
	p, err := startProc(bin, o.Dir, "", "--bind", "127.0.0.1", "--port", strconv.Itoa(o.Port),
		"--save", "", "--appendonly", aof, "--appendfsync", fsync, "--dir", o.Dir, "--protected-mode", "no", "--daemonize", "no",
		"--logfile", "")
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: addr, URL: "redis://" + addr + "/0", p: p, dir: o.Dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := redisPing(addr); err == nil {
			return r, nil
		} else if p.done() || time.Now().After(deadline) {
			p.stop(time.Second)
			return nil, failedStart("redis-server did not start", err, p, "")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPing sends PING and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop ends the server (SIGTERM, then SIGKILL).
func (r *Redis) Stop() { r.p.stop(5 * time.Second) }

// Kill ends the server at once, as a crash would.
func (r *Redis) Kill() { r.p.stop(0) }

// Logs is the server's output.
func (r *Redis) Logs() string { return r.p.out.String() }

// Pid is the server's process id.
func (r *Redis) Pid() int { return r.p.cmd.Process.Pid }
