package status

// Snapshot is what the page shows at one moment, as JSON. Counters are
// /metrics' figures (the same collectors), lists the subsystems' own
// state; rates are the growth since the previous snapshot.
type Snapshot struct {
	Node     string   `json:"node"`
	Version  string   `json:"version"`
	Time     int64    `json:"time"`     // unix milliseconds
	Uptime   float64  `json:"uptime"`   // seconds
	Interval float64  `json:"interval"` // seconds between two snapshots of a stream
	Clients  Clients  `json:"clients"`
	SIP      *SIP     `json:"sip"` // nil without listen-sip
	Relay    Relay    `json:"relay"`
	Hooks    Hooks    `json:"hooks"`
	Cluster  *Cluster `json:"cluster"` // nil on a single node
}

// Clients are the client sessions.
type Clients struct {
	Sessions int           `json:"sessions"` // rtcgate_client_sessions
	Apps     []AppSessions `json:"apps"`     // every app, with its sessions
	List     []Session     `json:"list"`     // oldest first, at most status-max-rows
	More     int           `json:"more"`     // sessions not listed
}

// AppSessions counts an app's sessions by transport.
type AppSessions struct {
	App       string `json:"app"`
	Key       string `json:"key"`
	Sessions  int    `json:"sessions"`
	WebSocket int    `json:"websocket"`
	HTTP      int    `json:"http"`
	Waiting   int    `json:"waiting"` // no transport: waiting for a resume
}

// Session is one client session.
type Session struct {
	ID           string  `json:"id"` // the sessionId's first characters only
	App          string  `json:"app"`
	Transport    string  `json:"transport"` // websocket, http, "" (waiting for a resume)
	Remote       string  `json:"remote"`
	Age          float64 `json:"age"` // seconds
	Account      string  `json:"account,omitempty"`
	Registration string  `json:"registration,omitempty"`
	Calls        int     `json:"calls"`
}

// SIP is the SIP gateway: `list sip`'s figures and the sessions' accounts
// and calls.
type SIP struct {
	Accounts      int                `json:"accounts"`      // rtcgate_sip_accounts
	ActiveCalls   int                `json:"activeCalls"`   // rtcgate_sip_calls_active
	Registrations map[string]float64 `json:"registrations"` // rtcgate_sip_registrations_total by status
	Ended         map[string]float64 `json:"ended"`         // rtcgate_sip_calls_total by "direction status"
	Messages      map[string]float64 `json:"messages"`      // rtcgate_sip_messages_total by "direction status"
	Accts         []Registration     `json:"accountList"`
	MoreAccounts  int                `json:"moreAccounts"`
	Calls         []Call             `json:"calls"`
	MoreCalls     int                `json:"moreCalls"`
}

// Registration is a session's SIP account.
type Registration struct {
	Session   string  `json:"session"`
	App       string  `json:"app"`
	Account   string  `json:"account"`
	Transport string  `json:"transport"`
	Status    string  `json:"status"` // "" before the first REGISTER outcome, or not registering
	Code      int     `json:"code"`
	Age       float64 `json:"age"` // seconds since Status
}

// Call is a client's SIP call.
type Call struct {
	Session   string  `json:"session"`
	App       string  `json:"app"`
	ID        string  `json:"id"`
	Direction string  `json:"direction"` // outgoing, incoming
	Caller    string  `json:"caller"`
	Callee    string  `json:"callee"`
	Status    string  `json:"status"`
	Duration  float64 `json:"duration"` // seconds since placed or offered
	Talking   float64 `json:"talking"`  // seconds since ESTABLISHED (0: not yet)
	Media     string  `json:"media"`    // its call id in the relay
}

// Relay is the media relay: `list totals`' figures and its calls.
type Relay struct {
	Sessions         int64       `json:"sessions"`
	Streams          int64       `json:"streams"`
	PacketsPerSecond uint64      `json:"packetsPerSecond"`
	BytesPerSecond   uint64      `json:"bytesPerSecond"`
	ErrorsPerSecond  uint64      `json:"errorsPerSecond"`
	Packets          uint64      `json:"packets"` // relayed, running sessions included
	Bytes            uint64      `json:"bytes"`
	Errors           uint64      `json:"errors"`
	PortsUsed        int         `json:"portsUsed"`
	PortsTotal       int         `json:"portsTotal"`
	Calls            []RelayCall `json:"calls"` // oldest first
	More             int         `json:"more"`
}

// RelayCall is one call in the relay.
type RelayCall struct {
	ID      string   `json:"id"`
	Age     float64  `json:"age"`
	Packets uint64   `json:"packets"`
	Streams []Stream `json:"streams"`
}

// Stream is one relay socket of a call.
type Stream struct {
	Tag       string   `json:"tag"`
	Media     int      `json:"media"`
	Type      string   `json:"type"`
	RTCP      bool     `json:"rtcp"`
	Local     string   `json:"local"`
	Remote    string   `json:"remote"`
	Confirmed bool     `json:"confirmed"`
	Packets   uint64   `json:"packets"`
	Bytes     uint64   `json:"bytes"`
	Errors    uint64   `json:"errors"`
	Rate      *float64 `json:"rate"` // packets per second; null for the first sample
}

// Hooks is the hook queue and the backends' answers.
type Hooks struct {
	Depth        float64   `json:"depth"`
	Oldest       float64   `json:"oldest"` // seconds
	Delivered    float64   `json:"delivered"`
	Retries      float64   `json:"retries"`
	DeadLettered float64   `json:"deadLettered"`
	DeadLetters  float64   `json:"deadLetters"` // kept for replay
	Dropped      float64   `json:"dropped"`
	Replayed     float64   `json:"replayed"`
	Spilled      float64   `json:"spilled"`
	Refused      float64   `json:"refused"`
	Backends     []Backend `json:"backends"`
}

// Backend is one app's hook requests and their latency.
type Backend struct {
	App      string   `json:"app"`
	Requests float64  `json:"requests"`
	Failures float64  `json:"failures"` // no reply or not 2xx
	Rate     *float64 `json:"rate"`     // requests per second; null for the first sample
	Mean     float64  `json:"mean"`     // seconds
	P50      float64  `json:"p50"`
	P95      float64  `json:"p95"`
}

// Cluster is the nodes sharing cluster-redis.
type Cluster struct {
	RedisUp bool   `json:"redisUp"` // rtcgate_cluster_redis_up
	Nodes   []Node `json:"nodes"`
	Error   string `json:"error,omitempty"` // Redis did not answer `list nodes`
}

// Node is one live node.
type Node struct {
	ID        string  `json:"id"`
	Client    string  `json:"client"`
	HTTP      string  `json:"http"`
	Sessions  int     `json:"sessions"`
	Heartbeat float64 `json:"heartbeat"` // seconds ago
	Self      bool    `json:"self"`
}
