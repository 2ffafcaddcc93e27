// Command rtcgate is the rtcgate binary: `serve` runs the gateway, `ctl`
// runs a CLI command on a running one, `ng` speaks the ng protocol to one,
// `version` prints the version. This file only wires packages together.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/daemon"
	"github.com/rtcgate/rtcgate/internal/ng"
	"github.com/rtcgate/rtcgate/internal/version"
)

const usage = `rtcgate — SIP calling and messaging for web apps, with an rtpengine-compatible media relay

Usage:
  rtcgate serve [--config FILE] [--KEY VALUE ...]   run the gateway
  rtcgate ctl [--url URL] [--config FILE] COMMAND ...
                                                    run a CLI command (e.g. list totals)
  rtcgate ng [--url URL] [--json] [--sdp-file F] COMMAND [KEY=VALUE ...]
                                                    send an ng command (e.g. ping, query call-id=X)
  rtcgate version                                   print the version

Run 'rtcgate serve --help' for the configuration keys.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "ctl":
		return ctl(args[1:], stdout, stderr)
	case "ng":
		return ngClient(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "rtcgate %s (%s)\n", version.String(), version.GoVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "rtcgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// serve parses --config and one flag per configuration key, loads the
// configuration (exit 2 on any problem, before anything listens) and runs
// until SIGINT or SIGTERM.
func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtcgate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file")
	var overrides []config.Override
	defaults := config.Defaults()
	for _, key := range config.Keys() {
		fs.Func(key, fmt.Sprintf("(env %s) default %s", config.EnvName(key), defaultOf(defaults, key)), func(v string) error {
			overrides = append(overrides, config.Override{Key: key, Value: v})
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rtcgate serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*configPath, os.Environ(), overrides)
	if err != nil {
		fmt.Fprintf(stderr, "rtcgate: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, stderr); err != nil {
		fmt.Fprintf(stderr, "rtcgate: %v\n", err)
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return 2
		}
		return 1
	}
	return 0
}

func defaultOf(c *config.Config, key string) string {
	v := c.Get(key)
	if v == "" {
		return `""`
	}
	return v
}

// ctl sends one command line to a running rtcgate's POST /cli and prints
// the answer.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtcgate ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "base URL of rtcgate's listen-http or listen-https (env RTCGATE_CTL_URL; default from --config, else "+cli.DefaultURL+")")
	configPath := fs.String("config", "", "rtcgate's configuration file: control-token and, without --url, listen-http or listen-https")
	token := fs.String("token", "", "control-token (prefer env RTCGATE_CONTROL_TOKEN or --config: a flag shows in ps)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: rtcgate ctl [--url URL] [--config FILE] COMMAND ... (try: rtcgate ctl help)")
		return 2
	}
	base, client, err := controlClient(*url, "RTCGATE_CTL_URL", *configPath, *token)
	if err != nil {
		fmt.Fprintf(stderr, "rtcgate ctl: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out, err := cli.Remote(ctx, client, base, strings.Join(fs.Args(), " "))
	if err != nil {
		fmt.Fprintf(stderr, "rtcgate ctl: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, out)
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ngClient sends one ng command and prints the reply: the SDP as text, then
// the rest as JSON. It exits 1 on an error reply.
func ngClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rtcgate ng", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr("RTCGATE_NG_URL", "udp://127.0.0.1:2223"), "udp://host:port (listen-ng) or http(s)://host:port (listen-http) (env RTCGATE_NG_URL)")
	token := fs.String("token", "", "control-token for http(s) URLs (prefer env RTCGATE_CONTROL_TOKEN)")
	useJSON := fs.Bool("json", false, "send JSON instead of bencode")
	sdpFile := fs.String("sdp-file", "", "file whose content is sent as sdp")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the reply")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: rtcgate ng [--url URL] [--json] [--sdp-file F] COMMAND [KEY=VALUE ...]")
		return 2
	}
	req, err := ng.BuildRequest(fs.Arg(0), fs.Args()[1:])
	if err != nil {
		fmt.Fprintf(stderr, "rtcgate ng: %v\n", err)
		return 2
	}
	if *sdpFile != "" {
		b, err := os.ReadFile(*sdpFile)
		if err != nil {
			fmt.Fprintf(stderr, "rtcgate ng: %v\n", err)
			return 2
		}
		req.Set("sdp", string(b))
	}
	client := &ng.Client{URL: *url, Timeout: time.Second, Attempts: 3}
	if _, hc, err := controlClient(*url, "", "", *token); err == nil && strings.HasPrefix(*url, "http") && hc != http.DefaultClient {
		client.HTTP = hc // with the control-token
	}
	if *useJSON {
		client.Encoding = ng.JSON
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	reply, err := client.Do(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "rtcgate ng: %v\n", err)
		return 1
	}
	if sdp, ok := reply["sdp"].(string); ok {
		fmt.Fprint(stdout, sdp)
		delete(reply, "sdp")
		fmt.Fprintln(stdout, "---")
	}
	out, _ := json.MarshalIndent(reply, "", "  ")
	fmt.Fprintln(stdout, string(out))
	if reply["result"] == "error" {
		return 1
	}
	return 0
}
