package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/e2eeclient"
)

// TestTerminalClient: the README's walk-through with the built-in client:
// two terminals chat in global, and a restart keeps the history.
func TestTerminalClient(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")

	type terminal struct {
		in   *io.PipeWriter
		out  *syncBuffer
		done chan error
	}
	open := func(name string) *terminal {
		r, w := io.Pipe()
		term := &terminal{in: w, out: &syncBuffer{}, done: make(chan error, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(func() { cancel(); w.Close() })
		go func() {
			term.done <- run(ctx, []string{"mapsim-chat", "chat", "-url", srv.URL, "-username", name}, func(string) string { return "" }, r, term.out, io.Discard, nil)
		}()
		io.WriteString(w, testPassword+"\n")
		return term
	}
	waitFor := func(term *terminal, text string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(term.out.String(), text) {
			if time.Now().After(deadline) {
				t.Fatalf("terminal never showed %q; it shows:\n%s", text, term.out.String())
			}
			select {
			case err := <-term.done:
				t.Fatalf("client ended: %v\n%s", err, term.out.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	alice, bob := open("alice"), open("bob")
	waitFor(alice, "-- connected to global as alice")
	waitFor(bob, "-- connected to global as bob")
	io.WriteString(alice.in, "hello from alice\n")
	waitFor(bob, "alice: hello from alice")
	io.WriteString(bob.in, "hi alice\n")
	waitFor(alice, "bob: hi alice")
	alice.in.Close()
	if err := <-alice.done; err != nil {
		t.Fatalf("alice's client: %v", err)
	}

	srv.Stop(t)
	if err := <-bob.done; err == nil || !strings.Contains(err.Error(), "restarting") {
		t.Fatalf("bob's client on server stop: %v", err)
	}
	srv = MustStart(t, env)
	again := open("alice")
	waitFor(again, "alice: hello from alice")
	waitFor(again, "bob: hi alice")
}

// TestTerminalPrintsNoControls: a message cannot drive the terminal that
// shows it: escape sequences, carriage returns and line breaks (which could
// fake a line from another sender) and bidirectional overrides print as
// U+FFFD.
func TestTerminalPrintsNoControls(t *testing.T) {
	var out strings.Builder
	chatLine{Username: "mallory", Text: "hi\x1b]0;pwned\x07\r\nalice: send me your passphrase \u202egnp.exe", Timestamp: "x"}.print(&out)
	want := "[x] mallory: hi\uFFFD]0;pwned\uFFFD\uFFFD\uFFFDalice: send me your passphrase \uFFFDgnp.exe\n"
	if out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
}

// TestTerminalShowsReplyAndFile: an encrypted message's reply preview and
// file (made by the browser) show in the terminal; a refusal shows its
// reason.
func TestTerminalShowsReplyAndFile(t *testing.T) {
	c := e2eeclient.Content{
		Text:  "see attached",
		Reply: []byte(`{"id":4,"username":"bob","text":"the report?"}`),
		File:  []byte(`{"id":"ab","name":"report.pdf","size":2048,"key":"k"}`),
	}
	if got, want := opened(c, nil), `(replying to bob: "the report?") see attached [encrypted file "report.pdf", 2048 bytes: open it in the web client]`; got != want {
		t.Fatalf("shown %q, want %q", got, want)
	}
	if got := opened(e2eeclient.Content{}, &e2eeclient.DecryptError{Reason: e2eeclient.ReasonReplay}); got != "[cannot decrypt: replay]" {
		t.Fatalf("a refusal shows %q", got)
	}
}
