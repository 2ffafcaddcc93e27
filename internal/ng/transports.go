package ng

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/rtcgate/rtcgate/internal/control"
)

// RegisterHTTP puts ng on the control plane: POST /ng and POST /ng-plain,
// and the WebSocket subprotocols ng.rtpengine.com and ng-plain.rtpengine.com.
// The "-plain" forms carry the dictionary without a cookie.
func (d *Dispatcher) RegisterHTTP(s *control.Server) {
	s.Handle("POST /ng", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, status, err := s.ReadBody(w, r)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		cookie, msg, ok := SplitCookie(body)
		if !ok {
			http.Error(w, "ng message without cookie: POST /ng takes \"<cookie> <dictionary>\" (or use /ng-plain)", http.StatusBadRequest)
			return
		}
		reply := append(append(append([]byte{}, cookie...), ' '), d.Process(r.Context(), msg, r.RemoteAddr, hostOf(r.RemoteAddr))...)
		w.Header().Set("Content-Type", "application/x-rtpengine-ng")
		w.Write(reply)
	}))
	s.Handle("POST /ng-plain", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, status, err := s.ReadBody(w, r)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		reply := d.Process(r.Context(), body, r.RemoteAddr, hostOf(r.RemoteAddr))
		if strings.HasPrefix(strings.TrimSpace(string(reply)), "{") {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "application/x-rtpengine-ng")
		}
		w.Write(reply)
	}))
	s.HandleSubprotocol("ng.rtpengine.com", func(ctx context.Context, msg []byte) ([]byte, error) {
		cookie, body, ok := SplitCookie(msg)
		if !ok {
			d.log.Warn("ng message without cookie dropped", "transport", "websocket")
			return nil, nil
		}
		return append(append(append([]byte{}, cookie...), ' '), d.Process(ctx, body, "websocket", "websocket")...), nil
	})
	s.HandleSubprotocol("ng-plain.rtpengine.com", func(ctx context.Context, msg []byte) ([]byte, error) {
		return d.Process(ctx, msg, "websocket", "websocket"), nil
	})
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
