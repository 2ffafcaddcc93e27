package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// The client protocol in two tables: every message a client may send
// (Actions) and every event rtcgate reports about a session (Events), each
// named once, with its REST method, its handler or client frame, its
// request type and its status values. The hub, the REST hooks, the SIP
// gateway, app validation and `show rest-methods` all read these tables;
// nothing else spells a message or a method.

// Run says who answers a client message.
type Run int

const (
	// RunCore: the session core (connection, ping, pong).
	RunCore Run = iota
	// RunAgent: the Handler (the hooks, then the SIP gateway or the
	// built-in agent) runs it through the action's Agent method.
	RunAgent
	// RunUnsupported: a media-server message; answered `fail`.
	RunUnsupported
)

// Action is one client message.
type Action struct {
	Message string // the frame's "message"
	// Method is the REST method POSTed to the app's backend before the
	// action runs ("" none). An alias (sendIMMessage) has the method of
	// the action it runs as.
	Method string
	Run    Run
	// SIP: the action reaches the SIP gateway, which sends a SIP request.
	SIP bool
	// Refused, when set, turns a backend's refusal into the event the
	// client waits for (sendData's DataStatusEvent FAILED) rather than a
	// `fail` frame.
	Refused func(req map[string]any, info string) Event

	// call decodes the request into the action's type and runs the
	// agent's method (RunAgent); core is the session core's handler
	// (RunCore).
	call func(ctx context.Context, a Agent, s Session, data json.RawMessage) error
	core func(h *Hub, ctx context.Context, s *session, f *Frame) *refusal
}

// Call runs the action on a: the request is decoded into the action's
// request type first (a request that is not one is an error).
func (a *Action) Call(ctx context.Context, ag Agent, s Session, data json.RawMessage) error {
	if a.call == nil {
		return fmt.Errorf("%s: not an agent's action", a.Message)
	}
	return a.call(context.WithValue(ctx, actionKey{}, a), ag, s, data)
}

type actionKey struct{}

// Running is the message of the action an Agent method runs for, from its
// context: what a failure reported later names (ActionFailed's apiMethod).
func Running(ctx context.Context) string {
	if a, ok := ctx.Value(actionKey{}).(*Action); ok {
		return a.Message
	}
	return ""
}

// Requests of the client's actions, as the Web SDK sends them (the frame's
// first data element).
type (
	// CallRequest places a call.
	CallRequest struct {
		CallID        string `json:"callId"`
		Callee        string `json:"callee"`
		SDP           string `json:"sdp"`
		VisibleName   string `json:"visibleName"`
		MediaProvider string `json:"mediaProvider"`
	}
	// AnswerRequest answers an incoming call.
	AnswerRequest struct {
		CallID string `json:"callId"`
		SDP    string `json:"sdp"`
	}
	// CallRef names a call: hangup, hold, unhold.
	CallRef struct {
		CallID string `json:"callId"`
	}
	// DTMFRequest sends digits in a call; DTMF is a string or a number.
	DTMFRequest struct {
		CallID string          `json:"callId"`
		DTMF   json.RawMessage `json:"dtmf"`
		Type   string          `json:"type"`
	}
	// TransferRequest asks the far end to call Target.
	TransferRequest struct {
		CallID string `json:"callId"`
		Target string `json:"target"`
	}
	// MessageRequest sends an instant message.
	MessageRequest struct {
		ID          string `json:"id"`
		To          string `json:"to"`
		Body        string `json:"body"`
		ContentType string `json:"contentType"`
	}
	// DataRequest sends data to the app's backend.
	DataRequest struct {
		OperationID string          `json:"operationId"`
		Payload     json.RawMessage `json:"payload"`
	}
)

// Agent runs the client's actions: the SIP gateway, or BuiltIn without one.
// Each method is one row of Actions.
type Agent interface {
	Call(ctx context.Context, s Session, r *CallRequest) error
	Answer(ctx context.Context, s Session, r *AnswerRequest) error
	Hangup(ctx context.Context, s Session, r *CallRef) error
	Hold(ctx context.Context, s Session, r *CallRef) error
	Unhold(ctx context.Context, s Session, r *CallRef) error
	Transfer(ctx context.Context, s Session, r *TransferRequest) error
	SendDTMF(ctx context.Context, s Session, r *DTMFRequest) error
	SendMessage(ctx context.Context, s Session, r *MessageRequest) error
	SendData(ctx context.Context, s Session, r *DataRequest) error
}

// agentAction is a row for an Agent method taking *T.
func agentAction[T any](message, method string, sip bool, run func(Agent, context.Context, Session, *T) error) Action {
	return Action{Message: message, Method: method, Run: RunAgent, SIP: sip,
		call: func(ctx context.Context, a Agent, s Session, data json.RawMessage) error {
			req := new(T)
			if err := json.Unmarshal(data, req); err != nil {
				return fmt.Errorf("%s needs an object (%s)", message, jsonError(err))
			}
			return run(a, ctx, s, req)
		}}
}

// jsonError is a decoding error without the input it quotes.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return te.Field + " has the wrong type"
		}
		return "not an object"
	}
	return "malformed JSON"
}

// Actions are the client's messages, the Web SDK's names.
var Actions = []Action{
	{Message: "connection", Method: "connect", Run: RunCore, core: (*Hub).connect},
	{Message: "ping", Run: RunCore, core: (*Hub).ping},
	{Message: "pong", Run: RunCore, core: (*Hub).pong},
	agentAction("call", "call", true, Agent.Call),
	agentAction("answer", "answer", true, Agent.Answer),
	agentAction("hangup", "hangup", true, Agent.Hangup),
	agentAction("hold", "hold", true, Agent.Hold),
	agentAction("unhold", "unhold", true, Agent.Unhold),
	agentAction("transfer", "transfer", true, Agent.Transfer),
	agentAction("sendDtmf", "sendDtmf", true, Agent.SendDTMF),
	agentAction("sendMessage", "sendMessage", true, Agent.SendMessage),
	agentAction("sendIMMessage", "sendMessage", true, Agent.SendMessage), // the SDK's older name
	func() Action {
		// The client's data goes to the backend as OnDataEvent, whose
		// answer decides DataStatusEvent.
		a := agentAction("sendData", "OnDataEvent", false, Agent.SendData)
		a.Refused = func(req map[string]any, info string) Event {
			return Event{Name: DataStatusEvent, Data: map[string]any{"operationId": req["operationId"], "status": "FAILED", "info": info}}
		}
		return a
	}(),
	{Message: "publishStream", Run: RunUnsupported},
	{Message: "unPublishStream", Run: RunUnsupported},
	{Message: "playStream", Run: RunUnsupported},
	{Message: "stopStream", Run: RunUnsupported},
	{Message: "snapshot", Run: RunUnsupported},
	{Message: "sendStreamEvent", Run: RunUnsupported},
	{Message: "availableStream", Run: RunUnsupported},
	{Message: "changeVideoState", Run: RunUnsupported},
	{Message: "changeAudioState", Run: RunUnsupported},
	{Message: "submitBugReport", Run: RunUnsupported},
	{Message: "sessionDebug", Run: RunUnsupported},
}

var actionByMessage = func() map[string]*Action {
	m := make(map[string]*Action, len(Actions))
	for i := range Actions {
		m[Actions[i].Message] = &Actions[i]
	}
	return m
}()

// Connection is the connection frame's row: its Method is the connect
// hook's.
var Connection = actionByMessage["connection"]

// ActionOf finds a client message's row.
func ActionOf(message string) (*Action, bool) {
	a, ok := actionByMessage[message]
	return a, ok
}

// Event names: the domain events the SIP gateway and the hooks report. Each
// is a row of Events.
const (
	ConnectionStatusEvent   = "ConnectionStatusEvent"
	RegistrationStatusEvent = "RegistrationStatusEvent"
	CallStatusEvent         = "CallStatusEvent"
	MessageStatusEvent      = "MessageStatusEvent"
	OnMessageEvent          = "OnMessageEvent"
	OnCallEvent             = "OnCallEvent"
	TransferStatusEvent     = "TransferStatusEvent"
	DataStatusEvent         = "DataStatusEvent"
	// Events the client gets and the backend does not.
	RemoteSDP    = "RemoteSDP"    // a call's remote SDP: Data callId, sdp
	IncomingCall = "IncomingCall" // an incoming call offered to the client
	ActionFailed = "ActionFailed" // an action failed after it was accepted: Data apiMethod, info
)

// Event is one domain event about a session.
type Event struct {
	Name string         // a row of Events
	Data map[string]any // the event's object (for status events: status, …)
	// BackendOnly: the client does not know the event's subject (an
	// incoming call not offered to it yet), so it gets no frame.
	BackendOnly bool
	// ClientOnly: the backend had the event already; the client's frame
	// alone.
	ClientOnly bool
}

// EventKind is one row of Events.
type EventKind struct {
	Name     string
	REST     bool     // a REST method of its own name
	Deciding bool     // the backend decides (Ask): a refusal stops what the event announces
	Statuses []string // the values of Data["status"]
	// Frame is the client frame for an event: its message and data
	// elements; "" for none.
	Frame func(data map[string]any) (string, []any)
}

// frameByStatus maps statuses to frame names; the data is the one element.
func frameByStatus(frames map[string]string) func(map[string]any) (string, []any) {
	return func(d map[string]any) (string, []any) {
		st, _ := d["status"].(string)
		if name := frames[st]; name != "" {
			return name, []any{d}
		}
		return "", nil
	}
}

func frameNamed(name string) func(map[string]any) (string, []any) {
	return func(d map[string]any) (string, []any) { return name, []any{d} }
}

// Events are the events of a session, the status events in Web Call
// Server's order.
var Events = []EventKind{
	{Name: ConnectionStatusEvent, REST: true, Statuses: []string{"ESTABLISHED", "FAILED", "DISCONNECTED"}},
	{Name: RegistrationStatusEvent, REST: true, Statuses: []string{"REGISTERED", "UNREGISTERED", "FAILED"},
		Frame: func(d map[string]any) (string, []any) {
			switch d["status"] {
			case "REGISTERED":
				return "registered", []any{d}
			case "FAILED": // the SDK shows `fail` as a warning naming the method
				return "fail", []any{map[string]any{"apiMethod": RegistrationStatusEvent,
					"info": fmt.Sprintf("SIP registration failed: %v %v", d["sipStatus"], d["sipMessage"])}}
			}
			return "", nil
		}},
	{Name: CallStatusEvent, REST: true,
		Statuses: []string{"TRYING", "RING", "SESSION_PROGRESS", "ESTABLISHED", "HOLD", "BUSY", "FAILED", "FINISH"},
		Frame: frameByStatus(map[string]string{
			"TRYING": "notifyTryingResponse", "RING": "ring", "SESSION_PROGRESS": "ring", "ESTABLISHED": "talk",
			"HOLD": "hold", "FINISH": "finish", "FAILED": "finish", "BUSY": "finish",
		})},
	{Name: MessageStatusEvent, REST: true, Statuses: []string{"SENT", "ACCEPTED", "FAILED"}, Frame: frameNamed(MessageStatusEvent)},
	{Name: OnMessageEvent, REST: true, Statuses: []string{"RECEIVED"}, Frame: frameNamed(OnMessageEvent)},
	{Name: OnCallEvent, REST: true, Deciding: true, Statuses: []string{"RING"}},
	{Name: TransferStatusEvent, REST: true, Statuses: []string{"ACCEPTED", "TRYING", "COMPLETED", "FAILED"},
		Frame: frameNamed("notifyTransferEvent")},
	{Name: DataStatusEvent, REST: true, Statuses: []string{"ACCEPTED", "FAILED"}, Frame: frameNamed(DataStatusEvent)},
	{Name: RemoteSDP, Frame: func(d map[string]any) (string, []any) { return "setRemoteSDP", []any{d["callId"], d["sdp"]} }},
	{Name: IncomingCall, Frame: frameNamed("notifyIncomingCall")},
	{Name: ActionFailed, Frame: frameNamed("fail")},
}

var eventByName = func() map[string]*EventKind {
	m := make(map[string]*EventKind, len(Events))
	for i := range Events {
		m[Events[i].Name] = &Events[i]
	}
	return m
}()

// EventOf finds an event's row.
func EventOf(name string) (*EventKind, bool) {
	k, ok := eventByName[name]
	return k, ok
}

// Frame is the client frame of e ("" for none).
func (e Event) Frame() (string, []any) {
	k, ok := eventByName[e.Name]
	if !ok || k.Frame == nil || e.BackendOnly {
		return "", nil
	}
	return k.Frame(e.Data)
}

// IsREST reports whether e goes to the backend as a REST method.
func (e Event) IsREST() bool {
	k, ok := eventByName[e.Name]
	return ok && k.REST
}

// RESTMethods are the REST methods an app may enable, in Web Call Server's
// order: the actions' methods, then the status events.
var RESTMethods = func() []string {
	var out []string
	seen := map[string]bool{}
	add := func(m string) {
		if m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	for _, a := range Actions {
		add(a.Method)
	}
	for _, e := range Events {
		if e.REST {
			add(e.Name)
		}
	}
	return out
}()

// IsRESTMethod reports whether m is one of RESTMethods.
func IsRESTMethod(m string) bool {
	for _, x := range RESTMethods {
		if x == m {
			return true
		}
	}
	return false
}
