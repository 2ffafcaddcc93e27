package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/config"
)

// controlClient works out where the control plane is and the token to
// send, for `rtcgate ctl` and `rtcgate ng` over HTTP. The URL: the flag,
// then the environment variable urlEnv, then the configuration file's
// listen-http (or listen-https), then cli.DefaultURL. The token: the flag,
// then RTCGATE_CONTROL_TOKEN (the variable `rtcgate serve` reads too),
// then the configuration file's control-token.
func controlClient(flagURL, urlEnv, configPath, flagToken string) (string, *http.Client, error) {
	var file struct {
		Token       string `yaml:"control-token"`
		ListenHTTP  string `yaml:"listen-http"`
		ListenHTTPS string `yaml:"listen-https"`
	}
	if configPath != "" {
		data, err := os.ReadFile(configPath)
		if err != nil {
			return "", nil, err
		}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return "", nil, fmt.Errorf("%s: %v", configPath, err)
		}
	}
	url := flagURL
	if url == "" && urlEnv != "" {
		url = os.Getenv(urlEnv)
	}
	if url == "" && configPath != "" {
		url = urlFromListen("http", file.ListenHTTP)
		if url == "" && file.ListenHTTP == "" {
			url = urlFromListen("https", file.ListenHTTPS)
		}
	}
	if url == "" {
		url = cli.DefaultURL
	}
	token := flagToken
	if token == "" {
		token = os.Getenv(config.EnvName("control-token"))
	}
	if token == "" {
		token = file.Token
	}
	client := http.DefaultClient
	if token != "" {
		client = &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	}
	return url, client, nil
}

// urlFromListen turns a listen address into a URL to reach it: every
// address (or port 0) is reached on loopback.
func urlFromListen(scheme, listen string) string {
	addr, err := config.ParseListen(listen)
	if err != nil || addr == "" {
		return ""
	}
	host, port, _ := net.SplitHostPort(addr)
	if port == "0" {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// bearer adds "Authorization: Bearer <control-token>" to each request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(b.token))
	return b.next.RoundTrip(r)
}
