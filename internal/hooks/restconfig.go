package hooks

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rtcgate/rtcgate/internal/client"
)

// Policy is a method's restPolicy (Web Call Server's restClientConfig).
type Policy string

// The policies: NOTIFY sends and changes nothing, OVERWRITE lets the
// backend's reply overwrite the fields listed in restOverwrite, DISABLE does
// not call the backend.
const (
	Notify    Policy = "NOTIFY"
	Overwrite Policy = "OVERWRITE"
	Disable   Policy = "DISABLE"
)

// MethodConfig is how one REST method behaves for a session.
type MethodConfig struct {
	Policy        Policy
	FailOnError   bool     // restOnError FAIL (default LOG: log and go on)
	RestExclude   []string // fields not sent to the backend
	ClientExclude []string // fields not sent to the client
	RestOverwrite []string // fields the backend's reply may overwrite (OVERWRITE)
}

// DefaultMethodConfig is Web Call Server's default: NOTIFY, LOG, no lists.
var DefaultMethodConfig = MethodConfig{Policy: Notify}

// RestClientConfig maps REST methods to their configuration; methods not in
// it use DefaultMethodConfig.
type RestClientConfig map[string]MethodConfig

// For returns the configuration of method.
func (c RestClientConfig) For(method string) MethodConfig {
	if m, ok := c[method]; ok {
		return m
	}
	return DefaultMethodConfig
}

// maxRestClientConfig bounds what a backend's connect reply may carry.
const maxRestClientConfig = 64 << 10

// ParseRestClientConfig reads the restClientConfig object a backend returns
// in its 200 reply to connect: {"METHOD": {"restPolicy": …, "restOnError":
// …, "restExclude": "a,b", "clientExclude": …, "restOverwrite": …}, …}.
// Unknown methods and bad values are errors, so that a backend's typo does
// not silently fall back to defaults.
func ParseRestClientConfig(raw json.RawMessage) (RestClientConfig, error) {
	if len(raw) > maxRestClientConfig {
		return nil, fmt.Errorf("restClientConfig: %d bytes, limit %d", len(raw), maxRestClientConfig)
	}
	var in map[string]map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("restClientConfig: want an object of methods: %v", err)
	}
	out := RestClientConfig{}
	for method, fields := range in {
		if _, gone := retired[method]; gone {
			continue
		}
		if !client.IsRESTMethod(method) {
			return nil, fmt.Errorf("restClientConfig: unknown method %q", method)
		}
		mc := DefaultMethodConfig
		for k, v := range fields {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("restClientConfig: %s.%s must be a string", method, k)
			}
			switch k {
			case "restPolicy":
				switch p := Policy(strings.ToUpper(strings.TrimSpace(s))); p {
				case Notify, Overwrite, Disable:
					mc.Policy = p
				case "DISABLED": // the spelling of older Web Call Server documents
					mc.Policy = Disable
				default:
					return nil, fmt.Errorf("restClientConfig: %s.restPolicy %q: want NOTIFY, OVERWRITE or DISABLE", method, s)
				}
			case "restOnError":
				switch strings.ToUpper(strings.TrimSpace(s)) {
				case "LOG":
					mc.FailOnError = false
				case "FAIL":
					mc.FailOnError = true
				default:
					return nil, fmt.Errorf("restClientConfig: %s.restOnError %q: want LOG or FAIL", method, s)
				}
			case "restExclude":
				mc.RestExclude = fieldList(s)
			case "clientExclude":
				mc.ClientExclude = fieldList(s)
			case "restOverwrite":
				mc.RestOverwrite = fieldList(s)
			default:
				return nil, fmt.Errorf("restClientConfig: %s: unknown field %q", method, k)
			}
		}
		out[method] = mc
	}
	return out, nil
}

// fieldList splits "a, b,,c" into [a b c].
func fieldList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
