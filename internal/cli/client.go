package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultURL is where `rtcgate ctl` looks for the control plane: the default
// listen-http.
const DefaultURL = "http://127.0.0.1:2225"

// Remote runs a command line on a running rtcgate through its HTTP control
// listener (POST /cli) and returns the output.
func Remote(ctx context.Context, client *http.Client, baseURL, line string) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	url := strings.TrimRight(baseURL, "/") + "/cli"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(line))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
