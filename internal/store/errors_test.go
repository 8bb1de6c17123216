package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

// An error from the store says which operation failed, for the operator
// reading the log, while callers still get the code and the sentence the
// store meant, without the operation in front of it.
func TestErrorsNameTheirOperation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		alice := MustCreateUser(t, db, "alice")
		kv := MustKeyVersion(t, db)
		group := MustCreateGroup(t, db, kv, "ops", base, alice.ID)
		// Broken under the store: the next invite finds no table.
		MustExec(t, MustRawDB(t, opts), `DROP TABLE invites`)
		closed := MustOpen(t, opts)
		closed.Close()

		tests := []struct {
			name        string
			call        func() error
			op          string
			wantCode    string
			wantMessage string
		}{
			{
				name:     "no such user",
				call:     func() error { _, err := db.UserByID(ctx, alice.ID+1000); return err },
				op:       "user by id",
				wantCode: chat.ENotFound, wantMessage: "No such user.",
			},
			{
				name: "taken username",
				call: func() error {
					u := chat.User{Username: "alice", Email: "other@example.com", PasswordHash: "x", Role: chat.RoleMember, CreatedAt: base}
					return db.CreateUser(ctx, &u, nil)
				},
				op:       "create user",
				wantCode: chat.EConflict, wantMessage: "That username is taken.",
			},
			{
				name: "unknown member",
				call: func() error {
					_, err := db.AddMembers(ctx, group.ID, alice.ID, []int64{alice.ID + 1000}, base, testSealer(kv), "add-1")
					return err
				},
				op:       "add members",
				wantCode: chat.ENotFound, wantMessage: fmt.Sprintf("There is no user with id %d.", alice.ID+1000),
			},
			{
				name: "title too long",
				call: func() error {
					_, err := db.RenameChat(ctx, group.ID, alice.ID, strings.Repeat("x", 256), base, testSealer(kv), "rename-1")
					return err
				},
				op:       "rename chat",
				wantCode: chat.EInvalid, wantMessage: "The title is 256 bytes; the limit is 100.",
			},
			{
				name: "missing table",
				call: func() error {
					return db.CreateInvite(ctx, chat.Invite{CodeHash: []byte("code"), CreatedAt: base, ExpiresAt: base})
				},
				op:       "create invite",
				wantCode: chat.EInternal, wantMessage: "Internal error.",
			},
			{
				name:     "closed store",
				call:     func() error { _, err := closed.ChatByName(ctx, chat.GlobalChatName); return err },
				op:       "chat by name",
				wantCode: chat.EUnavailable, wantMessage: "The database is unavailable; try again shortly.",
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				wantCode(t, err, tt.wantCode)
				if got := chat.ErrorMessage(err); got != tt.wantMessage {
					t.Errorf("message = %q, want %q", got, tt.wantMessage)
				}
				if !strings.HasPrefix(err.Error(), "store: "+tt.op+": ") {
					t.Errorf("error %q does not start with %q", err, "store: "+tt.op+": ")
				}
			})
		}
	})
}
