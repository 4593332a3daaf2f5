package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/nbd"
	"github.com/omiproject/omi/oapi"
	"github.com/omiproject/omi/oos"
	"github.com/omiproject/omi/service"
)

// serveFlags are the settings of omi serve. Each flag has an environment
// variable (OMI_ and the flag name in capitals with _ for -), which the flag
// overrides.
type serveFlags struct {
	listen       string
	nbdTLSCert   string
	nbdTLSKey    string
	store        string
	blocks       blockConfig
	oosListen    string
	oosPublic    string
	s3Endpoint   string
	fetchAllow   string
	nbdListen    string
	catalog      bool
	officialImgs string
	refusePublic bool
	metrics      string
	pprof        bool
	gcEvery      time.Duration
	nodeName     string
	leaseTTL     time.Duration
	data         string
	config       string
	region       string
	logLevel     string
	security     securityFlags
	vm           vmFlags
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseServeFlags(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("omi serve", flag.ContinueOnError)
	fs.StringVar(&f.listen, "listen", envOr("OMI_LISTEN", "127.0.0.1:3000"), "API address (env OMI_LISTEN)")
	fs.StringVar(&f.nbdListen, "nbd-listen", envOr("OMI_NBD_LISTEN", "127.0.0.1:10809"), "NBD address serving volumes by id; loopback only (env OMI_NBD_LISTEN; empty disables)")
	fs.StringVar(&f.store, "store", envOr("OMI_STORE", ""), "metadata store: empty for SQLite in the data directory, or a postgres:// DSN (env OMI_STORE)")
	fs.StringVar(&f.nbdTLSCert, "nbd-tls-cert", envOr("OMI_NBD_TLS_CERT", ""), "PEM certificate for NBD over TLS; with --nbd-tls-key, NBD may listen beyond loopback (env OMI_NBD_TLS_CERT)")
	fs.StringVar(&f.nbdTLSKey, "nbd-tls-key", envOr("OMI_NBD_TLS_KEY", ""), "PEM private key for NBD over TLS (env OMI_NBD_TLS_KEY)")
	fs.StringVar(&f.blocks.kind, "blockstore", envOr("OMI_BLOCKSTORE", "local"), "block store: local (the data directory) or s3 (env OMI_BLOCKSTORE)")
	fs.StringVar(&f.blocks.endpoint, "blockstore-s3-endpoint", envOr("OMI_BLOCKSTORE_S3_ENDPOINT", ""), "S3 endpoint URL of the block bucket; empty means AWS (env OMI_BLOCKSTORE_S3_ENDPOINT)")
	fs.StringVar(&f.blocks.region, "blockstore-s3-region", envOr("OMI_BLOCKSTORE_S3_REGION", ""), "signing region of the block bucket; default: --region (env OMI_BLOCKSTORE_S3_REGION)")
	fs.StringVar(&f.blocks.bucket, "blockstore-s3-bucket", envOr("OMI_BLOCKSTORE_S3_BUCKET", ""), "bucket holding the blocks; it must exist (env OMI_BLOCKSTORE_S3_BUCKET)")
	fs.StringVar(&f.blocks.prefix, "blockstore-s3-prefix", envOr("OMI_BLOCKSTORE_S3_PREFIX", "blocks"), "key prefix of the blocks (env OMI_BLOCKSTORE_S3_PREFIX)")
	skew, err := time.ParseDuration(envOr("OMI_BLOCKSTORE_S3_CLOCK_SKEW", "0s"))
	if err != nil {
		return nil, fmt.Errorf("OMI_BLOCKSTORE_S3_CLOCK_SKEW: %w", err)
	}
	fs.DurationVar(&f.blocks.clockSkew, "blockstore-s3-clock-skew", skew, "how far the S3 server's clock may lag omi's, for garbage collection; 1m is prudent for external services (env OMI_BLOCKSTORE_S3_CLOCK_SKEW)")
	// Credentials come from the environment only, so they do not show in ps.
	f.blocks.accessKey, f.blocks.secretKey = os.Getenv("OMI_BLOCKSTORE_S3_ACCESS_KEY"), os.Getenv("OMI_BLOCKSTORE_S3_SECRET_KEY")
	fs.StringVar(&f.oosListen, "oos-listen", envOr("OMI_OOS_LISTEN", oos.DefaultListen), "built-in S3-compatible object storage address (env OMI_OOS_LISTEN; empty disables)")
	fs.StringVar(&f.oosPublic, "oos-public-url", envOr("OMI_OOS_PUBLIC_URL", ""), "URL clients reach the built-in object storage at, for pre-signed URLs (env OMI_OOS_PUBLIC_URL; default http://<oos-listen>)")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", envOr("OMI_S3_ENDPOINT", ""), "external S3 endpoint URL exports write to instead of the built-in object storage (env OMI_S3_ENDPOINT)")
	fs.StringVar(&f.fetchAllow, "fetch-allow", envOr("OMI_FETCH_ALLOW", ""), "comma-separated host[:port] entries FileLocation URLs may be fetched from, besides this process's object storage and --s3-endpoint (env OMI_FETCH_ALLOW)")
	fs.BoolVar(&f.catalog, "catalog", envOr("OMI_CATALOG", "true") == "true", "publish the official OMIs (Debian, Ubuntu, Rocky Linux, Windows) on first start (env OMI_CATALOG)")
	fs.StringVar(&f.officialImgs, "official-images", envOr("OMI_OFFICIAL_IMAGES", ""), "directory of bootable images built by omi image build, published as the official Linux OMIs; default <data>/images (env OMI_OFFICIAL_IMAGES)")
	fs.BoolVar(&f.refusePublic, "refuse-public-with-findings", envOr("OMI_REFUSE_PUBLIC_WITH_FINDINGS", "") == "true",
		"refuse to make an OMI public unless its hygiene inspection found it clean (env OMI_REFUSE_PUBLIC_WITH_FINDINGS; config refuse_public_with_findings)")
	fs.StringVar(&f.metrics, "metrics-listen", envOr("OMI_METRICS_LISTEN", ""), "Prometheus metrics address, e.g. 127.0.0.1:9090 (env OMI_METRICS_LISTEN; empty disables)")
	fs.BoolVar(&f.pprof, "pprof", envOr("OMI_PPROF", "") == "true", "also serve Go's profiles (/debug/pprof/) on --metrics-listen, for performance work; never on a public address (env OMI_PPROF)")
	gcDefault, err := time.ParseDuration(envOr("OMI_GC_INTERVAL", "10m"))
	if err != nil {
		return nil, fmt.Errorf("OMI_GC_INTERVAL: %w", err)
	}
	fs.DurationVar(&f.gcEvery, "gc-interval", gcDefault, "how often unreferenced blocks are collected; 0 disables (env OMI_GC_INTERVAL)")
	fs.StringVar(&f.nodeName, "node-name", envOr("OMI_NODE_NAME", ""), "name of this node among the omi processes sharing a PostgreSQL store; default <hostname>-<pid> (env OMI_NODE_NAME)")
	ttlDefault, err := time.ParseDuration(envOr("OMI_LEASE_TTL", "10s"))
	if err != nil {
		return nil, fmt.Errorf("OMI_LEASE_TTL: %w", err)
	}
	fs.DurationVar(&f.leaseTTL, "lease-ttl", ttlDefault, "with a PostgreSQL store, how long a node may go silent before the others take its work over (env OMI_LEASE_TTL)")
	fs.StringVar(&f.data, "data", envOr("OMI_DATA", "omi-data"), "data directory: metadata database, blocks (env OMI_DATA)")
	fs.StringVar(&f.config, "config", envOr("OMI_CONFIG", ""), "YAML configuration file with accounts (env OMI_CONFIG)")
	fs.StringVar(&f.region, "region", envOr("OMI_REGION", ""), "region name; default: the config's, else eu-west-2 (env OMI_REGION)")
	fs.StringVar(&f.logLevel, "log-level", envOr("OMI_LOG_LEVEL", "info"), "debug, info, warn or error (env OMI_LOG_LEVEL)")
	addSecurityFlags(fs, &f.security)
	f.vm.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("omi serve: unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

func serve(args []string) error {
	f, err := parseServeFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// The built-in object storage changes the process's working directory
	// (versitygw's POSIX backend resolves objects relative to it), so every
	// path is made absolute first.
	if f.data, err = filepath.Abs(f.data); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := &config.File{}
	if f.config != "" {
		if cfg, err = config.Load(f.config); err != nil {
			return err
		}
	}
	region := f.region
	if region == "" {
		region = cfg.Region
	}
	if region == "" {
		region = "eu-west-2"
	}
	loginPolicy, err := f.security.loginPolicy(cfg.LoginLockout)
	if err != nil {
		return err
	}
	sigPolicy, err := f.security.signaturePolicy(cfg.Signature)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	endpoint := "http://" + ln.Addr().String()
	n, err := openNode(ctx, f.data, f.store, f.blocks, nodeConfig{name: f.nodeName, ttl: f.leaseTTL, addr: endpoint}, service.Config{Region: region, Endpoint: strings.TrimPrefix(endpoint, "http://"),
		RefusePublicWithFindings: f.refusePublic || cfg.RefusePublicWithFindings, Marketplace: cfg.MarketplaceProducts(), LoginPolicy: &loginPolicy,
		Regions: cfg.ServiceRegions(), Subregions: cfg.Subregions}, log)
	if err != nil {
		return err
	}
	defer n.Close()
	store, blocks, plane, svc, mets := n.store, n.blocks, n.plane, n.svc, n.mets
	if err := svc.Provision(ctx, cfg.Specs()); err != nil {
		return fmt.Errorf("provision accounts: %w", err)
	}
	if f.config == "" {
		if err := ensureDefaultAccount(ctx, svc, f.data, endpoint, region); err != nil {
			return err
		}
	}
	if err := n.startObjectStorage(ctx, f, region, log); err != nil {
		return err
	}
	defer n.stopObjectStorage()
	drv, err := f.vm.vmDriver(svc, f.data, f.nbdListen, n.member != nil, log)
	if err != nil {
		return err
	}
	if drv != nil {
		defer drv.Close()
		svc.SetVmDriver(drv)
	}
	svc.Start(ctx)
	defer svc.Close()
	if f.catalog {
		imgs := f.officialImgs
		if imgs == "" {
			imgs = imagesDir(f.data)
		}
		go n.seedCatalog(ctx, log, imgs)
	}

	if f.nbdListen != "" {
		var opts []nbd.Option
		if f.nbdTLSCert != "" || f.nbdTLSKey != "" {
			cert, err := tls.LoadX509KeyPair(f.nbdTLSCert, f.nbdTLSKey)
			if err != nil {
				return fmt.Errorf("--nbd-tls-cert/--nbd-tls-key: %w", err)
			}
			opts = append(opts, nbd.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		}
		if err := nbd.CheckListenAddr(f.nbdListen, len(opts) > 0); err != nil {
			return err
		}
		nln, err := net.Listen("tcp", f.nbdListen)
		if err != nil {
			return fmt.Errorf("nbd listen: %w", err)
		}
		nsrv := nbd.NewServer(plane, append(opts, nbd.WithLogger(log))...)
		go func() {
			if err := nsrv.Serve(nln); err != nil && !errors.Is(err, nbd.ErrServerClosed) {
				log.Error("nbd server stopped", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nsrv.Shutdown(sctx)
		}()
		log.Info("nbd serving volumes", "nbd", "nbd://"+nln.Addr().String()+"/<volume-id>")
	}
	if f.gcEvery > 0 {
		go collectEvery(ctx, n, f.gcEvery, log)
	}

	api := oapi.New(svc, log)
	api.SetObserver(mets.ObserveCall)
	api.SetSignaturePolicy(sigPolicy)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context(), store, blocks); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("/", api)
	if f.metrics != "" {
		mln, err := net.Listen("tcp", f.metrics)
		if err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
		var mh http.Handler = mets.Handler()
		if f.pprof {
			pm := http.NewServeMux()
			pm.Handle("/metrics", mh)
			pm.HandleFunc("/debug/pprof/", pprof.Index)
			pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mh = pm
		}
		msrv := &http.Server{Handler: mh, ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("omi serving", "api", endpoint+"/api/v1", "region", region, "data", f.data)

	var lost <-chan struct{}
	if n.member != nil {
		lost = n.member.Lost()
	}
	select {
	case err := <-errc:
		return err
	case <-lost:
		// Fail-stop: other nodes may already run this node's work.
		return errors.New("this node's cluster registration expired (was it paused or cut off from PostgreSQL?); exiting so that its work is not done twice")
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(shutCtx)
}

// ready checks that the metadata store and the block store answer.
func ready(ctx context.Context, store interface{ Ping(context.Context) error }, blocks blockstore.Store) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := store.Ping(ctx); err != nil {
		return fmt.Errorf("metadata store: %w", err)
	}
	if _, err := blocks.Has(ctx, blockstore.Hash{}); err != nil {
		return fmt.Errorf("block store: %w", err)
	}
	return nil
}

// collectEvery frees unreferenced blocks periodically.
func collectEvery(ctx context.Context, n *node, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, ran, err := n.collect(ctx)
		if !ran && err == nil {
			continue // another node of the cluster collects
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Error("garbage collection", "err", err)
			}
			continue
		}
		log.Info("garbage collection", "stats", fmt.Sprintf("%+v", st))
	}
}

// ensureDefaultAccount creates an account on the first start without a
// configuration file and prints how to use it. The credentials are also
// kept in the data directory, readable by the owner only, for whoever
// missed the first output.
func ensureDefaultAccount(ctx context.Context, svc *service.Service, dataDir, endpoint, region string) error {
	n, err := svc.CountAccounts(ctx)
	if err != nil {
		return err
	}
	envFile := filepath.Join(dataDir, "default-account.env")
	if n > 0 {
		if _, err := os.Stat(envFile); err == nil {
			fmt.Fprintf(os.Stderr, "omi: credentials of the default account are in %s\n", envFile)
		}
		return nil
	}
	spec := service.NewAccountSpec("default", "default@omi.local")
	if err := svc.Provision(ctx, []service.AccountSpec{spec}); err != nil {
		return fmt.Errorf("create default account: %w", err)
	}
	k := spec.AccessKeys[0]
	lines := fmt.Sprintf("export OSC_ENDPOINT_API=%s/api/v1\nexport OSC_ACCESS_KEY=%s\nexport OSC_SECRET_KEY=%s\nexport OSC_REGION=%s\n",
		endpoint, k.AccessKeyID, k.SecretKey, region)
	if err := os.WriteFile(envFile, []byte(lines), 0o600); err != nil {
		return fmt.Errorf("save default credentials: %w", err)
	}
	fmt.Printf(`omi: created the default account %s (login %s, password %s)
omi: paste these lines to point OUTSCALE clients at this server (also saved in %s):

%s
`, spec.AccountID, spec.Email, spec.Password, envFile, lines)
	return nil
}
