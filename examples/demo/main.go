// Command demo runs what a newcomer needs to try rtcgate in a minute (make
// demo): rtcgate with an app, DemoApp (key demoKey), whose backend is the
// sample backend (examples/backend, which logs every hook); and, when
// Kamailio and sipp are installed, a local Kamailio registrar (alice, bob
// and carol at rtcgate.test) and a sipp UAS at "echo" that answers every
// call and echoes its audio. It prints the URL of rtcgate's phone page
// with the fields filled in (the password is typed), the output of
// rtcgate and the backend follows, and Ctrl-C stops everything.
//
//	go run ./examples/demo [-rtcgate bin/rtcgate] [-backend bin/backend] [-- rtcgate serve flags]
//
// Kamailio, sipp and their files live in a temporary folder (-dir to keep
// them elsewhere), removed at exit.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

const (
	appName = "DemoApp"
	appKey  = "demoKey"
	user    = "alice"
	callee  = "echo"
	startBy = 30 * time.Second // each process, to say it is up
)

func main() {
	rtcgateBin := flag.String("rtcgate", "bin/rtcgate", "the rtcgate binary (make build)")
	backendBin := flag.String("backend", "bin/backend", "the sample backend's binary (go build -o bin/backend ./examples/backend)")
	backendAt := flag.String("backend-listen", "127.0.0.1:9091", "where the sample backend listens")
	dirFlag := flag.String("dir", "", "folder for the configuration, Kamailio's and sipp's files and logs (default: a temporary one, removed at exit)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: demo [flags] [-- rtcgate serve flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rtcgateBin, *backendBin, *backendAt, *dirFlag, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rtcgateBin, backendBin, backendAt, dir string, serveArgs []string) (err error) {
	for _, b := range []string{rtcgateBin, backendBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%v: build it first (make demo does)", err)
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rtcgate-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out := &printer{w: os.Stdout}

	// The SIP side, when it is installed: a registrar and an echo.
	var k *testpeer.Kamailio
	var sipNote string
	if haveSIP() {
		for _, sub := range []string{"sipp", "kamailio"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return err
			}
		}
		uas, err := testpeer.RunSipp(testpeer.SippOptions{Scenario: "uas_echo", Dir: filepath.Join(dir, "sipp"),
			LogPath: filepath.Join(dir, "sipp.log"), Quiet: true})
		if err != nil {
			return fmt.Errorf("sipp: %v", err)
		}
		defer uas.Stop()
		k, err = testpeer.RunKamailio(testpeer.KamailioOptions{Routes: map[string]string{callee: uas.Addr},
			Dir: filepath.Join(dir, "kamailio"), LogPath: filepath.Join(dir, "kamailio.log")})
		if err != nil {
			return fmt.Errorf("kamailio: %v", err)
		}
		defer k.Stop()
	} else {
		sipNote = "Kamailio and sipp are not installed, so there is nothing to call: " +
			"sudo apt-get install kamailio sip-tester, then make demo again."
	}

	backend, err := startChild(out, "backend", backendBin, []string{"-listen", backendAt}, regexp.MustCompile(`sample backend on http://(\S+)/`))
	if err != nil {
		return err
	}
	defer backend.stop(5 * time.Second)
	var backendAddr string
	if backendAddr, err = backend.ready(ctx); err != nil {
		return err
	}

	cfg := filepath.Join(dir, "rtcgate.yaml")
	yaml := fmt.Sprintf("# written by examples/demo\napps:\n  - name: %s\n    key: %s\n    url: http://%s/%s\n    methods: [%s]\n",
		appName, appKey, backendAddr, appName, strings.Join(hooks.Methods, ", "))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return err
	}
	// The SIP gateway on any free port: a SIP server of the machine's own
	// may hold 5060, and Kamailio learns the port from REGISTER.
	args := append([]string{"serve", "--config", cfg, "--listen-sip", "127.0.0.1:0"}, serveArgs...)
	rtcgate, err := startChild(out, "rtcgate", rtcgateBin, args, regexp.MustCompile(`msg="?rtcgate started`))
	if err != nil {
		return err
	}
	defer rtcgate.stop(15 * time.Second) // first: its sessions end, their last hooks reach the backend
	if _, err := rtcgate.ready(ctx); err != nil {
		return err
	}
	clientAddr := rtcgate.listening("listen-client")
	if clientAddr == "" {
		return errors.New("rtcgate has no listen-client: the phone page is served there")
	}

	// The page fills its fields from the query (never a password).
	q := [][2]string{{"server", "ws://" + clientAddr}, {"appKey", appKey}}
	var lines []string
	if k != nil {
		host, port, _ := net.SplitHostPort(k.Addr)
		q = append(q, [2]string{"sipLogin", user}, [2]string{"sipDomain", k.Domain}, [2]string{"sipProxy", host},
			[2]string{"sipPort", port}, [2]string{"callee", callee})
		lines = []string{
			"Then   type the password " + k.Users[user] + ", click Connect, then Call: " + callee + " answers and sends your voice back.",
			"       Message yourself (leave To empty); call bob from a second tab (login bob, password " + k.Users["bob"] + ").",
			fmt.Sprintf("SIP    Kamailio at %s, domain %s, users %s", k.Addr, k.Domain, users(k.Users)),
		}
	} else {
		lines = []string{"Then   click Connect: a session with " + appName + "; send data and watch the backend's log below.", "Calls  " + sipNote}
	}
	out.banner(append([]string{
		"rtcgate demo: rtcgate, the sample backend" + map[bool]string{true: ", Kamailio and a sipp echo", false: ""}[k != nil] + " are up. Ctrl-C stops everything.",
		"",
		"Open   http://" + clientAddr + "/?" + query(q),
	}, append(lines,
		"Hooks  every hook rtcgate sends "+appName+" shows below as \"backend │ …\"",
		"CLI    "+rtcgateBin+" ctl list totals    ("+rtcgateBin+" ctl help: the rest)",
		"Files  "+dir,
	)...))

	select {
	case <-ctx.Done():
		out.line("demo", "stopping")
		return nil
	case <-rtcgate.done:
		return fmt.Errorf("rtcgate exited: %v", rtcgate.err)
	case <-backend.done:
		return fmt.Errorf("the backend exited: %v", backend.err)
	}
}

// query is a URL query in the order given, each value escaped only
// where it must be (ws://host:port stays readable).
func query(kv [][2]string) string {
	var parts []string
	for _, p := range kv {
		v := p[1]
		if !plain.MatchString(v) {
			v = url.QueryEscape(v)
		}
		parts = append(parts, p[0]+"="+v)
	}
	return strings.Join(parts, "&")
}

var plain = regexp.MustCompile(`^[A-Za-z0-9._~:/\[\]-]*$`)

// haveSIP reports whether Kamailio and sipp are installed.
func haveSIP() bool {
	_, errK := exec.LookPath("kamailio")
	if _, err := os.Stat("/usr/sbin/kamailio"); err == nil {
		errK = nil
	}
	_, errS := exec.LookPath("sipp")
	return errK == nil && errS == nil
}

func users(m map[string]string) string {
	var out []string
	for _, u := range []string{"alice", "bob", "carol"} {
		if pw, ok := m[u]; ok {
			out = append(out, u+"/"+pw)
		}
	}
	return strings.Join(out, ", ")
}

// printer writes whole lines from several processes.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) line(name, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%-7s │ %s\n", name, s)
}

func (p *printer) banner(lines []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rule := strings.Repeat("─", 78)
	fmt.Fprintln(p.w, rule)
	for _, l := range lines {
		fmt.Fprintln(p.w, "  "+l)
	}
	fmt.Fprintln(p.w, rule)
}

// child is one process of the demo, its output prefixed with its name.
type child struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	up    chan string // the first match of the readiness pattern
	mu    sync.Mutex
	addrs map[string]string // rtcgate's "listening" lines: key → address
	tail  []string          // its last lines, for an error
}

var listeningLine = regexp.MustCompile(`msg=listening .*key=(\S+) addr=(\S+)`)

func startChild(out *printer, name, bin string, args []string, ready *regexp.Regexp) (*child, error) {
	c := &child{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{}), up: make(chan string, 1), addrs: map[string]string{}}
	// Its own process group: Ctrl-C reaches the demo, which stops each in
	// turn; and it goes if the demo dies.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			out.line(name, l)
			c.mu.Lock()
			if m := listeningLine.FindStringSubmatch(l); m != nil {
				c.addrs[m[1]] = m[2]
			}
			c.tail = append(c.tail, l)
			if len(c.tail) > 20 {
				c.tail = c.tail[1:]
			}
			c.mu.Unlock()
			if m := ready.FindStringSubmatch(l); m != nil {
				select {
				case c.up <- m[len(m)-1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		c.err = c.cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	return c, nil
}

// ready waits for the child's readiness line and returns its match.
func (c *child) ready(ctx context.Context) (string, error) {
	select {
	case s := <-c.up:
		return s, nil
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return "", fmt.Errorf("%s exited (%v) before it was up:\n%s", c.name, c.err, strings.Join(c.tail, "\n"))
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(startBy):
		return "", fmt.Errorf("%s was not up within %s", c.name, startBy)
	}
}

func (c *child) listening(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[key]
}

// stop sends SIGTERM and waits up to grace, then kills.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}
