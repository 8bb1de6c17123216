package wire_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/wire"
)

// update rewrites the golden files: go test ./internal/wire -update. Review
// the diff: every change there is a change clients see.
var update = flag.Bool("update", false, "rewrite testdata/*.json from the shapes as they are")

var (
	t0 = time.Date(2026, 12, 4, 9, 30, 15, 123_000_000, time.UTC)
	t1 = t0.Add(90 * time.Second)
)

func TestDecodeInbound(t *testing.T) {
	raw := `{"type":"text","chat_name":"group:ab12","text":"hi","client_id":"c-1","reply_to":7,"after_id":3,"message_id":9,"typing":false,"unknown":1}`
	in, err := wire.DecodeInbound([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if in.Type != "text" || in.ChatName != "group:ab12" || in.Text != "hi" || in.ClientID != "c-1" || in.ReplyTo != 7 ||
		in.AfterID != 3 || in.MessageID != 9 || in.Typing == nil || *in.Typing {
		t.Fatalf("decoded %+v", in)
	}
	if !slices.Contains(wire.ClientTypes, in.Type) {
		t.Fatal("text is not among the client frame types")
	}
}

// TestGoldenShapes encodes every frame and REST answer and compares it with
// its file in testdata/: a shape a client relies on cannot change without a
// visible diff there.
func TestGoldenShapes(t *testing.T) {
	file := chat.File{
		ID: bytes.Repeat([]byte{0xab}, 16), ChatID: 5, UploaderID: 1, Name: "photo.jpg", MimeType: "image/jpeg", Size: 48213,
		ThumbName: "x-t", ThumbMimeType: "image/jpeg", Width: 1600, Height: 1200, CreatedAt: t0,
	}
	expired := file
	expired.ExpiredAt = t1
	text := chat.Message{
		ID: 42, ChatID: 5, ChatName: "group:ab12", UserID: 1, Username: "alice", Kind: chat.MessageText,
		Text: "Deploy at **ten**", ClientID: "c-42", CreatedAt: t0,
	}
	edited := text
	edited.EditedAt = t1
	deleted := text
	deleted.DeletedAt = t1
	reply := chat.Message{
		ID: 43, ChatID: 5, ChatName: "group:ab12", UserID: 2, Username: "bob", Kind: chat.MessageText,
		Text: "ok", ClientID: "c-43", CreatedAt: t1, ReplyTo: 42, Reply: &text,
	}
	fileMsg := chat.Message{
		ID: 44, ChatID: 5, ChatName: "group:ab12", UserID: 1, Username: "alice", Kind: chat.MessageFile,
		Text: "/file/abababababababababababababababab", ClientID: "c-44", CreatedAt: t1, File: &file,
	}
	expiredMsg := fileMsg
	expiredMsg.File = &expired
	system := chat.SystemEvent{Event: chat.EventAdded, Actor: "alice", Users: []string{"carol", "dave"}}
	systemMsg := chat.Message{
		ID: 45, ChatID: 5, ChatName: "group:ab12", UserID: 1, Username: "alice", Kind: chat.MessageSystem,
		Text: system.Text(), ClientID: "srv-x", CreatedAt: t1, System: &system,
	}
	editEvent := chat.Message{
		ID: 46, ChatID: 5, ChatName: "group:ab12", UserID: 1, Username: "alice", Kind: chat.MessageEdit,
		ClientID: "e-1", CreatedAt: t1, TargetID: 42, Target: &edited,
	}
	deleteEvent := editEvent
	deleteEvent.ID, deleteEvent.Kind, deleteEvent.ClientID, deleteEvent.Target = 47, chat.MessageDelete, "d-1", &deleted
	summary := chat.ChatSummary{
		Chat: chat.Chat{ID: 5, Name: "group:ab12", Kind: chat.KindGroup, Title: "Ops", CreatedBy: 1, CreatedAt: t0},
		Members: []chat.Member{
			{UserID: 1, Username: "alice", Role: chat.MemberOwner, JoinedAt: t0},
			{UserID: 2, Username: "bob", Role: chat.MemberMember, JoinedAt: t0},
		},
		Role: chat.MemberOwner, LastReadID: 40, Unread: 2, LastMessageID: 45, LastMessageAt: t1,
	}
	global := chat.ChatSummary{
		Chat:    chat.Chat{ID: 1, Name: chat.GlobalChatName, Kind: chat.KindGlobal, Title: "Global", CreatedAt: t0},
		Members: []chat.Member{{UserID: 1, Username: "alice", Role: chat.MemberMember}},
		Role:    chat.MemberMember,
	}
	online := func(id int64) bool { return id == 2 }
	added := wire.ChatFrame{Type: wire.TypeChatAdded, Chat: wire.SharedChat(summary)}
	from := int64(44)
	added.Chat.LastMessageID = &from
	limits := chat.Limits{MaxMessageBytes: 8192, MessageRate: 10, MessageBurst: 20, FrameRate: 40, FrameBurst: 80, UploadMaxBytes: 100 << 20}

	keys := chat.Keys{
		Username: "bob", Identity: chat.PublicKey{Alg: "ed25519", Pub: bytes.Repeat([]byte{1}, 32)},
		Devices: []chat.Device{{
			ID: "AAAAAAAAAAAAAAAAAAAAAA", Name: "Chromium on Linux", DH: chat.PublicKey{Alg: "x25519", Pub: bytes.Repeat([]byte{2}, 32)},
			Sig: chat.PublicKey{Alg: "ed25519", Pub: bytes.Repeat([]byte{3}, 32)}, Cert: bytes.Repeat([]byte{4}, 64), CreatedAt: t0,
		}},
	}
	e2eeChat := wire.FromChat(summary, online)
	e2eeChat.E2EE, e2eeChat.Epoch = true, &wire.Epoch{Current: 3, Min: 2}
	shapes := []struct {
		name string
		v    any
	}{
		// Server → client frames.
		{"frame-text", wire.FromMessage(text)},
		{"frame-text-edited", wire.FromMessage(edited)},
		{"frame-text-deleted", wire.FromMessage(deleted)},
		{"frame-reply", wire.FromMessage(reply)},
		{"frame-file", wire.FromMessage(fileMsg)},
		{"frame-file-expired", wire.FromMessage(expiredMsg)},
		{"frame-system", wire.FromMessage(systemMsg)},
		{"frame-edit", wire.FromMessage(editEvent)},
		{"frame-delete", wire.FromMessage(deleteEvent)},
		{"frame-ack", wire.Ack{Type: wire.TypeAck, ClientID: "c-42", ID: 42, ChatName: "group:ab12"}},
		{"frame-ack-duplicate", wire.Ack{Type: wire.TypeAck, ClientID: "c-42", ID: 42, ChatName: "group:ab12", Duplicate: true}},
		{"frame-error", wire.Error{Type: wire.TypeError, Code: chat.ETooMany, Detail: "You are sending too fast; wait a moment.", ClientID: "c-9", RetryAfter: 0.1}},
		{"frame-hello", wire.Hello{Type: wire.TypeHello, Username: "alice", ChatName: "global", MaxMessageBytes: 8192, Resume: true, Limits: wire.FromLimits(limits)}},
		{"frame-online-users", wire.OnlineUsers{Type: wire.TypeOnlineUsers, Users: []string{"alice", "bob"}}},
		{"frame-presence", wire.Presence{Type: wire.TypePresence, Username: "bob", Online: false}},
		{"frame-typing", wire.Typing{Type: wire.TypeTyping, ChatID: 5, ChatName: "group:ab12", Username: "bob", Typing: true, ExpiresIn: 5}},
		{"frame-typing-stop", wire.Typing{Type: wire.TypeTyping, ChatID: 5, ChatName: "group:ab12", Username: "bob"}},
		{"frame-read", wire.Read{Type: wire.TypeRead, ChatID: 5, ChatName: "group:ab12", LastReadID: 45}},
		{"frame-synced", wire.Synced{Type: wire.TypeSynced, ChatName: "group:ab12", LastID: 47}},
		{"frame-joined", wire.ChatEvent{Type: wire.TypeJoined, ChatName: "group:ab12"}},
		{"frame-pong", wire.ChatEvent{Type: wire.TypePong}},
		{"frame-chat-added", added},
		{"frame-chat-updated", wire.ChatFrame{Type: wire.TypeChatUpdated, Chat: wire.SharedChat(summary)}},
		{"frame-chat-removed", wire.ChatRemoved{Type: wire.TypeChatRemoved, ChatID: 5, ChatName: "group:ab12"}},
		// REST answers.
		{"rest-error", wire.ErrorBody{Detail: "No such chat, or you are not a member of it.", Code: chat.EForbidden}},
		{"rest-detail", wire.Detail{Detail: "Logged out."}},
		{"rest-status", wire.Status{Status: "unavailable", Detail: "The database does not answer."}},
		{"rest-registered", wire.Registered{ID: 3, Username: "carol", Email: "carol@example.org"}},
		{"rest-token", wire.Token{AccessToken: "eyJ.x.y", TokenType: "bearer", ExpiresIn: 86400, Username: "alice"}},
		{"rest-ticket", wire.Ticket{Ticket: "t-123", ExpiresIn: 30}},
		{"rest-history", wire.History{Messages: []wire.Message{wire.FromMessage(text), wire.FromMessage(reply)}, HasMore: true}},
		{"rest-chat", wire.FromChat(summary, online)},
		{"rest-chat-global", wire.FromChat(global, online)},
		{"rest-chat-list", wire.ChatList{Chats: []wire.Chat{wire.FromChat(summary, online)}}},
		{"rest-online", wire.OnlineList{Users: []string{"alice", "bob"}}},
		{"rest-user-search", wire.UserList{Users: []wire.FoundUser{{Profile: wire.Profile{Username: "alice", DisplayName: "Alice L.", Avatar: "/users/alice/avatar?v=1740830400123"}, Online: true}, {Profile: wire.Profile{Username: "alfred"}}}}},
		{"rest-profiles", wire.ProfileList{Users: []wire.Profile{{Username: "علی", DisplayName: "علی رضایی"}}}},
		{"frame-user", wire.UserUpdate{Type: wire.TypeUser, User: wire.Profile{Username: "alice", DisplayName: "Alice L.", Avatar: "/users/alice/avatar?v=1740830400123"}}},
		{"rest-read-marker", wire.ReadMarker{LastReadID: 45}},
		{"rest-sessions", wire.SessionList{Sessions: []wire.Session{
			{ID: 7, Browser: "Firefox", OS: "Linux", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", IP: "192.0.2.1", CreatedAt: t0, LastUsedAt: t1, Current: true},
			{ID: 4, UserAgent: "Go-http-client/1.1", IP: "192.0.2.9", CreatedAt: t0, LastUsedAt: t0},
		}}},
		{"rest-ended", wire.Ended{Detail: "Ended 2 other sessions.", Ended: 2}},
		{"frame-epoch", wire.EpochFrame{Type: wire.TypeEpoch, ChatName: "group:ab12", Epoch: 3}},
		{"frame-keys", wire.KeysFrame{Type: wire.TypeKeys, Username: "bob"}},
		{"rest-chat-e2ee", e2eeChat},
		{"rest-user-keys", wire.FromKeys(keys)},
		{"rest-chat-devices", wire.ChatDevices{Chat: "group:ab12", Members: []wire.UserKeys{wire.FromKeys(keys), wire.FromKeys(chat.Keys{Username: "carol"})}}},
		{"rest-epoch", wire.Epoch{Current: 3, Min: 2, Stale: true}},
		{"rest-epoch-started", wire.EpochStarted{Epoch: 4}},
		{"rest-epoch-conflict", wire.EpochConflict{Detail: "Epoch 4 was already started by another member; fetch it.", Code: chat.EEpochConflict, Current: 4}},
		{"rest-backup-items", wire.BackupItems{Items: []wire.BackupItem{{ID: 7, Chat: "group:ab12", Epoch: 3, IV: "AAECAwQFBgcICQoL", CT: "q83v"}}, HasMore: true}},
		{"rest-stored", wire.Stored{Stored: 2}},
		{"rest-uploaded", wire.Uploaded{
			FileID: "abababababababababababababababab", FileURL: "/file/abababababababababababababababab",
			ThumbnailURL: "/file/abababababababababababababababab/thumbnail", Name: "photo.jpg", Size: 48213,
			MimeType: "image/jpeg", ChatID: 5, ChatName: "group:ab12", Width: 1600, Height: 1200,
		}},
		{"rest-media-url", wire.MediaURL{URL: "/file/abababababababababababababababab/media?sig=AQ", ExpiresIn: 300}},
	}
	seen := map[string]bool{}
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			got, err := json.MarshalIndent(s.v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", s.name+".json")
			seen[filepath.Base(path)] = true
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/wire -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the shape of %s changed; if that is meant, rerun with -update and review the diff.\ngot:\n%s\nwant:\n%s", s.name, got, want)
			}
		})
	}
	// A golden file without a shape is a shape that went missing.
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no shape in this test any more", f)
		}
	}
}
