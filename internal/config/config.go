// Package config loads rtcgate's configuration: embedded defaults, then one
// YAML file, then RTCGATE_* environment variables, then command-line flags.
// Keys that rtpengine also has keep rtpengine's names so that an
// rtpengine.conf user recognises them.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Config is the whole static configuration. Values that can change at
// runtime (max-sessions, timeouts, log levels) are copied into Live and the
// logging levels at start-up; Config itself is never mutated after Load.
type Config struct {
	Interface   StringList `yaml:"interface"`
	ListenNG    string     `yaml:"listen-ng"`
	ListenCLI   string     `yaml:"listen-cli"`
	ListenHTTP  string     `yaml:"listen-http"`
	ListenHTTPS string     `yaml:"listen-https"`
	HTTPSCert   string     `yaml:"https-cert"`
	HTTPSKey    string     `yaml:"https-key"`

	PortMin       int      `yaml:"port-min"`
	PortMax       int      `yaml:"port-max"`
	Timeout       Duration `yaml:"timeout"`
	SilentTimeout Duration `yaml:"silent-timeout"`
	FinalTimeout  Duration `yaml:"final-timeout"`
	MaxSessions   int      `yaml:"max-sessions"`
	DeleteDelay   Duration `yaml:"delete-delay"`
	MaxDTMFQueue  int      `yaml:"max-dtmf-queue"`

	// The DTLS certificate (one per process) and a=fingerprint's default
	// hash, as rtpengine's options of the same names.
	DTLSCertCipher string `yaml:"dtls-cert-cipher"`
	DTLSRSAKeySize int    `yaml:"dtls-rsa-key-size"`
	DTLSSignature  string `yaml:"dtls-signature"`

	RelayThreads     int    `yaml:"relay-threads"`
	RelayIO          string `yaml:"relay-io"`
	KernelForwarding string `yaml:"kernel-forwarding"`

	LogLevel  int    `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`

	LogBadInputLines    int      `yaml:"log-bad-input-lines"`
	LogBadInputInterval Duration `yaml:"log-bad-input-interval"`

	NGWorkers         int `yaml:"ng-workers"`
	NGCookieCacheSize int `yaml:"ng-cookie-cache-size"`

	NGCookieCacheBytes int `yaml:"ng-cookie-cache-bytes"`

	ListenClient          string     `yaml:"listen-client"`
	ListenClientTLS       string     `yaml:"listen-client-tls"`
	ClientTLSCert         string     `yaml:"client-tls-cert"`
	ClientTLSKey          string     `yaml:"client-tls-key"`
	ClientIdleTimeout     Duration   `yaml:"client-idle-timeout"`
	ClientKeepalive       Duration   `yaml:"client-keepalive"`
	ClientSyncWait        Duration   `yaml:"client-sync-wait"`
	ClientMaxConnections  int        `yaml:"client-max-connections"`
	ClientOnMaxConnection string     `yaml:"client-on-max-connections"`
	ClientAllowedOrigins  StringList `yaml:"client-allowed-origins"`
	ClientMaxFrame        int        `yaml:"client-max-frame"`
	ClientMaxPending      int        `yaml:"client-max-pending"`
	ClientMaxPendingBytes int        `yaml:"client-max-pending-bytes"`
	ClientReadTimeout     Duration   `yaml:"client-read-timeout"`
	ClientSessionsPerIP   int        `yaml:"client-max-sessions-per-ip"`
	ClientNewSessionsRate int        `yaml:"client-new-sessions-per-ip"`
	ClientTrustedProxies  StringList `yaml:"client-trusted-proxies"`
	ClientDemo            string     `yaml:"client-demo"`

	Apps      []AppConfig `yaml:"apps"`
	StateFile string      `yaml:"state-file"`
	NodeID    string      `yaml:"node-id"`

	// The cluster on Redis; "" is a single node with no Redis anywhere.
	ClusterRedis        string   `yaml:"cluster-redis"`
	ClusterAdvertise    string   `yaml:"cluster-advertise"`
	ClusterHeartbeat    Duration `yaml:"cluster-heartbeat"`
	ClusterNodeTTL      Duration `yaml:"cluster-node-ttl"`
	ClusterRedisTimeout Duration `yaml:"cluster-redis-timeout"`

	HooksConnectTimeout Duration `yaml:"hooks-connect-timeout"`
	HooksTimeout        Duration `yaml:"hooks-timeout"`
	HooksVerifyPeer     bool     `yaml:"hooks-verify-peer"`
	HooksVerifyHost     bool     `yaml:"hooks-verify-host"`
	HooksCAPath         string   `yaml:"hooks-ca-path"`
	HooksClientCert     string   `yaml:"hooks-client-cert"`
	HooksClientKey      string   `yaml:"hooks-client-key"`
	HooksSecret         string   `yaml:"hooks-secret"`
	HooksMaxAsync       int      `yaml:"hooks-max-async"`
	HooksQueueDir       string   `yaml:"hooks-queue-dir"`
	HooksQueueMaxBytes  int      `yaml:"hooks-queue-max-bytes"`
	HooksRetries        int      `yaml:"hooks-retries"`
	HooksMaxBackoff     Duration `yaml:"hooks-max-backoff"`

	HooksRetryTime          Duration `yaml:"hooks-retry-time"`
	HooksDeadLetterMaxBytes int      `yaml:"hooks-dead-letter-max-bytes"`
	HooksRedisClaimAfter    Duration `yaml:"hooks-redis-claim-after"`

	WebRTC        bool   `yaml:"webrtc"`
	WebRTCAddress string `yaml:"webrtc-address"`
	WebRTCPortMin int    `yaml:"webrtc-port-min"`
	WebRTCPortMax int    `yaml:"webrtc-port-max"`

	ListenSIP          string   `yaml:"listen-sip"`
	SIPAdvertised      string   `yaml:"sip-advertised"`
	SIPUserAgent       string   `yaml:"sip-user-agent"`
	SIPRegisterExpires Duration `yaml:"sip-register-expires"`
	SIPTimeout         Duration `yaml:"sip-timeout"`
	SIPRingTimeout     Duration `yaml:"sip-ring-timeout"`
	SIPMaxAccounts     int      `yaml:"sip-max-accounts"`
	SIPMaxConnections  int      `yaml:"sip-max-connections"`
	SIPMaxConnsPerIP   int      `yaml:"sip-max-connections-per-ip"`
	SIPTCPIdleTimeout  Duration `yaml:"sip-tcp-idle-timeout"`
	FDReserve          int      `yaml:"fd-reserve"`
	SIPTLSCA           string   `yaml:"sip-tls-ca"`
	SIPTLSVerify       bool     `yaml:"sip-tls-verify"`

	ControlMaxMessage     int      `yaml:"control-max-message"`
	ControlTimeout        Duration `yaml:"control-timeout"`
	ControlMaxConnections int      `yaml:"control-max-connections"`
	ShutdownTimeout       Duration `yaml:"shutdown-timeout"`
	Pprof                 bool     `yaml:"pprof"`

	// Who may drive the control plane, and its quiet connections.
	ControlToken               string     `yaml:"control-token"`
	ControlAllowedOrigins      StringList `yaml:"control-allowed-origins"`
	ControlHosts               StringList `yaml:"control-hosts"`
	ControlCLIAllowRemote      bool       `yaml:"control-cli-allow-remote"`
	ControlIdleTimeout         Duration   `yaml:"control-idle-timeout"`
	ControlPressureIdleTimeout Duration   `yaml:"control-pressure-idle-timeout"`

	// The operator's page, /status on the control listeners.
	StatusInterval Duration `yaml:"status-interval"`
	StatusMaxRows  int      `yaml:"status-max-rows"`
}

// AppConfig is one backend app (see the hooks package): its REST URL gets a
// POST for every method it enables.
type AppConfig struct {
	Name     string   `yaml:"name"`
	Key      string   `yaml:"key"`
	URL      string   `yaml:"url"`
	Methods  []string `yaml:"methods"`
	User     string   `yaml:"user"`
	Password string   `yaml:"password"`
}

// Error is a configuration problem tied to one key. Callers exit with status
// 2 on it, before anything listens.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

func keyErr(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// field is one configuration key bound to its struct field.
type field struct {
	key   string
	index int
}

var fields = func() []field {
	t := reflect.TypeOf(Config{})
	out := make([]field, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		out = append(out, field{key: t.Field(i).Tag.Get("yaml"), index: i})
	}
	return out
}()

// Keys lists every configuration key in declaration order.
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

func lookup(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// EnvName is the environment variable that sets key: RTCGATE_ and the key in
// upper case with '-' as '_' (listen-http → RTCGATE_LISTEN_HTTP).
func EnvName(key string) string {
	return "RTCGATE_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// Defaults returns the embedded defaults.
func Defaults() *Config {
	c := &Config{}
	if err := c.applyYAML(defaultsYAML); err != nil {
		panic("config: embedded defaults: " + err.Error())
	}
	return c
}

// Override is one key=value given on the command line.
type Override struct {
	Key, Value string
}

// Load builds the configuration: defaults, then the YAML file at path (if
// path is not empty), then environment variables from environ (os.Environ
// form), then overrides in order. The result is validated.
func Load(path string, environ []string, overrides []Override) (*Config, error) {
	c := Defaults()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, keyErr("config", "%v", err)
		}
		if err := c.applyYAML(data); err != nil {
			return nil, err
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for _, f := range fields {
		if v, ok := env[EnvName(f.key)]; ok {
			if err := c.Set(f.key, v); err != nil {
				return nil, err
			}
		}
	}
	// A repeated list key on the command line adds up (--interface a
	// --interface b) but replaces what the file and environment said.
	seenList := map[string]bool{}
	for _, o := range overrides {
		f, ok := lookup(o.Key)
		if !ok {
			return nil, keyErr(o.Key, "unknown key")
		}
		if list, isList := c.fieldPtr(f).(*StringList); isList {
			if !seenList[o.Key] {
				*list = nil
				seenList[o.Key] = true
			}
			var add StringList
			if err := decodeScalar(&add, o.Value); err != nil {
				return nil, keyErr(o.Key, "%v", err)
			}
			*list = append(*list, add...)
			continue
		}
		if err := c.Set(o.Key, o.Value); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// The state file sits beside the configuration file.
	if path != "" && c.StateFile != "" && !filepath.IsAbs(c.StateFile) {
		c.StateFile = filepath.Join(filepath.Dir(path), c.StateFile)
	}
	return c, nil
}

func (c *Config) fieldPtr(f field) any {
	return reflect.ValueOf(c).Elem().Field(f.index).Addr().Interface()
}

// Set assigns one key from its string form, parsed as a YAML scalar would be.
func (c *Config) Set(key, value string) error {
	f, ok := lookup(key)
	if !ok {
		return keyErr(key, "unknown key")
	}
	if err := decodeScalar(c.fieldPtr(f), value); err != nil {
		return keyErr(key, "%v", err)
	}
	return nil
}

func decodeScalar(dst any, value string) error {
	node := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	// A plain string field takes the text as it is, even "yes" or "0".
	if s, ok := dst.(*string); ok {
		*s = value
		return nil
	}
	return cleanYAMLError(node.Decode(dst))
}

// applyYAML merges a YAML document key by key, so that every error names
// its key and an unknown key is refused.
func (c *Config) applyYAML(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return keyErr("config", "%v", err)
	}
	if doc.Kind == 0 { // empty file
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return keyErr("config", "line %d: the file must be a mapping of key: value", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		f, ok := lookup(k.Value)
		if !ok {
			return keyErr(k.Value, "unknown key (line %d); known keys: %s", k.Line, strings.Join(sortedKeys(), ", "))
		}
		if err := cleanYAMLError(v.Decode(c.fieldPtr(f))); err != nil {
			return keyErr(k.Value, "line %d: %v", v.Line, err)
		}
	}
	return nil
}

func sortedKeys() []string {
	k := Keys()
	sort.Strings(k)
	return k
}

var unmarshalMsg = regexp.MustCompile("^cannot unmarshal (!!\\w+) (?:`(.*)` )?into (\\S+)$")

var typeWords = map[string]string{"int": "a whole number", "string": "a string", "bool": "true or false"}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  line N:" wrapping,
// which repeats what our message already says.
func cleanYAMLError(err error) error {
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = rest
		}
		if m := unmarshalMsg.FindStringSubmatch(msg); m != nil {
			want := m[3]
			if w, ok := typeWords[want]; ok {
				want = w
			}
			if m[2] == "" {
				return fmt.Errorf("want %s, not a %s", want, strings.TrimPrefix(m[1], "!!"))
			}
			return fmt.Errorf("%q is not %s", m[2], want)
		}
		return errors.New(msg)
	}
	return err
}

// Get returns a key's value in the form Set takes ("" for an unknown key).
func (c *Config) Get(key string) string {
	f, ok := lookup(key)
	if !ok {
		return ""
	}
	switch v := c.fieldPtr(f).(type) {
	case *StringList:
		return strings.Join(*v, ";")
	case *Duration:
		return v.String()
	case *string:
		return *v
	default:
		return fmt.Sprint(reflect.ValueOf(v).Elem().Interface())
	}
}
