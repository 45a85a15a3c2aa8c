package rig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The databases a Server can run on (ServerOptions.Database).
const (
	// DatabaseSQLite is Prefect's default: a file in PREFECT_HOME.
	DatabaseSQLite = "sqlite"
	// DatabasePostgres is a throw-away PostgreSQL cluster (StartPostgres)
	// that the Server owns and removes when it stops.
	DatabasePostgres = "postgres"
)

// DatabaseEnv names the environment variable that picks the database of a
// Server whose ServerOptions.Database is empty, Shared's included:
// UE_PREFECT_RIG_DATABASE=postgres runs any end-to-end test on PostgreSQL.
const DatabaseEnv = "UE_PREFECT_RIG_DATABASE"

// DefaultDatabase is $UE_PREFECT_RIG_DATABASE, or DatabaseSQLite.
func DefaultDatabase() string {
	if v := os.Getenv(DatabaseEnv); v != "" {
		return v
	}
	return DatabaseSQLite
}

// Postgres is a throw-away PostgreSQL cluster: initdb into a temporary
// folder, the server on a free port on 127.0.0.1 only (no Unix socket),
// one role and one database named prefect with a random password. The
// server process runs under the rig's supervisor, so it is stopped and its
// folder removed even if the test binary dies; durability is off (fsync,
// synchronous_commit, full_page_writes) because nothing outlives the test.
//
// PostgreSQL refuses to run as root. Run as root (as CI is), the rig runs
// initdb and the server as the unprivileged user PostgresUser (the Debian
// package's "postgres"), through runuser, and hands it the folder.
type Postgres struct {
	// URL is the SQLAlchemy URL for Prefect:
	// postgresql+asyncpg://prefect:PASSWORD@127.0.0.1:PORT/prefect.
	URL string
	// Dir is the temporary folder (data/ and postgres.log).
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Version is the server's major version, e.g. "15".
	Version string

	logPath string
	proc    *proc
	once    sync.Once
}

// PostgresUser is the account the cluster runs as when the rig runs as
// root.
const PostgresUser = "postgres"

// PostgresBin returns the folder holding initdb and postgres: the one of
// pg_ctl on PATH, else the newest /usr/lib/postgresql/*/bin (Debian puts
// them there, off PATH). When neither exists it runs
// tests/rig/postgres.sh, which installs the distribution's package.
func PostgresBin() (string, error) {
	if dir, ok := findPostgresBin(); ok {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "tests", "rig", "postgres.sh")
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("PostgreSQL is not installed and %s failed: %v\n%s", script, err, lastN(string(out), 2000))
	}
	if dir, ok := findPostgresBin(); ok {
		return dir, nil
	}
	return "", fmt.Errorf("%s ran, but no initdb and postgres were found on PATH or under /usr/lib/postgresql/*/bin", script)
}

func findPostgresBin() (string, bool) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres", "pg_isready", "createdb"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), true
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, true
		}
	}
	return "", false
}

// pgMajor is the version number in /usr/lib/postgresql/<N>/bin (0 if none).
func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// StartPostgres creates and starts a throw-away cluster and its prefect
// database, and waits (60 s ceiling) until it accepts connections. Stop
// removes it; Shutdown does too, for any the test forgot.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := PostgresBin()
	if err != nil {
		return nil, err
	}
	python, err := Python() // the supervisor's interpreter
	if err != nil {
		return nil, err
	}
	runAs, uid, gid, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ue-prefect-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, logPath: filepath.Join(dir, "postgres.log")}
	owned.Lock()
	owned.postgres = append(owned.postgres, p)
	owned.Unlock()
	fail := func(err error) (*Postgres, error) {
		log := p.Log()
		p.Stop()
		return nil, fmt.Errorf("%w\n--- postgres.log (tail) ---\n%s", err, lastN(log, 3000))
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	password := hex.EncodeToString(pw)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if runAs != nil {
		for _, f := range []string{dir, pwfile} {
			if err := os.Chown(f, uid, gid); err != nil {
				return fail(fmt.Errorf("handing %s to %s: %w", f, PostgresUser, err))
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := append(runAs, filepath.Join(bin, "initdb"), "-D", data, "-U", "prefect", "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
	if out, err := exec.CommandContext(ctx, initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, lastN(string(out), 2000)))
	}
	_ = os.Remove(pwfile)
	if p.Port, err = freePort(); err != nil {
		return fail(err)
	}
	out, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	argv := append(runAs, filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "max_connections=200", "-c", "shared_buffers=128MB",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	if p.proc, err = startProc("postgres", python, dir, dir, argv, nil, out); err != nil {
		return fail(err)
	}
	if err := p.waitReady(ctx, bin, password); err != nil {
		return fail(err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "PG_VERSION")); err == nil {
		p.Version = strings.TrimSpace(string(b))
	}
	p.URL = fmt.Sprintf("postgresql+asyncpg://prefect:%s@127.0.0.1:%d/prefect", password, p.Port)
	return p, nil
}

// postgresAccount returns the runuser prefix and ids of PostgresUser when
// the rig runs as root, else nothing (the cluster runs as the current user).
func postgresAccount() (prefix []string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	u, err := user.Lookup(PostgresUser)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("PostgreSQL refuses to run as root, and there is no %q user to run it as (the postgresql package creates it; tests/rig/postgres.sh installs it): %w", PostgresUser, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	ru, err := exec.LookPath("runuser")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("PostgreSQL refuses to run as root, and runuser (util-linux) is missing: %w", err)
	}
	return []string{ru, "-u", PostgresUser, "--"}, uid, gid, nil
}

// waitReady waits for the server to accept connections, then creates the
// prefect database.
func (p *Postgres) waitReady(ctx context.Context, bin, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	port := strconv.Itoa(p.Port)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err == nil {
			c.Close()
			err = exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", port, "-t", "2").Run()
		}
		if err == nil {
			break
		}
		select {
		case <-p.proc.done:
			return fmt.Errorf("postgres exited before accepting connections: %v", p.proc.err)
		case <-ctx.Done():
			return fmt.Errorf("postgres not accepting connections on 127.0.0.1:%s: %w", port, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "createdb"), "-h", "127.0.0.1", "-p", port, "-U", "prefect", "prefect")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("createdb prefect: %v\n%s", err, lastN(string(out), 2000))
	}
	return nil
}

// Log returns postgres.log ("" once the folder is gone).
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Stop stops the server (SIGTERM to its process group, SIGKILL after 10 s)
// and removes Dir (kept when UE_PREFECT_KEEP_RIG=1). Idempotent.
func (p *Postgres) Stop() error {
	var err error
	p.once.Do(func() {
		if p.proc != nil {
			_ = p.proc.stop()
		}
		if !keepRig() {
			err = os.RemoveAll(p.Dir)
		}
	})
	return err
}

// errNoDatabase is returned for an unknown ServerOptions.Database.
var errNoDatabase = errors.New("want " + DatabaseSQLite + " or " + DatabasePostgres)
