// Package daemon assembles rtcgate from its configuration: it creates each
// subsystem, lets each register its CLI commands and metrics, binds the
// listeners and shuts everything down in order. `rtcgate serve` and the
// end-to-end tests both run it.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/cluster"
	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/control"
	"github.com/rtcgate/rtcgate/internal/gateway"
	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
	"github.com/rtcgate/rtcgate/internal/logging"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/metrics"
	"github.com/rtcgate/rtcgate/internal/netguard"
	"github.com/rtcgate/rtcgate/internal/ng"
	"github.com/rtcgate/rtcgate/internal/phone"
	"github.com/rtcgate/rtcgate/internal/sipua"
	"github.com/rtcgate/rtcgate/internal/stats"
	"github.com/rtcgate/rtcgate/internal/status"
	"github.com/rtcgate/rtcgate/internal/version"
)

// listener is an opened listener and what serves it.
type listener struct {
	key   string
	ln    net.Listener
	serve func(net.Listener) error
}

// BindError is a listener that could not be opened, named by its key.
type BindError struct {
	Key  string
	Addr string
	Err  error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("%s: cannot listen on %s: %v", e.Key, e.Addr, e.Err)
}
func (e *BindError) Unwrap() error { return e.Err }

// Daemon is one running rtcgate.
type Daemon struct {
	Config  *config.Config
	Logs    *logging.Logs
	Log     *slog.Logger
	CLI     *cli.Registry
	Metrics *prometheus.Registry
	Stats   *stats.Stats
	Live    *config.Live
	Control *control.Server
	Media   *media.Engine
	NG      *ng.Dispatcher
	Clients *client.Hub
	Apps    *hooks.Apps
	Cluster *cluster.Cluster // nil on a single node (no cluster-redis)

	sipGateway *gateway.Gateway
	sip        *sipua.Stack
	hooks      *hooks.Hooks

	appStore *cluster.AppStore // the cluster's, nil on a single node

	hookHTTP   *restclient.Client
	hookEvents *eventq.Queue
	hookStore  eventq.Store
	hookDead   *eventq.DeadLetters
	client     *client.Server

	fds            *netguard.Budget  // descriptors kept for media, ng and hooks
	guards         *netguard.Metrics // the guarded listeners' counters
	trustedProxies []netip.Prefix

	ngConn  *net.UDPConn
	cancel  context.CancelFunc
	serving sync.WaitGroup
	errOnce sync.Once
	failed  chan error // a listener that stopped on its own
}

// New builds the subsystems; nothing listens until Start.
func New(cfg *config.Config, logOut io.Writer) (*Daemon, error) {
	logs := logging.New(logOut, cfg.LogFormat, cfg.LogLevel)
	d := &Daemon{
		Config:  cfg,
		Logs:    logs,
		Log:     logs.Logger("core", "Everything that isn't part of another subsystem"),
		Metrics: metrics.NewRegistry(),
		Stats:   stats.New(),
		Live:    config.NewLive(cfg),
		failed:  make(chan error, 1),
	}
	// Refused network input: counted, logged within a budget per subsystem.
	logs.BadInput().SetLimit(cfg.LogBadInputLines, cfg.LogBadInputInterval.D())
	d.Metrics.MustRegister(logs.BadInput())
	d.CLI = cli.New(logs.Logger("control", "Control protocols including SDP exchanges, CLI"))
	d.CLI.Alias("get", "list")
	d.Control = control.New(control.Options{
		MaxMessage: cfg.ControlMaxMessage,
		Timeout:    cfg.ControlTimeout.D(),
		Log:        logs.Logger("http", "HTTP, HTTPS, Websockets"),

		AllowedOrigins: cfg.ControlAllowedOrigins, Hosts: cfg.ControlHosts, Token: cfg.ControlToken,
		MaxConnections: cfg.ControlMaxConnections, IdleTimeout: cfg.ControlIdleTimeout.D(),
		PressureIdleTimeout: cfg.ControlPressureIdleTimeout.D(),
	}, d.CLI, d.Metrics, metrics.Handler(d.Metrics))

	if cfg.Pprof {
		d.Control.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
		d.Control.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		d.Control.Handle("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
		d.Control.Handle("/debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
	}

	// Each subsystem brings its own commands and metrics.
	d.Logs.RegisterCLI(d.CLI)
	d.Live.RegisterCLI(d.CLI)
	d.Stats.RegisterCLI(d.CLI)
	d.Metrics.MustRegister(d.Stats)

	var itfs []config.Interface
	for _, spec := range cfg.Interface {
		itf, err := config.ParseInterface(spec)
		if err != nil {
			return nil, &config.Error{Key: "interface", Msg: err.Error()}
		}
		itfs = append(itfs, itf)
	}
	engine, err := media.New(media.Config{
		Interfaces: itfs, PortMin: cfg.PortMin, PortMax: cfg.PortMax, DeleteDelay: cfg.DeleteDelay.D(),
		Threads: cfg.RelayThreads, RelayIO: cfg.RelayIO, KernelForwarding: cfg.KernelForwarding, MaxDTMFQueue: cfg.MaxDTMFQueue,
		CertCipher: cfg.DTLSCertCipher, RSAKeySize: cfg.DTLSRSAKeySize, DTLSSignature: strings.ToLower(cfg.DTLSSignature),
		Live: d.Live, Stats: d.Stats, Log: logs.Logger("media", "Media relay: calls, ports, packets"),
	})
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return nil, cerr
		}
		return nil, &config.Error{Key: "interface", Msg: err.Error()}
	}
	d.Media = engine
	d.Media.RegisterCLI(d.CLI)
	d.Metrics.MustRegister(d.Media)

	d.NG = ng.New(logs.Logger("control", ""))
	d.NG.RegisterMedia(d.Media, d.Stats)
	d.NG.RegisterHTTP(d.Control)
	d.NG.RegisterTotals(d.Stats)
	d.Metrics.MustRegister(d.NG.Collectors()...)

	var appConfigs []hooks.App
	for _, a := range cfg.Apps {
		appConfigs = append(appConfigs, hooks.App{Name: a.Name, Key: a.Key, URL: a.URL, Methods: a.Methods, User: a.User, Password: a.Password})
	}
	// A cluster keeps the runtime apps in Redis; a single node in the state
	// file. Without cluster-redis no Redis client is even built.
	var appStore hooks.AppStore
	storeKey, where := "state-file", "state file "+cfg.StateFile
	if cfg.ClusterRedis != "" {
		c, err := cluster.New(cluster.Options{URL: cfg.ClusterRedis, Heartbeat: cfg.ClusterHeartbeat.D(),
			NodeTTL: cfg.ClusterNodeTTL.D(), Timeout: cfg.ClusterRedisTimeout.D(),
			Log: logs.Logger("cluster", "The cluster: node registry and apps in Redis")})
		if err != nil {
			return nil, &config.Error{Key: "cluster-redis", Msg: err.Error()}
		}
		d.Cluster = c
		d.Metrics.MustRegister(c.Collectors()...)
		d.appStore = cluster.NewAppStore(c)
		appStore, storeKey, where = d.appStore, "cluster-redis", "cluster-redis"
	} else if cfg.StateFile != "" {
		appStore = hooks.NewFileAppStore(cfg.StateFile)
	} else {
		appStore, where = hooks.NewMemoryAppStore(), "memory"
	}
	d.Cluster.RegisterCLI(d.CLI)
	apps, err := hooks.NewAppsStore(appConfigs, appStore, where)
	if err != nil {
		var serr *hooks.StateFileError
		var sterr *hooks.StoreError
		if errors.As(err, &serr) || errors.As(err, &sterr) {
			return nil, &config.Error{Key: storeKey, Msg: err.Error()}
		}
		return nil, &config.Error{Key: "apps", Msg: err.Error()}
	}
	d.Apps = apps
	d.Apps.RegisterCLI(d.CLI)

	gw, err := d.newGateway(cfg, logs.Logger("hooks", "REST hooks to app backends"))
	if err != nil {
		return nil, err
	}
	d.hooks = gw
	if cfg.ListenSIP != "" {
		// The SIP gateway runs the clients' actions; the hooks run before
		// it and carry its events. Its Stack is bound in Start.
		d.sipGateway = &gateway.Gateway{Media: d.Media, Notify: gw, Log: logs.Logger("sip", "SIP gateway")}
		if cfg.WebRTC {
			// "" leaves the engine's interface address (or its
			// advertised one) in what browsers get.
			addr, _ := netip.ParseAddr(cfg.WebRTCAddress) // validated
			d.sipGateway.WebRTC = gateway.WebRTC{Enabled: true, Address: addr}
		}
		gw.Next = d.sipGateway
		d.sipGateway.RegisterCLI(d.CLI)
		d.Metrics.MustRegister(d.sipGateway.Collectors()...)
	}
	if def := config.Defaults(); cfg.WebRTCPortMin != def.WebRTCPortMin || cfg.WebRTCPortMax != def.WebRTCPortMax {
		// Kept parseable for old configurations; browsers' media is the
		// engine's now.
		d.Log.Warn("webrtc-port-min and webrtc-port-max no longer apply: browsers' media comes from port-min..port-max",
			"webrtc-port-min", cfg.WebRTCPortMin, "webrtc-port-max", cfg.WebRTCPortMax)
	}

	proxies, err := client.ParseProxies(cfg.ClientTrustedProxies)
	if err != nil {
		return nil, &config.Error{Key: "client-trusted-proxies", Msg: err.Error()}
	}
	d.trustedProxies = proxies
	d.Clients = client.NewHub(client.Options{
		MaxFrame: cfg.ClientMaxFrame, IdleTimeout: cfg.ClientIdleTimeout.D(), Keepalive: cfg.ClientKeepalive.D(),
		SyncWait: cfg.ClientSyncWait.D(), MaxConnections: cfg.ClientMaxConnections, Strategy: cfg.ClientOnMaxConnection,
		MaxPending: cfg.ClientMaxPending, MaxPendingBytes: cfg.ClientMaxPendingBytes, Origins: cfg.ClientAllowedOrigins,
		ReadTimeout: cfg.ClientReadTimeout.D(), SessionsPerIP: cfg.ClientSessionsPerIP,
		NewSessionsPerSecond: cfg.ClientNewSessionsRate, TrustedProxies: proxies,
		Log: logs.Logger("client", "Client sessions: WebSocket and HTTP fallback"),
	}, gw)
	d.fds = &netguard.Budget{Reserve: cfg.FDReserve}
	d.guards = netguard.NewMetrics()
	d.Metrics.MustRegister(d.guards.Collectors()...)
	var page http.Handler // the phone at "/", while client-demo says so
	if cfg.ClientDemoOn() {
		page = phone.Handler()
	}
	d.client = client.NewServer(d.Clients, page)
	d.Metrics.MustRegister(d.Clients.Collectors()...)
	d.registerStatus()
	return d, nil
}

// registerStatus adds the operator's page (/status) to the control plane,
// over the figures every subsystem already keeps.
func (d *Daemon) registerStatus() {
	src := status.Sources{
		Metrics: d.Metrics, Stats: d.Stats, Relay: d.Media, Sessions: d.Clients.EachSession, Apps: d.Apps.List,
		Node: func() string { return d.hooks.NodeID }, Version: version.String(),
	}
	if d.sipGateway != nil {
		src.SIP = d.sipGateway.Status
	}
	if d.Cluster != nil {
		src.Nodes = d.Cluster.Nodes
	}
	status.New(src, status.Options{Interval: d.Config.StatusInterval.D(), MaxRows: d.Config.StatusMaxRows}).Register(d.Control)
}

// Start opens every configured listener — all of them or none — and starts
// serving. A listener that cannot be opened is a *BindError.
func (d *Daemon) Start() error {
	cfg := d.Config
	tlsCfg, err := loadTLS("https-cert", cfg.ListenHTTPS, cfg.HTTPSCert, cfg.HTTPSKey)
	if err != nil {
		return err
	}
	clientTLS, err := loadTLS("client-tls-cert", cfg.ListenClientTLS, cfg.ClientTLSCert, cfg.ClientTLSKey)
	if err != nil {
		return err
	}

	var ngConn *net.UDPConn
	if addr, _ := config.ParseListen(cfg.ListenNG); addr != "" {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err == nil {
			ngConn, err = net.ListenUDP("udp", ua)
		}
		if err != nil {
			return &BindError{Key: "listen-ng", Addr: addr, Err: err}
		}
	}
	closeNG := func() {
		if ngConn != nil {
			ngConn.Close()
		}
	}

	var opened []listener
	// Control listeners share control-max-connections; the client
	// listener's sessions have their own limit (client-max-connections).
	for _, l := range []struct {
		key, addr string
		serve     func(net.Listener) error
		control   bool
	}{
		{"listen-http", cfg.ListenHTTP, d.Control.ServeHTTPListener, true},
		{"listen-https", cfg.ListenHTTPS, func(ln net.Listener) error { return d.Control.ServeHTTPSListener(ln, tlsCfg) }, true},
		{"listen-cli", cfg.ListenCLI, d.Control.ServeCLIListener, true},
		{"listen-client", cfg.ListenClient, func(ln net.Listener) error { return d.client.Serve(ln, nil) }, false},
		{"listen-client-tls", cfg.ListenClientTLS, func(ln net.Listener) error { return d.client.Serve(ln, clientTLS) }, false},
	} {
		addr, _ := config.ParseListen(l.addr) // validated by config.Load
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			closeNG()
			return &BindError{Key: l.key, Addr: addr, Err: err}
		}
		if !l.control {
			// A client listener: sockets within twice the sessions (a
			// fallback session holds a sync and a send) plus room for
			// handshakes, four times the sessions allowed per address
			// from one address, none within fd-reserve of the limit.
			ln = netguard.Listen(ln, netguard.Options{Name: l.key, MaxConns: 2*cfg.ClientMaxConnections + 256,
				MaxPerIP: 4 * cfg.ClientSessionsPerIP, Exempt: d.trustedProxy, Budget: d.fds, Keep: 1, Metrics: d.guards, Log: d.Log})
		}
		// Control listeners are capped by the control server itself
		// (control-max-connections), which closes quiet connections first.
		opened = append(opened, listener{l.key, ln, l.serve})
	}

	if d.sipGateway != nil {
		addr, _ := config.ParseListen(cfg.ListenSIP)
		stack, err := sipua.New(sipua.Config{
			Listen: addr, Advertised: cfg.SIPAdvertised, UserAgent: cfg.SIPUserAgent,
			RegisterExpires: cfg.SIPRegisterExpires.D(), RequestTimeout: cfg.SIPTimeout.D(),
			RingTimeout: cfg.SIPRingTimeout.D(), MaxAccounts: cfg.SIPMaxAccounts, Log: d.sipGateway.Log,
			LibLog:    d.Logs.BadInput().Wrap(d.sipGateway.Log, "sip", sipua.LogBadInput),
			TLSCAFile: cfg.SIPTLSCA, TLSSkipVerify: !cfg.SIPTLSVerify,
			GuardTCP: func(ln net.Listener) net.Listener {
				return netguard.Listen(ln, netguard.Options{Name: "listen-sip", MaxConns: cfg.SIPMaxConnections,
					MaxPerIP: cfg.SIPMaxConnsPerIP, IdleTimeout: cfg.SIPTCPIdleTimeout.D(), Budget: d.fds, Keep: 2, Metrics: d.guards, Log: d.Log})
			},
		})
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			closeNG()
			return &BindError{Key: "listen-sip", Addr: addr, Err: err}
		}
		d.sip, d.sipGateway.SIP = stack, stack
	}

	if d.Cluster != nil {
		d.joinCluster(opened)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if d.sip != nil {
		d.Log.Info("listening", "key", "listen-sip", "addr", d.sip.Addr())
		d.serving.Go(func() {
			if err := d.sip.Serve(ctx); err != nil && ctx.Err() == nil {
				d.errOnce.Do(func() { d.failed <- fmt.Errorf("listen-sip: %w", err) })
			}
		})
	}
	d.serving.Go(func() { d.Stats.Run(ctx, time.Second) })
	d.serving.Go(func() { d.Media.Run(ctx) })
	d.serving.Go(func() { d.Clients.Run(ctx) })
	if ngConn != nil {
		d.ngConn = ngConn
		d.Log.Info("listening", "key", "listen-ng", "addr", ngConn.LocalAddr().String())
		udp := ng.NewUDPServer(d.NG, d.Log, ng.UDPOptions{Workers: cfg.NGWorkers, CookieCacheSize: cfg.NGCookieCacheSize,
			CookieCacheBytes: int64(cfg.NGCookieCacheBytes),
			BadInput:         d.Logs.BadInput().Reporter("control", d.Logs.Logger("control", ""))})
		d.Metrics.MustRegister(udp.Collectors()...)
		d.serving.Go(func() { udp.Serve(ngConn) })
	}
	for _, l := range opened {
		d.Log.Info("listening", "key", l.key, "addr", l.ln.Addr().String())
		d.serving.Go(func() {
			if err := l.serve(l.ln); err != nil {
				d.errOnce.Do(func() { d.failed <- fmt.Errorf("%s: %w", l.key, err) })
			}
		})
	}
	d.Log.Info("rtcgate started", "version", version.String(), "interfaces", []string(cfg.Interface))
	return nil
}

// joinCluster names this node and starts its lease and the apps' watch. The
// node's addresses are its bound listen-client and listen-http, with
// cluster-advertise (else the host name) for an unspecified host; node-id
// defaults to the host name and the bound listen-client, and is the hooks'
// nodeId too.
func (d *Daemon) joinCluster(opened []listener) {
	host, _ := os.Hostname()
	bound := map[string]string{}
	for _, l := range opened {
		bound[l.key] = l.ln.Addr().String()
	}
	advertised := func(key string) string {
		addr := bound[key]
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		switch ip := net.ParseIP(h); {
		case d.Config.ClusterAdvertise != "":
			h = d.Config.ClusterAdvertise
		case ip != nil && ip.IsUnspecified():
			h = host
		}
		return net.JoinHostPort(h, p)
	}
	clientKey := "listen-client"
	if bound[clientKey] == "" {
		clientKey = "listen-client-tls"
	}
	nodeID := d.Config.NodeID
	if nodeID == "" {
		nodeID = host
		if a := bound[clientKey]; a != "" {
			nodeID += "/" + a
		}
		d.hooks.NodeID = nodeID
	}
	d.Cluster.Start(nodeID, advertised(clientKey), advertised("listen-http"), d.Clients.Len)
	d.appStore.Watch(d.Apps.Reload)
	if clientKey == "listen-client" && bound[clientKey] != "" {
		// The HTTP fallback's bindings in Redis: any node serves any
		// request, forwarding it to the connection's owner.
		d.Clients.SetBroker(client.NewRedisBroker(d.Cluster.Redis(), nodeID, advertised(clientKey), d.Config.ClientIdleTimeout.D()))
	} else {
		d.Log.Warn("cluster: no plain listen-client; HTTP fallback requests are not routed between nodes")
	}
	d.Log.Info("cluster", "node-id", nodeID, "cluster-redis", cluster.RedactURL(d.Config.ClusterRedis))
}

// trustedProxy: a client-trusted-proxies address, exempt from the client
// listener's per-address cap (a load balancer carries many clients).
func (d *Daemon) trustedProxy(a netip.Addr) bool {
	for _, p := range d.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Failed delivers the error of a listener that stopped by itself.
func (d *Daemon) Failed() <-chan error { return d.failed }

// Shutdown stops the listeners, waits for in-flight requests within ctx, and
// stops the background work.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if d.ngConn != nil {
		d.ngConn.Close()
	}
	err := errors.Join(d.client.Shutdown(ctx), d.Control.Shutdown(ctx))
	// Sessions' calls and registrations end (their events queued) before
	// the SIP stack and the event queue close. This waits as long as a SIP
	// teardown may take, not shutdown-timeout: an event cut short here
	// would be lost, even with a durable queue (a slow fsync under load
	// once took longer than a 1 s shutdown-timeout).
	lastEvents, cancelLast := context.WithTimeout(context.Background(), gateway.DefaultCloseTimeout+5*time.Second)
	err = errors.Join(err, d.hooks.Wait(lastEvents))
	cancelLast()
	if d.Config.HooksQueueDir == "" && d.Config.ClusterRedis == "" {
		// In memory, what is not delivered now is lost: deliver it
		// within the grace period, and say how much was not.
		if n := d.hookEvents.Drain(ctx); n > 0 {
			d.Log.Error("hook events lost at shutdown: no hooks-queue-dir to keep them", "events", n)
		}
	}
	if d.sip != nil {
		err = errors.Join(err, d.sip.Close())
	}
	// Status events still queued get until the deadline; a durable queue
	// keeps the rest for the next start.
	err = errors.Join(err, d.hookEvents.Close(ctx), d.hookStore.Close())
	err = errors.Join(err, d.hookDead.Close())
	d.hookHTTP.Close()
	if d.Cluster != nil {
		// The lease ends with the node: other nodes see it gone at once.
		err = errors.Join(err, d.Cluster.Stop(context.Background()))
	}
	d.Logs.BadInput().Flush() // the lines held back of bad input, counted
	d.Media.Close()
	if d.cancel != nil {
		d.cancel()
	}
	done := make(chan struct{})
	go func() { d.serving.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// Run starts the daemon, serves until ctx ends (SIGINT/SIGTERM in `serve`)
// and shuts down gracefully within shutdown-timeout.
func Run(ctx context.Context, cfg *config.Config, logOut io.Writer) error {
	d, err := New(cfg, logOut)
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		d.Log.Info("shutting down", "grace", cfg.ShutdownTimeout.D().String())
	case runErr = <-d.Failed():
		d.Log.Error("listener failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		d.Log.Warn("shutdown incomplete", "err", err)
	}
	d.Log.Info("stopped")
	return runErr
}

// loadTLS loads a listener's certificate when the listener is on.
func loadTLS(certKey, listen, cert, key string) (*tls.Config, error) {
	if listen == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, &config.Error{Key: certKey, Msg: err.Error()}
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// newGateway builds the client sessions' Handler: the apps registry's appKey
// check and the REST hooks, over the hardened HTTP client and the ordered
// event queue.
func (d *Daemon) newGateway(cfg *config.Config, log *slog.Logger) (*hooks.Hooks, error) {
	o := restclient.DefaultOptions()
	o.ConnectTimeout, o.Timeout = cfg.HooksConnectTimeout.D(), cfg.HooksTimeout.D()
	o.VerifyPeer, o.VerifyHost = cfg.HooksVerifyPeer, cfg.HooksVerifyHost
	o.CAPath, o.ClientCert, o.ClientKey = cfg.HooksCAPath, cfg.HooksClientCert, cfg.HooksClientKey
	o.Secret, o.Log = cfg.HooksSecret, log
	// hooks-max-async is the event queue's worker count (below), and every
	// worker may hold a connection: keep that many alive.
	o.MaxIdlePerHost = max(restclient.DefaultMaxIdlePerHost, cfg.HooksMaxAsync)
	httpClient, err := restclient.New(o)
	if err != nil {
		return nil, &config.Error{Key: "hooks-ca-path", Msg: err.Error()}
	}
	d.hookHTTP = httpClient
	nodeID := cfg.NodeID
	if nodeID == "" {
		nodeID, _ = os.Hostname()
	}
	if cfg.ClusterRedis != "" {
		if err := d.openRedisQueue(cfg, nodeID, log); err != nil {
			return nil, &config.Error{Key: "cluster-redis", Msg: err.Error()}
		}
	} else if cfg.HooksQueueDir != "" {
		disk, err := eventq.OpenDisk(cfg.HooksQueueDir, int64(cfg.HooksQueueMaxBytes), 5*time.Millisecond)
		if err != nil {
			return nil, &config.Error{Key: "hooks-queue-dir", Msg: err.Error()}
		}
		d.hookStore = disk
		dead, err := eventq.OpenDiskDeadLetters(cfg.HooksQueueDir, int64(cfg.HooksDeadLetterMaxBytes), 5*time.Millisecond)
		if err != nil {
			return nil, &config.Error{Key: "hooks-queue-dir", Msg: err.Error()}
		}
		d.hookDead = dead
	} else {
		d.hookStore = eventq.NewMemory(cfg.HooksQueueMaxBytes / 512)
		d.hookDead = eventq.NewMemoryDeadLetters(int64(cfg.HooksDeadLetterMaxBytes))
	}
	gw := &hooks.Hooks{Apps: d.Apps, HTTP: httpClient, NodeID: nodeID, Log: log, SettleTimeout: cfg.HooksTimeout.D()}
	gw.Next = client.BuiltIn{Notify: gw}
	q, err := eventq.New(eventq.Options{
		Store: d.hookStore, Send: gw.Sender(), Workers: cfg.HooksMaxAsync, MaxAttempts: cfg.HooksRetries, Log: log,
		BackoffMax: cfg.HooksMaxBackoff.D(),
		RetryTime:  cfg.HooksRetryTime.D(), DeadLetters: d.hookDead,
		DeadLetter: func(e *eventq.Event, err error) {
			// The dead-letter log: one line per event given up. Not the
			// body: it may carry SIP credentials.
			log.Error("hook event dead-lettered", "app", e.App, "method", e.Method, "attempts", e.Attempts,
				"bytes", len(e.Body), "err", err)
		},
	})
	if err != nil {
		return nil, &config.Error{Key: "hooks-queue-dir", Msg: err.Error()}
	}
	d.hookEvents = q
	gw.Events = q
	d.Metrics.MustRegister(gw.Collectors()...)
	d.Metrics.MustRegister(gw.QueueCollectors()...)
	gw.RegisterQueueCLI(d.CLI)
	gw.RegisterTotals(d.Stats)
	return gw, nil
}
