package restclient

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names and forms used when Options.Secret is set.
//
// Two signatures are sent because they serve different backends:
//
//   - Authorization: WCS <base64(HMAC-SHA256(secret, body))> — standard
//     base64 with padding, over the raw body bytes exactly as sent. This is
//     the WCS-style body signature existing backends can check, but it has
//     no timestamp, so a captured request can be replayed.
//   - X-Rtcgate-Timestamp: <unix seconds> and
//     X-Rtcgate-Signature: v1=<lowercase hex HMAC-SHA256(secret, timestamp + "." + body)>
//     bind the body to the time it was sent, so a backend that checks the
//     skew rejects replays. The "v1=" prefix leaves room for a new scheme;
//     Verify accepts a comma-separated list and any matching v1 value, so
//     secrets can be rotated by sending two signatures.
//
// A request to an app with credentials carries them as
// Authorization: Basic, so it cannot carry the WCS signature too: it is
// signed by the X-Rtcgate headers alone (SignV1). Those are on every signed
// request, so a backend that checks them verifies every request the same
// way, with or without credentials; Verify does exactly that, and checks the
// WCS signature as well when Authorization carries one.
const (
	HeaderTimestamp = "X-Rtcgate-Timestamp"
	HeaderSignature = "X-Rtcgate-Signature"
	AuthScheme      = "WCS"
	// DefaultMaxSkew is used by Verify when maxSkew <= 0.
	DefaultMaxSkew = 5 * time.Minute
)

// Verification failures, distinct so a backend can log why it refused.
var (
	ErrMissingSignature = errors.New("restclient: missing signature headers")
	ErrStaleTimestamp   = errors.New("restclient: timestamp outside allowed skew")
	ErrBadSignature     = errors.New("restclient: signature mismatch")
)

func mac(secret string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Sign sets the Authorization, X-Rtcgate-Timestamp and X-Rtcgate-Signature
// headers on h for body at time now. Exported so tests and tools can produce
// requests a backend will accept.
func Sign(secret string, h http.Header, body []byte, now time.Time) {
	h.Set("Authorization", AuthScheme+" "+base64.StdEncoding.EncodeToString(mac(secret, body)))
	SignV1(secret, h, body, now)
}

// SignV1 sets only X-Rtcgate-Timestamp and X-Rtcgate-Signature, leaving
// Authorization to the request's Basic credentials.
func SignV1(secret string, h http.Header, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, "v1="+hex.EncodeToString(mac(secret, []byte(ts), []byte("."), body)))
}

// Verify checks a request signed by Sign or SignV1: the timestamp must be
// within maxSkew of now in either direction (DefaultMaxSkew when maxSkew <=
// 0) and the timestamped v1 signature must match body. Authorization must
// be there: either the WCS body signature, which must match body too, or
// Basic credentials (an app with a user and password), which Verify leaves
// to the caller to check (Request.BasicAuth). Comparisons are constant-time.
func Verify(secret string, h http.Header, body []byte, maxSkew time.Duration, now time.Time) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	ts, sig, auth := h.Get(HeaderTimestamp), h.Get(HeaderSignature), h.Get("Authorization")
	if ts == "" || sig == "" || auth == "" {
		return ErrMissingSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrBadSignature)
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew > maxSkew || skew < -maxSkew {
		return ErrStaleTimestamp
	}
	want := mac(secret, []byte(ts), []byte("."), body)
	ok := false
	for _, part := range strings.Split(sig, ",") {
		v, found := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !found {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	scheme, v, found := strings.Cut(auth, " ")
	if found && strings.EqualFold(scheme, "Basic") {
		return nil // signed by v1 alone; the credentials are the caller's to check
	}
	if !found || !strings.EqualFold(scheme, AuthScheme) {
		return fmt.Errorf("%w: Authorization is neither %s nor Basic", ErrBadSignature, AuthScheme)
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || !hmac.Equal(got, mac(secret, body)) {
		return ErrBadSignature
	}
	return nil
}
