// Command backend is a sample app backend for rtcgate's REST hooks: it logs
// every hook it receives and allows or denies by simple rules, so a newcomer
// can see the traffic and try the policies.
//
//	go run ./examples/backend -listen 127.0.0.1:9091 -deny-login mallory
//	rtcgate ctl add app EchoApp echoKey http://127.0.0.1:9091/EchoApp
//	rtcgate ctl add app-rest-method -a echoKey
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9091", "address to serve hooks on")
	denyLogin := flag.String("deny-login", "", "refuse connect when sipLogin equals this")
	denyData := flag.Bool("deny-data", false, "answer OnDataEvent with 403 (and ask rtcgate to report FAILED)")
	secret := flag.String("secret", "", "verify rtcgate's signatures with this secret (hooks-secret)")
	flag.Parse()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		method := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if *secret != "" {
			if err := restclient.Verify(*secret, r.Header, body, 5*time.Minute, time.Now()); err != nil {
				log.Printf("%s: bad signature: %v", method, err)
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		var fields map[string]any
		json.Unmarshal(body, &fields)
		redacted := map[string]any{}
		for k, v := range fields {
			if strings.Contains(strings.ToLower(k), "password") {
				v = "***"
			}
			redacted[k] = v
		}
		line, _ := json.Marshal(redacted)
		log.Printf("%s %s", method, line)

		switch {
		case method == "connect" && *denyLogin != "" && fields["sipLogin"] == *denyLogin:
			http.Error(w, "denied by rule", http.StatusForbidden)
			return
		case method == "OnDataEvent" && *denyData:
			http.Error(w, "denied by rule", http.StatusForbidden)
			return
		}
		reply := fields
		if method == "connect" && *denyData {
			// restOnError FAIL makes the client see DataStatusEvent FAILED.
			reply["restClientConfig"] = map[string]any{"OnDataEvent": map[string]any{"restOnError": "FAIL"}}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(reply)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// The bound address: with port 0 (make demo's test) the one picked.
	log.Printf("sample backend on http://%s/", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
