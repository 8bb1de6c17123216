package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
)

// e2eeUser is a test user with keys made by internal/e2ee, as a client
// makes them: an identity key and one device, published.
type e2eeUser struct {
	name, token string
	identity    *e2ee.SigningKey
	device      *e2ee.DeviceKeys
	// rooms holds the room keys the user opened, by chat and epoch.
	rooms map[string][e2ee.KeySize]byte
}

// MustKeys makes and publishes an identity key and a device for a user.
func (s *testServer) MustKeys(t testing.TB, name, token string) *e2eeUser {
	t.Helper()
	identity, err := e2ee.GenerateSigningKey(e2ee.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	u := &e2eeUser{name: name, token: token, identity: identity, rooms: map[string][e2ee.KeySize]byte{}}
	if r := s.call(t, "PUT", "/keys/identity", token, identity.Public()); r.Status != http.StatusCreated {
		t.Fatalf("publish %s's identity key: %d %s", name, r.Status, r.Raw)
	}
	u.device = u.MustNewDevice(t, s)
	return u
}

// MustNewDevice makes and publishes another device of the user.
func (u *e2eeUser) MustNewDevice(t testing.TB, s *testServer) *e2ee.DeviceKeys {
	t.Helper()
	dk, err := e2ee.NewDeviceKeys(e2ee.AlgX25519, e2ee.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e2ee.Certify(u.identity, u.name, dk.Device())
	if err != nil {
		t.Fatal(err)
	}
	if r := s.call(t, "POST", "/keys/devices", u.token, d); r.Status != http.StatusCreated {
		t.Fatalf("publish %s's device: %d %s", u.name, r.Status, r.Raw)
	}
	return dk
}

// chatDevices lists the member devices of a chat as the API gives them.
type chatDevices struct {
	Chat    string `json:"chat"`
	Members []struct {
		Username string         `json:"username"`
		Identity e2ee.PublicKey `json:"identity"`
		Devices  []e2ee.Device  `json:"devices"`
	} `json:"members"`
}

// epochBody makes the body of POST /chats/{chat}/epochs: a fresh room key
// wrapped for every member device the server lists, signed by the
// sender's device. It returns the body and the room key.
func (u *e2eeUser) epochBody(t testing.TB, s *testServer, chatName string, epoch uint32) (map[string]any, [e2ee.KeySize]byte) {
	t.Helper()
	r := s.call(t, "GET", "/chats/"+url.PathEscape(chatName)+"/devices", u.token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("devices of %s: %d %s", chatName, r.Status, r.Raw)
	}
	var list chatDevices
	mustJSON(t, r.Raw, &list)
	key := e2ee.NewRoomKey()
	var envs []e2ee.Envelope
	for _, m := range list.Members {
		for _, d := range m.Devices {
			if err := e2ee.VerifyDevice(m.Identity, m.Username, d); err != nil {
				t.Fatalf("the server lists a device of %s that does not verify: %v", m.Username, err)
			}
			env, err := e2ee.SealEnvelope(u.device, u.name, list.Chat, epoch, m.Username, d, key)
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
	}
	return map[string]any{"epoch": epoch, "sender_device": u.device.Device().ID, "envelopes": envs}, key
}

// MustStartEpoch starts the next epoch of a chat as the user and returns
// its number.
func (u *e2eeUser) MustStartEpoch(t testing.TB, s *testServer, chatName string) uint32 {
	t.Helper()
	st := s.call(t, "GET", "/chats/"+url.PathEscape(chatName)+"/epochs", u.token, nil)
	epoch := uint32(num(st.Body, "current")) + 1
	body, key := u.epochBody(t, s, chatName, epoch)
	if r := s.call(t, "POST", "/chats/"+url.PathEscape(chatName)+"/epochs", u.token, body); r.Status != http.StatusCreated || num(r.Body, "epoch") != int64(epoch) {
		t.Fatalf("%s starts epoch %d of %s: %d %s", u.name, epoch, chatName, r.Status, r.Raw)
	}
	u.rooms[fmt.Sprint(chatName, "/", epoch)] = key
	return epoch
}

// MustOpenEpoch fetches the user's envelope of an epoch and opens it.
func (u *e2eeUser) MustOpenEpoch(t testing.TB, s *testServer, chatName string, epoch uint32, sender *e2eeUser) [e2ee.KeySize]byte {
	t.Helper()
	r := s.call(t, "GET", fmt.Sprintf("/chats/%s/epochs/%d?device=%s", url.PathEscape(chatName), epoch, u.device.Device().ID), u.token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("%s's envelope of epoch %d: %d %s", u.name, epoch, r.Status, r.Raw)
	}
	var got struct {
		Chat         string        `json:"chat"`
		Sender       string        `json:"sender"`
		SenderDevice string        `json:"sender_device"`
		Envelope     e2ee.Envelope `json:"envelope"`
	}
	mustJSON(t, r.Raw, &got)
	if got.Sender != sender.name || got.SenderDevice != sender.device.Device().ID {
		t.Fatalf("envelope from %s/%s, want %s", got.Sender, got.SenderDevice, sender.name)
	}
	sd, err := e2ee.Certify(sender.identity, sender.name, sender.device.Device())
	if err != nil {
		t.Fatal(err)
	}
	key, err := e2ee.OpenEnvelope(u.device, u.name, got.Chat, epoch, sd, sender.name, got.Envelope)
	if err != nil {
		t.Fatalf("%s opens the envelope of epoch %d: %v", u.name, epoch, err)
	}
	u.rooms[fmt.Sprint(chatName, "/", epoch)] = key
	return key
}

// seal encrypts a message text for a chat's epoch with the user's device.
func (u *e2eeUser) seal(t testing.TB, chatName string, epoch uint32, clientID, text string) string {
	t.Helper()
	key, ok := u.rooms[fmt.Sprint(chatName, "/", epoch)]
	if !ok {
		t.Fatalf("%s has no room key of %s epoch %d", u.name, chatName, epoch)
	}
	out, err := e2ee.EncryptMessage(key, u.device, chatName, epoch, u.name, clientID, fmt.Appendf(nil, `{"v":1,"text":%q}`, text))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawDB opens a test server's database with plain database/sql, for what
// a test does behind the server's back (moving a clock, reading bytes at
// rest).
func rawDB(t testing.TB, env map[string]string) *sql.DB {
	t.Helper()
	var (
		db  *sql.DB
		err error
	)
	if env["DB_HOST"] == "" {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(env["DATA_DIR"], "chat.db")+"?_pragma=busy_timeout(10000)")
	} else {
		db, err = sql.Open("mysql", fmt.Sprintf("%s@tcp(%s:%s)/%s", env["DB_USER"], env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// mustJSON decodes an answer into v.
func mustJSON(t testing.TB, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}
