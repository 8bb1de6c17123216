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
		oldest, err := db.OldestFilesOf(ctx, alice.ID, base.Add(time.Hour), 2)
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
		if oldest, _ := db.OldestFilesOf(ctx, alice.ID, base.Add(time.Hour), 10); len(oldest) != 2 || !bytes.Equal(oldest[0].ID, a.ID) {
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

// TestFileQuotasAndThumbnails: what the per-user quota, the janitor, the
// thumbnail worker and the start-up sweep ask of the files table.
func TestFileQuotasAndThumbnails(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		db := MustOpen(t, opts)
		kv := MustKeyVersion(t, db)
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		global := MustGlobal(t, db)

		a1 := newFile(global.ID, alice.ID, kv, 100, base)
		a1.ThumbName, a1.ThumbSize = a1.StorageName+"-t", 10
		a2 := newFile(global.ID, alice.ID, kv, 200, base.Add(2*time.Minute))
		a2.ThumbPending, a2.Width, a2.Height = true, 640, 480
		a3 := newFile(global.ID, alice.ID, kv, 400, base.Add(time.Minute))
		b1 := newFile(global.ID, bob.ID, kv, 50, base.Add(-time.Hour))
		b2 := newFile(global.ID, bob.ID, kv, 70, base.Add(3*time.Minute))
		b2.ThumbPending = true
		for _, f := range []chat.File{a1, a2, a3, b1, b2} {
			if err := db.InsertFile(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := db.FileByID(ctx, a2.ID); err != nil || !got.ThumbPending || got.ThumbName != "" {
			t.Fatalf("pending file read back as %+v, %v", got, err)
		}
		if got, _ := db.FileByID(ctx, a1.ID); got.ThumbPending {
			t.Fatalf("a file with its thumbnail reads back as pending")
		}

		t.Run("usage per user", func(t *testing.T) {
			if u, err := db.UserFileUsage(ctx, alice.ID); err != nil || u.Files != 3 || u.Bytes != 710 {
				t.Fatalf("alice's usage = %+v, %v; want 3 files, 710 bytes (thumbnails count)", u, err)
			}
			if u, err := db.UserFileUsage(ctx, 424242); err != nil || u.Files != 0 || u.Bytes != 0 {
				t.Fatalf("a user without files: %+v, %v", u, err)
			}
			by, err := db.FileUsageByUploader(ctx)
			if err != nil || len(by) != 2 || by[alice.ID].Bytes != 710 || by[bob.ID].Bytes != 120 || by[bob.ID].Files != 2 {
				t.Fatalf("usage by uploader = %+v, %v", by, err)
			}
		})

		t.Run("oldest of one uploader", func(t *testing.T) {
			list, err := db.OldestFilesOf(ctx, alice.ID, base.Add(2*time.Minute), 10)
			if err != nil || len(list) != 2 || !bytes.Equal(list[0].ID, a1.ID) || !bytes.Equal(list[1].ID, a3.ID) {
				t.Fatalf("alice's files before base+2m = %v, %v; want a1, a3 (a2 is not before)", list, err)
			}
			if list, _ := db.OldestFilesOf(ctx, alice.ID, base.Add(time.Hour), 1); len(list) != 1 || !bytes.Equal(list[0].ID, a1.ID) {
				t.Fatalf("limit 1 = %v", list)
			}
		})

		t.Run("pending thumbnails", func(t *testing.T) {
			list, err := db.PendingThumbnails(ctx, 10)
			if err != nil || len(list) != 2 || !bytes.Equal(list[0].ID, a2.ID) || !bytes.Equal(list[1].ID, b2.ID) {
				t.Fatalf("pending = %v, %v; want a2, b2", list, err)
			}
			done := a2
			done.ThumbName, done.ThumbSize, done.ThumbMimeType = a2.StorageName+"-t", 33, "image/jpeg"
			if ok, err := db.SetThumbnail(ctx, done); !ok || err != nil {
				t.Fatalf("set thumbnail: %v %v", ok, err)
			}
			got, _ := db.FileByID(ctx, a2.ID)
			if got.ThumbPending || got.ThumbName != done.ThumbName || got.ThumbSize != 33 || got.ThumbMimeType != "image/jpeg" || got.MimeType != "image/png" {
				t.Fatalf("after the thumbnail: %+v", got)
			}
			if u, _ := db.UserFileUsage(ctx, alice.ID); u.Bytes != 743 {
				t.Fatalf("alice's usage with the new thumbnail = %d, want 743", u.Bytes)
			}
			// A file that expired while its thumbnail was made keeps no thumbnail.
			if ok, _ := db.ExpireFile(ctx, b2.ID, base.Add(time.Hour)); !ok {
				t.Fatal("expire b2")
			}
			late := b2
			late.ThumbName, late.ThumbSize = b2.StorageName+"-t", 5
			if ok, err := db.SetThumbnail(ctx, late); ok || err != nil {
				t.Fatalf("set thumbnail of an expired file: %v %v", ok, err)
			}
			if got, _ := db.FileByID(ctx, b2.ID); got.ThumbName != "" {
				t.Fatalf("expired file got a thumbnail: %+v", got)
			}
			if list, _ := db.PendingThumbnails(ctx, 10); len(list) != 0 {
				t.Fatalf("still pending: %v", list)
			}
		})

		t.Run("by storage names", func(t *testing.T) {
			list, err := db.FilesByStorageNames(ctx, []string{a1.StorageName, "0123456789abcdef0123456789abcdef", b2.StorageName})
			if err != nil || len(list) != 2 {
				t.Fatalf("by storage names = %v, %v; want a1 and the expired b2", list, err)
			}
			many := make([]string, 250)
			for i := range many {
				many[i] = fmt.Sprintf("%032x", i)
			}
			many[249] = a3.StorageName
			if list, err := db.FilesByStorageNames(ctx, many); err != nil || len(list) != 1 || !bytes.Equal(list[0].ID, a3.ID) {
				t.Fatalf("250 names = %v, %v", list, err)
			}
		})
	})
}
