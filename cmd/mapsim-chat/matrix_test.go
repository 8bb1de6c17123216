package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/e2ee"
	"github.com/mapsim/mapsim-chat/internal/httpapi"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// matrixWorld is a fresh group per row: alice owns it, bob is a member,
// eve is not, and carol is free to be added.
type matrixWorld struct {
	srv                    *testServer
	alice, bob, eve, carol string // tokens
	bobName, carolName     string
	group                  string // the group's name
	groupID                string
	lastID                 int64                // the newest message of the group
	aliceMsg               int64                // a text message alice sent to the group
	aliceFile              string               // the URL of a file alice uploaded to the group
	names                  map[string]string    // usernames by token
	keys                   map[string]*e2eeUser // published keys by token
}

// Each route's row. chat rows are run by a member (must succeed) and by a
// non-member (must get the same 403 as for a chat that does not exist).
// token rows need a token but name no chat; public rows need neither.
type routeRow struct {
	kind string // "chat", "token", "public" or "ws"
	// call makes the request as the given user against chat (id or name).
	call func(w *matrixWorld, tok, chat string) apiResponse
	// member is who succeeds: "alice" (owner) or "bob" (plain member).
	member string
	// e2ee rows run on an end-to-end encrypted group.
	e2ee bool
	// media file rows run on an audio file instead of an image.
	media bool
}

// e2eeKeys publishes keys for the user behind tok once, and returns them.
func (w *matrixWorld) e2eeKeys(tok string) *e2eeUser {
	if u := w.keys[tok]; u != nil {
		return u
	}
	if w.keys == nil {
		w.keys = map[string]*e2eeUser{}
	}
	u := w.srv.MustKeys(w.srv.t(), w.names[tok], tok)
	w.keys[tok] = u
	return u
}

// startEpoch starts the group's next epoch as the user behind tok, with
// that user's device the only one among the members (the others have no
// keys); the answer is the server's.
func (w *matrixWorld) startEpoch(tok, chat string) apiResponse {
	u := w.e2eeKeys(tok)
	key := e2ee.NewRoomKey()
	env, err := e2ee.SealEnvelope(u.device, u.name, w.group, 1, u.name, u.device.Device(), key)
	if err != nil {
		w.srv.t().Fatal(err)
	}
	return w.srv.call(w.srv.t(), "POST", "/chats/"+url.PathEscape(chat)+"/epochs", tok,
		map[string]any{"epoch": 1, "sender_device": u.device.Device().ID, "envelopes": []e2ee.Envelope{env}})
}

var routeRows = map[string]routeRow{
	"GET /":          {kind: "public"},
	"HEAD /":         {kind: "public"},
	"GET /static/*":  {kind: "public"},
	"HEAD /static/*": {kind: "public"},
	"GET /healthz":   {kind: "public"},
	"GET /readyz":    {kind: "public"},
	"HEAD /healthz":  {kind: "public"},
	"HEAD /readyz":   {kind: "public"},
	// Not about chats: loopback clients or the METRICS_TOKEN bearer only,
	// which TestMetricsAccess attacks.
	"GET /metrics":   {kind: "public"},
	"POST /register": {kind: "public"},
	"POST /login":    {kind: "public"},
	// The refresh cookie is its credential: TestBrowserSignIn attacks it.
	"POST /session/refresh": {kind: "public"},
	"GET /ws":               {kind: "ws"}, // TestMembershipMatrixFrames
	"POST /logout":          {kind: "token"},
	// My own sessions and password: TestMySessions and
	// TestChangePasswordAPI try another user's.
	"POST /password":            {kind: "token"},
	"GET /sessions":             {kind: "token"},
	"DELETE /sessions/{id}":     {kind: "token"},
	"POST /sessions/end-others": {kind: "token"},
	"POST /ws-ticket":           {kind: "token"},
	"GET /users/online":         {kind: "token"},
	"GET /users/search":         {kind: "token"},
	// A profile is anyone's to read, and only one's own to change: the
	// /profile routes name no user (TestProfileRoutes).
	"GET /users/profiles":          {kind: "token"},
	"GET /users/{username}/avatar": {kind: "token"},
	"GET /profile":                 {kind: "token"},
	"PATCH /profile":               {kind: "token"},
	"PUT /profile/avatar":          {kind: "token"},
	"DELETE /profile/avatar":       {kind: "token"},
	"GET /chats":                   {kind: "token"},
	"POST /chats":                  {kind: "token"},
	"GET /messages": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/messages/?chat_id="+url.QueryEscape(chat), tok, nil)
	}},
	"GET /chats/{chat}": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/chats/"+url.PathEscape(chat), tok, nil)
	}},
	"PATCH /chats/{chat}": {kind: "chat", member: "alice", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "PATCH", "/chats/"+url.PathEscape(chat), tok, map[string]any{"title": "Renamed"})
	}},
	"POST /chats/{chat}/members": {kind: "chat", member: "alice", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "POST", "/chats/"+url.PathEscape(chat)+"/members", tok, map[string]any{"members": []string{w.carolName}})
	}},
	"DELETE /chats/{chat}/members/{username}": {kind: "chat", member: "alice", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "DELETE", "/chats/"+url.PathEscape(chat)+"/members/"+w.bobName, tok, nil)
	}},
	"POST /chats/{chat}/leave": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "POST", "/chats/"+url.PathEscape(chat)+"/leave", tok, nil)
	}},
	"POST /chats/{chat}/read": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "POST", "/chats/"+url.PathEscape(chat)+"/read", tok, map[string]any{"message_id": w.lastID})
	}},
	"PUT /chats/{chat}/notify": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "PUT", "/chats/"+url.PathEscape(chat)+"/notify", tok, map[string]any{"notify": "muted"})
	}},
	"POST /upload": {kind: "chat", member: "bob", call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.upload(w.srv.t(), tok, chat, "note.txt", "text/plain", strings.NewReader("a note"))
	}},
	"PUT /keys/identity":            {kind: "token"},
	"POST /keys/devices":            {kind: "token"},
	"DELETE /keys/devices/{device}": {kind: "token"},
	"GET /keys/users/{username}":    {kind: "token"},
	"PUT /keys/backup":              {kind: "token"},
	"GET /keys/backup":              {kind: "token"},
	"POST /keys/backup/room-keys":   {kind: "token"},
	"GET /keys/backup/room-keys":    {kind: "token"},
	"GET /chats/{chat}/devices": {kind: "chat", member: "bob", e2ee: true, call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/chats/"+url.PathEscape(chat)+"/devices", tok, nil)
	}},
	"GET /chats/{chat}/epochs": {kind: "chat", member: "bob", e2ee: true, call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/chats/"+url.PathEscape(chat)+"/epochs", tok, nil)
	}},
	"POST /chats/{chat}/epochs": {kind: "chat", member: "bob", e2ee: true, call: func(w *matrixWorld, tok, chat string) apiResponse {
		return w.startEpoch(tok, chat)
	}},
	"GET /chats/{chat}/epochs/{epoch}": {kind: "chat", member: "bob", e2ee: true, call: func(w *matrixWorld, tok, chat string) apiResponse {
		w.startEpoch(tok, chat) // epoch 1 with an envelope for bob; refused for others
		return w.srv.call(w.srv.t(), "GET", "/chats/"+url.PathEscape(chat)+"/epochs/1?device="+w.e2eeKeys(tok).device.Device().ID, tok, nil)
	}},
	// File rows: chat is replaced by the file's id.
	"GET /file/{id}": {kind: "file", member: "bob", call: func(w *matrixWorld, tok, file string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/file/"+file, tok, nil)
	}},
	"GET /file/{id}/thumbnail": {kind: "file", member: "bob", call: func(w *matrixWorld, tok, file string) apiResponse {
		return w.srv.call(w.srv.t(), "GET", "/file/"+file+"/thumbnail", tok, nil)
	}},
	"POST /file/{id}/media-url": {kind: "file", member: "bob", media: true, call: func(w *matrixWorld, tok, file string) apiResponse {
		return w.srv.call(w.srv.t(), "POST", "/file/"+file+"/media-url", tok, nil)
	}},
	// A media URL's own credential is its signed query, checked by
	// TestMediaURLs and internal/httpapi's TestMediaURL.
	"GET /file/{id}/media": {kind: "public"},
}

// t lets route rows reach the running test.
func (s *testServer) t() testing.TB { return s.tb }

func newMatrixWorld(t *testing.T, srv *testServer, n int) *matrixWorld {
	return newMatrixWorldE2EE(t, srv, n, false)
}

// newMatrixWorldE2EE is newMatrixWorld with an end-to-end encrypted group
// when encrypted is set.
func newMatrixWorldE2EE(t *testing.T, srv *testServer, n int, encrypted bool) *matrixWorld {
	t.Helper()
	w := &matrixWorld{srv: srv, names: map[string]string{}}
	user := func(base string) string {
		name := fmt.Sprintf("%s%d", base, n)
		tok := srv.MustUser(t, name)
		w.names[tok] = name
		return tok
	}
	w.alice, w.bob, w.eve, w.carol = user("alice"), user("bob"), user("eve"), user("carol")
	w.bobName, w.carolName = fmt.Sprintf("bob%d", n), fmt.Sprintf("carol%d", n)
	r := srv.call(t, "POST", "/chats/", w.alice, map[string]any{"e2ee": encrypted, "kind": "group", "title": "Matrix", "members": []string{fmt.Sprintf("bob%d", n)}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create group: %d %s", r.Status, r.Raw)
	}
	w.group, w.groupID, w.lastID = r.str("name"), fmt.Sprint(num(r.Body, "id")), num(r.Body, "last_message_id")
	return w
}

// TestMembershipMatrixRoutes: for every route, a member succeeds and a
// non-member is refused exactly as for a chat that does not exist. A route
// without a row fails the test.
func TestMembershipMatrixRoutes(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			for i, route := range httpapi.Routes() {
				row, ok := routeRows[route]
				if !ok {
					t.Errorf("route %s has no row in the membership matrix", route)
					continue
				}
				switch row.kind {
				case "token":
					method, path := splitRoute(route)
					if r := srv.call(t, method, path, "", nil); r.Status != http.StatusUnauthorized {
						t.Errorf("%s without a token: %d", route, r.Status)
					}
				case "file":
					w := newMatrixWorld(t, srv, i)
					up := srv.upload(t, w.alice, w.group, "pic.png", "image/png", bytes.NewReader(pngImage(t, 64, 48)))
					if row.media {
						up = srv.upload(t, w.alice, w.group, "tone.wav", "audio/wav", bytes.NewReader(wavTone(800)))
					}
					file := up.str("file_id")
					r, missing := row.call(w, w.eve, file), row.call(w, w.eve, strings.Repeat("0", 32))
					if r.Status != http.StatusNotFound || r.Status != missing.Status || string(r.Raw) != string(missing.Raw) {
						t.Errorf("%s by a non-member: %d %s; a missing file gets %d %s", route, r.Status, r.Raw, missing.Status, missing.Raw)
					}
					if r := row.call(w, w.bob, file); r.Status != http.StatusOK {
						t.Errorf("%s by a member: %d", route, r.Status)
					}
				case "chat":
					w := newMatrixWorldE2EE(t, srv, i, row.e2ee)
					for _, ref := range []string{w.group, w.groupID} {
						r := row.call(w, w.eve, ref)
						missing := row.call(w, w.eve, "group:0000000000000000")
						if r.Status != http.StatusForbidden || r.str("code") != "forbidden" {
							t.Errorf("%s by a non-member (%s): %d %s", route, ref, r.Status, r.Raw)
						}
						if r.Status != missing.Status || string(r.Raw) != string(missing.Raw) {
							t.Errorf("%s: a non-member's answer %s differs from a missing chat's %s", route, r.Raw, missing.Raw)
						}
					}
					tok := w.bob
					if row.member == "alice" {
						tok = w.alice
					}
					if r := row.call(w, tok, w.group); r.Status/100 != 2 {
						t.Errorf("%s by a member: %d %s", route, r.Status, r.Raw)
					}
				}
			}
			for route := range routeRows {
				if !slices.Contains(httpapi.Routes(), route) {
					t.Errorf("the matrix has a row for %s, which is not a route", route)
				}
			}
		})
	}
}

func splitRoute(route string) (method, path string) {
	for i := range route {
		if route[i] == ' ' {
			return route[:i], route[i+1:]
		}
	}
	return route, ""
}

// frameRow is one client frame type: the frame a user sends about the
// group, and what a member gets back.
type frameRow struct {
	frame func(w *matrixWorld) map[string]any
	// memberGets is the type of the answer a member sees; "" for frames
	// that name no chat (the non-member gets the same answer).
	memberGets string
	noChat     bool
}

var frameRows = map[string]frameRow{
	wire.TypeText: {memberGets: "ack", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "text", "chat_name": w.group, "text": "hi", "client_id": "x1"}
	}},
	wire.TypeFile: {memberGets: "ack", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "file", "chat_name": w.group, "text": w.aliceFile, "client_id": "f1"}
	}},
	wire.TypeTyping: {memberGets: "typing", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "typing", "chat_name": w.group}
	}},
	wire.TypeJoin: {memberGets: "joined", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "join", "chat_name": w.group}
	}},
	wire.TypeLeave: {memberGets: "left", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "leave", "chat_name": w.group}
	}},
	wire.TypeSync: {memberGets: "synced", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "sync", "chat_name": w.group, "after_id": 0}
	}},
	wire.TypePing: {memberGets: "pong", noChat: true, frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "ping"}
	}},
	wire.TypeEdit: {memberGets: "ack", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "edit", "chat_name": w.group, "message_id": w.aliceMsg, "text": "edited", "client_id": "e1"}
	}},
	wire.TypeDelete: {memberGets: "ack", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "delete", "chat_name": w.group, "message_id": w.aliceMsg, "client_id": "d1"}
	}},
	wire.TypeRead: {memberGets: "read", frame: func(w *matrixWorld) map[string]any {
		return map[string]any{"type": "read", "chat_name": w.group, "message_id": w.aliceMsg}
	}},
}

// TestMembershipMatrixFrames: for every frame type a client may send, a
// member (alice, who owns the group and wrote its message) succeeds and a
// non-member gets forbidden. A frame type without a row fails the test.
func TestMembershipMatrixFrames(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			for i, typ := range wire.ClientTypes {
				row, ok := frameRows[typ]
				if !ok {
					t.Errorf("frame type %s has no row in the membership matrix", typ)
					continue
				}
				w := newMatrixWorld(t, srv, 100+i)
				aliceWS, bobWS, eveWS := srv.MustDial(t, w.alice, "global"), srv.MustDial(t, w.bob, "global"), srv.MustDial(t, w.eve, "global")
				for _, c := range []*wsClient{aliceWS, bobWS, eveWS} {
					c.nextType("hello")
				}
				aliceWS.send(map[string]any{"type": "text", "chat_name": w.group, "text": "alice's", "client_id": "seed"})
				w.aliceMsg = num(aliceWS.nextType("ack"), "id")
				w.aliceFile = srv.upload(t, w.alice, w.group, "f.txt", "text/plain", strings.NewReader("file")).str("file_url")

				eveWS.send(row.frame(w))
				answer := eveWS.next(func(f map[string]any) bool { return f["type"] != "presence" && f["type"] != "online_users" })
				if row.noChat {
					if answer["type"] != row.memberGets {
						t.Errorf("%s by anyone: %v", typ, answer)
					}
				} else if answer["type"] != "error" || answer["code"] != "forbidden" {
					t.Errorf("%s by a non-member: %v, want forbidden", typ, answer)
				}

				aliceWS.send(row.frame(w))
				if typ == wire.TypeTyping {
					answer = bobWS.nextType("typing")
				} else {
					answer = aliceWS.next(func(f map[string]any) bool {
						return f["type"] == row.memberGets || f["type"] == "error"
					})
				}
				if answer["type"] != row.memberGets || answer["code"] != nil {
					t.Errorf("%s by a member: %v, want %s", typ, answer, row.memberGets)
				}
			}
		})
	}
}
