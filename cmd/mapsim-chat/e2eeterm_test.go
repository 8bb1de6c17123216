package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/e2eeclient"
)

// passphraseOf is each test user's recovery passphrase.
func passphraseOf(name string) string { return "recovery words of " + name + " maple orbit frost" }

// e2eeTerm is one run of `mapsim-chat chat` whose standard input the test
// types into and whose output it reads.
type e2eeTerm struct {
	t    *testing.T
	name string
	in   *io.PipeWriter
	out  *syncBuffer
	done chan error
	// keys is the key file the run uses (-keys).
	keys string
}

// openTerm runs the terminal client as name in chat with its own key file,
// typing the password and, after it, each of the extra lines (the recovery
// passphrase, when the chat is encrypted).
func openTerm(t *testing.T, srv *testServer, name, chatArg, keys string, lines ...string) *e2eeTerm {
	t.Helper()
	return openTermEnv(t, srv, name, chatArg, keys, nil, append([]string{testPassword}, lines...)...)
}

// openTermEnv is openTerm with an environment, and the lines typed given
// in full (the password too, unless the environment holds it).
func openTermEnv(t *testing.T, srv *testServer, name, chatArg, keys string, env map[string]string, lines ...string) *e2eeTerm {
	t.Helper()
	r, w := io.Pipe()
	term := &e2eeTerm{t: t, name: name, in: w, out: &syncBuffer{}, done: make(chan error, 1), keys: keys}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); w.Close() })
	args := []string{"mapsim-chat", "chat", "-url", srv.URL, "-username", name, "-chat", chatArg, "-keys", keys}
	go func() {
		term.done <- run(ctx, args, func(k string) string { return env[k] }, r, term.out, io.Discard, nil)
	}()
	go func() {
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return
			}
		}
	}()
	return term
}

func (term *e2eeTerm) type_(line string) {
	term.t.Helper()
	if _, err := io.WriteString(term.in, line+"\n"); err != nil {
		term.t.Fatalf("%s's client no longer reads: %v\n%s", term.name, err, term.out.String())
	}
}

// waitFor waits until the output shows text, failing if the client ends.
func (term *e2eeTerm) waitFor(text string) {
	term.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(term.out.String(), text) {
		if time.Now().After(deadline) {
			term.t.Fatalf("%s's terminal never showed %q; it shows:\n%s", term.name, text, term.out.String())
		}
		select {
		case err := <-term.done:
			term.done <- err
			if !strings.Contains(term.out.String(), text) {
				term.t.Fatalf("%s's client ended (%v) before showing %q:\n%s", term.name, err, text, term.out.String())
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// quit closes standard input and waits for the client to end cleanly.
func (term *e2eeTerm) quit() {
	term.t.Helper()
	term.in.Close()
	select {
	case err := <-term.done:
		if err != nil {
			term.t.Fatalf("%s's client: %v\n%s", term.name, err, term.out.String())
		}
	case <-time.After(30 * time.Second):
		term.t.Fatalf("%s's client did not end after Ctrl-D", term.name)
	}
}

// history returns a chat's messages as the server stores them for token.
func history(t *testing.T, srv *testServer, token, chatName string) []map[string]any {
	t.Helper()
	r := srv.call(t, "GET", "/messages/?limit=100&chat_id="+url.QueryEscape(chatName), token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("history of %s: %d %s", chatName, r.Status, r.Raw)
	}
	var out []map[string]any
	for _, m := range r.Body["messages"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

// TestTerminalE2EEDirect: two terminal clients talk in an encrypted direct
// chat, both ways. The first run of each makes and publishes keys and a
// backup; the key files are mode 0600; the server stores only mse1 text,
// and the marker is nowhere in the database.
func TestTerminalE2EEDirect(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			aliceTok := srv.MustUser(t, "alice")
			srv.MustUser(t, "bob")
			dir := t.TempDir()
			alice := openTerm(t, srv, "alice", "@bob", filepath.Join(dir, "alice", "keys.json"), passphraseOf("alice"))
			alice.waitFor("-- new keys made, published and backed up")
			alice.waitFor("-- connected to direct:")
			bob := openTerm(t, srv, "bob", "@alice", filepath.Join(dir, "bob", "keys.json"), passphraseOf("bob"))
			bob.waitFor("-- connected to direct:")
			bob.waitFor("-- alice's identity key is new to this client and now trusted")

			const marker = "e2ee-marker-51d2: the heron flies at dusk"
			alice.type_(marker)
			bob.waitFor("alice: " + marker)
			alice.waitFor("alice: " + marker)
			bob.type_("hi alice, loud and clear")
			alice.waitFor("bob: hi alice, loud and clear")

			for _, f := range []string{alice.keys, bob.keys} {
				fi, err := os.Stat(f)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("key file %s: %v, %v; want mode 0600", f, fi, err)
				}
				raw, _ := os.ReadFile(f)
				if strings.Contains(string(raw), "direct:") || strings.Contains(string(raw), marker) {
					t.Fatalf("key file %s holds a chat name or a message in plain", f)
				}
			}
			chatName := chatNamed(t, srv, aliceTok, "direct")
			msgs := history(t, srv, aliceTok, chatName)
			if len(msgs) != 2 {
				t.Fatalf("history: %v", msgs)
			}
			for _, m := range msgs {
				if !strings.HasPrefix(m["text"].(string), "mse1.") {
					t.Fatalf("the server holds %q, not an mse1 message", m["text"])
				}
			}
			alice.quit()
			bob.quit()
			assertNotAtRest(t, env, marker)

			// Started again, the client opens its key file with the
			// passphrase and reads the history.
			again := openTerm(t, srv, "alice", "@bob", alice.keys, passphraseOf("alice"))
			again.waitFor("bob: hi alice, loud and clear")
			again.waitFor("alice: " + marker)
			if out := again.out.String(); strings.Contains(out, "new keys made") || strings.Contains(out, "restored") || strings.Contains(out, "cannot decrypt") {
				t.Fatalf("a second start made or restored keys:\n%s", again.out.String())
			}
			again.quit()
		})
	}
}

// chatNamed returns the name of token's chat of a kind (the only one).
func chatNamed(t *testing.T, srv *testServer, token, kind string) string {
	t.Helper()
	r := srv.call(t, "GET", "/chats/", token, nil)
	for _, c := range r.Body["chats"].([]any) {
		if c := c.(map[string]any); c["kind"] == kind {
			if c["e2ee"] != true {
				t.Fatalf("the %s chat is not end-to-end encrypted: %v", kind, c)
			}
			return c["name"].(string)
		}
	}
	t.Fatalf("no %s chat: %s", kind, r.Raw)
	return ""
}

// TestTerminalE2EEGroupRemoval: three terminal clients in an encrypted
// group; after carol is removed, the next message starts a new epoch
// without her: alice and bob read it, carol's client never shows it, her
// keys hold no key of that epoch, and the server gives her no envelope.
func TestTerminalE2EEGroupRemoval(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	aliceTok := srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	carolTok := srv.MustUser(t, "carol")
	r := srv.call(t, "POST", "/chats/", aliceTok, map[string]any{"kind": "group", "title": "Ops", "members": []string{"bob", "carol"}})
	if r.Status != http.StatusCreated || r.Body["e2ee"] != true {
		t.Fatalf("create the group: %d %s", r.Status, r.Raw)
	}
	group := r.str("name")
	dir := t.TempDir()
	terms := map[string]*e2eeTerm{}
	for _, name := range []string{"alice", "bob", "carol"} {
		chatArg := "Ops"
		if name == "carol" {
			chatArg = group // by name as well as by title
		}
		terms[name] = openTerm(t, srv, name, chatArg, filepath.Join(dir, name+".json"), passphraseOf(name))
		terms[name].waitFor("-- connected to " + group)
	}
	terms["alice"].type_("first, for all three")
	for _, name := range []string{"alice", "bob", "carol"} {
		terms[name].waitFor("alice: first, for all three")
	}
	terms["bob"].type_("bob agrees")
	for _, name := range []string{"alice", "bob", "carol"} {
		terms[name].waitFor("bob: bob agrees")
	}

	if r := srv.call(t, "DELETE", "/chats/"+url.PathEscape(group)+"/members/carol", aliceTok, nil); r.Status != http.StatusOK {
		t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
	}
	const secret = "after carol left: the plan is blue"
	terms["alice"].type_(secret)
	terms["bob"].waitFor("alice: " + secret)
	terms["alice"].waitFor("alice: " + secret)
	terms["bob"].type_("bob: noted")
	terms["alice"].waitFor("bob: bob: noted")

	// The encrypted messages, in order: two before the removal, two after.
	var sealedTexts []string
	for _, m := range history(t, srv, aliceTok, group) {
		if m["type"] == "text" {
			sealedTexts = append(sealedTexts, m["text"].(string))
		}
	}
	if len(sealedTexts) != 4 {
		t.Fatalf("%d encrypted messages, want 4", len(sealedTexts))
	}
	first, err := e2ee.ParseMessage(sealedTexts[0], 1<<20)
	if err != nil {
		t.Fatalf("the first message: %v", err)
	}
	sealed, err := e2ee.ParseMessage(sealedTexts[2], 1<<20)
	if err != nil {
		t.Fatalf("the message after the removal: %v", err)
	}
	if sealed.Epoch <= first.Epoch {
		t.Fatalf("the message after the removal is on epoch %d, not after %d", sealed.Epoch, first.Epoch)
	}
	terms["carol"].quit()
	if strings.Contains(terms["carol"].out.String(), secret) {
		t.Fatalf("carol's client shows a message sent after her removal:\n%s", terms["carol"].out.String())
	}
	// Carol's own keys hold no room key of that epoch, and the server
	// has no envelope for her.
	api := &e2eeclient.API{Base: srv.URL, Token: carolTok}
	acct, err := e2eeclient.Unlock(context.Background(), api, "carol", filepath.Join(dir, "carol.json"), passphraseOf("carol"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := acct.State.RoomKey(group, sealed.Epoch); ok {
		t.Fatal("carol holds the room key of an epoch after her removal")
	}
	if _, ok := acct.State.RoomKey(group, first.Epoch); !ok {
		t.Fatal("carol lacks the room key of the epoch she read (the check above proves nothing)")
	}
	if _, err := api.Envelope(context.Background(), group, sealed.Epoch, acct.State.Device.ID); err == nil {
		t.Fatal("the server gave carol an envelope of an epoch after her removal")
	}
}

// TestTerminalE2EERestore: on a fresh key file, a wrong passphrase stops
// the client with a clear error and writes nothing; the right one restores
// the keys from the backup, and the old history reads.
func TestTerminalE2EERestore(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	dir := t.TempDir()
	alice := openTerm(t, srv, "alice", "@bob", filepath.Join(dir, "alice.json"), passphraseOf("alice"))
	bob := openTerm(t, srv, "bob", "@alice", filepath.Join(dir, "bob.json"), passphraseOf("bob"))
	alice.waitFor("-- connected to direct:")
	bob.waitFor("-- connected to direct:")
	alice.type_("before the new laptop")
	bob.waitFor("alice: before the new laptop")
	bob.type_("reply before the new laptop")
	alice.waitFor("bob: reply before the new laptop")
	bob.quit()

	fresh := filepath.Join(dir, "laptop", "bob.json")
	wrong := openTerm(t, srv, "bob", "@alice", fresh, "not bob's passphrase")
	select {
	case err := <-wrong.done:
		if err == nil || err.Error() != "chat: the recovery passphrase is wrong; nothing was changed" {
			t.Fatalf("a wrong passphrase: %v\n%s", err, wrong.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a wrong passphrase did not stop the client")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a wrong passphrase wrote a key file: %v", err)
	}

	// This time the password and the passphrase come from the environment,
	// and every line typed is a message.
	restored := openTermEnv(t, srv, "bob", "@alice", fresh, map[string]string{
		"MAPSIM_CHAT_PASSWORD": testPassword, "MAPSIM_CHAT_PASSPHRASE": passphraseOf("bob"),
	})
	restored.waitFor("-- keys restored from the backup")
	restored.waitFor("alice: before the new laptop")
	restored.waitFor("bob: reply before the new laptop")
	// The restored client is a new device: sending on it starts an epoch
	// that includes it, and alice reads it.
	restored.type_("from the new laptop")
	alice.waitFor("bob: from the new laptop")
	alice.type_("welcome back")
	restored.waitFor("alice: welcome back")
	if out := restored.out.String(); strings.Contains(out, "cannot decrypt") {
		t.Fatalf("the restored client could not open something:\n%s", out)
	}
	restored.quit()
	alice.quit()
}

// TestTerminalE2EECommands: /verify shows the same safety number on both
// sides and /verify confirm marks the user verified; a plaintext chat says
// so and has no keys to verify; unknown commands are refused, not sent.
func TestTerminalE2EECommands(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	dir := t.TempDir()
	alice := openTerm(t, srv, "alice", "@bob", filepath.Join(dir, "alice.json"), passphraseOf("alice"))
	alice.waitFor("-- connected to direct:")
	bob := openTerm(t, srv, "bob", "@alice", filepath.Join(dir, "bob.json"), passphraseOf("bob"))
	bob.waitFor("-- connected to direct:")
	alice.type_("/verify bob")
	bob.type_("/verify alice")
	alice.waitFor("-- safety number of you and bob (pinned):")
	bob.waitFor("-- safety number of you and alice (")
	number := func(out string) string {
		i := strings.Index(out, "-- safety number of you and ")
		line := strings.SplitN(out[i:], "\n", 3)[1]
		return strings.TrimSpace(strings.TrimPrefix(line, "--"))
	}
	na, nb := number(alice.out.String()), number(bob.out.String())
	if na != nb || len(na) != 71 {
		t.Fatalf("safety numbers differ: %q and %q", na, nb)
	}
	alice.type_("/verify bob confirm")
	alice.waitFor("-- bob is verified")
	alice.type_("/verify bob")
	alice.waitFor("-- safety number of you and bob (verified):")
	alice.type_("/nonsense")
	alice.waitFor(`!! unknown command "/nonsense"`)
	alice.type_("/verify")
	alice.waitFor("!! usage: /verify USER, /verify USER confirm, /accept USER")
	alice.type_("//slash first")
	bob.waitFor("alice: /slash first")
	alice.type_("/help")
	alice.waitFor("/accept USER")
	alice.quit()
	bob.quit()

	global := openTerm(t, srv, "alice", "global", filepath.Join(dir, "unused.json"))
	global.waitFor("-- global is not end-to-end encrypted")
	global.waitFor("-- connected to global")
	global.type_("/verify bob")
	global.waitFor("!! global is not end-to-end encrypted")
	global.type_("plain hello")
	global.waitFor("alice: plain hello")
	global.quit()
	if _, err := os.Stat(filepath.Join(dir, "unused.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the global chat made a key file")
	}

	missing := openTerm(t, srv, "alice", "No Such Group", filepath.Join(dir, "alice.json"))
	if err := <-missing.done; err == nil || !strings.Contains(err.Error(), `none of your chats is named or titled "No Such Group"`) {
		t.Fatalf("an unknown chat: %v", err)
	}
}

// TestTerminalE2EEChangedKey: the server swaps bob's identity key (the test
// does it in the database, and re-certifies bob's device under the new key,
// as a server that wanted to read along would). Alice's client warns
// loudly, holds what she types — nothing reaches the server — and sends it
// once she types /accept bob.
func TestTerminalE2EEChangedKey(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	aliceTok := srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	dir := t.TempDir()
	alice := openTerm(t, srv, "alice", "@bob", filepath.Join(dir, "alice.json"), passphraseOf("alice"))
	alice.waitFor("-- connected to direct:")
	bob := openTerm(t, srv, "bob", "@alice", filepath.Join(dir, "bob.json"), passphraseOf("bob"))
	bob.waitFor("-- connected to direct:")
	alice.type_("before the swap")
	bob.waitFor("alice: before the swap")
	alice.quit()
	chatName := chatNamed(t, srv, aliceTok, "direct")

	// The swap: a new identity key for bob, and his device certified by it.
	fake, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	keys := srv.call(t, "GET", "/keys/users/bob", aliceTok, nil)
	var bobKeys e2eeclient.UserKeys
	mustJSON(t, keys.Raw, &bobKeys)
	if len(bobKeys.Devices) != 1 {
		t.Fatalf("bob's devices: %s", keys.Raw)
	}
	recert, err := e2ee.Certify(fake, "bob", bobKeys.Devices[0].Device)
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, env)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `UPDATE e2ee_identities SET alg = ?, pub = ? WHERE user_id = (SELECT id FROM users WHERE username = 'bob')`, fake.Alg(), fake.Public().Pub); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE e2ee_devices SET cert = ? WHERE device_id = ?`, recert.Cert, recert.ID); err != nil {
		t.Fatal(err)
	}
	before := len(history(t, srv, aliceTok, chatName))

	alice = openTerm(t, srv, "alice", "@bob", alice.keys, passphraseOf("alice"))
	alice.waitFor("!! WARNING: bob's IDENTITY KEY HAS CHANGED")
	alice.waitFor("!! Sending to this chat is held until you check with bob (/verify bob) and type /accept bob")
	alice.waitFor("-- connected to direct:")
	alice.type_("held until accepted")
	alice.waitFor("!! not sent yet: bob's identity key changed; 1 message(s) wait for /accept bob")
	alice.type_("/verify bob confirm")
	alice.waitFor("!! bob's identity key has changed; /accept bob first")
	// The client handles lines in order: once /verify answers, the held
	// line was handled, and nothing went to the server.
	alice.type_("/verify bob")
	alice.waitFor("-- safety number of you and bob (changed):")
	if n := len(history(t, srv, aliceTok, chatName)); n != before {
		t.Fatalf("a held message reached the server: %d messages, %d before", n, before)
	}
	if strings.Contains(bob.out.String(), "held until accepted") {
		t.Fatal("bob read a held message")
	}

	alice.type_("/accept bob")
	alice.waitFor("-- bob's new identity key is accepted")
	bob.waitFor("alice: held until accepted")
	alice.waitFor("alice: held until accepted")
	if n := strings.Count(bob.out.String(), "alice: held until accepted"); n != 1 {
		t.Fatalf("bob shows the held message %d times", n)
	}
	alice.quit()
	bob.quit()
}

// TestTerminalE2EEStaleEpoch: an epoch that went stale behind the client's
// back is replaced before the next message. First the server marks the
// chat changed (the test does, in the database): the client sees the epoch
// is stale and starts a new one before it sends. Then the server revokes
// the client's device without a word (in the database): the message is
// refused with stale_epoch, and the client publishes a new device, starts
// a new epoch and sends the same message again with the same client id.
// Each arrives once, and bob reads both.
func TestTerminalE2EEStaleEpoch(t *testing.T) {
	env := baseEnv(t, nil)
	srv := MustStart(t, env)
	aliceTok := srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	dir := t.TempDir()
	alice := openTerm(t, srv, "alice", "@bob", filepath.Join(dir, "alice.json"), passphraseOf("alice"))
	alice.waitFor("-- connected to direct:")
	bob := openTerm(t, srv, "bob", "@alice", filepath.Join(dir, "bob.json"), passphraseOf("bob"))
	bob.waitFor("-- connected to direct:")
	alice.type_("on the first epoch")
	bob.waitFor("alice: on the first epoch")
	chatName := chatNamed(t, srv, aliceTok, "direct")
	db := rawDB(t, env)
	ctx := context.Background()

	if _, err := db.ExecContext(ctx, `UPDATE e2ee_chats SET changed = 1 WHERE chat_id = (SELECT id FROM chats WHERE name = ?)`, chatName); err != nil {
		t.Fatal(err)
	}
	alice.type_("on a new epoch")
	bob.waitFor("alice: on a new epoch")
	alice.waitFor("alice: on a new epoch")

	if _, err := db.ExecContext(ctx, `UPDATE e2ee_devices SET revoked_at = created_at WHERE user_id = (SELECT id FROM users WHERE username = 'alice')`); err != nil {
		t.Fatal(err)
	}
	alice.type_("sent again from a new device")
	alice.waitFor("!! this device was revoked on the server; a new device of this client replaces it")
	bob.waitFor("alice: sent again from a new device")
	alice.waitFor("alice: sent again from a new device")
	alice.quit()
	bob.quit()

	msgs := history(t, srv, aliceTok, chatName)
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3: %v", len(msgs), msgs)
	}
	var epochs []uint32
	devices := map[string]bool{}
	for _, m := range msgs {
		sm, err := e2ee.ParseMessage(m["text"].(string), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		epochs, devices[sm.DeviceID] = append(epochs, sm.Epoch), true
	}
	if epochs[1] != epochs[0]+1 || epochs[2] != epochs[1]+1 || len(devices) != 2 {
		t.Fatalf("epochs %v from %d devices; want three epochs in a row from two devices", epochs, len(devices))
	}
	for _, out := range []string{alice.out.String(), bob.out.String()} {
		if strings.Contains(out, "cannot decrypt") || strings.Contains(out, "not sent") || strings.Count(out, "sent again from a new device") != 1 {
			t.Fatalf("a refusal or a duplicate is shown:\n%s", out)
		}
	}
}

// TestTerminalE2EEReplacedKeys: when the account's identity key was
// replaced elsewhere (a lost passphrase: PUT /keys/identity with
// "replace"), the old key file is refused with a sentence that says what
// to do, and without a backup of the new keys the client says there is
// nothing to restore.
func TestTerminalE2EEReplacedKeys(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	aliceTok := srv.MustUser(t, "alice")
	srv.MustUser(t, "bob")
	keys := filepath.Join(t.TempDir(), "alice.json")
	alice := openTerm(t, srv, "alice", "@bob", keys, passphraseOf("alice"))
	alice.waitFor("-- connected to direct:")
	alice.quit()

	other, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	body := map[string]any{"alg": other.Alg(), "pub": e2ee.EncodeB64U(other.Public().Pub), "replace": true}
	if r := srv.call(t, "PUT", "/keys/identity", aliceTok, body); r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("replace alice's identity key: %d %s", r.Status, r.Raw)
	}
	stale := openTerm(t, srv, "alice", "@bob", keys, passphraseOf("alice"))
	if err := <-stale.done; err == nil || !strings.Contains(err.Error(), "another identity key for this account than the key file holds") ||
		!strings.Contains(err.Error(), "move the key file away") {
		t.Fatalf("an old key file after the keys were replaced: %v", err)
	}
	os.Rename(keys, keys+".old")
	none := openTerm(t, srv, "alice", "@bob", keys, passphraseOf("alice"))
	if err := <-none.done; err == nil || !strings.Contains(err.Error(), "no key backup to restore them from") {
		t.Fatalf("no backup to restore from: %v", err)
	}
	if _, err := os.Stat(keys); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed restore wrote a key file")
	}
}
