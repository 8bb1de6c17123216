package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// The server's side of end-to-end encryption (E2EE.md "The API"), tried
// with keys, envelopes and messages made by internal/e2ee as a client
// makes them.

// mustE2EEGroup creates an encrypted group owned by owner.
func mustE2EEGroup(t *testing.T, srv *testServer, owner *e2eeUser, title string, members ...*e2eeUser) (name string, id int64) {
	t.Helper()
	var names []string
	for _, m := range members {
		names = append(names, m.name)
	}
	r := srv.call(t, "POST", "/chats/", owner.token, map[string]any{"kind": "group", "title": title, "members": names})
	if r.Status != http.StatusCreated || r.Body["e2ee"] != true {
		t.Fatalf("create encrypted group: %d %s", r.Status, r.Raw)
	}
	return r.str("name"), num(r.Body, "id")
}

// TestE2EEChatsAreEncrypted: new direct chats and groups are end-to-end
// encrypted unless the body says otherwise; global is not, and says so.
func TestE2EEChatsAreEncrypted(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
	direct := srv.call(t, "POST", "/chats/", alice, map[string]any{"kind": "direct", "members": []string{"bob"}})
	if direct.Status != http.StatusCreated || direct.Body["e2ee"] != true {
		t.Fatalf("direct chat: %d %s", direct.Status, direct.Raw)
	}
	epoch, _ := direct.Body["epoch"].(map[string]any)
	if epoch == nil || epoch["current"] != 0.0 || epoch["min"] != 0.0 || epoch["stale"] != false {
		t.Fatalf("a new encrypted chat's epoch: %v", direct.Body["epoch"])
	}
	plain := srv.call(t, "POST", "/chats/", alice, map[string]any{"kind": "group", "title": "Scripts", "members": []string{"bob"}, "e2ee": false})
	if plain.Status != http.StatusCreated || plain.Body["e2ee"] != false || plain.Body["epoch"] != nil {
		t.Fatalf("a group made with e2ee false: %d %s", plain.Status, plain.Raw)
	}
	if r := srv.call(t, "POST", "/chats/", alice, map[string]any{"kind": "group", "title": "X", "e2ee": "perhaps"}); r.Status != http.StatusBadRequest || r.str("detail") == "" {
		t.Fatalf("e2ee of another value: %d %s", r.Status, r.Raw)
	}
	list := srv.call(t, "GET", "/chats/", bob, nil)
	if c := chatBy(t, list, "global"); c["e2ee"] != false || c["epoch"] != nil {
		t.Fatalf("global in the list: %v", c)
	}
	if c := chatBy(t, list, direct.str("name")); c["e2ee"] != true || c["epoch"] == nil {
		t.Fatalf("the direct chat in bob's list: %v", c)
	}
	for _, path := range []string{"/chats/global/devices", "/chats/global/epochs", "/chats/" + plain.str("name") + "/epochs"} {
		if r := srv.call(t, "GET", path, alice, nil); r.Status != http.StatusBadRequest || !strings.Contains(r.str("detail"), "not end-to-end encrypted") {
			t.Errorf("GET %s: %d %s", path, r.Status, r.Raw)
		}
	}
}

// TestE2EEKeysOwnerOnly: only the owner publishes and revokes their keys;
// a device must carry a certificate from its owner's identity key.
func TestE2EEKeysOwnerOnly(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			alice := srv.MustKeys(t, "alice", srv.MustUser(t, "alice"))
			bobTok := srv.MustUser(t, "bob")
			bobWS := srv.MustDial(t, bobTok, "global")
			bobWS.nextType("hello")

			// The same identity key again is fine; another is refused
			// unless it says replace.
			if r := srv.call(t, "PUT", "/keys/identity", alice.token, alice.identity.Public()); r.Status != http.StatusOK {
				t.Fatalf("the same identity key again: %d %s", r.Status, r.Raw)
			}
			other, _ := e2ee.GenerateSigningKey(e2ee.AlgP256)
			if r := srv.call(t, "PUT", "/keys/identity", alice.token, other.Public()); r.Status != http.StatusConflict || r.str("code") != "identity_exists" {
				t.Fatalf("another identity key: %d %s", r.Status, r.Raw)
			}
			for _, bad := range []struct {
				name string
				body string
			}{
				{"an unknown algorithm", `{"alg":"rsa","pub":"AAAA"}`},
				{"bad base64url", `{"alg":"ed25519","pub":"not base64!"}`},
				{"a short key", `{"alg":"ed25519","pub":"AAAA"}`},
				{"not an object", `[1]`},
			} {
				r := srv.callRaw(t, "PUT", "/keys/identity", bobTok, "application/json", bad.body)
				if r.Status != http.StatusBadRequest || r.str("code") != "invalid" || r.str("detail") == "" {
					t.Errorf("identity key with %s: %d %s", bad.name, r.Status, r.Raw)
				}
			}
			bob := srv.MustKeys(t, "bob", bobTok)

			// A device certified by someone else's identity key, or for
			// another user, is refused.
			dk, _ := e2ee.NewDeviceKeys(e2ee.AlgP256, e2ee.AlgP256)
			forged, _ := e2ee.Certify(other, "alice", dk.Device())
			if r := srv.call(t, "POST", "/keys/devices", alice.token, forged); r.Status != http.StatusBadRequest || r.str("code") != "bad_certificate" {
				t.Fatalf("a device under a forged certificate: %d %s", r.Status, r.Raw)
			}
			foreign, _ := e2ee.Certify(alice.identity, "alice", dk.Device())
			if r := srv.call(t, "POST", "/keys/devices", bob.token, foreign); r.Status != http.StatusBadRequest || r.str("code") != "bad_certificate" {
				t.Fatalf("bob publishes a device alice certified: %d %s", r.Status, r.Raw)
			}
			named := map[string]any{"device_id": foreign.ID, "dh": foreign.DH, "sig": foreign.Sig, "cert": e2ee.EncodeB64U(foreign.Cert), "name": strings.Repeat("n", 65)}
			if r := srv.call(t, "POST", "/keys/devices", alice.token, named); r.Status != http.StatusBadRequest {
				t.Fatalf("a device name of 65 characters: %d %s", r.Status, r.Raw)
			}
			named["name"] = "Chromium on Linux"
			if r := srv.call(t, "POST", "/keys/devices", alice.token, named); r.Status != http.StatusCreated || r.str("name") != "Chromium on Linux" {
				t.Fatalf("alice's second device: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/keys/devices", alice.token, named); r.Status != http.StatusOK {
				t.Fatalf("the same device again: %d %s", r.Status, r.Raw)
			}
			if r := srv.callRaw(t, "POST", "/keys/devices", alice.token, "application/json", `{"device_id":"`+strings.Repeat("x", 70<<10)+`"}`); r.Status != http.StatusRequestEntityTooLarge || r.str("detail") == "" {
				t.Fatalf("a body over 64 KiB: %d %s", r.Status, r.Raw)
			}
			if r := srv.callRaw(t, "POST", "/keys/devices", alice.token, "application/json", `{"device_id":"x","dh":{"alg":"x25519","pub":"%%"},"sig":{},"cert":""}`); r.Status != http.StatusBadRequest || !strings.Contains(r.str("detail"), "pub") {
				t.Fatalf("bad base64url in a device: %d %s", r.Status, r.Raw)
			}

			// Anyone lists anyone's live devices; revoked ones only their
			// owner, with ?all=1.
			r := srv.call(t, "GET", "/keys/users/ALICE", bob.token, nil)
			var keys struct {
				Username string         `json:"username"`
				Identity e2ee.PublicKey `json:"identity"`
				Devices  []e2ee.Device  `json:"devices"`
			}
			mustJSON(t, r.Raw, &keys)
			if r.Status != http.StatusOK || keys.Username != "alice" || len(keys.Devices) != 2 || !keys.Identity.Equal(alice.identity.Public()) {
				t.Fatalf("alice's keys: %d %s", r.Status, r.Raw)
			}
			for _, d := range keys.Devices {
				if err := e2ee.VerifyDevice(keys.Identity, "alice", d); err != nil {
					t.Fatalf("a listed device does not verify: %v", err)
				}
			}
			if r := srv.call(t, "GET", "/keys/users/nobody", bob.token, nil); r.Status != http.StatusNotFound {
				t.Fatalf("keys of nobody: %d", r.Status)
			}
			if r := srv.call(t, "GET", "/keys/users/alice?all=1", bob.token, nil); r.Status != http.StatusForbidden {
				t.Fatalf("bob asks for alice's revoked devices: %d", r.Status)
			}

			// Nobody but alice revokes alice's device.
			first := alice.device.Device().ID
			if r := srv.call(t, "DELETE", "/keys/devices/"+first, bob.token, nil); r.Status != http.StatusNotFound {
				t.Fatalf("bob revokes alice's device: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "DELETE", "/keys/devices/"+first, "", nil); r.Status != http.StatusUnauthorized {
				t.Fatalf("revoking without a token: %d", r.Status)
			}
			if r := srv.call(t, "GET", "/keys/users/alice", bob.token, nil); !strings.Contains(string(r.Raw), first) {
				t.Fatalf("alice's device went away: %s", r.Raw)
			}

			// Alice and bob share an encrypted chat: bob hears of alice's
			// changes.
			mustE2EEGroup(t, srv, alice, "Pair", bob)
			if r := srv.call(t, "DELETE", "/keys/devices/"+first, alice.token, nil); r.Status != http.StatusNoContent {
				t.Fatalf("alice revokes her device: %d %s", r.Status, r.Raw)
			}
			if f := bobWS.nextType("keys"); f["username"] != "alice" {
				t.Fatalf("keys frame %v", f)
			}
			mine := srv.call(t, "GET", "/keys/users/alice?all=1", alice.token, nil)
			if !strings.Contains(string(mine.Raw), `"revoked_at"`) || strings.Contains(string(srv.call(t, "GET", "/keys/users/alice", bob.token, nil).Raw), first) {
				t.Fatalf("after revoking: alice sees %s", mine.Raw)
			}
			if r := srv.call(t, "POST", "/keys/devices", alice.token, mustCertified(t, alice, alice.device)); r.Status != http.StatusConflict {
				t.Fatalf("a revoked device published again: %d %s", r.Status, r.Raw)
			}

			// Replacing the identity key revokes every device.
			if r := srv.call(t, "PUT", "/keys/identity", alice.token, map[string]any{"alg": other.Public().Alg, "pub": e2ee.EncodeB64U(other.Public().Pub), "replace": true}); r.Status != http.StatusOK {
				t.Fatalf("replace the identity key: %d %s", r.Status, r.Raw)
			}
			bobWS.nextType("keys")
			if r := srv.call(t, "GET", "/keys/users/alice", bob.token, nil); strings.Contains(string(r.Raw), "device_id") {
				t.Fatalf("devices survive a new identity key: %s", r.Raw)
			}
		})
	}
}

// mustCertified returns a device of u's certified by u's identity key.
func mustCertified(t testing.TB, u *e2eeUser, dk *e2ee.DeviceKeys) e2ee.Device {
	t.Helper()
	d, err := e2ee.Certify(u.identity, u.name, dk.Device())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// callRaw makes a request with a body as it is.
func (s *testServer) callRaw(t testing.TB, method, path, token, ctype, body string) apiResponse {
	t.Helper()
	return s.callWith(t, method, path, token, http.Header{"Content-Type": {ctype}}, rawBody(body))
}

// rawBody is a request body sent as it is.
type rawBody string

// TestE2EEEpochs: an epoch needs an envelope for exactly every member
// device, signed by the sender's device; two members racing get one
// winner; each device fetches only its own envelope; a removed member gets
// none of later epochs.
func TestE2EEEpochs(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice := srv.MustKeys(t, "alice", srv.MustUser(t, "alice"))
			bob := srv.MustKeys(t, "bob", srv.MustUser(t, "bob"))
			carol := srv.MustKeys(t, "carol", srv.MustUser(t, "carol"))
			eve := srv.MustKeys(t, "eve", srv.MustUser(t, "eve"))
			group, groupID := mustE2EEGroup(t, srv, alice, "Ops", bob, carol)
			path := "/chats/" + url.PathEscape(group) + "/epochs"
			bobWS := srv.MustDial(t, bob.token, "global")
			bobWS.nextType("hello")

			if r := srv.call(t, "GET", path, eve.token, nil); r.Status != http.StatusForbidden {
				t.Fatalf("a non-member reads the epochs: %d", r.Status)
			}
			if r := srv.call(t, "GET", "/chats/"+url.PathEscape(group)+"/devices", eve.token, nil); r.Status != http.StatusForbidden {
				t.Fatalf("a non-member lists the devices: %d", r.Status)
			}
			body, key := alice.epochBody(t, srv, group, 1)
			envs := body["envelopes"].([]e2ee.Envelope)
			if len(envs) != 3 {
				t.Fatalf("%d envelopes for three members with a device each", len(envs))
			}
			with := func(change func(m map[string]any)) map[string]any {
				m := map[string]any{"epoch": body["epoch"], "sender_device": body["sender_device"], "envelopes": append([]e2ee.Envelope(nil), envs...)}
				change(m)
				return m
			}
			forged := envs[1]
			forged.CT = bytes.Clone(forged.CT)
			forged.CT[0] ^= 1 // the signature covers ct
			for _, tt := range []struct {
				name string
				body map[string]any
				code string
			}{
				{"carol left out", with(func(m map[string]any) { m["envelopes"] = envs[:2] }), "envelopes_mismatch"},
				{"bob twice", with(func(m map[string]any) { m["envelopes"] = []e2ee.Envelope{envs[0], envs[1], envs[1]} }), "envelopes_mismatch"},
				{"an envelope for eve", with(func(m map[string]any) {
					extra, _ := e2ee.SealEnvelope(alice.device, "alice", group, 1, "eve", eve.device.Device(), key)
					m["envelopes"] = append(envs, extra)
				}), "envelopes_mismatch"},
				{"a changed ciphertext", with(func(m map[string]any) { m["envelopes"] = []e2ee.Envelope{envs[0], forged, envs[2]} }), "invalid"},
				{"bob's device as sender", with(func(m map[string]any) { m["sender_device"] = bob.device.Device().ID }), "invalid"},
				{"epoch 2 first", with(func(m map[string]any) { m["epoch"] = 2 }), "invalid"},
				{"epoch 0", with(func(m map[string]any) { m["epoch"] = 0 }), "invalid"},
				{"no envelopes", with(func(m map[string]any) { m["envelopes"] = []e2ee.Envelope{} }), "invalid"},
			} {
				if r := srv.call(t, "POST", path, alice.token, tt.body); r.Status != http.StatusBadRequest || r.str("code") != tt.code {
					t.Errorf("%s: %d %s, want 400 %s", tt.name, r.Status, r.Raw, tt.code)
				}
			}
			if r := srv.call(t, "POST", path, eve.token, body); r.Status != http.StatusForbidden {
				t.Fatalf("a non-member starts an epoch: %d %s", r.Status, r.Raw)
			}
			big := `{"epoch":1,"sender_device":"x","envelopes":[` + strings.Repeat(`{"recipient":"bob"},`, 60000) + `{}]}`
			if r := srv.callRaw(t, "POST", path, alice.token, "application/json", big); r.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("an epoch body over 1 MiB: %d", r.Status)
			}

			// Two members race for each of five epochs: one wins each time.
			for round := 1; round <= 5; round++ {
				aBody, _ := alice.epochBody(t, srv, group, uint32(round))
				bBody, _ := bob.epochBody(t, srv, group, uint32(round))
				var (
					wg      sync.WaitGroup
					answers [2]apiResponse
				)
				for i, who := range []struct {
					u    *e2eeUser
					body map[string]any
				}{{alice, aBody}, {bob, bBody}} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						answers[i] = srv.call(t, "POST", path, who.u.token, who.body)
					}()
				}
				wg.Wait()
				won := 0
				for _, a := range answers {
					switch {
					case a.Status == http.StatusCreated:
						won++
					case a.Status == http.StatusConflict && a.str("code") == "epoch_conflict" && num(a.Body, "current") == int64(round):
					default:
						t.Fatalf("round %d: %d %s", round, a.Status, a.Raw)
					}
				}
				if won != 1 {
					t.Fatalf("round %d: %d winners", round, won)
				}
				if f := bobWS.nextType("epoch"); f["chat_name"] != group || num(f, "epoch") != int64(round) {
					t.Fatalf("epoch frame %v", f)
				}
			}

			// Alice starts epoch 6; each member opens only their own envelope.
			six := alice.MustStartEpoch(t, srv, group)
			if got := bob.MustOpenEpoch(t, srv, group, six, alice); got != alice.rooms[fmt.Sprint(group, "/", six)] {
				t.Fatal("bob's room key differs from alice's")
			}
			carol.MustOpenEpoch(t, srv, group, six, alice)
			r := srv.call(t, "GET", fmt.Sprintf("%s/%d?device=%s", path, six, carol.device.Device().ID), bob.token, nil)
			if r.Status != http.StatusNotFound || r.str("code") != "no_envelope" {
				t.Fatalf("bob asks for carol's envelope: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "GET", fmt.Sprintf("%s/%d?device=%s", path, six+1, bob.device.Device().ID), bob.token, nil); r.Status != http.StatusNotFound {
				t.Fatalf("an epoch not started: %d", r.Status)
			}
			if r := srv.call(t, "GET", path+"/six?device=x", bob.token, nil); r.Status != http.StatusBadRequest {
				t.Fatalf("an epoch that is not a number: %d", r.Status)
			}
			if st := srv.call(t, "GET", path, carol.token, nil); num(st.Body, "current") != int64(six) || st.Body["stale"] != false {
				t.Fatalf("state: %s", st.Raw)
			}

			// Carol is removed: the epoch is stale, the next one leaves her
			// out, and she gets no envelope of it.
			if r := srv.call(t, "DELETE", "/chats/"+url.PathEscape(group)+"/members/carol", alice.token, nil); r.Status != http.StatusOK {
				t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
			}
			if st := srv.call(t, "GET", path, alice.token, nil); st.Body["stale"] != true {
				t.Fatalf("state after removing carol: %s", st.Raw)
			}
			seven := bob.MustStartEpoch(t, srv, group)
			if st := srv.call(t, "GET", path, alice.token, nil); num(st.Body, "min") != int64(seven) || st.Body["stale"] != false {
				t.Fatalf("state after epoch %d: %s", seven, st.Raw)
			}
			if r := srv.call(t, "GET", fmt.Sprintf("%s/%d?device=%s", path, seven, carol.device.Device().ID), carol.token, nil); r.Status != http.StatusForbidden {
				t.Fatalf("carol asks for an envelope after her removal: %d %s", r.Status, r.Raw)
			}
			var n int
			if err := rawDB(t, env).QueryRowContext(context.Background(), `SELECT COUNT(*) FROM e2ee_envelopes e JOIN users u ON u.id = e.recipient_id
				WHERE e.chat_id = ? AND e.epoch >= ? AND u.username = 'carol'`, groupID, seven).Scan(&n); err != nil || n != 0 {
				t.Fatalf("carol has %d envelopes of later epochs (%v)", n, err)
			}
		})
	}
}

// wsSend sends a text frame and returns the answer about its client id:
// the ack or the error.
func wsSend(c *wsClient, frame map[string]any) map[string]any {
	c.t.Helper()
	c.send(frame)
	id := frame["client_id"]
	return c.next(func(f map[string]any) bool {
		return (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == id
	})
}

// TestE2EEMessages: only well-formed mse1 messages on a live epoch and a
// live device of the sender are taken, and they are stored and delivered
// as the opaque text they are; each way an epoch goes stale is enforced.
func TestE2EEMessages(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, withoutRateLimits(b.env(t)))
			srv := MustStart(t, env)
			alice := srv.MustKeys(t, "alice", srv.MustUser(t, "alice"))
			bob := srv.MustKeys(t, "bob", srv.MustUser(t, "bob"))
			carol := srv.MustKeys(t, "carol", srv.MustUser(t, "carol"))
			group, groupID := mustE2EEGroup(t, srv, alice, "Ops", bob, carol)
			aliceWS, bobWS := srv.MustDial(t, alice.token, "global"), srv.MustDial(t, bob.token, "global")
			aliceWS.nextType("hello")
			bobWS.nextType("hello")
			epoch := alice.MustStartEpoch(t, srv, group)
			bob.MustOpenEpoch(t, srv, group, epoch, alice)

			// A sealed message is delivered, kept and synced as it is.
			text := alice.seal(t, group, epoch, "m1", "marker-e2ee-plaintext")
			ack := wsSend(aliceWS, map[string]any{"type": "text", "chat_name": group, "text": text, "client_id": "m1"})
			if ack["type"] != "ack" {
				t.Fatalf("an mse1 message: %v", ack)
			}
			got := bobWS.next(func(f map[string]any) bool { return f["type"] == "text" && f["chat_name"] == group })
			if got["text"] != text {
				t.Fatalf("bob got %v", got["text"])
			}
			sd := mustCertified(t, alice, alice.device)
			if plain, err := e2ee.DecryptMessage(bob.rooms[fmt.Sprint(group, "/", epoch)], sd, group, "alice", "m1", got["text"].(string)); err != nil || !strings.Contains(string(plain), "marker-e2ee-plaintext") {
				t.Fatalf("bob opens it: %q %v", plain, err)
			}
			hist := srv.call(t, "GET", "/messages/?chat_id="+url.QueryEscape(group), bob.token, nil)
			if !strings.Contains(string(hist.Raw), text) {
				t.Fatalf("history lacks the message: %s", hist.Raw)
			}
			bobWS.send(map[string]any{"type": "sync", "chat_name": group, "after_id": 0})
			if f := bobWS.next(func(f map[string]any) bool { return f["type"] == "text" && f["chat_name"] == group }); f["text"] != text {
				t.Fatalf("sync gave %v", f)
			}
			bobWS.nextType("synced")
			// A reply carries no preview made by the server.
			reply := alice.seal(t, group, epoch, "m2", "a reply")
			if a := wsSend(aliceWS, map[string]any{"type": "text", "chat_name": group, "text": reply, "client_id": "m2", "reply_to": num(ack, "id")}); a["type"] != "ack" {
				t.Fatalf("a reply: %v", a)
			}
			if f := bobWS.next(func(f map[string]any) bool { return f["client_id"] == "m2" }); f["reply"] != nil || num(f, "reply_to") != num(ack, "id") {
				t.Fatalf("the reply frame: %v", f)
			}

			// Plaintext, a malformed mse1, a file frame and one too large
			// are refused; so are epochs and devices that are not live.
			up := srv.upload(t, alice.token, group, "photo.png", "image/png", bytes.NewReader(pngImage(t, 64, 48)))
			if up.Status != http.StatusCreated {
				t.Fatalf("upload: %d %s", up.Status, up.Raw)
			}
			otherDevice := bob.device.Device().ID
			wrongDevice := strings.Replace(alice.seal(t, group, epoch, "x5", "hi"), alice.device.Device().ID, otherDevice, 1)
			for _, tt := range []struct {
				name  string
				frame map[string]any
				code  string
			}{
				{"plaintext", map[string]any{"type": "text", "text": "hello in the clear"}, "e2ee_required"},
				{"a broken mse1", map[string]any{"type": "text", "text": "mse1.1.x.y.z.w"}, "e2ee_required"},
				{"a file frame", map[string]any{"type": "file", "text": up.str("file_url")}, "e2ee_required"},
				{"too large", map[string]any{"type": "text", "text": "mse1." + strings.Repeat("A", 8192*4/3+1100)}, "too_large"},
				{"a future epoch", map[string]any{"type": "text", "text": alice.sealAt(t, group, epoch+1, "x4")}, "stale_epoch"},
				{"bob device in alice message", map[string]any{"type": "text", "text": wrongDevice}, "stale_epoch"},
				{"a plaintext edit", map[string]any{"type": "edit", "message_id": num(ack, "id"), "text": "edited in the clear"}, "e2ee_required"},
			} {
				tt.frame["chat_name"], tt.frame["client_id"] = group, "bad-"+strings.ReplaceAll(tt.name, " ", "-")
				if a := wsSend(aliceWS, tt.frame); a["type"] != "error" || a["code"] != tt.code {
					t.Errorf("%s: %v, want %s", tt.name, a, tt.code)
				}
			}
			aliceWS.send(map[string]any{"type": "text", "chat_name": group, "text": alice.seal(t, group, epoch, "zz", "no client id")})
			if f := aliceWS.nextType("error"); f["code"] != "e2ee_required" {
				t.Fatalf("an mse1 message without a client_id: %v", f)
			}
			if a := wsSend(aliceWS, map[string]any{"type": "edit", "chat_name": group, "message_id": num(ack, "id"), "client_id": "e1",
				"text": alice.seal(t, group, epoch, "m1", "edited")}); a["type"] != "ack" {
				t.Fatalf("an encrypted edit: %v", a)
			}

			// 100 messages make the epoch stale (three sent so far, the edit
			// counted).
			send := func(u *e2eeUser, c *wsClient, epoch uint32, id string) map[string]any {
				return wsSend(c, map[string]any{"type": "text", "chat_name": group, "text": u.seal(t, group, epoch, id, "n"), "client_id": id})
			}
			for i := 3; i < 100; i++ {
				if a := send(alice, aliceWS, epoch, fmt.Sprint("n", i)); a["type"] != "ack" {
					t.Fatalf("message %d: %v", i+1, a)
				}
			}
			if a := send(bob, bobWS, epoch, "n100"); a["type"] != "error" || a["code"] != "stale_epoch" || a["client_id"] != "n100" {
				t.Fatalf("message 101: %v", a)
			}
			// The sender starts a new epoch and sends again with the same
			// client id.
			epoch = bob.MustStartEpoch(t, srv, group)
			alice.MustOpenEpoch(t, srv, group, epoch, bob)
			if a := send(bob, bobWS, epoch, "n100"); a["type"] != "ack" {
				t.Fatalf("message 101 on a new epoch: %v", a)
			}

			// Seven days make it stale (the epoch's start moved back in
			// the database: the server reads its age from there).
			db := rawDB(t, env)
			if _, err := db.ExecContext(context.Background(), `UPDATE e2ee_epochs SET started_at = started_at - ? WHERE chat_id = ? AND epoch = ?`,
				int64(7*24*3600*1000), groupID, epoch); err != nil {
				t.Fatal(err)
			}
			if a := send(alice, aliceWS, epoch, "old1"); a["code"] != "stale_epoch" {
				t.Fatalf("a message on a week-old epoch: %v", a)
			}
			epoch = alice.MustStartEpoch(t, srv, group)
			bob.MustOpenEpoch(t, srv, group, epoch, alice)

			// A device revoked: the epoch is stale, and the device cannot
			// send even on the next.
			second := bob.MustNewDevice(t, srv)
			if a := send(alice, aliceWS, epoch, "dev1"); a["code"] != "stale_epoch" {
				t.Fatalf("a message after bob added a device: %v", a)
			}
			epoch = alice.MustStartEpoch(t, srv, group)
			if r := srv.call(t, "DELETE", "/keys/devices/"+second.Device().ID, bob.token, nil); r.Status != http.StatusNoContent {
				t.Fatalf("revoke: %d", r.Status)
			}
			if a := send(alice, aliceWS, epoch, "dev2"); a["code"] != "stale_epoch" {
				t.Fatalf("a message after bob revoked a device: %v", a)
			}
			epoch = alice.MustStartEpoch(t, srv, group)
			bob.MustOpenEpoch(t, srv, group, epoch, alice)
			revoked := &e2eeUser{name: "bob", token: bob.token, identity: bob.identity, device: second, rooms: bob.rooms}
			if a := send(revoked, bobWS, epoch, "dev3"); a["code"] != "stale_epoch" {
				t.Fatalf("a revoked device sends: %v", a)
			}

			// A member removed: stale, and older epochs end for good.
			if r := srv.call(t, "DELETE", "/chats/"+url.PathEscape(group)+"/members/carol", alice.token, nil); r.Status != http.StatusOK {
				t.Fatalf("remove carol: %d", r.Status)
			}
			if a := send(alice, aliceWS, epoch, "rm1"); a["code"] != "stale_epoch" {
				t.Fatalf("a message after carol was removed: %v", a)
			}
			old := epoch
			epoch = alice.MustStartEpoch(t, srv, group)
			if a := send(alice, aliceWS, old, "rm2"); a["code"] != "stale_epoch" {
				t.Fatalf("a message on the epoch before the removal: %v", a)
			}
			if a := send(alice, aliceWS, epoch, "rm3"); a["type"] != "ack" {
				t.Fatalf("a message on the new epoch: %v", a)
			}

			// The upload of an encrypted chat is stored opaque: no name, no
			// type, no thumbnail.
			resp, _, err := srv.download(t, alice.token, up.str("file_url"), nil)
			if err != nil || resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.Contains(resp.Header.Get("Content-Disposition"), "file.bin") {
				t.Fatalf("the opaque file is served as %v, %v (%v)", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), err)
			}
			if r, _, _ := srv.download(t, alice.token, up.str("file_url")+"/thumbnail", nil); r.StatusCode != http.StatusNotFound {
				t.Fatalf("the opaque file has a thumbnail: %d", r.StatusCode)
			}
		})
	}
}

// sealAt seals a message on an epoch the user has no key of (the server
// cannot tell): a random key.
func (u *e2eeUser) sealAt(t testing.TB, chatName string, epoch uint32, clientID string) string {
	t.Helper()
	out, err := e2ee.EncryptMessage(e2ee.NewRoomKey(), u.device, chatName, epoch, u.name, clientID, []byte(`{"v":1,"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestE2EEBackup: the backup header and room-key items round trip, are
// replaced, page, and are checked for shape and size.
func TestE2EEBackup(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
			if r := srv.call(t, "GET", "/keys/backup", alice, nil); r.Status != http.StatusNotFound || r.str("code") != "no_backup" {
				t.Fatalf("before the first backup: %d %s", r.Status, r.Raw)
			}
			identity, _ := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
			backupKey := e2ee.NewRoomKey() // any 32 bytes: the server never derives it
			box, err := e2ee.SealIdentityBackup(backupKey, "alice", identity)
			if err != nil {
				t.Fatal(err)
			}
			header := e2ee.BackupHeader{KDF: e2ee.NewBackupKDF(), Identity: box}
			for i := range 2 {
				header.KDF.Salt = bytes.Repeat([]byte{byte(i + 1)}, 16)
				if r := srv.call(t, "PUT", "/keys/backup", alice, header); r.Status != http.StatusOK {
					t.Fatalf("put backup #%d: %d %s", i, r.Status, r.Raw)
				}
				var got e2ee.BackupHeader
				r := srv.call(t, "GET", "/keys/backup", alice, nil)
				mustJSON(t, r.Raw, &got)
				if !bytes.Equal(got.KDF.Salt, header.KDF.Salt) || got.KDF.Iterations != header.KDF.Iterations {
					t.Fatalf("backup #%d back: %s", i, r.Raw)
				}
				if _, err := e2ee.OpenIdentityBackup(backupKey, "alice", got.Identity); err != nil {
					t.Fatalf("the identity key does not open from the backup: %v", err)
				}
			}
			if r := srv.call(t, "GET", "/keys/backup", bob, nil); r.Status != http.StatusNotFound {
				t.Fatalf("bob reads a backup: %d %s", r.Status, r.Raw)
			}
			weak := header
			weak.KDF.Iterations = 1000
			for _, bad := range []struct {
				name string
				body any
			}{
				{"too few iterations", weak},
				{"a short salt", map[string]any{"kdf": map[string]any{"alg": "pbkdf2-sha256", "iterations": 600000, "salt": "AAAA"}, "identity": box}},
				{"another kdf", map[string]any{"kdf": map[string]any{"alg": "md5", "iterations": 600000, "salt": e2ee.EncodeB64U(make([]byte, 16))}, "identity": box}},
				{"bad base64url", map[string]any{"kdf": header.KDF, "identity": map[string]any{"iv": "!!", "ct": "AAAA"}}},
			} {
				if r := srv.call(t, "PUT", "/keys/backup", alice, bad.body); r.Status != http.StatusBadRequest || r.str("detail") == "" {
					t.Errorf("backup with %s: %d %s", bad.name, r.Status, r.Raw)
				}
			}

			// Room keys: 1,200 items in three calls, one replaced, read in pages.
			item := func(epoch uint32) e2ee.RoomKeyBackup {
				it, err := e2ee.SealRoomKeyBackup(backupKey, "alice", "group:ab", epoch, e2ee.NewRoomKey())
				if err != nil {
					t.Fatal(err)
				}
				return it
			}
			var all []e2ee.RoomKeyBackup
			for call := range 3 {
				var items []e2ee.RoomKeyBackup
				for i := range 400 {
					items = append(items, item(uint32(call*400+i+1)))
				}
				if r := srv.call(t, "POST", "/keys/backup/room-keys", alice, map[string]any{"items": items}); r.Status != http.StatusOK || num(r.Body, "stored") != 400 {
					t.Fatalf("items, call %d: %d %s", call, r.Status, r.Raw)
				}
				all = append(all, items...)
			}
			all[6] = item(7)
			if r := srv.call(t, "POST", "/keys/backup/room-keys", alice, map[string]any{"items": all[6:7]}); r.Status != http.StatusOK {
				t.Fatalf("replace an item: %d %s", r.Status, r.Raw)
			}
			var (
				after int64
				read  []e2ee.RoomKeyBackup
				pages int
			)
			for {
				r := srv.call(t, "GET", fmt.Sprintf("/keys/backup/room-keys?after=%d", after), alice, nil)
				var page struct {
					Items []struct {
						ID    int64  `json:"id"`
						Chat  string `json:"chat"`
						Epoch uint32 `json:"epoch"`
						CT    string `json:"ct"`
					} `json:"items"`
					HasMore bool `json:"has_more"`
				}
				mustJSON(t, r.Raw, &page)
				pages++
				for _, it := range page.Items {
					ct, err := e2ee.DecodeB64U(it.CT)
					if err != nil || it.Chat != "group:ab" {
						t.Fatalf("item %d: %q %v", it.ID, it.Chat, err)
					}
					read = append(read, e2ee.RoomKeyBackup{Chat: it.Chat, Epoch: it.Epoch, CT: ct})
					after = it.ID
				}
				if !page.HasMore {
					break
				}
			}
			if pages != 3 || len(read) != len(all) {
				t.Fatalf("%d items in %d pages, want %d in 3", len(read), pages, len(all))
			}
			for i := range all {
				if read[i].Epoch != all[i].Epoch || !bytes.Equal(read[i].CT, all[i].CT) {
					t.Fatalf("item %d differs", i)
				}
			}
			if r := srv.call(t, "GET", "/keys/backup/room-keys", bob, nil); !strings.Contains(string(r.Raw), `"items":[]`) {
				t.Fatalf("bob's items: %s", r.Raw)
			}
			good := all[0]
			short := good
			short.CT = good.CT[:10]
			many := make([]e2ee.RoomKeyBackup, 501)
			for i := range many {
				many[i] = good
			}
			for _, bad := range []struct {
				name   string
				body   any
				status int
			}{
				{"501 items", map[string]any{"items": many}, http.StatusBadRequest},
				{"a short ct", map[string]any{"items": []e2ee.RoomKeyBackup{short}}, http.StatusBadRequest},
				{"a chat name that is no name", map[string]any{"items": []map[string]any{{"chat": "gruppe:ü", "epoch": 1, "iv": e2ee.EncodeB64U(good.IV), "ct": e2ee.EncodeB64U(good.CT)}}}, http.StatusBadRequest},
				{"epoch 0", map[string]any{"items": []map[string]any{{"chat": "group:ab", "epoch": 0, "iv": e2ee.EncodeB64U(good.IV), "ct": e2ee.EncodeB64U(good.CT)}}}, http.StatusBadRequest},
				{"bad base64url", map[string]any{"items": []map[string]any{{"chat": "group:ab", "epoch": 1, "iv": "a=", "ct": "b"}}}, http.StatusBadRequest},
				{"no items", map[string]any{"items": []e2ee.RoomKeyBackup{}}, http.StatusBadRequest},
				{"a body over 64 KiB", map[string]any{"items": []map[string]any{{"chat": strings.Repeat("c", 70<<10)}}}, http.StatusRequestEntityTooLarge},
			} {
				if r := srv.call(t, "POST", "/keys/backup/room-keys", alice, bad.body); r.Status != bad.status || r.str("detail") == "" {
					t.Errorf("items with %s: %d %s", bad.name, r.Status, r.Raw)
				}
			}
			if r := srv.call(t, "GET", "/keys/backup/room-keys?limit=501", alice, nil); r.Status != http.StatusBadRequest {
				t.Fatalf("a page of 501: %d", r.Status)
			}
			assertBlobsSealed(t, env, [][]byte{box.CT, all[0].CT})
		})
	}
}

// TestE2EESealedAtRest: room-key envelopes are sealed at rest; the raw
// database holds none of their bytes in the clear, and one moved to
// another row does not open.
func TestE2EESealedAtRest(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, b.env(t))
			srv := MustStart(t, env)
			alice := srv.MustKeys(t, "alice", srv.MustUser(t, "alice"))
			bob := srv.MustKeys(t, "bob", srv.MustUser(t, "bob"))
			group, _ := mustE2EEGroup(t, srv, alice, "Ops", bob)
			body, _ := alice.epochBody(t, srv, group, 1)
			if r := srv.call(t, "POST", "/chats/"+url.PathEscape(group)+"/epochs", alice.token, body); r.Status != http.StatusCreated {
				t.Fatalf("start epoch: %d %s", r.Status, r.Raw)
			}
			srv.Stop(t) // SQLite folds its log into the file
			var needles [][]byte
			for _, e := range body["envelopes"].([]e2ee.Envelope) {
				needles = append(needles, e.CT, e.Sig)
			}
			assertBlobsSealed(t, env, needles)

			// A sealed envelope moved to another device's row does not open:
			// bob is not handed alice's envelope.
			db := rawDB(t, env)
			ctx := context.Background()
			var aliceBody []byte
			if err := db.QueryRowContext(ctx, `SELECT body FROM e2ee_envelopes WHERE recipient_device = ?`, alice.device.Device().ID).Scan(&aliceBody); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE e2ee_envelopes SET body = ? WHERE recipient_device = ?`, aliceBody, bob.device.Device().ID); err != nil {
				t.Fatal(err)
			}
			db.Close()
			srv = MustStart(t, env)
			r := srv.call(t, "GET", "/chats/"+url.PathEscape(group)+"/epochs/1?device="+bob.device.Device().ID, bob.token, nil)
			if r.Status != http.StatusInternalServerError || strings.Contains(string(r.Raw), "eph_pub") {
				t.Fatalf("a moved envelope: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "GET", "/chats/"+url.PathEscape(group)+"/epochs", bob.token, nil); r.Status != http.StatusOK {
				t.Fatalf("the chat after the failed envelope: %d %s", r.Status, r.Raw)
			}
		})
	}
}

// assertBlobsSealed fails if any needle, raw or in base64url, is in the
// database at rest.
func assertBlobsSealed(t *testing.T, env map[string]string, needles [][]byte) {
	t.Helper()
	var forms [][]byte
	for _, n := range needles {
		forms = append(forms, n, []byte(e2ee.EncodeB64U(n)))
	}
	if env["DB_HOST"] == "" {
		files, _ := filepath.Glob(filepath.Join(env["DATA_DIR"], "chat.db*"))
		if len(files) == 0 {
			t.Fatalf("no database files in %s", env["DATA_DIR"])
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range forms {
				if bytes.Contains(b, n) {
					t.Fatalf("%s holds an opaque blob in the clear", f)
				}
			}
		}
		return
	}
	db := rawDB(t, env)
	for _, table := range []string{"e2ee_envelopes", "e2ee_backups", "e2ee_backup_items"} {
		for _, n := range forms {
			var hits int
			if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+table+` WHERE INSTR(body, ?) > 0`, n).Scan(&hits); err != nil || hits != 0 {
				t.Fatalf("%s: %d rows hold a blob in the clear (%v)", table, hits, err)
			}
		}
	}
}
