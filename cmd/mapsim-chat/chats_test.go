package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chatBy finds a chat in a GET /chats/ answer by name.
func chatBy(t testing.TB, r apiResponse, name string) map[string]any {
	t.Helper()
	list, _ := r.Body["chats"].([]any)
	for _, c := range list {
		if m, _ := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("chat %s not in %s", name, r.Raw)
	return nil
}

func memberNames(c map[string]any) string {
	var out []string
	list, _ := c["members"].([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		out = append(out, fmt.Sprint(mm["username"], ":", mm["role"]))
	}
	return strings.Join(out, " ")
}

// TestDirectAndGroupChats walks a small team through direct chats and a
// group's life: creation, live messages, unread counts, renames, members
// added and removed, and the owner leaving.
func TestDirectAndGroupChats(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			alice, bob, carol, dave := srv.MustUser(t, "alice"), srv.MustUser(t, "bob"), srv.MustUser(t, "carol"), srv.MustUser(t, "dave")
			bobWS := srv.MustDial(t, bob, "global")
			carolWS := srv.MustDial(t, carol, "global")
			daveWS := srv.MustDial(t, dave, "global")
			for _, c := range []*wsClient{bobWS, carolWS, daveWS} {
				c.nextType("hello")
			}

			// A direct chat: one per pair, whoever starts it.
			r := srv.call(t, "POST", "/chats/", alice, map[string]any{"e2ee": false, "kind": "direct", "members": []string{"bob"}})
			if r.Status != http.StatusCreated || r.str("kind") != "direct" {
				t.Fatalf("create direct: %d %s", r.Status, r.Raw)
			}
			direct := r.str("name")
			if r2 := srv.call(t, "POST", "/chats/", alice, url.Values{"kind": {"direct"}, "members": {"BOB"}, "e2ee": {"false"}}); r2.Status != http.StatusOK || r2.str("name") != direct {
				t.Fatalf("second direct chat with bob: %d %s", r2.Status, r2.Raw)
			}
			if r2 := srv.call(t, "POST", "/chats/", bob, map[string]any{"e2ee": false, "kind": "direct", "members": []string{"alice"}}); r2.Status != http.StatusOK || r2.str("name") != direct {
				t.Fatalf("bob's direct chat with alice: %d %s", r2.Status, r2.Raw)
			}
			if f := bobWS.nextType("chat_added"); f["chat"].(map[string]any)["name"] != direct {
				t.Fatalf("bob was told of %v", f)
			}
			for _, bad := range []map[string]any{
				{"kind": "direct", "members": []string{"alice"}},
				{"kind": "direct", "members": []string{"bob", "carol"}},
				{"kind": "direct", "members": []string{"nobody"}},
				{"kind": "group", "members": []string{"bob"}},
				{"kind": "group", "title": "x\u0000y"},
				{"kind": "group", "title": strings.Repeat("t", 101)},
				{"kind": "global"},
				{"kind": "group", "title": "Secret", "e2ee": "maybe"},
			} {
				if r := srv.call(t, "POST", "/chats/", alice, bad); r.Status/100 != 4 || r.str("detail") == "" {
					t.Errorf("create %v: %d %s, want a clear 4xx", bad, r.Status, r.Raw)
				}
			}

			// A group: the creator owns it; members are told and subscribed.
			r = srv.call(t, "POST", "/chats/", alice, map[string]any{"e2ee": false, "kind": "group", "title": "Ops", "members": []string{"bob", "carol"}})
			if r.Status != http.StatusCreated || r.str("title") != "Ops" || r.str("role") != "owner" {
				t.Fatalf("create group: %d %s", r.Status, r.Raw)
			}
			group := r.str("name")
			if got := memberNames(r.Body); got != "alice:owner bob:member carol:member" {
				t.Fatalf("members %q", got)
			}
			for _, c := range []*wsClient{bobWS, carolWS} {
				if f := c.nextType("chat_added"); f["chat"].(map[string]any)["name"] != group {
					t.Fatalf("chat_added %v", f)
				}
				if f := c.nextType("system"); !strings.Contains(f["text"].(string), "alice created the group “Ops” with bob and carol") {
					t.Fatalf("system message %v", f)
				}
			}
			bobWS.send(map[string]any{"type": "text", "chat_name": group, "text": "hello ops", "client_id": "b1"})
			ack := bobWS.nextType("ack")
			if f := carolWS.nextType("text"); f["chat_name"] != group || f["text"] != "hello ops" {
				t.Fatalf("carol got %v", f)
			}
			// dave is not in it and sees nothing of it.
			daveWS.send(map[string]any{"type": "ping"})
			if f := daveWS.next(func(f map[string]any) bool { return f["chat_name"] == group || f["type"] == "pong" }); f["type"] != "pong" {
				t.Fatalf("dave saw %v", f)
			}

			// Unread counts: bob's message is unread for alice and carol, not
			// for bob; system messages do not count.
			unread := func(tok, name string) int64 {
				t.Helper()
				return num(chatBy(t, srv.call(t, "GET", "/chats/", tok, nil), name), "unread")
			}
			if a, b, c := unread(alice, group), unread(bob, group), unread(carol, group); a != 1 || b != 0 || c != 1 {
				t.Fatalf("unread alice %d bob %d carol %d, want 1 0 1", a, b, c)
			}
			list := srv.call(t, "GET", "/chats/", carol, nil)
			if first := list.Body["chats"].([]any)[0].(map[string]any); first["name"] != group || first["last_message_at"] == nil {
				t.Fatalf("carol's most recent chat is %v", first)
			}
			// Reading in one tab clears the count in the others.
			carolTab2 := srv.MustDial(t, carol, "global")
			carolTab2.nextType("hello")
			carolWS.send(map[string]any{"type": "read", "chat_name": group, "message_id": num(ack, "id")})
			if f := carolTab2.nextType("read"); num(f, "last_read_id") != num(ack, "id") {
				t.Fatalf("read frame %v", f)
			}
			if n := unread(carol, group); n != 0 {
				t.Fatalf("carol's unread after reading: %d", n)
			}
			if r := srv.call(t, "POST", "/chats/"+group+"/read", alice, map[string]any{"message_id": num(ack, "id")}); r.Status != http.StatusOK || num(r.Body, "last_read_id") != num(ack, "id") {
				t.Fatalf("mark read: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/chats/"+group+"/read", alice, map[string]any{"message_id": 1}); num(r.Body, "last_read_id") != num(ack, "id") {
				t.Fatalf("the read marker moved back: %s", r.Raw)
			}

			// Only the owner renames, adds and removes.
			if r := srv.call(t, "PATCH", "/chats/"+group, bob, map[string]any{"title": "Bob's"}); r.Status != http.StatusForbidden {
				t.Fatalf("member renamed: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/chats/"+group+"/members", bob, map[string]any{"members": []string{"dave"}}); r.Status != http.StatusForbidden {
				t.Fatalf("member added: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "DELETE", "/chats/"+group+"/members/carol", bob, nil); r.Status != http.StatusForbidden {
				t.Fatalf("member removed another: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "PATCH", "/chats/"+group, alice, map[string]any{"title": "Ops 2"}); r.Status != http.StatusOK || r.str("title") != "Ops 2" {
				t.Fatalf("rename: %d %s", r.Status, r.Raw)
			}
			if f := carolWS.nextType("chat_updated"); f["chat"].(map[string]any)["title"] != "Ops 2" {
				t.Fatalf("chat_updated %v", f)
			}
			if r := srv.call(t, "POST", "/chats/"+group+"/members", alice, url.Values{"members": {"dave,bob"}}); r.Status != http.StatusOK {
				t.Fatalf("add dave: %d %s", r.Status, r.Raw)
			}
			if f := daveWS.nextType("chat_added"); num(f["chat"].(map[string]any), "last_message_id") == 0 {
				t.Fatalf("chat_added without a sync cursor: %v", f)
			}
			if f := daveWS.nextType("system"); f["text"] != "alice added dave." {
				t.Fatalf("dave's first message %v", f)
			}

			// Removing carol: she sees why, then loses the chat everywhere.
			if r := srv.call(t, "DELETE", "/chats/"+group+"/members/carol", alice, nil); r.Status != http.StatusOK {
				t.Fatalf("remove carol: %d %s", r.Status, r.Raw)
			}
			carolWS.next(func(f map[string]any) bool { return f["type"] == "system" && f["text"] == "alice added dave." })
			if f := carolWS.nextType("system"); f["text"] != "alice removed carol." {
				t.Fatalf("carol saw %v", f)
			}
			carolWS.nextType("chat_removed")
			carolWS.send(map[string]any{"type": "text", "chat_name": group, "text": "still here?", "client_id": "c1"})
			if f := carolWS.nextType("error"); f["code"] != "forbidden" {
				t.Fatalf("removed member sent: %v", f)
			}
			if r := srv.call(t, "GET", "/messages/?chat_id="+group, carol, nil); r.Status != http.StatusForbidden {
				t.Fatalf("removed member read history: %d", r.Status)
			}
			bobWS.send(map[string]any{"type": "text", "chat_name": group, "text": "after carol", "client_id": "b2"})
			bobWS.nextType("ack")
			carolTab2.send(map[string]any{"type": "ping"})
			if f := carolTab2.next(func(f map[string]any) bool { return f["text"] == "after carol" || f["type"] == "pong" }); f["type"] != "pong" {
				t.Fatalf("removed member still receives: %v", f)
			}

			// The owner leaves: the longest-standing member (bob, who joined
			// at creation; dave came later) becomes owner.
			if r := srv.call(t, "POST", "/chats/"+group+"/leave", alice, nil); r.Status != http.StatusOK {
				t.Fatalf("leave: %d %s", r.Status, r.Raw)
			}
			bobWS.next(func(f map[string]any) bool { return f["type"] == "system" && f["text"] == "alice left." })
			if f := bobWS.nextType("system"); f["text"] != "bob is now the owner." {
				t.Fatalf("hand-over message %v", f)
			}
			r = srv.call(t, "GET", "/chats/"+strings.ReplaceAll(group, ":", "%3A"), bob, nil)
			if got := memberNames(r.Body); got != "bob:owner dave:member" || r.str("role") != "owner" {
				t.Fatalf("after the owner left: %q %s", got, r.Raw)
			}
			if r := srv.call(t, "PATCH", "/chats/"+group, bob, map[string]any{"title": "Bob's"}); r.Status != http.StatusOK {
				t.Fatalf("new owner rename: %d %s", r.Status, r.Raw)
			}
			if r := srv.call(t, "POST", "/chats/global/leave", bob, nil); r.Status/100 != 4 {
				t.Fatalf("left global: %d", r.Status)
			}
			if r := srv.call(t, "POST", "/chats/"+direct+"/leave", bob, nil); r.Status/100 != 4 {
				t.Fatalf("left a direct chat: %d", r.Status)
			}

			// Search finds users by prefix, for the new-chat dialog.
			if r := srv.call(t, "GET", "/users/search?q=ca", alice, nil); !strings.Contains(string(r.Raw), `"carol"`) || strings.Contains(string(r.Raw), `"alice"`) {
				t.Fatalf("search: %s", r.Raw)
			}
			if r := srv.call(t, "GET", "/users/search?q=%25", alice, nil); strings.Contains(string(r.Raw), "username") {
				t.Fatalf("%% matched everyone: %s", r.Raw)
			}
		})
	}
}

// TestEditDeleteReply: authors edit and delete their own messages; replies
// carry a preview; history shows the current state; sync replays changes.
func TestEditDeleteReply(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, baseEnv(t, b.env(t)))
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
			aWS, bWS := srv.MustDial(t, alice, "global"), srv.MustDial(t, bob, "global")
			aWS.nextType("hello")
			bWS.nextType("hello")

			aWS.send(map[string]any{"type": "text", "text": "first draft", "client_id": "a1"})
			m1 := num(aWS.nextType("ack"), "id")
			bWS.send(map[string]any{"type": "text", "text": "a reply", "client_id": "b1", "reply_to": m1})
			reply := bWS.nextType("ack")
			f := aWS.next(func(f map[string]any) bool { return f["type"] == "text" && f["client_id"] == "b1" })
			if num(f, "reply_to") != m1 || f["reply"].(map[string]any)["text"] != "first draft" || f["reply"].(map[string]any)["username"] != "alice" {
				t.Fatalf("reply frame %v", f)
			}

			aWS.send(map[string]any{"type": "edit", "message_id": m1, "text": "final text", "client_id": "a1-e1"})
			editAck := aWS.nextType("ack")
			f = bWS.nextType("edit")
			if num(f, "message_id") != m1 || f["text"] != "final text" || f["edited_at"] == nil || num(f, "id") != num(editAck, "id") {
				t.Fatalf("edit frame %v", f)
			}
			// A retried edit is recognised and not broadcast again.
			aWS.send(map[string]any{"type": "edit", "message_id": m1, "text": "final text", "client_id": "a1-e1"})
			if again := aWS.nextType("ack"); again["duplicate"] != true || num(again, "id") != num(editAck, "id") {
				t.Fatalf("retried edit %v", again)
			}
			// Nobody edits or deletes another's message.
			for _, typ := range []string{"edit", "delete"} {
				bWS.send(map[string]any{"type": typ, "message_id": m1, "text": "hijacked", "client_id": "b-" + typ})
				if e := bWS.nextType("error"); e["code"] != "forbidden" || e["client_id"] != "b-"+typ {
					t.Fatalf("bob's %s of alice's message: %v", typ, e)
				}
			}
			for _, bad := range []map[string]any{
				{"type": "edit", "message_id": m1, "text": "   "},
				{"type": "edit", "message_id": 999999, "text": "x"},
				{"type": "edit", "text": "x"},
				{"type": "text", "text": "x", "reply_to": 999999},
			} {
				aWS.send(bad)
				if e := aWS.nextType("error"); e["detail"] == "" {
					t.Fatalf("%v: %v", bad, e)
				}
			}

			h := srv.call(t, "GET", "/messages/?chat_id=global", bob, nil)
			msgs := h.Body["messages"].([]any)
			if len(msgs) != 2 {
				t.Fatalf("history holds %d entries (events must not show): %s", len(msgs), h.Raw)
			}
			if first := msgs[0].(map[string]any); first["text"] != "final text" || first["edited_at"] == nil {
				t.Fatalf("history shows %v", first)
			}

			aWS.send(map[string]any{"type": "delete", "message_id": m1, "client_id": "a1-d"})
			delAck := aWS.nextType("ack")
			if f := bWS.nextType("delete"); num(f, "message_id") != m1 || f["deleted"] != true || f["text"] != "" {
				t.Fatalf("delete frame %v", f)
			}
			aWS.send(map[string]any{"type": "edit", "message_id": m1, "text": "back from the dead", "client_id": "a1-e2"})
			if e := aWS.nextType("error"); e["code"] != "conflict" {
				t.Fatalf("edit of a deleted message: %v", e)
			}
			h = srv.call(t, "GET", "/messages/?chat_id=global", bob, nil)
			msgs = h.Body["messages"].([]any)
			if first := msgs[0].(map[string]any); first["deleted"] != true || first["text"] != "" {
				t.Fatalf("history after delete %v", first)
			}
			if second := msgs[1].(map[string]any); second["reply"].(map[string]any)["deleted"] != true {
				t.Fatalf("reply preview of a deleted message %v", second)
			}

			// A client that saw nothing since before m1 gets, in order, the
			// message (as it is now), the reply, the edit and the delete.
			late := srv.MustDial(t, bob, "global")
			late.nextType("hello")
			late.send(map[string]any{"type": "sync", "after_id": m1 - 1})
			var got []string
			for {
				f := late.next(func(f map[string]any) bool {
					return f["type"] == "text" || f["type"] == "edit" || f["type"] == "delete" || f["type"] == "synced"
				})
				if f["type"] == "synced" {
					if num(f, "last_id") != num(delAck, "id") {
						t.Fatalf("synced %v", f)
					}
					break
				}
				got = append(got, fmt.Sprint(f["type"], num(f, "id")))
			}
			want := fmt.Sprint([]string{fmt.Sprint("text", m1), fmt.Sprint("text", num(reply, "id")), fmt.Sprint("edit", num(editAck, "id")), fmt.Sprint("delete", num(delAck, "id"))})
			if fmt.Sprint(got) != want {
				t.Fatalf("sync replayed %v, want %v", got, want)
			}
		})
	}
}

// TestTypingExpiresAndStops: a typing start reaches the others and ends by
// itself after 5 s without a refresh; sending a message or closing the
// connection ends it at once.
func TestTypingExpiresAndStops(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, nil))
	alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
	aWS, bWS := srv.MustDial(t, alice, "global"), srv.MustDial(t, bob, "global")
	aWS.nextType("hello")
	bWS.nextType("hello")
	typing := func(on bool) func(map[string]any) bool {
		return func(f map[string]any) bool {
			return f["type"] == "typing" && f["username"] == "alice" && f["typing"] == on
		}
	}

	aWS.send(map[string]any{"type": "typing"})
	start := bWS.next(typing(true))
	began := time.Now()
	if start["expires_in"] != 5.0 {
		t.Fatalf("typing start %v", start)
	}
	bWS.next(typing(false))
	if waited := time.Since(began); waited < 4*time.Second {
		t.Fatalf("typing expired after %v, before its 5 s", waited)
	}

	aWS.send(map[string]any{"type": "typing"})
	bWS.next(typing(true))
	aWS.send(map[string]any{"type": "text", "text": "sent", "client_id": "t1"})
	bWS.next(func(f map[string]any) bool { return f["type"] == "text" })
	if f := bWS.next(func(f map[string]any) bool { return f["type"] == "typing" }); f["typing"] != false {
		t.Fatalf("after sending: %v", f)
	}

	aWS.send(map[string]any{"type": "typing", "typing": true})
	bWS.next(typing(true))
	aWS.conn.Close(websocket.StatusNormalClosure, "")
	bWS.next(typing(false))
}

// TestRateLimits: over the message rate a sender gets error frames with
// retry_after and stays connected; a connection over the frame rate gets
// error frames; an address over its connection cap is refused.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	srv := MustStart(t, baseEnv(t, map[string]string{
		"RATE_LIMIT_MESSAGES_PER_SECOND": "2", "RATE_LIMIT_MESSAGES_BURST": "3",
		"RATE_LIMIT_FRAMES_PER_SECOND": "5", "RATE_LIMIT_FRAMES_BURST": "10",
		"MAX_CONNECTIONS_PER_IP": "3",
	}))
	tok := srv.MustUser(t, "hasty")
	ws := srv.MustDial(t, tok, "global")
	ws.nextType("hello")
	for i := range 5 {
		ws.send(map[string]any{"type": "text", "text": "quick", "client_id": fmt.Sprint("q", i)})
	}
	acks, limited := 0, 0
	var retry float64
	for acks+limited < 5 {
		f := ws.next(func(f map[string]any) bool { return f["type"] == "ack" || f["type"] == "error" })
		if f["type"] == "ack" {
			acks++
			continue
		}
		if f["code"] != "too_many" || f["client_id"] == "" {
			t.Fatalf("error frame %v", f)
		}
		retry, _ = f["retry_after"].(float64)
		limited++
	}
	if acks != 3 || limited != 2 || retry <= 0 || retry > 1 {
		t.Fatalf("%d acks, %d limited, retry_after %v; want 3, 2 and (0, 0.5]", acks, limited, retry)
	}
	// The connection stays open: after waiting, a message goes through.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ws.send(map[string]any{"type": "text", "text": "patient", "client_id": "p"})
		f := ws.next(func(f map[string]any) bool { return f["type"] == "ack" || f["type"] == "error" })
		if f["type"] == "ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still limited after 10 s: %v", f)
		}
		wait, _ := f["retry_after"].(float64)
		<-time.After(time.Duration(wait * float64(time.Second)))
	}

	// Frames of any kind are limited per connection.
	other := srv.MustDial(t, srv.MustUser(t, "chatty"), "global")
	other.nextType("hello")
	for range 20 {
		other.send(map[string]any{"type": "ping"})
	}
	pongs, errs := 0, 0
	for pongs+errs < 20 {
		f := other.next(func(f map[string]any) bool { return f["type"] == "pong" || f["type"] == "error" })
		if f["type"] == "pong" {
			pongs++
		} else if f["code"] == "too_many" {
			errs++
		}
	}
	if pongs < 10 || pongs > 12 || errs == 0 {
		t.Fatalf("%d pongs and %d limited of 20 pings with a burst of 10", pongs, errs)
	}

	// Three connections from one address; the fourth is refused until one
	// closes. (ws and other are two; open one more.)
	third := srv.MustDial(t, tok, "global")
	ticket := srv.call(t, "POST", "/ws-ticket/", tok, nil).str("ticket")
	if _, err := srv.dial(t, "ticket="+url.QueryEscape(ticket), nil); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("fourth connection: %v, want 429", err)
	}
	third.conn.Close(websocket.StatusNormalClosure, "")
	third.closeStatus()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ticket := srv.call(t, "POST", "/ws-ticket/", tok, nil).str("ticket")
		if _, err := srv.dial(t, "ticket="+url.QueryEscape(ticket), nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("a freed slot stayed taken: %v", err)
		}
	}
}

// TestFiftyInAGroup: fifty users in one group each send a message; every
// one of them receives all fifty, in the same order, sees the others online,
// and counts the others' messages as unread until reading them.
func TestFiftyInAGroup(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const n = 50
			srv := MustStart(t, baseEnv(t, b.env(t)))
			toks := make([]string, n)
			names := make([]string, n)
			for i := range n {
				names[i] = fmt.Sprintf("member%02d", i)
				toks[i] = srv.MustUser(t, names[i])
			}
			r := srv.call(t, "POST", "/chats/", toks[0], map[string]any{"e2ee": false, "kind": "group", "title": "Fifty", "members": names[1:]})
			if r.Status != http.StatusCreated || len(r.Body["members"].([]any)) != n {
				t.Fatalf("create: %d %s", r.Status, r.Raw)
			}
			group := r.str("name")
			clients := make([]*wsClient, n)
			for i := range n {
				clients[i] = srv.MustDial(t, toks[i], group)
				clients[i].nextType("hello")
			}
			// Everyone is online for the last to connect.
			if f := clients[n-1].nextType("online_users"); len(f["users"].([]any)) != n {
				t.Fatalf("online_users %v", f)
			}
			for i, c := range clients {
				c.send(map[string]any{"type": "text", "text": fmt.Sprintf("hi from %d", i), "client_id": fmt.Sprint("h", i)})
			}
			var order string
			for i, c := range clients {
				var ids []string
				for range n {
					ids = append(ids, fmt.Sprint(num(c.nextType("text"), "id")))
				}
				got := strings.Join(ids, ",")
				if i == 0 {
					order = got
				} else if got != order {
					t.Fatalf("member %d saw %s, member 0 saw %s", i, got, order)
				}
			}
			for i := range n {
				sum := srv.call(t, "GET", "/chats/"+group, toks[i], nil)
				if num(sum.Body, "unread") != n-1 {
					t.Fatalf("member %d has %d unread, want %d", i, num(sum.Body, "unread"), n-1)
				}
				srv.call(t, "POST", "/chats/"+group+"/read", toks[i], map[string]any{"message_id": num(sum.Body, "last_message_id")})
				if sum := srv.call(t, "GET", "/chats/"+group, toks[i], nil); num(sum.Body, "unread") != 0 {
					t.Fatalf("member %d has %d unread after reading", i, num(sum.Body, "unread"))
				}
			}
		})
	}
}

// TestLiveOrderAcrossGroupsAndEdits: messages commit in groups and edits
// run alone, and the publisher that hands both to the hub keeps commit
// order: a watcher sees every frame in id order, each edit after the
// message it changes, while the sender pipelines edits and new messages.
func TestLiveOrderAcrossGroupsAndEdits(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := MustStart(t, withoutRateLimits(baseEnv(t, b.env(t))))
			alice, bob := srv.MustUser(t, "alice"), srv.MustUser(t, "bob")
			aWS, bWS := srv.MustDial(t, alice, "global"), srv.MustDial(t, bob, "global")
			aWS.nextType("hello")
			bWS.nextType("hello")

			const rounds = 60
			aWS.send(map[string]any{"type": "text", "text": "m0", "client_id": "t0"})
			prev := num(aWS.nextType("ack"), "id")
			for i := 1; i < rounds; i++ {
				// An edit of the last message and the next message, sent
				// back to back: both wait in the committer's queue together.
				aWS.send(map[string]any{"type": "edit", "message_id": prev, "text": fmt.Sprintf("m%d edited", i-1), "client_id": fmt.Sprintf("e%d", i-1)})
				aWS.send(map[string]any{"type": "text", "text": fmt.Sprintf("m%d", i), "client_id": fmt.Sprintf("t%d", i)})
				for range 2 {
					f := aWS.next(func(f map[string]any) bool { return f["type"] == "ack" || f["type"] == "error" })
					if f["type"] == "error" {
						t.Fatalf("round %d: %v", i, f)
					}
					if f["client_id"] == fmt.Sprintf("t%d", i) {
						prev = num(f, "id")
					}
				}
			}
			seen := map[int64]bool{}
			last := int64(0)
			for texts, edits := 0, 0; texts < rounds || edits < rounds-1; {
				f := bWS.next(func(f map[string]any) bool { return f["type"] == "text" || f["type"] == "edit" })
				id := num(f, "id")
				if id <= last {
					t.Fatalf("frame %v arrived after id %d", f, last)
				}
				last = id
				switch f["type"] {
				case "text":
					texts++
					seen[id] = true
				case "edit":
					edits++
					if !seen[num(f, "message_id")] {
						t.Fatalf("edit %v arrived before the message it changes", f)
					}
				}
			}
		})
	}
}
