// Package apitest runs the whole omi API server (SQLite metadata store,
// service, HTTP transport) on a real loopback socket for tests, and hands out
// clients that nobody on the team wrote: the official OUTSCALE Go SDKs v2 and
// v3, curl, and raw signed requests for malformed-input tests.
//
// Every response that goes through the harness is checked on the way back:
// no 5xx ever, Content-Type application/json, a ResponseContext.RequestId,
// a well-formed Errors list on failures, and a body that conforms to the
// OUTSCALE OpenAPI specification. A violation fails the test that made the
// request, so every test built on the harness also tests conformance.
package apitest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/oapi"
	"github.com/omiproject/omi/recordcache"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// Region is the region every test server serves.
const Region = "eu-west-2"

// Account is one account of examples/accounts.yaml with its first key.
type Account struct {
	Alias     string
	AccountID string
	Email     string
	Password  string
	AccessKey string
	SecretKey string
}

// Env is a running API server with the example accounts provisioned.
type Env struct {
	// URL is the server's base URL, http://127.0.0.1:PORT, without a path.
	URL string
	// Service is the service behind the server, for white-box setup.
	Service *service.Service
	// Store is the metadata store, for bulk setup that would take too many
	// API calls (benchmarks).
	Store omi.Store
	// Server is the HTTP handler (to set its clock in date-skew tests).
	Server *oapi.Server
	// NBDAddr is the loopback address of the NBD server (WithDataPlane),
	// exporting volumes by id; "" otherwise.
	NBDAddr string
	// Joe, Titi and Marketplace are the accounts of examples/accounts.yaml.
	Joe, Titi, Marketplace Account
	// Accounts holds every provisioned account with an access key, by alias.
	Accounts map[string]Account

	t       testing.TB
	checker *Checker
}

type settings struct {
	validate  bool
	dataPlane bool
	logLevel  slog.Level
}

// Option changes how Start builds the environment.
type Option func(*settings)

// WithoutValidation turns off the OpenAPI check of responses (the other
// checks stay). Benchmarks use it so that the figures measure the server.
func WithoutValidation() Option { return func(o *settings) { o.validate = false } }

// WithDataPlane stores real bytes behind volumes and snapshots (local
// block store and block maps in the test's temporary directory, wired as
// omi serve wires them) and serves volumes over NBD on a loopback port
// (Env.NBDAddr), so tests can write and read disk data with qemu-io.
// Without it the service is metadata-only.
func WithDataPlane() Option { return func(o *settings) { o.dataPlane = true } }

// WithLogLevel sets the server log level (default: errors only, so test
// output stays readable).
func WithLogLevel(l slog.Level) Option { return func(o *settings) { o.logLevel = l } }

// RepoRoot returns the root of the omi module, found from this source file,
// so tests work from any package directory.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("apitest: runtime.Caller failed")
	}
	return filepath.Dir(filepath.Dir(file))
}

// ExampleAccountsFile is the path of examples/accounts.yaml.
func ExampleAccountsFile() string { return filepath.Join(RepoRoot(), "examples", "accounts.yaml") }

// Start opens a SQLite store in a temporary directory, provisions the
// accounts of examples/accounts.yaml, starts the service's reconciler and
// serves the API on a loopback port. Everything is shut down when the test
// ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := settings{validate: true, logLevel: slog.LevelError}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := config.Load(ExampleAccountsFile())
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		cancel()
		t.Fatalf("apitest: open sqlite: %v", err)
	}
	// As omi serve does: reads by id go through the record cache.
	store := recordcache.Wrap(raw, 0)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	svc := service.New(store, service.Config{Region: Region}, log)
	if err := svc.Provision(ctx, cfg.Specs()); err != nil {
		cancel()
		store.Close()
		t.Fatalf("apitest: provision accounts: %v", err)
	}
	var closers []func()
	nbdAddr := ""
	if o.dataPlane {
		plane, closeBlocks, err := openDataPlane(filepath.Join(t.TempDir(), "data"), store)
		if err != nil {
			cancel()
			store.Close()
			t.Fatalf("apitest: %v", err)
		}
		svc.SetDataPlane(plane)
		addr, stopNBD, err := serveNBD(plane, log)
		if err != nil {
			cancel()
			closeBlocks()
			store.Close()
			t.Fatalf("apitest: %v", err)
		}
		nbdAddr = addr
		closers = append(closers, stopNBD, closeBlocks)
	}
	svc.Start(ctx)
	api := oapi.New(svc, log)
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		svc.Close()
		cancel()
		for _, c := range closers {
			c()
		}
		if err := store.Close(); err != nil {
			t.Errorf("apitest: close store: %v", err)
		}
	})

	e := &Env{URL: srv.URL, Service: svc, Store: store, Server: api, NBDAddr: nbdAddr, Accounts: map[string]Account{}, t: t}
	for _, a := range cfg.Accounts {
		if len(a.AccessKeys) == 0 {
			continue
		}
		e.Accounts[a.Alias] = Account{Alias: a.Alias, AccountID: a.AccountID, Email: a.Email, Password: a.Password,
			AccessKey: a.AccessKeys[0].AccessKeyID, SecretKey: a.AccessKeys[0].SecretKey}
	}
	for alias, dst := range map[string]*Account{"joe": &e.Joe, "titi": &e.Titi, "marketplace": &e.Marketplace} {
		a, ok := e.Accounts[alias]
		if !ok {
			t.Fatalf("apitest: examples/accounts.yaml has no account %q with an access key", alias)
		}
		*dst = a
	}
	e.checker = NewChecker(t, http.DefaultTransport)
	if o.validate {
		spec, err := LoadSpec()
		switch {
		case err == nil:
			e.checker.Spec = spec
		case os.Getenv("CI") == "true":
			t.Fatalf("apitest: %v", err)
		default:
			t.Logf("apitest: OpenAPI validation off: %v", err)
		}
	}
	return e
}

// Attach returns an Env for a server that runs elsewhere (an omi process
// started by the test) at url, with clients and checks but no Service,
// Store or Server. Accounts holds the example accounts, which the server
// may or may not have.
func Attach(t testing.TB, url string) *Env {
	t.Helper()
	e := &Env{URL: strings.TrimSuffix(url, "/"), Accounts: map[string]Account{}, t: t}
	if cfg, err := config.Load(ExampleAccountsFile()); err == nil {
		for _, a := range cfg.Accounts {
			if len(a.AccessKeys) > 0 {
				e.Accounts[a.Alias] = Account{Alias: a.Alias, AccountID: a.AccountID, Email: a.Email, Password: a.Password,
					AccessKey: a.AccessKeys[0].AccessKeyID, SecretKey: a.AccessKeys[0].SecretKey}
			}
		}
		e.Joe, e.Titi, e.Marketplace = e.Accounts["joe"], e.Accounts["titi"], e.Accounts["marketplace"]
	}
	e.checker = NewChecker(t, http.DefaultTransport)
	if spec, err := LoadSpec(); err == nil {
		e.checker.Spec = spec
	}
	return e
}

// T returns the test the environment belongs to.
func (e *Env) T() testing.TB { return e.t }

// Checker returns the response checker all the harness's clients use.
func (e *Env) Checker() *Checker { return e.checker }

// HTTPClient returns an http.Client whose transport checks every response.
func (e *Env) HTTPClient() *http.Client {
	return &http.Client{Transport: e.checker, Timeout: 30 * time.Second}
}

// APIURL is the endpoint SDKs are configured with: URL + /api/v1.
func (e *Env) APIURL() string { return e.URL + "/api/v1" }

// AccountAliases lists the aliases of Accounts, sorted.
func (e *Env) AccountAliases() []string {
	out := make([]string, 0, len(e.Accounts))
	for a := range e.Accounts {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// NeedTool returns the path of an external program, skipping the test when
// it is missing, or failing it when CI=true (CI must not skip silently).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: %v", name, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
