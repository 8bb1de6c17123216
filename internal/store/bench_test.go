package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// BenchmarkInsertMessages commits groups of messages into one chat the way
// the committer does, on each dialect: plain messages, and messages of an
// encrypted chat that count their epoch's use. One op is one group.
//
//	go test -run '^$' -bench InsertMessages -benchtime 2000x ./internal/store/
func BenchmarkInsertMessages(b *testing.B) {
	for _, d := range dialects {
		for _, encrypted := range []bool{false, true} {
			for _, size := range []int{1, 8} {
				name := fmt.Sprintf("%s/plain/group=%d", d.name, size)
				if encrypted {
					name = fmt.Sprintf("%s/encrypted/group=%d", d.name, size)
				}
				b.Run(name, func(b *testing.B) { benchInsert(b, d.options(b), encrypted, size) })
			}
		}
	}
}

func benchInsert(b *testing.B, opts store.Options, encrypted bool, size int) {
	ctx := context.Background()
	db := MustOpen(b, opts)
	kv := MustKeyVersion(b, db)
	alice, bob := MustCreateUser(b, db, "alice"), MustCreateUser(b, db, "bob")
	var (
		chatID int64
		use    func() *chat.MessageUse
	)
	if encrypted {
		MustIdentity(b, db, alice.ID)
		MustIdentity(b, db, bob.ID)
		a := MustDevice(b, db, alice.ID, "AAAAAAAAAAAAAAAAAAAAAA")
		bd := MustDevice(b, db, bob.ID, "BBBBBBBBBBBBBBBBBBBBBB")
		group := MustEncryptedGroup(b, db, kv, alice.ID, bob.ID)
		chatID = group.ID
		epoch := int64(0)
		start := func() {
			epoch++
			err := db.StartEpoch(ctx, chat.Epoch{ChatID: chatID, Epoch: epoch, SenderID: alice.ID, SenderDevice: a.ID, StartedAt: base}, envelopesFor(kv, a, bd))
			if err != nil {
				b.Fatal(err)
			}
		}
		start()
		sent := 0
		use = func() *chat.MessageUse {
			// An epoch carries at most chat.EpochMaxMessages: start the
			// next one before it is used up (outside the timer).
			if sent+size > chat.EpochMaxMessages {
				b.StopTimer()
				start()
				sent = 0
				b.StartTimer()
			}
			sent++
			return &chat.MessageUse{ChatID: chatID, UserID: alice.ID, DeviceID: a.ID, Epoch: epoch, At: base}
		}
	} else {
		chatID = MustGroupChat(b, opts, "bench", alice.ID, bob.ID)
	}
	group := make([]chat.NewMessage, size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range group {
			group[j] = text(chatID, alice.ID, kv, fmt.Sprintf("c%d-%d", i, j), "a message of about the length people write", base)
			if use != nil {
				group[j].Use = use()
			}
		}
		if _, err := db.InsertMessages(ctx, group); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/msg")
}
