package uploads_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/store"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

type world struct {
	st    *store.DB
	ring  *keyring.Ring
	dir   string
	user  chat.User // alice
	bob   chat.User
	chat  chat.Chat
	ctx   context.Context
	newUp func(o uploads.Options) *uploads.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, SQLitePath: filepath.Join(t.TempDir(), "chat.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ring, err := keyring.Open(ctx, st, bytes.Repeat([]byte{9}, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := chat.User{Username: "alice", PasswordHash: "x", Role: chat.RoleMember, CreatedAt: time.Now()}
	if err := st.CreateUser(ctx, &u, nil); err != nil {
		t.Fatal(err)
	}
	bob := chat.User{Username: "bob", PasswordHash: "x", Role: chat.RoleMember, CreatedAt: time.Now()}
	if err := st.CreateUser(ctx, &bob, nil); err != nil {
		t.Fatal(err)
	}
	global, err := st.ChatByName(ctx, chat.GlobalChatName)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{st: st, ring: ring, dir: t.TempDir(), user: u, bob: bob, chat: global, ctx: ctx}
	w.newUp = func(o uploads.Options) *uploads.Service {
		o.Store, o.Ring, o.Dir, o.Log = st, ring, w.dir, slog.New(slog.DiscardHandler)
		if o.MaxFileBytes == 0 {
			o.MaxFileBytes = 10 << 20
		}
		if o.MaxTotalBytes == 0 {
			o.MaxTotalBytes = 100 << 20
		}
		s, err := uploads.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return w
}

func (w *world) files(t *testing.T) []string {
	t.Helper()
	var out []string
	filepath.Walk(w.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestDiskFull: a disk that fills while an upload is written gives a clear
// error and leaves neither a partial file nor a row. The temporary file is
// a link to /dev/full, where every write fails with ENOSPC.
func TestDiskFull(t *testing.T) {
	w := newWorld(t)
	linkDir := t.TempDir()
	up := w.newUp(uploads.Options{CreateTemp: func(dir, pattern string) (*os.File, error) {
		link := filepath.Join(linkDir, "upload.part")
		if err := os.Symlink("/dev/full", link); err != nil {
			return nil, err
		}
		return os.OpenFile(link, os.O_WRONLY, 0)
	}})
	_, err := up.Save(w.ctx, uploads.Upload{Chat: w.chat, UploaderID: w.user.ID, Name: "big.bin", Body: bytes.NewReader(bytes.Repeat([]byte("d"), 2<<20))})
	if chat.ErrorCode(err) != chat.EUnavailable || !strings.Contains(chat.ErrorMessage(err), "disk is full") {
		t.Fatalf("err = %v", err)
	}
	if left := w.files(t); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	if _, err := os.Lstat(filepath.Join(linkDir, "upload.part")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the partial upload was not removed: %v", err)
	}
	if u, _ := w.st.FileUsage(w.ctx); u.Files != 0 {
		t.Fatalf("%d rows after a failed upload", u.Files)
	}
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("/dev/full is gone: %v", err)
	}
}

// TestSaveAndOpen: what goes in comes out, by ranges too, and the stale
// temporary files of crashed uploads are swept by the janitor.
func TestSaveAndOpen(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{})
	content := bytes.Repeat([]byte("0123456789abcdef"), 50000)
	f, err := up.Save(w.ctx, uploads.Upload{Chat: w.chat, UploaderID: w.user.ID, Name: "../x.bin", Body: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "x.bin" || f.Size != int64(len(content)) || len(f.SHA256) != 32 {
		t.Fatalf("file %+v", f)
	}
	d, err := up.Download(w.ctx, chat.Identity{UserID: w.user.ID}, hex.EncodeToString(f.ID), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := d.Content
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	if _, err := r.Seek(123457, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 1000)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, content[123457:124457]) {
		t.Fatalf("range: %v", err)
	}

	stale := filepath.Join(w.dir, "tmp", "upload-crashed.part")
	os.WriteFile(stale, []byte("sealed bytes"), 0o600)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	fresh := filepath.Join(w.dir, "tmp", "upload-running.part")
	os.WriteFile(fresh, []byte("sealed bytes"), 0o600)
	if _, _, err := up.Prune(w.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a stale upload was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("an upload in progress was removed")
	}
}

// TestDownloadIsForMembersOnly: the file's chat decides who may read it; a
// non-member gets the very answer a missing file gets.
func TestDownloadIsForMembersOnly(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{})
	bob := w.bob
	carol := chat.User{Username: "carol", PasswordHash: "x", Role: chat.RoleMember, CreatedAt: time.Now()}
	if err := w.st.CreateUser(w.ctx, &carol, nil); err != nil {
		t.Fatal(err)
	}
	group := chat.Chat{Kind: chat.KindGroup, Title: "Ops", CreatedAt: time.Now()}
	if _, _, err := w.st.CreateChat(w.ctx, &group, []int64{w.user.ID, bob.ID}, w.ring.SealMessage, "create-ops"); err != nil {
		t.Fatal(err)
	}
	content := []byte("the plan for tonight")
	f, err := up.Save(w.ctx, uploads.Upload{Chat: group, UploaderID: w.user.ID, Name: "plan.txt", Body: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	ref := hex.EncodeToString(f.ID)
	for _, reader := range []chat.User{w.user, bob} {
		d, err := up.Download(w.ctx, chat.Identity{UserID: reader.ID}, ref, false)
		if err != nil {
			t.Fatalf("%s, a member: %v", reader.Username, err)
		}
		got, err := io.ReadAll(d.Content)
		d.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s read %q, %v", reader.Username, got, err)
		}
	}
	refused := func(who chat.User, ref string, thumb bool) error {
		_, err := up.Download(w.ctx, chat.Identity{UserID: who.ID}, ref, thumb)
		return err
	}
	// Each gets the very answer of a missing file.
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"a non-member", refused(carol, ref, false)},
		{"a non-member asking for the thumbnail", refused(carol, ref, true)},
		{"a missing file", refused(bob, strings.Repeat("ab", 16), false)},
		{"an id that is not hex", refused(bob, "../../etc/passwd", false)},
		{"an id too short", refused(bob, ref[:30], false)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, uploads.ErrNoSuchFile) {
				t.Fatalf("err = %v, want %v", tt.err, uploads.ErrNoSuchFile)
			}
		})
	}
	// A member asking for a thumbnail a text file does not have.
	if err := refused(bob, ref, true); chat.ErrorCode(err) != chat.ENotFound {
		t.Fatalf("thumbnail of a text file: %v", err)
	}
	// Once the janitor expired it, members hear so; others still hear nothing.
	if _, err := w.st.ExpireFile(w.ctx, f.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := refused(bob, ref, false); !errors.Is(err, uploads.ErrExpired) {
		t.Fatalf("expired, to a member: %v", err)
	}
	if err := refused(carol, ref, false); !errors.Is(err, uploads.ErrNoSuchFile) {
		t.Fatalf("expired, to a non-member: %v", err)
	}
}
