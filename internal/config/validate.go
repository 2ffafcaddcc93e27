package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// Validate checks every value; the first problem is returned as an *Error
// naming its key.
func (c *Config) Validate() error {
	if len(c.Interface) == 0 {
		return keyErr("interface", "at least one media interface is required")
	}
	for _, spec := range c.Interface {
		if _, err := ParseInterface(spec); err != nil {
			return keyErr("interface", "%v", err)
		}
	}
	for _, l := range []struct{ key, val string }{
		{"listen-ng", c.ListenNG}, {"listen-cli", c.ListenCLI},
		{"listen-http", c.ListenHTTP}, {"listen-https", c.ListenHTTPS},
		{"listen-client", c.ListenClient}, {"listen-client-tls", c.ListenClientTLS},
		{"listen-sip", c.ListenSIP},
	} {
		if _, err := ParseListen(l.val); err != nil {
			return keyErr(l.key, "%v", err)
		}
	}
	if err := checkCertPair("listen-https", c.ListenHTTPS, "https-cert", c.HTTPSCert, "https-key", c.HTTPSKey); err != nil {
		return err
	}
	if err := checkCertPair("listen-client-tls", c.ListenClientTLS, "client-tls-cert", c.ClientTLSCert, "client-tls-key", c.ClientTLSKey); err != nil {
		return err
	}
	if err := checkPort("port-min", c.PortMin); err != nil {
		return err
	}
	if err := checkPort("port-max", c.PortMax); err != nil {
		return err
	}
	if c.PortMin > c.PortMax {
		return keyErr("port-min", "%d is greater than port-max %d", c.PortMin, c.PortMax)
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"timeout", c.Timeout}, {"silent-timeout", c.SilentTimeout}, {"final-timeout", c.FinalTimeout},
		{"delete-delay", c.DeleteDelay}, {"shutdown-timeout", c.ShutdownTimeout}} {
		if d.val < 0 {
			return keyErr(d.key, "must not be negative")
		}
	}
	if c.ControlTimeout <= 0 {
		return keyErr("control-timeout", "must be positive")
	}
	if c.MaxSessions < -1 {
		return keyErr("max-sessions", "%d: either -1 (unlimited) or a number of sessions", c.MaxSessions)
	}
	if c.LogLevel < 1 || c.LogLevel > 7 {
		return keyErr("log-level", "%d: want 1 (alert) to 7 (debug)", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return keyErr("log-format", "%q: want text or json", c.LogFormat)
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"client-idle-timeout", c.ClientIdleTimeout}, {"client-sync-wait", c.ClientSyncWait}} {
		if d.val <= 0 {
			return keyErr(d.key, "must be positive")
		}
	}
	if c.ClientKeepalive < 0 {
		return keyErr("client-keepalive", "must not be negative (0 turns pings off)")
	}
	if c.ClientMaxConnections < 1 {
		return keyErr("client-max-connections", "%d: want at least 1", c.ClientMaxConnections)
	}
	if c.ClientOnMaxConnection != "reject" && c.ClientOnMaxConnection != "close" {
		return keyErr("client-on-max-connections", "%q: want reject or close", c.ClientOnMaxConnection)
	}
	for _, o := range c.ClientAllowedOrigins {
		if _, err := path.Match(o, ""); err != nil {
			return keyErr("client-allowed-origins", "%q: %v", o, err)
		}
	}
	if c.ClientMaxFrame < 1024 {
		return keyErr("client-max-frame", "%d: want at least 1024 bytes", c.ClientMaxFrame)
	}
	if c.ClientMaxPending < 16 {
		return keyErr("client-max-pending", "%d: want at least 16", c.ClientMaxPending)
	}
	if c.ClientMaxPendingBytes < 2*c.ClientMaxFrame {
		return keyErr("client-max-pending-bytes", "%d: want at least twice client-max-frame (%d)", c.ClientMaxPendingBytes, 2*c.ClientMaxFrame)
	}
	if c.ClientReadTimeout <= 0 {
		return keyErr("client-read-timeout", "must be positive")
	}
	if c.ClientSessionsPerIP < 0 || c.ClientNewSessionsRate < 0 {
		return keyErr("client-max-sessions-per-ip", "client-max-sessions-per-ip and client-new-sessions-per-ip must not be negative (0: no limit)")
	}
	for _, p := range c.ClientTrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return keyErr("client-trusted-proxies", "%q: want an address or a CIDR", p)
			}
		}
	}
	if c.ClientDemo != "auto" && c.ClientDemo != "true" && c.ClientDemo != "false" {
		return keyErr("client-demo", "%q: want auto, true or false", c.ClientDemo)
	}
	if c.SIPMaxConnections < 1 || c.SIPMaxConnsPerIP < 0 {
		return keyErr("sip-max-connections", "sip-max-connections must be at least 1, sip-max-connections-per-ip 0 (no limit) or more")
	}
	if c.SIPTCPIdleTimeout <= 0 {
		return keyErr("sip-tcp-idle-timeout", "must be positive")
	}
	if c.FDReserve < 0 {
		return keyErr("fd-reserve", "must not be negative")
	}
	if c.HooksConnectTimeout <= 0 || c.HooksTimeout <= 0 {
		return keyErr("hooks-timeout", "hooks-connect-timeout and hooks-timeout must be positive")
	}
	if c.HooksMaxAsync < 1 {
		return keyErr("hooks-max-async", "%d: want at least 1", c.HooksMaxAsync)
	}
	if c.HooksRetries < 0 {
		return keyErr("hooks-retries", "%d: want 0 (no cap) or more", c.HooksRetries)
	}
	if c.HooksRetryTime < Duration(time.Second) {
		return keyErr("hooks-retry-time", "%s: want at least 1s", c.HooksRetryTime)
	}
	if c.HooksDeadLetterMaxBytes < 1<<16 {
		return keyErr("hooks-dead-letter-max-bytes", "%d: want at least 65536", c.HooksDeadLetterMaxBytes)
	}
	if c.HooksMaxBackoff < Duration(100*time.Millisecond) {
		return keyErr("hooks-max-backoff", "%s: want at least 100ms", c.HooksMaxBackoff)
	}
	if c.HooksRedisClaimAfter < Duration(100*time.Millisecond) {
		return keyErr("hooks-redis-claim-after", "%s: want at least 100ms", c.HooksRedisClaimAfter)
	}
	if c.HooksQueueMaxBytes < 1<<16 {
		return keyErr("hooks-queue-max-bytes", "%d: want at least 65536", c.HooksQueueMaxBytes)
	}
	if c.SIPRegisterExpires < Duration(10*time.Second) {
		return keyErr("sip-register-expires", "%s: want at least 10s", c.SIPRegisterExpires)
	}
	if c.SIPTimeout <= 0 || c.SIPRingTimeout <= 0 {
		return keyErr("sip-timeout", "sip-timeout and sip-ring-timeout must be positive")
	}
	if c.WebRTCAddress != "" {
		if a, err := netip.ParseAddr(c.WebRTCAddress); err != nil || a.IsUnspecified() {
			return keyErr("webrtc-address", "%q: want an IP address browsers can reach", c.WebRTCAddress)
		}
	}
	if c.WebRTCPortMin < 1 || c.WebRTCPortMax > 65535 || c.WebRTCPortMin > c.WebRTCPortMax {
		return keyErr("webrtc-port-min", "%d-%d: want 1 <= webrtc-port-min <= webrtc-port-max <= 65535", c.WebRTCPortMin, c.WebRTCPortMax)
	}
	if c.SIPMaxAccounts < 0 {
		return keyErr("sip-max-accounts", "%d: want 0 (unlimited) or more", c.SIPMaxAccounts)
	}
	if c.SIPTLSCA != "" {
		// Checked here so that a bad file is a config error (exit 2), not
		// a SIP listener that fails to start.
		pem, err := os.ReadFile(c.SIPTLSCA)
		if err != nil {
			return keyErr("sip-tls-ca", "%v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return keyErr("sip-tls-ca", "%s: no PEM certificate in it", c.SIPTLSCA)
		}
	}
	if c.ControlMaxMessage < 512 {
		return keyErr("control-max-message", "%d: want at least 512 bytes", c.ControlMaxMessage)
	}
	if c.KernelForwarding != "auto" && c.KernelForwarding != "off" && c.KernelForwarding != "required" {
		return keyErr("kernel-forwarding", "%q: want auto, off or required", c.KernelForwarding)
	}
	if c.RelayIO != "epoll" && c.RelayIO != "io_uring" && c.RelayIO != "auto" {
		return keyErr("relay-io", "%q: want epoll, io_uring or auto", c.RelayIO)
	}
	if c.RelayThreads < 0 || c.RelayThreads > 256 {
		return keyErr("relay-threads", "%d: want 0 (one per CPU) to 256", c.RelayThreads)
	}
	if !slices.Contains(webrtcbridge.CertCiphers, strings.ToLower(c.DTLSCertCipher)) {
		return keyErr("dtls-cert-cipher", "%q: want one of %v", c.DTLSCertCipher, webrtcbridge.CertCiphers)
	}
	if c.DTLSRSAKeySize < 2048 || c.DTLSRSAKeySize > 8192 {
		return keyErr("dtls-rsa-key-size", "%d: want 2048 to 8192 bits", c.DTLSRSAKeySize)
	}
	if !slices.Contains(webrtcbridge.FingerprintHashes, strings.ToLower(c.DTLSSignature)) {
		return keyErr("dtls-signature", "%q: want one of %v", c.DTLSSignature, webrtcbridge.FingerprintHashes)
	}
	if c.MaxDTMFQueue < 1 || c.MaxDTMFQueue > 10000 {
		return keyErr("max-dtmf-queue", "%d: want 1 to 10000", c.MaxDTMFQueue)
	}
	if c.NGWorkers < 1 || c.NGWorkers > 1024 {
		return keyErr("ng-workers", "%d: want 1 to 1024", c.NGWorkers)
	}
	if c.NGCookieCacheSize < 16 {
		return keyErr("ng-cookie-cache-size", "%d: want at least 16", c.NGCookieCacheSize)
	}
	if c.LogBadInputLines < 0 || c.LogBadInputLines > 10000 {
		return keyErr("log-bad-input-lines", "%d: want 0 (none) to 10000", c.LogBadInputLines)
	}
	if c.LogBadInputInterval < Duration(time.Second) {
		return keyErr("log-bad-input-interval", "%s: want at least 1s", c.LogBadInputInterval)
	}
	if c.NGCookieCacheBytes < 1<<20 {
		return keyErr("ng-cookie-cache-bytes", "%d: want at least 1048576 (1 MiB)", c.NGCookieCacheBytes)
	}
	if c.ControlMaxConnections < 1 {
		return keyErr("control-max-connections", "%d: want at least 1", c.ControlMaxConnections)
	}
	if c.StatusInterval < Duration(100*time.Millisecond) || c.StatusInterval > Duration(time.Minute) {
		return keyErr("status-interval", "%s: want 100ms to 1m", c.StatusInterval)
	}
	if c.StatusMaxRows < 1 || c.StatusMaxRows > 10000 {
		return keyErr("status-max-rows", "%d: want 1 to 10000", c.StatusMaxRows)
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateControlAccess(); err != nil {
		return err
	}
	return nil
}

// checkCertPair requires a certificate and key when the TLS listener is on,
// and that they load together.
func checkCertPair(listenKey, listen, certKey, cert, keyKey, key string) error {
	if listen != "" {
		if cert == "" {
			return keyErr(certKey, "required when %s is set", listenKey)
		}
		if key == "" {
			return keyErr(keyKey, "required when %s is set", listenKey)
		}
	}
	if cert == "" && key == "" {
		return nil
	}
	for _, f := range []struct{ key, path string }{{certKey, cert}, {keyKey, key}} {
		if f.path == "" {
			return keyErr(f.key, "required when the other of %s/%s is set", certKey, keyKey)
		}
		if _, err := os.Stat(f.path); err != nil {
			return keyErr(f.key, "%v", err)
		}
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return keyErr(certKey, "cannot load the certificate with %s: %v", keyKey, err)
	}
	return nil
}

func checkPort(key string, p int) error {
	if p < 1 || p > 65535 {
		return keyErr(key, "%d is not a port (1-65535)", p)
	}
	return nil
}

// ParseListen checks a listen address and returns it in net.Listen form. As
// in rtpengine, "PORT" alone means every local address; "" disables the
// listener and returns "". Port 0 asks the system for a free port.
func ParseListen(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	host, port := "", s
	if strings.ContainsAny(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("%q: want HOST:PORT, [IPv6]:PORT or PORT", s)
		}
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: bad port %q", s, port)
	}
	switch host {
	case "", "*":
		host = ""
	case "localhost":
		host = "127.0.0.1"
	default:
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("%q: %q is not an IP address", s, host)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// Interface is one media interface: rtpengine's [NAME/]ADDRESS[!ADVERTISED].
type Interface struct {
	Name       string       // "default" when not given
	Addrs      []netip.Addr // the local addresses media binds to
	Advertised netip.Addr   // the address put in SDP, if different (NAT)
}

var interfaceName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// ParseInterface parses one interface spec. ADDRESS may be an IP address or
// the name of a network device, whose addresses are then used.
func ParseInterface(spec string) (Interface, error) {
	itf := Interface{Name: "default"}
	rest := strings.TrimSpace(spec)
	if name, addr, ok := strings.Cut(rest, "/"); ok {
		if !interfaceName.MatchString(name) {
			return itf, fmt.Errorf("%q: bad interface name %q", spec, name)
		}
		itf.Name, rest = name, addr
	}
	if addr, adv, ok := strings.Cut(rest, "!"); ok {
		a, err := netip.ParseAddr(adv)
		if err != nil {
			return itf, fmt.Errorf("%q: advertised address %q is not an IP address", spec, adv)
		}
		itf.Advertised, rest = a, addr
	}
	if rest == "" {
		return itf, fmt.Errorf("%q: no address", spec)
	}
	if a, err := netip.ParseAddr(rest); err == nil {
		itf.Addrs = []netip.Addr{a}
		return itf, nil
	}
	dev, err := net.InterfaceByName(rest)
	if err != nil {
		return itf, fmt.Errorf("%q: %q is neither an IP address nor a network device", spec, rest)
	}
	addrs, err := dev.Addrs()
	if err != nil {
		return itf, fmt.Errorf("%q: %v", spec, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			itf.Addrs = append(itf.Addrs, p.Addr())
		}
	}
	if len(itf.Addrs) == 0 {
		return itf, fmt.Errorf("%q: device %s has no address", spec, rest)
	}
	return itf, nil
}

// validateCluster checks the cluster's keys. cluster-redis's URL itself is
// parsed by the cluster package when the daemon is built (exit 2 too).
func (c *Config) validateCluster() error {
	if c.ClusterHeartbeat < Duration(100*time.Millisecond) {
		return keyErr("cluster-heartbeat", "%s: want at least 100ms", c.ClusterHeartbeat)
	}
	if c.ClusterNodeTTL < 2*c.ClusterHeartbeat {
		return keyErr("cluster-node-ttl", "%s: want at least twice cluster-heartbeat (%s)", c.ClusterNodeTTL, 2*c.ClusterHeartbeat)
	}
	if c.ClusterRedisTimeout < Duration(10*time.Millisecond) || c.ClusterRedisTimeout >= c.ClusterNodeTTL {
		return keyErr("cluster-redis-timeout", "%s: want at least 10ms and less than cluster-node-ttl (%s)", c.ClusterRedisTimeout, c.ClusterNodeTTL)
	}
	if strings.ContainsAny(c.ClusterAdvertise, " /:") && net.ParseIP(c.ClusterAdvertise) == nil {
		return keyErr("cluster-advertise", "%q: want a host name or an IP address", c.ClusterAdvertise)
	}
	if strings.ContainsAny(c.NodeID, " \t\r\n") {
		return keyErr("node-id", "%q: no spaces", c.NodeID)
	}
	return nil
}
