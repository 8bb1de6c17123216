package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the test types into and reads from
// master; the program under test has tty as its terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// screen collects what a terminal shows.
type screen struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func echoing(t *testing.T, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("termios: %v", err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// TestChatPasswordWithoutEcho: on a terminal, mapsim-chat chat asks for the
// password on stderr, reads it without echo, and gives the terminal its
// echo back for the messages typed after it.
func TestChatPasswordWithoutEcho(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	srv.MustUser(t, "tess")
	master, tty := openPTY(t)
	shown := &screen{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			shown.mu.Lock()
			shown.buf.Write(b[:n])
			shown.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"mapsim-chat", "chat", "-url", srv.URL, "-username", "tess"}, func(string) string { return "" }, tty, out, tty, nil)
	}()
	defer cancel()
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			select {
			case err := <-done:
				t.Fatalf("client ended while waiting for %s: %v\nterminal: %q\nstdout: %q", what, err, shown.String(), out.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("never saw %s\nterminal: %q\nstdout: %q", what, shown.String(), out.String())
			}
		}
	}

	waitUntil("the prompt", func() bool { return strings.Contains(shown.String(), "Password for tess: ") })
	if echoing(t, tty) {
		t.Fatal("the terminal echoes while the password is asked for")
	}
	master.WriteString(testPassword + "\n")
	waitUntil("the connection", func() bool { return strings.Contains(out.String(), "-- connected to global as tess") })
	if strings.Contains(shown.String(), testPassword) {
		t.Fatalf("the password was shown on the terminal: %q", shown.String())
	}
	if !echoing(t, tty) {
		t.Fatal("echo was not turned back on after the password")
	}
	master.WriteString("typed after the password\n")
	waitUntil("the message echoed and delivered", func() bool {
		return strings.Contains(shown.String(), "typed after the password") && strings.Contains(out.String(), "tess: typed after the password")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
}

// TestChatPasswordPromptCancelled: Ctrl-C at the password prompt ends the
// client without an error and leaves the terminal echoing.
func TestChatPasswordPromptCancelled(t *testing.T) {
	master, tty := openPTY(t)
	go func() {
		b := make([]byte, 1024)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"mapsim-chat", "chat", "-url", "http://127.0.0.1:9", "-username", "tess"}, func(string) string { return "" }, tty, &syncBuffer{}, tty, nil)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for echoing(t, tty) {
		if time.Now().After(deadline) {
			t.Fatal("the prompt never turned echo off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Ctrl-C at the prompt: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the client did not end on Ctrl-C at the prompt")
	}
	if !echoing(t, tty) {
		t.Fatal("the terminal was left without echo")
	}
}

// TestChatPassphraseWithoutEcho: on a terminal, an encrypted chat with new
// keys asks for the recovery passphrase twice, without echo; two that
// differ stop the client before any key is made, and the passphrase is
// never shown.
func TestChatPassphraseWithoutEcho(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	srv.MustUser(t, "tess")
	srv.MustUser(t, "uma")
	keys := filepath.Join(t.TempDir(), "tess.json")
	const passphrase = "hidden recovery words 4417"
	for _, second := range []string{passphrase + "x", passphrase} {
		master, tty := openPTY(t)
		shown := &screen{}
		go func() {
			b := make([]byte, 4096)
			for {
				n, err := master.Read(b)
				shown.mu.Lock()
				shown.buf.Write(b[:n])
				shown.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		out := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"mapsim-chat", "chat", "-url", srv.URL, "-username", "tess", "-chat", "@uma", "-keys", keys}, func(string) string { return "" }, tty, out, tty, nil)
		}()
		waitUntil := func(what string, ok func() bool) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for !ok() {
				select {
				case err := <-done:
					done <- err
					if ok() {
						return
					}
					t.Fatalf("client ended while waiting for %s: %v\nterminal: %q\nstdout: %q", what, err, shown.String(), out.String())
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("never saw %s\nterminal: %q\nstdout: %q", what, shown.String(), out.String())
				}
			}
		}
		waitUntil("the password prompt", func() bool { return strings.Contains(shown.String(), "Password for tess: ") })
		master.WriteString(testPassword + "\n")
		waitUntil("the passphrase prompt", func() bool { return strings.Contains(shown.String(), "New recovery passphrase") })
		if echoing(t, tty) {
			t.Fatal("the terminal echoes while the passphrase is asked for")
		}
		master.WriteString(passphrase + "\n")
		waitUntil("the second prompt", func() bool { return strings.Contains(shown.String(), "Repeat the new recovery passphrase: ") })
		master.WriteString(second + "\n")
		if second != passphrase {
			if err := <-done; err == nil || !strings.Contains(err.Error(), "the two recovery passphrases differ; no keys were made") {
				t.Fatalf("two different passphrases: %v", err)
			}
			if _, err := os.Stat(keys); !os.IsNotExist(err) {
				t.Fatalf("a key file was written: %v", err)
			}
			cancel()
			continue
		}
		waitUntil("the connection", func() bool { return strings.Contains(out.String(), "-- connected to direct:") })
		if strings.Contains(shown.String(), passphrase) || strings.Contains(out.String(), passphrase) {
			t.Fatalf("the passphrase was shown: %q", shown.String())
		}
		if !echoing(t, tty) {
			t.Fatal("echo was not turned back on after the passphrase")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("client: %v", err)
		}
	}
}
