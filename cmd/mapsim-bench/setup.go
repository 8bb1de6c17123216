package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// user is one account of the run.
type user struct {
	name string
	mu   sync.Mutex
	tok  string
}

// tokenFile keeps access tokens between runs against the same database, so
// that a second scenario does not pay argon2 for every login again, even
// after the server restarts on another port. A token the server no longer
// takes is replaced by a fresh login. The file is written with mode 0600 and
// belongs in the git-ignored bench/out/.
type tokenFile struct {
	Server string            `json:"server"` // the last server that used it, for people
	Tokens map[string]string `json:"tokens"`
}

func (b *bench) loadTokens() map[string]string {
	if b.cfg.tokenFile == "" {
		return nil
	}
	raw, err := os.ReadFile(b.cfg.tokenFile)
	if err != nil {
		return nil
	}
	var tf tokenFile
	if json.Unmarshal(raw, &tf) != nil {
		return nil
	}
	return tf.Tokens
}

func (b *bench) saveTokens() error {
	if b.cfg.tokenFile == "" {
		return nil
	}
	tf := tokenFile{Server: b.cfg.url.String(), Tokens: b.loadTokens()}
	if tf.Tokens == nil {
		tf.Tokens = map[string]string{}
	}
	for _, u := range b.users {
		u.mu.Lock()
		if u.tok != "" {
			tf.Tokens[u.name] = u.tok
		}
		u.mu.Unlock()
	}
	raw, _ := json.Marshal(tf)
	if err := os.MkdirAll(filepath.Dir(b.cfg.tokenFile), 0o700); err != nil {
		return err
	}
	tmp := b.cfg.tokenFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, b.cfg.tokenFile)
}

// token returns a user's access token, logging in when there is none.
func (b *bench) token(ctx context.Context, u *user) (string, error) {
	u.mu.Lock()
	tok := u.tok
	u.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	return b.relogin(ctx, u)
}

func (b *bench) relogin(ctx context.Context, u *user) (string, error) {
	tok, err := b.api.login(ctx, u.name, b.cfg.password)
	if err != nil {
		return "", fmt.Errorf("log in %s: %w", u.name, err)
	}
	u.mu.Lock()
	u.tok = tok
	u.mu.Unlock()
	return tok, nil
}

// setupUsers makes sure every user of the run exists and has a token:
// from the token file when it has one, otherwise register (an existing
// name is fine: users are reused across runs under the same -prefix) and
// log in. Each costs the server an argon2 hash, so this runs on a bounded
// pool and shows its progress.
func (b *bench) setupUsers(ctx context.Context) error {
	cached := b.loadTokens()
	var todo []*user
	for _, u := range b.users {
		if t := cached[u.name]; t != "" {
			u.tok = t
		} else {
			todo = append(todo, u)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(b.log, "users: %d from %s\n", len(b.users), b.cfg.tokenFile)
		return nil
	}
	b.loggedIn = len(todo)
	fmt.Fprintf(b.log, "users: registering and logging in %d (argon2 on the server: about %.0f s on 2 cores)\n",
		len(todo), float64(len(todo))*2*0.04/2)
	var (
		next, done atomic.Int64
		firstErr   error
		errOnce    sync.Once
		wg         sync.WaitGroup
	)
	progress := b.progress("users ready", len(todo), &done)
	for w := 0; w < b.cfg.setupConcurrency; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(todo) || ctx.Err() != nil {
					return
				}
				u := todo[i]
				err := b.api.register(ctx, u.name, b.cfg.password)
				if err == nil {
					_, err = b.relogin(ctx, u)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("user %s: %w", u.name, err) })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	progress()
	if firstErr != nil {
		var ae *apiError
		if errors.As(firstErr, &ae) && ae.Status == 401 {
			return fmt.Errorf("%w (users named %s… exist with another password: use another -prefix or the same -password)", firstErr, b.cfg.prefix)
		}
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.saveTokens()
}

// planRooms splits clients into rooms of sizes drawn from [lo, hi] (a
// fixed seed, so a run is repeatable); the last room takes what is left.
func planRooms(clients, lo, hi int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 1))
	var sizes []int
	left := clients
	for left > 0 {
		n := lo
		if hi > lo {
			n += rng.IntN(hi - lo + 1)
		}
		n = min(n, left)
		sizes = append(sizes, n)
		left -= n
	}
	return sizes
}

// createRooms creates one group chat per room through the API, owned by
// its first member's user, and records where members sync from.
func (b *bench) createRooms(ctx context.Context) error {
	if len(b.rooms) == 0 {
		return nil
	}
	var (
		next, done atomic.Int64
		firstErr   error
		errOnce    sync.Once
		wg         sync.WaitGroup
	)
	progress := b.progress("rooms created", len(b.rooms), &done)
	defer progress()
	for w := 0; w < min(16, len(b.rooms)); w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(b.rooms) || ctx.Err() != nil {
					return
				}
				if err := b.createRoom(ctx, b.rooms[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (b *bench) createRoom(ctx context.Context, r *room) error {
	owner := r.owner
	var others []string
	seen := map[string]bool{owner.name: true}
	for _, u := range r.users {
		if !seen[u.name] {
			seen[u.name] = true
			others = append(others, u.name)
		}
	}
	tok, err := b.token(ctx, owner)
	if err != nil {
		return err
	}
	first := others[:min(len(others), chat.MaxAddAtOnce)]
	info, err := b.api.createGroup(ctx, tok, fmt.Sprintf("bench %s room %d", b.run, r.idx), first)
	if err != nil {
		return fmt.Errorf("create room %d: %w", r.idx, err)
	}
	for rest := others[len(first):]; len(rest) > 0; {
		n := min(len(rest), chat.MaxAddAtOnce)
		if info, err = b.api.addMembers(ctx, tok, info.Name, rest[:n]); err != nil {
			return fmt.Errorf("add members to room %d: %w", r.idx, err)
		}
		rest = rest[n:]
	}
	r.name, r.id = info.Name, info.ID
	if info.LastMessageID != nil {
		r.afterID = *info.LastMessageID
	}
	for _, c := range r.members {
		c.lastID = r.afterID
	}
	for _, c := range r.senders {
		c.lastID = r.afterID
	}
	return nil
}

// progress prints "what: done/total" to the log every 2 s until the
// returned function is called.
func (b *bench) progress(what string, total int, done *atomic.Int64) func() {
	stop := make(chan struct{})
	var once sync.Once
	start := time.Now()
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(b.log, "  %s: %d/%d (%.0f s)\n", what, done.Load(), total, time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		once.Do(func() {
			close(stop)
			fmt.Fprintf(b.log, "  %s: %d/%d in %.1f s\n", what, done.Load(), total, time.Since(start).Seconds())
		})
	}
}
