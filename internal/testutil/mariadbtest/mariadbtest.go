// Package mariadbtest starts a throwaway MariaDB server for tests: a real
// mariadbd from PATH, in a temp dir, on a free loopback port, removed when
// the test binary ends. With CI=true a missing mariadbd fails the test
// instead of skipping it.
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/mapsim/mapsim-chat/internal/store"
)

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	root *sql.DB
	err  error
}

var (
	once   sync.Once
	shared *server
	dbSeq  atomic.Int64
)

// Main runs the tests of a package and stops the server afterwards. Call it
// from TestMain: func TestMain(m *testing.M) { mariadbtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// Options starts the shared server on first use and returns store options
// for a new, empty database of the caller's own.
func Options(tb testing.TB) store.Options {
	tb.Helper()
	once.Do(func() { shared = start() })
	if shared.err != nil {
		if os.Getenv("CI") == "true" || !isMissing(shared.err) {
			tb.Fatalf("mariadb: %v", shared.err)
		}
		tb.Skipf("mariadb not available (set CI=true to make this fail): %v", shared.err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := shared.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shared.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
	})
	return store.Options{Driver: store.MySQL, Host: "127.0.0.1", Port: strconv.Itoa(shared.port), Name: name, User: "root"}
}

// Private starts a server of the caller's own, for a test that watches the
// database go away. kill stops it abruptly; it is also stopped and removed
// when the test ends.
func Private(tb testing.TB) (opts store.Options, kill func()) {
	tb.Helper()
	opts, s := PrivateServer(tb)
	return opts, s.Kill
}

// Server is a MariaDB of one test's own, which the test may kill or freeze.
type Server struct{ s *server }

// PrivateServer starts a server of the caller's own; it is stopped and
// removed when the test ends.
func PrivateServer(tb testing.TB) (store.Options, *Server) {
	tb.Helper()
	s := start()
	if s.err != nil {
		if os.Getenv("CI") == "true" || !isMissing(s.err) {
			tb.Fatalf("mariadb: %v", s.err)
		}
		tb.Skipf("mariadb not available (set CI=true to make this fail): %v", s.err)
	}
	srv := &Server{s}
	tb.Cleanup(func() {
		// A throwaway: killed, not shut down (which waits out its clients),
		// then removed.
		srv.Thaw()
		srv.Kill()
		s.stop()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.root.ExecContext(ctx, "CREATE DATABASE private CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	return store.Options{Driver: store.MySQL, Host: "127.0.0.1", Port: strconv.Itoa(s.port), Name: "private", User: "root"}, srv
}

// Kill stops the server abruptly, as a crash would.
func (srv *Server) Kill() {
	if s := srv.s; s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

// Freeze stops the server's process (SIGSTOP): connections stay open and
// nothing answers, as in a stalled disk or a paused virtual machine. It
// returns once the process is stopped.
func (srv *Server) Freeze() {
	if s := srv.s; s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGSTOP)
		s.waitState(func(state byte) bool { return state == 'T' })
	}
}

// Thaw lets a frozen server go on (SIGCONT), and returns once it runs.
func (srv *Server) Thaw() {
	if s := srv.s; s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.waitState(func(state byte) bool { return state != 'T' })
	}
}

// waitState waits, up to ten seconds, until the process's state in
// /proc/PID/stat satisfies ok ('T' is stopped).
func (s *server) waitState(ok func(state byte) bool) {
	path := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile(path)
		if err != nil {
			return // gone
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && ok(stat[i+2]) {
			return
		}
	}
}

type missingError struct{ error }

func isMissing(err error) bool {
	_, ok := err.(missingError)
	return ok
}

// find looks a program up on PATH and in the sbin folders, where Debian puts
// mariadbd.
func find(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", missingError{fmt.Errorf("%s not found on PATH (apt-get install mariadb-server)", name)}
}

func start() *server {
	s := &server{}
	mariadbd, err := find("mariadbd")
	if err != nil {
		s.err = err
		return s
	}
	installDB, err := find("mariadb-install-db")
	if err != nil {
		s.err = err
		return s
	}
	s.dir, err = os.MkdirTemp("", "mapsim-mariadb-")
	if err != nil {
		s.err = err
		return s
	}
	datadir := filepath.Join(s.dir, "db")
	install := exec.Command(installDB, append([]string{"--no-defaults", "--datadir=" + datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, asUser()...)...)
	if out, err := install.CombinedOutput(); err != nil {
		s.err = fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
		return s
	}
	for attempt := 0; attempt < 3; attempt++ {
		if s.err = s.launch(mariadbd, datadir); s.err == nil {
			return s
		}
	}
	return s
}

func (s *server) launch(mariadbd, datadir string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	logFile, err := os.Create(filepath.Join(s.dir, "mariadbd.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd = exec.Command(mariadbd, append([]string{"--no-defaults", "--datadir=" + datadir,
		"--socket=" + filepath.Join(s.dir, "sock"), "--port=" + strconv.Itoa(s.port), "--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(s.dir, "pid"), "--skip-name-resolve",
		"--innodb-buffer-pool-size=128M", "--max-connections=500"}, asUser()...)...)
	s.cmd.Stdout = logFile
	s.cmd.Stderr = logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	s.done = make(chan struct{})
	go func() { exited <- s.cmd.Wait(); close(s.done) }()

	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	cfg.Timeout = time.Second
	connector, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(connector)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			s.root = db
			return nil
		}
		select {
		case werr := <-exited:
			db.Close()
			s.cmd = nil
			logText, _ := os.ReadFile(filepath.Join(s.dir, "mariadbd.log"))
			return fmt.Errorf("mariadbd exited (%v):\n%s", werr, tail(logText, 2000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			db.Close()
			s.cmd.Process.Kill()
			<-exited
			s.cmd = nil
			return fmt.Errorf("mariadbd did not answer within 60 s: %v", err)
		}
	}
}

// asUser is the --user flag mariadbd needs when it runs as root (it refuses
// root otherwise); an ordinary user runs it as themselves.
func asUser() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

func (s *server) stop() {
	if s.root != nil {
		s.root.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
