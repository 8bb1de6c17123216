package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// TestPrevNamesTheChatsRowBefore checks what the Redis broker's gap
// detection rests on: every committed row of a chat, by any writer and
// from any process, names the chat's row just before it, so the rows of a
// chat form one chain in id order with no link missing. On MariaDB two
// stores on the same database stand for two nodes committing at once.
func TestPrevNamesTheChatsRowBefore(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		nodes := []*store.DB{MustOpen(t, opts)}
		if opts.Driver == store.MySQL {
			nodes = append(nodes, MustOpen(t, opts), MustOpen(t, opts))
		}
		db := nodes[0]
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		global := MustGlobal(t, db)
		group := MustGroupChat(t, opts, "prev-group", alice.ID, bob.ID)

		var (
			mu  sync.Mutex
			all = map[int64][]chat.Inserted{} // by chat
		)
		keep := func(ins ...chat.Inserted) {
			mu.Lock()
			defer mu.Unlock()
			for _, i := range ins {
				if i.Created {
					all[i.ChatID] = append(all[i.ChatID], i)
				}
			}
		}
		// Each node commits groups that mix both chats, and single rows.
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes))
		for n, node := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					var msgs []chat.NewMessage
					for j := range 1 + i%4 {
						chatID := global.ID
						if (i+j)%2 == 1 {
							chatID = group
						}
						msgs = append(msgs, text(chatID, alice.ID, kv, fmt.Sprintf("n%d-%d-%d", n, i, j), "hello", base))
					}
					ins, err := node.InsertMessages(ctx, msgs)
					if err != nil {
						errs <- err
						return
					}
					keep(ins...)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// A duplicate takes no place in the chain.
		dup := MustInsert(t, db, text(global.ID, alice.ID, kv, "n0-0-0", "again", base), text(global.ID, bob.ID, kv, "after-dup", "x", base))
		if dup[0].Created || dup[0].Prev != 0 {
			t.Fatalf("a duplicate came back %+v", dup[0])
		}
		keep(dup...)
		// An edit's event row and a membership change's system message
		// are links of the chain too.
		target := all[group][0].ID
		edited, err := nodes[len(nodes)-1].EditMessage(ctx, chat.Edit{ChatID: group, UserID: alice.ID, TargetID: target, KeyVersion: kv,
			Body: []byte("edited"), EventKeyVersion: kv, EventClientID: "edit-1", At: base})
		if err != nil {
			t.Fatal(err)
		}
		keep(edited.Event)
		carol := MustCreateUser(t, db, "carol")
		change, err := db.AddMembers(ctx, group, alice.ID, []int64{carol.ID}, base, testSealer(kv), "add-carol")
		if err != nil {
			t.Fatal(err)
		}
		keep(change.Messages...)

		for chatID, rows := range all {
			slices.SortFunc(rows, func(a, b chat.Inserted) int { return int(a.ID - b.ID) })
			for i, r := range rows {
				want := int64(0)
				if i > 0 {
					want = rows[i-1].ID
				}
				if r.Prev != want {
					t.Fatalf("chat %d: row %d has Prev %d, want %d", chatID, r.ID, r.Prev, want)
				}
			}
		}
		if len(all[global.ID]) < 40 || len(all[group]) < 40 {
			t.Fatalf("only %d and %d rows", len(all[global.ID]), len(all[group]))
		}
	})
}
