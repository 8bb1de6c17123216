// Package clamdtest starts a throwaway clamd (the ClamAV daemon) for tests:
// the real binary, in a temp dir, on a free loopback port, with a one-line
// signature database that detects only the EICAR test file, since the public
// signature feed is not reachable from tests. With CI=true a missing clamd
// fails the test instead of skipping it.
package clamdtest

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EICAR is the standard 68-byte anti-virus test file: harmless, and
// detected as malware by every scanner (here by the database Start writes).
// It is written in two pieces so that a scanner on a developer's machine
// does not quarantine this source file.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-` + `ANTIVIRUS-TEST-FILE!$H+H*`

// Signature is the name under which the test database reports EICAR. clamd
// may append ".UNOFFICIAL", as it does for every unsigned database, so
// compare with strings.HasPrefix.
const Signature = "Clamdtest.EICAR"

// readyTimeout bounds the wait for clamd to answer PING. With a one-line
// database it starts in well under a second; the margin is for a loaded CI
// machine.
const readyTimeout = 60 * time.Second

// Options adjust the clamd that StartWith starts.
type Options struct {
	// StreamMaxLength is clamd's limit on one INSTREAM scan, in bytes; zero
	// means 2000 MiB, more than any test sends.
	StreamMaxLength int64
}

// Start starts a clamd of the test's own and returns its "127.0.0.1:port"
// address. It is stopped when the test ends.
func Start(tb testing.TB) string {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options, for a test of clamd's limits.
func StartWith(tb testing.TB, o Options) string {
	tb.Helper()
	clamd, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("clamd: %v", err)
		}
		tb.Skipf("clamd not available (set CI=true to make this fail): %v", err)
	}
	dir := tb.TempDir()
	if err := writeDatabase(dir); err != nil {
		tb.Fatalf("clamd database: %v", err)
	}
	var lastErr error
	// A port found free can be taken before clamd binds it; try again then.
	for attempt := 0; attempt < 3; attempt++ {
		addr, stop, err := launch(clamd, dir, o)
		if err == nil {
			tb.Cleanup(stop)
			return addr
		}
		lastErr = err
	}
	tb.Fatalf("clamd: %v", lastErr)
	return ""
}

// find looks clamd up on PATH and in the sbin folders, where Debian puts it.
func find() (string, error) {
	if p, err := exec.LookPath("clamd"); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, "clamd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("clamd not found on PATH or in /usr/sbin (apt-get install clamav-daemon)")
}

// writeDatabase writes an MD5 hash signature file (md5:size:name) for
// EICAR. The hash is computed here, not copied, so the database and the
// constant cannot disagree.
func writeDatabase(dir string) error {
	sum := md5.Sum([]byte(EICAR))
	line := fmt.Sprintf("%s:%d:%s\n", hex.EncodeToString(sum[:]), len(EICAR), Signature)
	return os.WriteFile(filepath.Join(dir, "clamdtest.hdb"), []byte(line), 0o644)
}

func launch(clamd, dir string, o Options) (addr string, stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	limit := o.StreamMaxLength
	if limit <= 0 {
		limit = 2000 << 20
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", nil, err
	}
	logPath := filepath.Join(dir, "clamd.log")
	// No User line: clamd then keeps the user it was started as, root
	// included, and needs no account of its own. No LocalSocket: only TCP.
	conf := strings.Join([]string{
		"Foreground yes",
		"TCPSocket " + strconv.Itoa(port),
		"TCPAddr 127.0.0.1",
		"DatabaseDirectory " + dir,
		"TemporaryDirectory " + tmp,
		"LogFile " + logPath,
		"LogTime yes",
		"StreamMaxLength " + strconv.FormatInt(limit, 10),
		"MaxFileSize 2000M",
		"MaxScanSize 2000M",
		"SelfCheck 0",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		return "", nil, err
	}
	defer out.Close()
	cmd := exec.Command(clamd, "--config-file="+confPath)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	// Pdeathsig: a test binary that dies leaves no daemon behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}

	deadline := time.Now().Add(readyTimeout)
	for {
		perr := ping(addr)
		if perr == nil {
			return addr, stop, nil
		}
		select {
		case werr := <-exited:
			return "", nil, fmt.Errorf("clamd exited (%v):\n%s", werr, logTail(dir))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return "", nil, fmt.Errorf("clamd did not answer PING within %v: %v\n%s", readyTimeout, perr, logTail(dir))
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends zPING and expects PONG; it is the whole readiness check, so
// this package does not depend on the client under test.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "zPING\x00"); err != nil {
		return err
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 64))
	if err != nil {
		return err
	}
	if got := strings.TrimRight(string(reply), "\x00\n"); got != "PONG" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

// logTail returns the end of clamd's output and log, for a failure message.
func logTail(dir string) string {
	var b strings.Builder
	for _, name := range []string{"clamd.out", "clamd.log"} {
		text, _ := os.ReadFile(filepath.Join(dir, name))
		if len(text) > 2000 {
			text = text[len(text)-2000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", name, text)
	}
	return b.String()
}
