// Package sdkclient is the client side of rtcgate's client protocol as the
// benchmark programs under bench/ speak it: the frames they send and check
// (connection, sendData → DataStatusEvent), and a session over the HTTP
// long-poll fallback driven as the browser shim drives it (open, send with
// utids, a sync loop acknowledging what it got).
package sdkclient

import (
	"bytes"
	"fmt"
)

// ConnectFrame is the SDK's first message: connection to the app with
// appKey, clientVersion naming the program.
func ConnectFrame(appKey, clientVersion string) []byte {
	return []byte(`{"message":"connection","data":[{"appKey":"` + appKey + `","clientVersion":"` + clientVersion + `"}]}`)
}

// SendDataFrame appends to buf[:0] the sendData frame for operation id op.
func SendDataFrame(buf []byte, op string) []byte {
	buf = append(buf[:0], `{"message":"sendData","data":[{"operationId":"`...)
	buf = append(buf, op...)
	buf = append(buf, `","payload":{"bench":"clientbench","n":1}}]}`...)
	return buf
}

// CheckStatus verifies that a DataStatusEvent frame is about op and
// ACCEPTED.
func CheckStatus(m []byte, op string) error {
	if JSONField(m, "operationId") != op {
		return fmt.Errorf("DataStatusEvent for %q, want %q: %s", JSONField(m, "operationId"), op, Clip(m, 200))
	}
	if !bytes.Contains(m, []byte(`"status":"ACCEPTED"`)) {
		return fmt.Errorf("DataStatusEvent not ACCEPTED: %s", Clip(m, 200))
	}
	return nil
}

// JSONField finds "key":"value" in b and returns value (no unescaping: the
// fields read here are ids and names).
func JSONField(b []byte, key string) string {
	k := []byte(`"` + key + `":"`)
	i := bytes.Index(b, k)
	if i < 0 {
		return ""
	}
	rest := b[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// Clip is b for an error message: at most n bytes, "…" after a cut.
func Clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
