package ng

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/media"
)

// `play DTMF`, as rtpengine's call_play_dtmf_ng: the digit is queued
// behind those already waiting for the party and played in the
// background; the reply comes at once.

// rtpengine's bounds and defaults for `play DTMF`, in milliseconds.
const (
	dtmfDuration, dtmfMinDuration, dtmfMaxDuration = 250, 100, 5000
	dtmfPause, dtmfMinPause, dtmfMaxPause          = 100, 100, 5000
	dtmfVolume                                     = -8 // dB; positive values count as negative
)

// playDTMF answers `play DTMF`.
func playDTMF(e *media.Engine, m message) (*bencode.Dict, error) {
	d, err := parseDTMF(m)
	if err != nil {
		return nil, err
	}
	if err := e.QueueDTMF(d); err != nil {
		// rtpengine's words for what its other commands word otherwise.
		switch {
		case errors.Is(err, media.ErrUnknownCallID):
			return nil, errors.New("Unknown call-ID")
		case errors.Is(err, media.ErrUnknownTag):
			return nil, errors.New("From-tag given, but no such tag exists")
		case errors.Is(err, media.ErrBadDigit):
			return nil, media.ErrBadDigit
		}
		return nil, err
	}
	return &bencode.Dict{}, nil
}

// parseDTMF reads a `play DTMF` request: the call, the party (from-tag,
// label, or the flag or key "all"), code (or digit): an event number 0-15
// or one character 0-9 * # A-D, as an integer or a string; duration,
// pause (ms) and volume (dB), clamped as rtpengine clamps them.
func parseDTMF(m message) (media.DTMF, error) {
	var d media.DTMF
	var ok bool
	if d.CallID, ok = m.str("call-id"); !ok || d.CallID == "" {
		return d, errors.New("No call-id in message")
	}
	d.FromTag, _ = m.str("from-tag")
	d.Label, _ = m.str("label")
	all, _ := m.str("all")
	d.All = normalize(all) == "all" || slices.ContainsFunc(m.list("flags"), func(f string) bool { return normalize(f) == "all" })
	switch { // rtpengine's order: all, then label, then from-tag
	case d.All:
		d.FromTag, d.Label = "", ""
	case d.Label != "":
		d.FromTag = ""
	}
	if d.FromTag == "" && d.Label == "" && !d.All {
		return d, errors.New("No participant party specified")
	}
	code, ok := dtmfCode(m)
	if !ok {
		return d, media.ErrBadDigit
	}
	d.Digits = media.DTMFDigits[code : code+1]
	ms := func(key string, def, lo, hi int64) time.Duration {
		v, ok := intValue(m, key)
		if !ok || v == 0 {
			v = def
		}
		return time.Duration(min(max(v, lo), hi)) * time.Millisecond
	}
	d.Duration = ms("duration", dtmfDuration, dtmfMinDuration, dtmfMaxDuration)
	d.Pause = ms("pause", dtmfPause, dtmfMinPause, dtmfMaxPause)
	vol, ok := intValue(m, "volume")
	if !ok {
		vol = dtmfVolume
	}
	// The event's volume field is the power level below 0 dBm0, 0-63.
	if vol < 0 {
		vol = -vol
	}
	if vol < 0 || vol > 63 {
		vol = 63
	}
	d.Volume = uint8(vol)
	return d, nil
}

// dtmfCode reads code (or digit) as rtpengine does: a one-character string
// is that character; otherwise the value is a number, an event code 0-15,
// or else the character code of a digit.
func dtmfCode(m message) (int, bool) {
	key := "code"
	if _, ok := m["code"]; !ok {
		key = "digit"
	}
	var n int64
	switch v := m[key].(type) {
	case string:
		if len(v) == 1 {
			n = int64(v[0])
			break
		}
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, false
		}
	case int64:
		n = v
	default:
		return 0, false
	}
	if n >= 0 && n < int64(len(media.DTMFDigits)) {
		return int(n), true
	}
	for i, c := range media.DTMFDigits {
		if int64(c) == n {
			return i, true
		}
	}
	return 0, false
}

// intValue is an integer key, given as a number or a decimal string.
func intValue(m message, key string) (int64, bool) {
	switch v := m[key].(type) {
	case int64:
		return v, true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}
