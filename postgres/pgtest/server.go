package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries reports that no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// port is only a name here: the server listens on no TCP port, and its
// socket file in the private directory is named after it.
const port = 5432

// Server is a throw-away PostgreSQL server with its data in one directory.
type Server struct {
	dir  string // owned by Start; removed by Stop
	cmd  *exec.Cmd
	exit chan struct{} // closed when the server process has exited
	log  string        // server log file
}

// EnvBinDir names the variable that points at the directory of the server
// binaries when they are not where BinDir looks.
const EnvBinDir = "OMI_TEST_PG_BINDIR"

// BinDir returns the directory holding initdb and postgres: $OMI_TEST_PG_BINDIR
// if set, else the one of initdb in PATH, else the newest
// /usr/lib/postgresql/<version>/bin (Debian keeps them out of PATH).
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", fmt.Errorf("%w in %s=%s", ErrNoBinaries, EnvBinDir, d)
	}
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	dirs = append(dirs, versions...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

// pgVersion is the major version in a /usr/lib/postgresql/<version>/bin path.
func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs returns the credentials to run the server with: none when not root,
// else those of the postgres user, or of nobody.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
		}
	}
	return nil, errors.New("running as root and no postgres or nobody user to run PostgreSQL as")
}

// Start creates a database cluster in dir (which must exist and be empty or
// hold only what Start left there) and starts a server on it, listening on
// a Unix socket in dir only. The superuser is postgres, with trust
// authentication. The server keeps PostgreSQL's default durability (fsync
// on), so that benchmarks measure what a deployment would see.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		// The server user must reach its data directory and own it.
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		for _, p := range []string{dir, data} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	s := &Server{dir: dir, log: filepath.Join(dir, "server.log"), exit: make(chan struct{})}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// Started directly rather than through pg_ctl, as a child of the test
	// process: it dies with it (Pdeathsig) instead of lingering after a
	// crashed or killed test run.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=", "-c", "max_connections=200",
		// Containers often have a small /dev/shm: keep dynamic shared
		// memory in the data directory.
		"-c", "dynamic_shared_memory_type=mmap")
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "LC_ALL=C")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exit)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// DSN returns the keyword/value DSN of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.dir, port, db)
}

// waitReady waits until the server accepts connections.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.exit:
			return fmt.Errorf("postgres exited at start-up: %s", s.tail())
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v): %s", ctx.Err(), err, s.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail is the end of the server log, for error messages.
func (s *Server) tail() string {
	b, _ := os.ReadFile(s.log)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// kill stops the server at once.
func (s *Server) kill() {
	s.cmd.Process.Kill()
	<-s.exit
}

// Stop shuts the server down (fast shutdown: sessions are disconnected) and
// removes its directory.
func (s *Server) Stop() error {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exit:
	case <-time.After(30 * time.Second):
		s.kill()
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove server directory: %w", err)
	}
	return nil
}
