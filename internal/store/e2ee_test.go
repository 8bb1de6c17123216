package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// e2eeDevice is a device of a user with made-up keys: the store checks no
// certificate (the keys service does).
func e2eeDevice(userID int64, id string) chat.Device {
	pub := func(tag string) []byte { return fmt.Appendf(nil, "%-32s", tag+id)[:32] }
	return chat.Device{
		UserID: userID, ID: id, Name: "Chromium on Linux",
		DH: chat.PublicKey{Alg: "x25519", Pub: pub("dh")}, Sig: chat.PublicKey{Alg: "ed25519", Pub: pub("sig")},
		Cert: make([]byte, 64), CreatedAt: base,
	}
}

func MustIdentity(tb testing.TB, db *store.DB, userID int64) {
	tb.Helper()
	if _, err := db.PutIdentity(context.Background(), userID, chat.PublicKey{Alg: "ed25519", Pub: make([]byte, 32)}, false, base); err != nil {
		tb.Fatalf("put identity: %v", err)
	}
}

func MustDevice(tb testing.TB, db *store.DB, userID int64, id string) chat.Device {
	tb.Helper()
	d := e2eeDevice(userID, id)
	if created, err := db.AddDevice(context.Background(), d); err != nil || !created {
		tb.Fatalf("add device %s = %v, %v", id, created, err)
	}
	return d
}

func MustEpochState(tb testing.TB, db *store.DB, chatID int64) chat.EpochState {
	tb.Helper()
	st, err := db.EpochState(context.Background(), chatID)
	if err != nil {
		tb.Fatalf("epoch state: %v", err)
	}
	return st
}

// MustEncryptedGroup creates an encrypted group.
func MustEncryptedGroup(tb testing.TB, db *store.DB, kv int64, members ...int64) chat.Chat {
	tb.Helper()
	c := chat.Chat{Kind: chat.KindGroup, Title: "Secret", CreatedAt: base, E2EE: true}
	if created, _, err := db.CreateChat(context.Background(), &c, members, testSealer(kv), fmt.Sprintf("create-e2ee-%d", members[0])); err != nil || !created {
		tb.Fatalf("create encrypted group = %v, %v", created, err)
	}
	return c
}

func envelopesFor(kv int64, devices ...chat.Device) []chat.SealedEnvelope {
	out := make([]chat.SealedEnvelope, len(devices))
	for i, d := range devices {
		out[i] = chat.SealedEnvelope{RecipientID: d.UserID, RecipientDevice: d.ID, KeyVersion: kv, Body: []byte("sealed envelope for " + d.ID)}
	}
	return out
}

func TestE2EEKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		group := MustEncryptedGroup(t, db, kv, alice.ID, bob.ID)
		plain := MustCreateGroup(t, db, kv, "Plain", base, alice.ID, bob.ID)

		if _, err := db.AddDevice(ctx, e2eeDevice(alice.ID, "AAAAAAAAAAAAAAAAAAAAAA")); chat.ErrorCode(err) != chat.EInvalid {
			t.Fatalf("a device before the identity key: %v", err)
		}
		key := chat.PublicKey{Alg: "ed25519", Pub: make([]byte, 32)}
		for i, want := range []chat.IdentityOutcome{chat.IdentityCreated, chat.IdentitySame} {
			if got, err := db.PutIdentity(ctx, alice.ID, key, false, base); err != nil || got != want {
				t.Fatalf("put identity #%d = %v, %v; want %v", i, got, err, want)
			}
		}
		MustIdentity(t, db, bob.ID)
		other := chat.PublicKey{Alg: "ed25519", Pub: []byte("another key of thirty-two bytes!")}
		if _, err := db.PutIdentity(ctx, alice.ID, other, false, base); chat.ErrorCode(err) != chat.EIdentityExists {
			t.Fatalf("a different identity key: %v", err)
		}

		d1 := MustDevice(t, db, alice.ID, "AAAAAAAAAAAAAAAAAAAAAA")
		if created, err := db.AddDevice(ctx, d1); err != nil || created {
			t.Fatalf("the same device again = %v, %v", created, err)
		}
		changed := d1
		changed.Cert = []byte("a different certificate of sixty-four bytes, padded.............")
		if _, err := db.AddDevice(ctx, changed); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("other keys under a published device id: %v", err)
		}
		if st := MustEpochState(t, db, group.ID); !st.Changed || st.Current != 0 {
			t.Fatalf("a new device leaves the state %+v", st)
		}
		if _, err := db.EpochState(ctx, plain.ID); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("epoch state of a plain chat: %v", err)
		}
		for i := 1; i < chat.MaxDevicesPerUser; i++ {
			MustDevice(t, db, alice.ID, fmt.Sprintf("dev%019d", i))
		}
		if _, err := db.AddDevice(ctx, e2eeDevice(alice.ID, "one-too-many-devices00")); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("device %d: %v", chat.MaxDevicesPerUser+1, err)
		}
		if revoked, err := db.RevokeDevice(ctx, alice.ID, d1.ID, base.Add(time.Minute)); err != nil || !revoked {
			t.Fatalf("revoke = %v, %v", revoked, err)
		}
		if revoked, err := db.RevokeDevice(ctx, alice.ID, d1.ID, base.Add(time.Minute)); err != nil || revoked {
			t.Fatalf("revoke again = %v, %v", revoked, err)
		}
		if _, err := db.RevokeDevice(ctx, bob.ID, d1.ID, base); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("bob revokes alice's device: %v", err)
		}
		if _, err := db.AddDevice(ctx, d1); chat.ErrorCode(err) != chat.EConflict {
			t.Fatalf("a revoked device id again: %v", err)
		}
		live, err := db.UserKeys(ctx, alice.ID, false)
		if err != nil || len(live.Devices) != chat.MaxDevicesPerUser-1 || live.Identity.Alg != "ed25519" {
			t.Fatalf("live keys: %d devices, %+v, %v", len(live.Devices), live.Identity, err)
		}
		all, err := db.UserKeys(ctx, alice.ID, true)
		if err != nil || len(all.Devices) != chat.MaxDevicesPerUser || all.Devices[0].RevokedAt.IsZero() {
			t.Fatalf("all keys: %d devices, %v", len(all.Devices), err)
		}
		bobDev := MustDevice(t, db, bob.ID, "BBBBBBBBBBBBBBBBBBBBBB")
		members, err := db.ChatKeys(ctx, group.ID)
		if err != nil || len(members) != 2 || members[0].Username != "alice" || len(members[0].Devices) != chat.MaxDevicesPerUser-1 ||
			len(members[1].Devices) != 1 || members[1].Devices[0].ID != bobDev.ID {
			t.Fatalf("chat keys: %+v, %v", members, err)
		}
		peers, err := db.E2EEPeers(ctx, bob.ID)
		if err != nil || len(peers) != 2 {
			t.Fatalf("peers of bob: %v, %v", peers, err)
		}

		// Replacing the identity key revokes every device and deletes the
		// backup.
		if err := db.PutBackup(ctx, alice.ID, chat.SealedBlob{KeyVersion: kv, Body: []byte("header")}, base); err != nil {
			t.Fatal(err)
		}
		if err := db.PutBackupItems(ctx, alice.ID, []chat.BackupItem{{ChatName: group.Name, Epoch: 1, SealedBlob: chat.SealedBlob{KeyVersion: kv, Body: []byte("item")}}}, base); err != nil {
			t.Fatal(err)
		}
		if got, err := db.PutIdentity(ctx, alice.ID, other, true, base); err != nil || got != chat.IdentityReplaced {
			t.Fatalf("replace identity = %v, %v", got, err)
		}
		if k, _ := db.UserKeys(ctx, alice.ID, false); len(k.Devices) != 0 || string(k.Identity.Pub) != string(other.Pub) {
			t.Fatalf("after replacing: %d live devices, identity %q", len(k.Devices), k.Identity.Pub)
		}
		if _, err := db.Backup(ctx, alice.ID); chat.ErrorCode(err) != chat.ENoBackup {
			t.Fatalf("backup after replacing: %v", err)
		}
		if items, _, _ := db.BackupItems(ctx, alice.ID, 0, 10); len(items) != 0 {
			t.Fatalf("backup items after replacing: %d", len(items))
		}
	})
}

func TestE2EEEpochs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob, carol := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob"), MustCreateUser(t, db, "carol")
		for _, u := range []chat.User{alice, bob, carol} {
			MustIdentity(t, db, u.ID)
		}
		a := MustDevice(t, db, alice.ID, "AAAAAAAAAAAAAAAAAAAAAA")
		b := MustDevice(t, db, bob.ID, "BBBBBBBBBBBBBBBBBBBBBB")
		c := MustDevice(t, db, carol.ID, "CCCCCCCCCCCCCCCCCCCCCC")
		group := MustEncryptedGroup(t, db, kv, alice.ID, bob.ID, carol.ID)
		epoch := func(n int64, sender chat.Device, devices ...chat.Device) error {
			return db.StartEpoch(ctx, chat.Epoch{ChatID: group.ID, Epoch: n, SenderID: sender.UserID, SenderDevice: sender.ID, StartedAt: base}, envelopesFor(kv, devices...))
		}
		use := func(u chat.Device, n int64, at time.Time) error {
			return db.UseEpoch(ctx, chat.MessageUse{ChatID: group.ID, UserID: u.UserID, DeviceID: u.ID, Epoch: n, At: at})
		}

		if err := use(a, 1, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a message before the first epoch: %v", err)
		}
		for _, tt := range []struct {
			name    string
			epoch   int64
			sender  chat.Device
			devices []chat.Device
			code    string
		}{
			{"a device left out", 1, a, []chat.Device{a, b}, chat.EEnvelopesMismatch},
			{"a device twice", 1, a, []chat.Device{a, b, b, c}, chat.EEnvelopesMismatch},
			{"a stranger's device", 1, a, []chat.Device{a, b, c, e2eeDevice(99, "ZZZZZZZZZZZZZZZZZZZZZZ")}, chat.EEnvelopesMismatch},
			{"a sender device not theirs", 1, chat.Device{UserID: alice.ID, ID: b.ID}, []chat.Device{a, b, c}, chat.EInvalid},
			{"an epoch skipped", 2, a, []chat.Device{a, b, c}, chat.EInvalid},
		} {
			if err := epoch(tt.epoch, tt.sender, tt.devices...); chat.ErrorCode(err) != tt.code {
				t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
			}
		}
		if err := epoch(1, a, a, b, c); err != nil {
			t.Fatalf("epoch 1: %v", err)
		}
		if err := epoch(1, b, a, b, c); chat.ErrorCode(err) != chat.EEpochConflict {
			t.Fatalf("epoch 1 again: %v", err)
		}
		if st := MustEpochState(t, db, group.ID); st.Current != 1 || st.Min != 1 || st.Changed || st.Stale(base) {
			t.Fatalf("state after epoch 1: %+v", st)
		}
		ep, env, err := db.Envelope(ctx, group.ID, 1, bob.ID, b.ID)
		if err != nil || ep.SenderName != "alice" || ep.SenderDevice != a.ID || string(env.Body) != "sealed envelope for "+b.ID {
			t.Fatalf("bob's envelope: %+v %q %v", ep, env.Body, err)
		}
		if _, _, err := db.Envelope(ctx, group.ID, 1, bob.ID, a.ID); chat.ErrorCode(err) != chat.ENoEnvelope {
			t.Fatalf("bob asks for alice's envelope: %v", err)
		}

		// 100 messages make it stale; a foreign or future device or epoch
		// is refused on the way.
		if err := use(chat.Device{UserID: bob.ID, ID: a.ID}, 1, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("bob names alice's device: %v", err)
		}
		if err := use(a, 2, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a future epoch: %v", err)
		}
		for i := range chat.EpochMaxMessages {
			if err := use(a, 1, base); err != nil {
				t.Fatalf("message %d: %v", i+1, err)
			}
		}
		if err := use(b, 1, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("message %d: %v", chat.EpochMaxMessages+1, err)
		}
		// A full epoch gives way to the next, and messages still on their
		// way on it are taken.
		if err := epoch(2, b, a, b, c); err != nil {
			t.Fatalf("epoch 2: %v", err)
		}
		if st := MustEpochState(t, db, group.ID); st.Current != 2 || st.Min != 1 {
			t.Fatalf("state after epoch 2: %+v", st)
		}
		if err := use(c, 1, base); err != nil {
			t.Fatalf("a late message on epoch 1: %v", err)
		}
		// Seven days make it stale.
		if err := use(c, 2, base.Add(chat.EpochMaxAge-time.Millisecond)); err != nil {
			t.Fatalf("just under seven days: %v", err)
		}
		if err := use(c, 2, base.Add(chat.EpochMaxAge)); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("seven days on: %v", err)
		}

		// Removing carol makes it stale and ends every older epoch.
		if _, err := db.RemoveMember(ctx, group.ID, alice.ID, carol.ID, base, testSealer(kv), "remove-carol"); err != nil {
			t.Fatal(err)
		}
		if st := MustEpochState(t, db, group.ID); !st.Changed || !st.Stale(base) {
			t.Fatalf("state after removing carol: %+v", st)
		}
		if err := epoch(3, a, a, b, c); chat.ErrorCode(err) != chat.EEnvelopesMismatch {
			t.Fatalf("epoch 3 for a removed member: %v", err)
		}
		if err := epoch(3, a, a, b); err != nil {
			t.Fatalf("epoch 3: %v", err)
		}
		if st := MustEpochState(t, db, group.ID); st.Current != 3 || st.Min != 3 || st.Changed {
			t.Fatalf("state after epoch 3: %+v", st)
		}
		if err := use(a, 2, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("epoch 2 after a removal: %v", err)
		}
		if _, _, err := db.Envelope(ctx, group.ID, 3, carol.ID, c.ID); chat.ErrorCode(err) != chat.ENoEnvelope {
			t.Fatalf("carol's envelope of epoch 3: %v", err)
		}

		// Adding a member, and a device revoked, make it stale.
		if _, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{carol.ID}, base, testSealer(kv), "add-carol"); err != nil {
			t.Fatal(err)
		}
		if st := MustEpochState(t, db, group.ID); !st.Changed {
			t.Fatalf("state after adding carol: %+v", st)
		}
		if err := epoch(4, a, a, b, c); err != nil {
			t.Fatalf("epoch 4: %v", err)
		}
		if _, err := db.RevokeDevice(ctx, bob.ID, b.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := use(a, 4, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a message after a device was revoked: %v", err)
		}
		if err := epoch(5, a, a, c); err != nil {
			t.Fatalf("epoch 5: %v", err)
		}
		if err := use(b, 5, base); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a revoked device sends: %v", err)
		}
		if err := use(a, 5, base); err != nil {
			t.Fatalf("epoch 5: %v", err)
		}

		// Messages stored with their epoch are checked and counted in the
		// transaction that stores them: a group with a refused one stores
		// nothing.
		msg := func(u chat.Device, epoch int64, clientID string) chat.NewMessage {
			return chat.NewMessage{ChatID: group.ID, UserID: u.UserID, Kind: chat.MessageText, KeyVersion: kv, Body: []byte("sealed"),
				ClientID: clientID, CreatedAt: base, Use: &chat.MessageUse{ChatID: group.ID, UserID: u.UserID, DeviceID: u.ID, Epoch: epoch, At: base}}
		}
		before := MustEpochState(t, db, group.ID).Messages
		if _, err := db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "g1"), msg(b, 5, "g2")}); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a group with a revoked device's message: %v", err)
		}
		if got := MustEpochState(t, db, group.ID).Messages; got != before {
			t.Fatalf("a refused group counted %d messages", got-before)
		}
		if ins, err := db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "g1"), msg(c, 5, "g3")}); err != nil || len(ins) != 2 {
			t.Fatalf("a group of good messages: %v, %v", ins, err)
		}
		if ins, err := db.InsertMessages(ctx, []chat.NewMessage{msg(c, 5, "g4")}); err != nil || len(ins) != 1 {
			t.Fatalf("one good message: %v, %v", ins, err)
		}
		if got := MustEpochState(t, db, group.ID).Messages; got != before+3 {
			t.Fatalf("%d messages counted, want 3", got-before)
		}

		// The chat list carries the state.
		sums, err := db.UserChats(ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sums {
			if s.ID == group.ID && (s.Epoch.Current != 5 || s.Epoch.Messages != 4 || !s.E2EE) {
				t.Fatalf("summary epoch: %+v", s.Epoch)
			}
		}

		// A use naming a device that is not the sender's refuses its group.
		before = MustEpochState(t, db, group.ID).Messages
		_, err = db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "n1"), msg(chat.Device{UserID: alice.ID, ID: b.ID}, 5, "n2")})
		if chat.ErrorCode(err) != chat.EStaleEpoch || !strings.Contains(err.Error(), "not yours") {
			t.Fatalf("a group naming a device that is not the sender's: %v", err)
		}
		if got := MustEpochState(t, db, group.ID).Messages; got != before {
			t.Fatalf("a refused group counted %d messages", got-before)
		}

		// A group's uses count in order: the one that would pass the
		// epoch's limit refuses the whole group, and nothing is counted.
		MustExec(t, MustRawDB(t, opts), `UPDATE e2ee_epochs SET messages = ? WHERE chat_id = ? AND epoch = 5`, chat.EpochMaxMessages-2, group.ID)
		if _, err := db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "l1"), msg(c, 5, "l2"), msg(a, 5, "l3")}); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a group past the epoch's limit: %v", err)
		}
		if got := MustEpochState(t, db, group.ID).Messages; got != chat.EpochMaxMessages-2 {
			t.Fatalf("a refused group left the count at %d, want %d", got, chat.EpochMaxMessages-2)
		}
		if ins, err := db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "l1"), msg(c, 5, "l2")}); err != nil || len(ins) != 2 {
			t.Fatalf("a group up to the epoch's limit: %v, %v", ins, err)
		}
		if st := MustEpochState(t, db, group.ID); st.Messages != chat.EpochMaxMessages || !st.Stale(base) {
			t.Fatalf("after the limit: %+v", st)
		}
		if _, err := db.InsertMessages(ctx, []chat.NewMessage{msg(a, 5, "l3")}); chat.ErrorCode(err) != chat.EStaleEpoch {
			t.Fatalf("a message after the limit: %v", err)
		}
		MustNoChatLock(t, opts, group.ID)
	})
}

func TestE2EEBackup(t *testing.T) {
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		if _, err := db.Backup(ctx, alice.ID); chat.ErrorCode(err) != chat.ENoBackup {
			t.Fatalf("before the first backup: %v", err)
		}
		for _, body := range []string{"header 1", "header 2"} {
			if err := db.PutBackup(ctx, alice.ID, chat.SealedBlob{KeyVersion: kv, Body: []byte(body)}, base); err != nil {
				t.Fatal(err)
			}
			if b, err := db.Backup(ctx, alice.ID); err != nil || string(b.Body) != body {
				t.Fatalf("backup = %q, %v; want %q", b.Body, err, body)
			}
		}
		item := func(chatName string, epoch int64, body string) chat.BackupItem {
			return chat.BackupItem{ChatName: chatName, Epoch: epoch, SealedBlob: chat.SealedBlob{KeyVersion: kv, Body: []byte(body)}}
		}
		var items []chat.BackupItem
		for i := range 7 {
			items = append(items, item("group:ab", int64(i+1), fmt.Sprint("key ", i+1)))
		}
		if err := db.PutBackupItems(ctx, alice.ID, items, base); err != nil {
			t.Fatal(err)
		}
		if err := db.PutBackupItems(ctx, alice.ID, []chat.BackupItem{item("group:ab", 3, "key 3 again")}, base); err != nil {
			t.Fatal(err)
		}
		if err := db.PutBackupItems(ctx, bob.ID, []chat.BackupItem{item("group:ab", 1, "bob's key")}, base); err != nil {
			t.Fatal(err)
		}
		var (
			got   []string
			after int64
		)
		for pages := 0; ; pages++ {
			page, more, err := db.BackupItems(ctx, alice.ID, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page {
				got = append(got, string(it.Body))
				after = it.ID
			}
			if !more {
				if pages != 2 {
					t.Fatalf("%d pages of 3 for 7 items", pages+1)
				}
				break
			}
		}
		want := "[key 1 key 2 key 3 again key 4 key 5 key 6 key 7]"
		if fmt.Sprint(got) != want {
			t.Fatalf("items %v, want %s", got, want)
		}
	})
}
