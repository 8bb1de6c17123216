package uploads_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/testutil/testclock"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// newClock is the tests' clock for Options.Now.
func newClock() *testclock.Clock { return testclock.New(time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)) }

const mib = 1 << 20

// MustSave stores size bytes as user, failing the test on an error.
func (w *world) MustSave(tb testing.TB, up *uploads.Service, user chat.User, size int) chat.File {
	tb.Helper()
	f, err := w.save(up, user, size)
	if err != nil {
		tb.Fatalf("save %d bytes as %s: %v", size, user.Username, err)
	}
	return f
}

func (w *world) save(up *uploads.Service, user chat.User, size int) (chat.File, error) {
	return up.Save(w.ctx, uploads.Upload{Chat: w.chat, UploaderID: user.ID, Name: "f.bin", Body: bytes.NewReader(bytes.Repeat([]byte{'q'}, size))})
}

// expired reports which of the labelled files are expired, sorted by label,
// checking that their sealed files are gone too.
func (w *world) expired(tb testing.TB, labelled map[string]chat.File) []string {
	tb.Helper()
	var out []string
	for label, f := range labelled {
		got, err := w.st.FileByID(w.ctx, f.ID)
		if err != nil {
			tb.Fatal(err)
		}
		if !got.ExpiredAt.IsZero() {
			out = append(out, label)
			if _, err := os.Stat(filepath.Join(w.dir, f.StorageName[:2], f.StorageName)); !errors.Is(err, os.ErrNotExist) {
				tb.Fatalf("%s expired but its sealed file is still there", label)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestJanitorExpiresHeaviestUploaderFirst: alice fills her share of a
// shared quota; when it overflows, her oldest files go, and bob's survive
// although they are older still. Both the upload that needs room and the
// periodic run choose so.
func TestJanitorExpiresHeaviestUploaderFirst(t *testing.T) {
	for _, how := range []string{"an upload makes room", "the periodic run"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t)
			clk := newClock()
			start := clk.Now()
			up := w.newUp(uploads.Options{Now: clk.Now, MaxTotalBytes: 10 * mib, UserQuotaBytes: 6 * mib})
			files := map[string]chat.File{}
			// Bob's two files are the oldest of all.
			files["bob0"] = w.MustSave(t, up, w.bob, mib)
			clk.Set(start.Add(time.Minute))
			files["bob1"] = w.MustSave(t, up, w.bob, mib)
			// Two days later alice uploads her whole share.
			for i := range 6 {
				clk.Set(start.Add(48*time.Hour + time.Duration(i)*time.Minute))
				files["alice"+string(rune('0'+i))] = w.MustSave(t, up, w.user, mib)
			}
			// Her quota holds: one more is refused, with the quota named.
			_, err := w.save(up, w.user, mib)
			if chat.ErrorCode(err) != chat.ETooLarge || !strings.Contains(chat.ErrorMessage(err), "quota of 6 MB") {
				t.Fatalf("alice over her quota: %v", err)
			}
			// Days later, everything is old; bob adds one more.
			clk.Set(start.Add(96 * time.Hour))
			files["bob2"] = w.MustSave(t, up, w.bob, mib)
			if got := w.expired(t, files); len(got) != 0 {
				t.Fatalf("expired %v while under the quota", got)
			}

			switch how {
			case "an upload makes room":
				// 9 MiB stored, 1.5 MiB arrive: down to 7.5 MiB with it,
				// so 1.5 MiB go, alice's two oldest.
				files["bob3"] = w.MustSave(t, up, w.bob, 3*mib/2)
			case "the periodic run":
				// The same store under a quota of 8 MiB: 9 MiB stored, down
				// to 7.2 MiB.
				small := w.newUp(uploads.Options{Now: clk.Now, MaxTotalBytes: 8 * mib, UserQuotaBytes: 6 * mib})
				n, freed, err := small.Prune(w.ctx)
				if err != nil || n != 2 || freed != 2*mib {
					t.Fatalf("Prune = %d files, %d bytes, %v; want 2 files, 2 MiB", n, freed, err)
				}
			}
			if got, want := w.expired(t, files), []string{"alice0", "alice1"}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("expired %v, want %v: the heaviest uploader's oldest files", got, want)
			}
		})
	}
}

// TestJanitorSparesYoungFiles: no file younger than MinAge is expired while
// older files remain, even the heaviest uploader's; once only young files
// are left, the heaviest uploader's oldest go.
func TestJanitorSparesYoungFiles(t *testing.T) {
	tests := []struct {
		name     string
		bobsAge  time.Duration // how old bob's files are when room is needed
		want     []string
		wantNote string
	}{
		{"older files exist", 30 * time.Hour, []string{"bob0", "bob1"}, "bob's old files, not alice's young ones"},
		{"every file is young", 3 * time.Hour, []string{"alice0", "alice1"}, "alice's oldest, the heaviest uploader's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			clk := newClock()
			start := clk.Now()
			up := w.newUp(uploads.Options{Now: clk.Now, MaxTotalBytes: 10 * mib, MinAge: 24 * time.Hour})
			files := map[string]chat.File{}
			for i := range 3 {
				clk.Set(start.Add(time.Duration(i) * time.Minute))
				files["bob"+string(rune('0'+i))] = w.MustSave(t, up, w.bob, mib)
			}
			// Alice stores twice as much, all of it within the last hour.
			now := start.Add(tt.bobsAge)
			for i := range 6 {
				clk.Set(now.Add(-time.Hour + time.Duration(i)*time.Minute))
				files["alice"+string(rune('0'+i))] = w.MustSave(t, up, w.user, mib)
			}
			clk.Set(now)
			// 9 MiB stored, 2 MiB arrive: 2 MiB must go.
			w.MustSave(t, up, w.bob, 2*mib)
			if got := w.expired(t, files); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("expired %v, want %v (%s)", got, tt.want, tt.wantNote)
			}
		})
	}
}

// TestUserQuota: an upload that would take a user past their quota is
// refused with a sentence naming it, as soon as it passes it, and leaves
// nothing behind; other users are not affected; up to the quota exactly is
// fine.
func TestUserQuota(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{UserQuotaBytes: mib})
	w.MustSave(t, up, w.user, 700<<10)
	_, err := w.save(up, w.user, 400<<10)
	if chat.ErrorCode(err) != chat.ETooLarge || !strings.Contains(chat.ErrorMessage(err), "your quota of 1 MB") ||
		!strings.Contains(chat.ErrorMessage(err), "700 KB") {
		t.Fatalf("over the quota: %v", err)
	}
	if left := w.files(t); len(left) != 1 {
		t.Fatalf("after the refused upload the folder holds %v", left)
	}
	if u, _ := w.st.UserFileUsage(w.ctx, w.user.ID); u.Files != 1 {
		t.Fatalf("alice has %d rows", u.Files)
	}
	w.MustSave(t, up, w.bob, 700<<10)
	w.MustSave(t, up, w.user, 324<<10) // exactly the quota
	if _, err := w.save(up, w.user, 1); chat.ErrorCode(err) != chat.ETooLarge {
		t.Fatalf("one byte past a full quota: %v", err)
	}
}

// TestUploadRate: a user may start UploadBurst uploads at once and then
// UploadsPerMinute; over it, ETooMany says when to try again. Other users
// have their own allowance.
func TestUploadRate(t *testing.T) {
	w := newWorld(t)
	clk := newClock()
	up := w.newUp(uploads.Options{Now: clk.Now, UploadsPerMinute: 6, UploadBurst: 2})
	for i := range 2 {
		if err := up.Admit(w.user.ID); err != nil {
			t.Fatalf("upload %d of the burst: %v", i, err)
		}
	}
	err := up.Admit(w.user.ID)
	var ce *chat.Error
	if !errors.As(err, &ce) || ce.Code != chat.ETooMany || ce.RetryAfter < 9*time.Second || ce.RetryAfter > 10*time.Second ||
		!strings.Contains(ce.Message, "6 a minute") {
		t.Fatalf("past the burst: %+v", err)
	}
	if err := up.Admit(w.bob.ID); err != nil {
		t.Fatalf("bob was held to alice's rate: %v", err)
	}
	clk.Set(clk.Now().Add(10 * time.Second))
	if err := up.Admit(w.user.ID); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
	if err := w.newUp(uploads.Options{}).Admit(w.user.ID); err != nil {
		t.Fatalf("without a rate: %v", err)
	}
}

// TestRemoveLeftovers: at start, unfinished uploads and stored files
// without a live row go; files with rows, and anything that is not named
// as the service names files, stay.
func TestRemoveLeftovers(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{})
	live := w.MustSave(t, up, w.user, 1000)
	gone := w.MustSave(t, up, w.user, 1000)
	// Expired, but the server stopped before removing its file.
	if ok, err := w.st.ExpireFile(w.ctx, gone.ID, time.Now()); !ok || err != nil {
		t.Fatal(err)
	}
	put := func(rel string) string {
		p := filepath.Join(w.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left over"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orphan := "cd" + strings.Repeat("0", 30) // stored, never recorded
	removed := []string{
		put("tmp/upload-123.part"), put("tmp/thumb-9.part"), // fresh: a crash, not an upload in progress
		put("cd/" + orphan), put("cd/" + orphan + "-t"),
		put(live.StorageName[:2] + "/" + live.StorageName + "-t"), // a thumbnail the row does not know
		filepath.Join(w.dir, gone.StorageName[:2], gone.StorageName),
	}
	kept := []string{
		filepath.Join(w.dir, live.StorageName[:2], live.StorageName),
		put("cd/notes.txt"),
		put("cd/" + strings.Repeat("0", 32)),       // not in the folder its name puts it in
		put("cd/CD" + strings.Repeat("0", 30)),     // upper case: not ours
		put("backup/cd" + strings.Repeat("0", 30)), // not a two-hex-digit folder
		put("cd/" + orphan + ".bak"),               // a suffix we never write
		put("zz/zz" + strings.Repeat("0", 30)),     // not a hex folder
	}
	n, err := up.RemoveLeftovers(w.ctx)
	if err != nil || n != len(removed) {
		t.Fatalf("RemoveLeftovers = %d, %v; want %d", n, err, len(removed))
	}
	for _, p := range removed {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was kept", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if _, err := up.Download(w.ctx, chat.Identity{UserID: w.user.ID}, hex.EncodeToString(live.ID), false); err != nil {
		t.Fatalf("the live file after the sweep: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "tmp")); err != nil {
		t.Fatalf("the temporary folder itself went: %v", err)
	}
}

// TestRemoveLeftoversOnASharedFolder: with several nodes on one folder, a
// node starting up leaves alone what another node may be writing now (an
// upload in progress, a file not yet recorded) and removes only what is
// older than an hour.
func TestRemoveLeftoversOnASharedFolder(t *testing.T) {
	w := newWorld(t)
	up := w.newUp(uploads.Options{Shared: true})
	put := func(rel string, age time.Duration) string {
		p := filepath.Join(w.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left over"), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orphan := "ab" + strings.Repeat("1", 30)
	busy := []string{put("tmp/upload-1.part", time.Minute), put("ab/"+orphan, time.Minute)}
	stale := []string{put("tmp/upload-2.part", 2*time.Hour), put("ab/"+orphan+"-t", 2*time.Hour)}
	n, err := up.RemoveLeftovers(w.ctx)
	if err != nil || n != len(stale) {
		t.Fatalf("RemoveLeftovers = %d, %v; want %d", n, err, len(stale))
	}
	for _, p := range busy {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s, which another node may be writing, was removed", p)
		}
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s, an hour old, was kept", p)
		}
	}
}
