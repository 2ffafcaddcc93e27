package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/sipua"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// Media tags: the engine sees each call as two parties, the client and the
// SIP side.
const (
	tagClient = "client"
	tagSIP    = "sip"
)

// call is one client call and its SIP dialog.
type call struct {
	ua       *userAgent
	id       string // the client's callId
	mediaID  string // the media engine's call id (never the session id: CLI output)
	incoming bool
	info     map[string]any // the call object of events: callId, caller, callee…
	started  time.Time

	browser bool // the client's media is WebRTC, which the engine speaks toward it (request)

	mu        sync.Mutex
	offer     []byte // outgoing: the client's offer, as the engine got it
	sip       *sipua.Call
	sipSDP    []byte // the last SDP rtcgate sent to the SIP side
	hangingUp bool
	tried     bool // TRYING reported
	sdpSent   bool // the client has its remote SDP (setRemoteSDP goes once)
	told      bool // the client knows the call (incoming: notifyIncomingCall sent)
	ended     bool
	status    string    // the last CallStatusEvent's status
	answered  time.Time // ESTABLISHED first reported
	done      chan struct{}
	ops       []func() // the client's in-call requests, run in order (do)
	opRunning bool
}

// do runs op after the call's earlier in-call requests (re-INVITE, INFO,
// REFER), on a goroutine of its own while there are any: the client's
// actions reach the far end in the order the client made them, one
// transaction at a time, and the client's reader never waits for SIP.
func (c *call) do(op func()) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	if c.opRunning {
		c.mu.Unlock()
		return
	}
	c.opRunning = true
	c.mu.Unlock()
	go func() {
		for {
			c.mu.Lock()
			if len(c.ops) == 0 {
				c.opRunning = false
				c.mu.Unlock()
				return
			}
			next := c.ops[0]
			c.ops = c.ops[1:]
			c.mu.Unlock()
			next()
		}
	}()
}

func (ua *userAgent) newCall(id string, incoming, browser bool, info map[string]any) (*call, error) {
	c := &call{ua: ua, id: id, mediaID: "gw-" + newID(), incoming: incoming, browser: browser, info: info, done: make(chan struct{}),
		started: time.Now()}
	info["callId"], info["incoming"] = id, incoming
	ua.mu.Lock()
	if ua.closed {
		ua.mu.Unlock()
		return nil, errors.New("session closed")
	}
	if _, dup := ua.calls[id]; dup {
		ua.mu.Unlock()
		return nil, fmt.Errorf("call %q exists", id)
	}
	ua.calls[id] = c
	ua.mu.Unlock()
	ua.g.metrics().active.Add(1)
	c.mu.Lock()
	c.keepLocked()
	c.mu.Unlock()
	return c, nil
}

// keptCallPrefix names a call's entry among the session's stored values
// (client.Session SetStored): the calls up on this node, which a node
// taking the session over after this one died reports ended (lostCalls).
const keptCallPrefix = "call:"

// keptCall is a call as the session's stored value holds it: what its
// CallStatusEvent carries.
type keptCall struct {
	Info    map[string]any `json:"info"`    // callId, caller, callee, visibleName, hasAudio, hasVideo, mediaProvider, incoming
	Told    bool           `json:"told"`    // the client knows the call
	Started int64          `json:"started"` // unix ns
}

// keepLocked stores the call with the session while it is up; c.mu is
// held.
func (c *call) keepLocked() {
	if c.ended {
		return
	}
	b, _ := json.Marshal(keptCall{Info: c.info, Told: !c.incoming || c.told, Started: c.started.UnixNano()})
	c.ua.s.SetStored(keptCallPrefix+c.id, b)
}

// ownerLost is the reason of a call reported ended by a node that took its
// session over: its dialog and media were on the node that died.
const ownerLost = "owner node lost"

// lostCalls reports the calls a session had up on a lost node ended —
// CallStatusEvent FAILED, "owner node lost" — in the order they started,
// and forgets them.
func (g *Gateway) lostCalls(s client.Session) {
	type lost struct {
		key string
		keptCall
	}
	var calls []lost
	for key, v := range s.Stored() {
		if !strings.HasPrefix(key, keptCallPrefix) {
			continue
		}
		var k keptCall
		if json.Unmarshal(v, &k) == nil && k.Info != nil {
			calls = append(calls, lost{key, k})
		} else {
			g.log().Warn("a stored call is unreadable; dropped")
			s.SetStored(key, nil)
		}
	}
	slices.SortFunc(calls, func(a, b lost) int { return cmp.Or(cmp.Compare(a.Started, b.Started), strings.Compare(a.key, b.key)) })
	for _, c := range calls {
		ev := c.Info
		ev["callId"] = strings.TrimPrefix(c.key, keptCallPrefix)
		ev["status"], ev["sipStatus"], ev["sipMessage"] = "FAILED", 0, ownerLost
		incoming, _ := ev["incoming"].(bool)
		g.metrics().callEnded(incoming, "FAILED")
		g.notifier().Notify(s, client.Event{Name: client.CallStatusEvent, Data: ev, BackendOnly: !c.Told})
		s.SetStored(c.key, nil)
	}
}

// tell reports an event about the call.
func (c *call) tell(e client.Event) { c.ua.g.notifier().Notify(c.ua.s, e) }

// report sets the call's status and tells the client and the backend.
func (c *call) report(status string, sipStatus int, sipMessage string) {
	c.tell(c.statusEvent(status, sipStatus, sipMessage))
}

// statusEvent is the call's CallStatusEvent; the backend's only while the
// client has not been offered the call.
func (c *call) statusEvent(status string, sipStatus int, sipMessage string) client.Event {
	c.mu.Lock()
	ev := copyMap(c.info)
	unknown := c.incoming && !c.told
	c.status = status
	if status == "ESTABLISHED" && c.answered.IsZero() {
		c.answered = time.Now()
	}
	c.mu.Unlock()
	ev["status"], ev["sipStatus"], ev["sipMessage"] = status, sipStatus, sipMessage
	return client.Event{Name: client.CallStatusEvent, Data: ev, BackendOnly: unknown}
}

// placeCall starts an outgoing call: the client's offer goes through the
// media engine, the rewritten offer out in an INVITE.
func (ua *userAgent) placeCall(r *client.CallRequest) error {
	req := *r
	if req.CallID == "" || req.Callee == "" || req.SDP == "" {
		return errors.New("call needs callId, callee and sdp")
	}
	acct, err := ua.account()
	if err != nil {
		return err
	}
	audio, video := mediaKinds([]byte(req.SDP))
	if req.MediaProvider == "" {
		req.MediaProvider = "WebRTC"
	}
	info := map[string]any{"caller": ua.cfg.Login, "callee": req.Callee, "visibleName": req.VisibleName,
		"hasAudio": audio, "hasVideo": video, "mediaProvider": req.MediaProvider}
	offer := []byte(req.SDP)
	browser := webrtcbridge.IsWebRTC(offer)
	c, err := ua.newCall(req.CallID, false, browser, info)
	if err != nil {
		return err
	}
	if browser {
		// A browser: the engine ends its ICE and DTLS-SRTP and offers
		// SIP plain RTP.
		if !ua.g.WebRTC.Enabled {
			c.end("FAILED", 0, "WebRTC media is not enabled (webrtc)")
			return nil
		}
		offer = refuseNonRTP(offer)
	}
	res, err := ua.g.Media.Offer(c.request(true, tagClient, "", "client", offer))
	if err != nil {
		c.end("FAILED", 0, "media: "+err.Error())
		return nil
	}
	if browser {
		res.SDP = forSIP(res.SDP)
	}
	c.mu.Lock()
	c.offer = offer
	c.sipSDP = res.SDP
	c.mu.Unlock()
	// The dialog outlives this request: not the client frame's context.
	sc, err := acct.Invite(context.Background(), req.Callee, res.SDP, c)
	if err != nil {
		c.end("FAILED", 0, err.Error())
		return nil
	}
	c.mu.Lock()
	c.sip = sc
	hangup := c.hangingUp && !c.ended
	c.mu.Unlock()
	if hangup { // the client hung up while the INVITE went out
		go sc.Hangup(context.Background())
	}
	return nil
}

// mediaKinds reports whether an SDP has audio and video sections.
func mediaKinds(b []byte) (audio, video bool) {
	s, err := sdp.Parse(b)
	if err != nil {
		return false, false
	}
	for _, m := range s.Media {
		switch m.Type() {
		case "audio":
			audio = true
		case "video":
			video = true
		}
	}
	return audio, video
}

// Progress implements sipua.CallHandler.
func (c *call) Progress(code int, reason string, body []byte) {
	switch {
	case code == 100:
		c.mu.Lock()
		first := !c.tried
		c.tried = true
		c.mu.Unlock()
		if first {
			c.report("TRYING", code, reason)
		}
	case code == 183:
		if len(body) > 0 {
			c.remoteAnswer(body) // early media
		}
		c.report("SESSION_PROGRESS", code, reason)
	default:
		c.report("RING", code, reason)
	}
}

// remoteAnswer passes the SIP side's answer through the media engine and
// gives the client its SDP. The engine keeps what it told a browser (ICE
// credentials, fingerprint, DTLS role) across the answers of one call:
// early media's and the final one's.
func (c *call) remoteAnswer(body []byte) bool {
	res, err := c.ua.g.Media.Answer(c.request(false, tagClient, tagSIP, "sip", body))
	if err != nil {
		c.ua.g.log().Warn("answer SDP refused by the media engine", "err", err)
		return false
	}
	answer := res.SDP
	c.mu.Lock()
	sent, offer := c.sdpSent, c.offer
	c.sdpSent = true
	c.mu.Unlock()
	if c.browser {
		answer = completeAnswer(offer, answer)
	}
	// Early media's SDP (183) is the answer: the SDK takes a second
	// setRemoteSDP for a new offer, which a stable connection refuses.
	if !sent {
		c.tell(client.Event{Name: client.RemoteSDP, Data: map[string]any{"callId": c.id, "sdp": string(answer)}})
	}
	return true
}

// Answered implements sipua.CallHandler.
func (c *call) Answered(body []byte) {
	if !c.remoteAnswer(body) {
		c.mu.Lock()
		sc := c.sip
		c.mu.Unlock()
		if sc != nil {
			go sc.Hangup(context.Background())
		}
		return
	}
	c.ua.g.metrics().answered(c.started)
	c.report("ESTABLISHED", 200, "OK")
}

// Ended implements sipua.CallHandler.
func (c *call) Ended(code int, reason string) {
	c.mu.Lock()
	hungUp := c.hangingUp
	c.mu.Unlock()
	switch {
	case code == 486 || code == 600:
		c.end("BUSY", code, reason)
	case code >= 300 && !(code == 487 && hungUp):
		c.end("FAILED", code, reason)
	default:
		c.end("FINISH", code, reason)
	}
}

// end reports the call's last status once and frees its media.
func (c *call) end(status string, code int, reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.mu.Unlock()
	if _, err := c.ua.g.Media.Delete(c.mediaID, "", "", 0, false); err != nil && !errors.Is(err, media.ErrUnknownCallID) {
		c.ua.g.log().Warn("media not freed", "err", err)
	}
	c.ua.g.metrics().callEnded(c.incoming, status)
	c.ua.s.SetStored(keptCallPrefix+c.id, nil)
	c.report(status, code, reason)
	c.ua.mu.Lock()
	if c.ua.calls[c.id] == c {
		delete(c.ua.calls, c.id)
	}
	c.ua.mu.Unlock()
	close(c.done)
}

// wait waits for the call to end, or ctx.
func (c *call) wait(ctx context.Context) {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.end("FINISH", 0, "session closed")
	}
}

// Reinvite implements sipua.CallHandler: a re-INVITE from the far end (hold,
// a new address, a session refresh). The engine learns the new offer; the
// answer is the SDP rtcgate last sent, its direction mirrored and its
// version raised. The client's media session is not renegotiated (a
// browser keeps its ICE and DTLS: the engine's offer toward it, dropped
// here, keeps the same credentials and fingerprint).
func (c *call) Reinvite(offer []byte) ([]byte, error) {
	toEngine := offer
	if c.browser {
		toEngine = refuseNonRTP(offer)
	}
	if _, err := c.ua.g.Media.Offer(c.request(true, tagSIP, tagClient, "sip", toEngine)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sipSDP == nil {
		return nil, errors.New("no SDP yet")
	}
	dir := "sendrecv"
	if o, err := sdp.Parse(offer); err == nil && len(o.Media) > 0 {
		switch o.Media[0].Direction(o) {
		case "sendonly":
			dir = "recvonly"
		case "recvonly":
			dir = "sendonly"
		case "inactive":
			dir = "inactive"
		}
	}
	ans, err := redirect(c.sipSDP, dir)
	if err != nil {
		return nil, err
	}
	c.sipSDP = ans
	return ans, nil
}

// redirect returns b with every media section set to dir and the origin
// version raised, as a new offer or answer must be.
func redirect(b []byte, dir string) ([]byte, error) {
	s, err := sdp.Parse(b)
	if err != nil {
		return nil, err
	}
	s.SetDirection(dir)
	s.IncrementVersion()
	return s.Marshal(), nil
}

// Info implements sipua.CallHandler; INFO from the far end is only logged.
func (c *call) Info(contentType string, _ []byte) {
	c.ua.g.log().Debug("INFO in a call", "content_type", contentType)
}

// ReferStatus implements sipua.CallHandler: the transfer's progress as
// TransferStatusEvent (the SDK's notifyTransferEvent).
func (c *call) ReferStatus(code int, reason string) {
	status := "FAILED"
	switch {
	case code >= 100 && code < 200:
		status = "TRYING"
	case code >= 200 && code < 300:
		status = "COMPLETED"
	}
	c.transferStatus(status, code, reason)
}

func (c *call) transferStatus(status string, code int, reason string) {
	c.tell(client.Event{Name: client.TransferStatusEvent, Data: map[string]any{
		"callId": c.id, "status": status, "sipStatus": code, "sipMessage": reason,
	}})
}

func (c *call) sipCall() (*sipua.Call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sip == nil || c.ended {
		return nil, fmt.Errorf("call %q is not in progress", c.id)
	}
	return c.sip, nil
}

// hangup ends the call from the client's side: CANCEL, 487 or BYE by the
// call's state; FINISH follows from Ended.
func (c *call) hangup() error {
	c.mu.Lock()
	if c.ended || c.hangingUp {
		c.mu.Unlock()
		return nil
	}
	c.hangingUp = true
	sc := c.sip
	c.mu.Unlock()
	if sc == nil {
		return nil // placeCall hangs up once the INVITE is out
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
		defer cancel()
		if err := sc.Hangup(ctx); err != nil {
			c.end("FINISH", 0, err.Error())
		}
	}()
	return nil
}

// hold puts the call on hold (a=sendonly re-INVITE) or resumes it
// (a=sendrecv): HOLD or ESTABLISHED.
func (c *call) hold(ctx context.Context, on bool) error {
	action := client.Running(ctx)
	sc, err := c.sipCall()
	if err != nil {
		return err
	}
	dir, status := "sendrecv", "ESTABLISHED"
	if on {
		dir, status = "sendonly", "HOLD"
	}
	c.mu.Lock()
	offer, err := redirect(c.sipSDP, dir)
	if err == nil {
		c.sipSDP = offer
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
		defer cancel()
		answer, err := sc.Reinvite(ctx, offer)
		if err != nil {
			c.tell(client.Fail(action, "re-INVITE failed: "+err.Error()))
			return
		}
		// The far end may move its media: the engine learns its answer.
		if _, err := c.ua.g.Media.Answer(c.request(false, tagClient, tagSIP, "sip", answer)); err != nil {
			c.ua.g.log().Warn("re-INVITE answer refused by the media engine", "err", err)
		}
		c.report(status, 200, "OK")
	})
	return nil
}

// sendDTMF sends the client's digits. Type RFC2833 (the SDK's default) or
// none puts them in band: the media engine injects RFC 4733 events into
// the client's stream toward the SIP side (Engine.PlayDTMF, ng's play
// DTMF), for a browser's SRTP as for plain RTP. When that cannot be (the
// SIP side negotiated no telephone-event, the client has sent no audio
// yet), and for INFO_RELAY, each digit goes as a SIP INFO
// (application/dtmf-relay).
func (c *call) sendDTMF(ctx context.Context, req *client.DTMFRequest) error {
	action := client.Running(ctx)
	var digits string
	if err := json.Unmarshal(req.DTMF, &digits); err != nil {
		var n json.Number
		if err := json.Unmarshal(req.DTMF, &n); err != nil {
			return errors.New("sendDtmf: dtmf must be digits")
		}
		digits = n.String()
	}
	if digits == "" || strings.Trim(digits, "0123456789*#ABCDabcd") != "" {
		return fmt.Errorf("sendDtmf: %q: want 0-9, *, #, A-D", digits)
	}
	sc, err := c.sipCall()
	if err != nil {
		return err
	}
	digits = strings.ToUpper(digits)
	inBand := false
	if t := strings.ToUpper(req.Type); t == "" || t == "RFC2833" {
		inBand = true
	}
	c.do(func() {
		if inBand {
			// Through c.do like INFO, so digits and the client's other
			// in-call actions keep their order; PlayDTMF returns once the
			// last event is sent.
			err := c.ua.g.Media.PlayDTMF(c.mediaID, tagClient, digits, dtmfDuration)
			if err == nil {
				return
			}
			if !errors.Is(err, media.ErrNoTelephoneEvent) && !errors.Is(err, media.ErrNoMedia) && !errors.Is(err, media.ErrNoAudio) {
				c.tell(client.Fail(action, "in-band DTMF failed: "+err.Error()))
				return
			}
			c.ua.g.log().Debug("in-band DTMF not possible, sending INFO", "reason", err)
		}
		for _, d := range digits {
			ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
			err := sc.Info(ctx, "application/dtmf-relay", fmt.Appendf(nil, "Signal=%c\r\nDuration=%d\r\n", d, dtmfDuration.Milliseconds()))
			cancel()
			if err != nil {
				c.tell(client.Fail(action, "INFO failed: "+err.Error()))
				return
			}
		}
	})
	return nil
}

// dtmfDuration is how long each digit lasts, in band or as INFO's
// Duration: 160 ms, long enough for any detector, short enough for fast
// dialling.
const dtmfDuration = 160 * time.Millisecond

// transfer asks the far end to call target (REFER): TransferStatusEvent
// ACCEPTED, then the NOTIFYs' progress.
func (c *call) transfer(req *client.TransferRequest) error {
	if req.Target == "" {
		return errors.New("transfer needs target")
	}
	sc, err := c.sipCall()
	if err != nil {
		return err
	}
	c.do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
		defer cancel()
		if err := sc.Refer(ctx, req.Target); err != nil {
			c.transferStatus("FAILED", 0, err.Error())
			return
		}
		c.transferStatus("ACCEPTED", 202, "Accepted")
	})
	return nil
}

// IncomingCall implements sipua.Handler: the offer goes through the media
// engine; the backend's OnCallEvent decides; the client is told with
// setRemoteSDP and notifyIncomingCall, and answers with `answer`.
func (ua *userAgent) IncomingCall(sc *sipua.Call) sipua.CallHandler {
	audio, video := mediaKinds(sc.Offer)
	info := map[string]any{"caller": userOf(sc.From), "callee": userOf(sc.To), "visibleName": sc.DisplayName,
		"hasAudio": audio, "hasVideo": video, "mediaProvider": "WebRTC"}
	c, err := ua.newCall(newID(), true, ua.webRTC(), info)
	if err != nil {
		go sc.Reject(480, "Temporarily Unavailable")
		return refused{}
	}
	c.mu.Lock()
	c.sip = sc
	c.mu.Unlock()
	go c.offerToClient(sc)
	return c
}

// refused is the handler of a call turned away before it became a call.
type refused struct{}

func (refused) Progress(int, string, []byte)     {}
func (refused) Answered([]byte)                  {}
func (refused) Ended(int, string)                {}
func (refused) Reinvite([]byte) ([]byte, error)  { return nil, errors.New("no call") }
func (refused) Info(string, []byte)              {}
func (refused) ReferStatus(code int, why string) {}

func (c *call) offerToClient(sc *sipua.Call) {
	if len(sc.Offer) == 0 {
		// rtcgate anchors media: an offerless INVITE cannot be.
		sc.Reject(488, "Not Acceptable Here")
		return
	}
	offer := sc.Offer
	if c.browser {
		offer = refuseNonRTP(offer)
	}
	res, err := c.ua.g.Media.Offer(c.request(true, tagSIP, "", "sip", offer))
	if err != nil {
		c.ua.g.log().Info("incoming call's SDP refused by the media engine", "err", err)
		sc.Reject(488, "Not Acceptable Here")
		return
	}
	toClient := res.SDP
	ev := copyMap(c.info)
	ev["status"] = "RING"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = c.ua.g.notifier().Ask(ctx, c.ua.s, client.Event{Name: client.OnCallEvent, Data: ev})
	cancel()
	if err != nil {
		c.ua.g.log().Info("incoming call refused by the backend", "err", err)
		sc.Reject(603, "Decline")
		return
	}
	if err := sc.Ring(); err != nil {
		c.end("FAILED", 0, err.Error())
		return
	}
	// The backend hears RING before the client can answer: its answer
	// hook must not overtake the event.
	ring := c.statusEvent("RING", 180, "Ringing")
	c.tell(ring)
	c.mu.Lock()
	c.told = true
	c.keepLocked()
	c.mu.Unlock()
	c.tell(client.Event{Name: client.RemoteSDP, Data: map[string]any{"callId": c.id, "sdp": string(toClient)}})
	ev = copyMap(c.info)
	ev["status"] = "RING"
	c.tell(client.Event{Name: client.IncomingCall, Data: ev})
	ring.BackendOnly, ring.ClientOnly = false, true
	c.tell(ring)
}

// answer answers an incoming call with the client's SDP.
func (c *call) answer(req *client.AnswerRequest) error {
	if req.SDP == "" {
		return errors.New("answer needs sdp")
	}
	if !c.incoming {
		return fmt.Errorf("call %q is not incoming", c.id)
	}
	sc, err := c.sipCall()
	if err != nil {
		return err
	}
	res, err := c.ua.g.Media.Answer(c.request(false, tagSIP, tagClient, "client", []byte(req.SDP)))
	if err != nil {
		return fmt.Errorf("answer: %v", err)
	}
	if c.browser {
		res.SDP = forSIP(completeAnswer(sc.Offer, res.SDP))
	}
	c.mu.Lock()
	c.sipSDP = res.SDP
	c.mu.Unlock()
	if err := sc.Answer(res.SDP); err != nil {
		return fmt.Errorf("answer: %v", err)
	}
	c.report("ESTABLISHED", 200, "OK")
	return nil
}
