package sipua

import (
	"log/slog"
	"strings"
)

// LogBadInput tells which of sipgo's log records are about bad input from
// the network (logging.Classify): "failed to parse" is a message that does
// not parse (counted per transport: listen-sip/udp, /tcp, /tls, /ws),
// "make key failed" a request without what a transaction needs (Via,
// CSeq), answered 400 statelessly. The daemon counts them in
// rtcgate_bad_input_total and logs them within the sip subsystem's budget.
func LogBadInput(r slog.Record, attrs []slog.Attr) (listener, reason string, ok bool) {
	switch r.Message {
	case "failed to parse":
		listener = "listen-sip"
		// sipgo names each transport's logger by a "caller" attribute;
		// the last one set is the transport's.
		for i := len(attrs) - 1; i >= 0; i-- {
			if attrs[i].Key != "caller" {
				continue
			}
			c := attrs[i].Value.String()
			if t, found := strings.CutPrefix(c, "Transport<"); found {
				listener += "/" + strings.ToLower(strings.TrimSuffix(t, ">"))
			}
			break
		}
		return listener, "parse", true
	case "Server tx failed to handle request":
		malformed := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" && strings.Contains(a.Value.String(), "make key failed") {
				malformed = true
				return false
			}
			return true
		})
		if malformed {
			return "listen-sip", "malformed", true
		}
	}
	return "", "", false
}
