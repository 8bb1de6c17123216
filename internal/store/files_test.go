package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/store"
)

func newFile(chatID, uploader, kv int64, size int64, at time.Time) chat.File {
	id := make([]byte, 16)
	rand.Read(id)
	return chat.File{
		ID: id, ChatID: chatID, UploaderID: uploader, Name: "photo.png", MimeType: "image/png", Size: size,
		SHA256: bytes.Repeat([]byte{7}, 32), KeyVersion: kv, StorageName: fmt.Sprintf("%x", id), CreatedAt: at,
	}
}

func TestFiles(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice := MustCreateUser(t, db, "alice")
		global := MustGlobal(t, db)

		a := newFile(global.ID, alice.ID, kv, 100, base)
		a.ThumbName, a.ThumbSize, a.ThumbMimeType, a.Width, a.Height = a.StorageName+".t", 10, "image/jpeg", 640, 480
		b := newFile(global.ID, alice.ID, kv, 200, base.Add(time.Minute))
		c := newFile(global.ID, alice.ID, kv, 300, base.Add(-time.Minute))
		for _, f := range []chat.File{a, b, c} {
			if err := db.InsertFile(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.InsertFile(ctx, a); chat.ErrorCode(err) == "" {
			t.Fatal("a second row with the same id was accepted")
		}
		got, err := db.FileByID(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != a.Name || got.Size != 100 || got.ThumbName != a.ThumbName || got.Width != 640 || !got.CreatedAt.Equal(base) || !got.ExpiredAt.IsZero() {
			t.Fatalf("file = %+v", got)
		}
		if _, err := db.FileByID(ctx, make([]byte, 16)); chat.ErrorCode(err) != chat.ENotFound {
			t.Fatalf("missing file: %v", err)
		}
		list, err := db.FilesByIDs(ctx, [][]byte{a.ID, make([]byte, 16), c.ID})
		if err != nil || len(list) != 2 {
			t.Fatalf("FilesByIDs = %d files, %v", len(list), err)
		}
		u, err := db.FileUsage(ctx)
		if err != nil || u.Files != 3 || u.Bytes != 610 {
			t.Fatalf("usage = %+v, %v; want 3 files, 610 bytes (thumbnails count)", u, err)
		}
		oldest, err := db.OldestFiles(ctx, 2)
		if err != nil || len(oldest) != 2 || !bytes.Equal(oldest[0].ID, c.ID) || !bytes.Equal(oldest[1].ID, a.ID) {
			t.Fatalf("oldest = %v, %v", oldest, err)
		}
		if ok, err := db.ExpireFile(ctx, c.ID, base.Add(time.Hour)); !ok || err != nil {
			t.Fatalf("expire: %v %v", ok, err)
		}
		if ok, _ := db.ExpireFile(ctx, c.ID, base.Add(time.Hour)); ok {
			t.Fatal("expired twice")
		}
		if u, _ := db.FileUsage(ctx); u.Files != 2 || u.Bytes != 310 {
			t.Fatalf("usage after expiry = %+v", u)
		}
		if oldest, _ := db.OldestFiles(ctx, 10); len(oldest) != 2 || !bytes.Equal(oldest[0].ID, a.ID) {
			t.Fatalf("oldest after expiry = %v", oldest)
		}
		if f, _ := db.FileByID(ctx, c.ID); !f.ExpiredAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("expired file = %+v", f)
		}
	})
}

func TestClearData(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice := MustCreateUser(t, db, "alice")
		global := MustGlobal(t, db)
		MustInsert(t, db, text(global.ID, alice.ID, kv, "c1", "one", base), text(global.ID, alice.ID, kv, "c2", "two", base))
		if err := db.InsertFile(ctx, newFile(global.ID, alice.ID, kv, 5, base)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.MarkRead(ctx, global.ID, alice.ID, 1<<40); err != nil {
			t.Fatal(err)
		}
		c, err := db.ClearData(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Messages != 2 || c.Files != 1 || c.KeyVersions != 1 {
			t.Fatalf("cleared %+v", c)
		}
		if _, err := db.UserByUsername(ctx, "alice"); err != nil {
			t.Fatalf("the user went too: %v", err)
		}
		if sum, err := db.UserChat(ctx, alice.ID, global.ID); err != nil || sum.LastReadID != 0 || sum.LastMessageID != 0 {
			t.Fatalf("global after clearing: %+v %v", sum, err)
		}
		if kvs, _ := db.KeyVersions(ctx); len(kvs) != 0 {
			t.Fatalf("%d key versions left", len(kvs))
		}
	})
}
