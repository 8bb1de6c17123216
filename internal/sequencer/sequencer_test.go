package sequencer_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
)

// journal records, in order, what the committer committed and what the
// publisher published.
type journal struct {
	mu        sync.Mutex
	commits   [][]int // each commit's items (a Work is a commit of one)
	published []int
}

func (j *journal) commit(items []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.commits = append(j.commits, slices.Clone(items))
}

func (j *journal) publish(items ...int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.published = append(j.published, items...)
}

func (j *journal) snapshot() ([][]int, []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.commits), slices.Clone(j.published)
}

// gate is a Work that commits only once released, so that a test can fill
// the queue behind it.
type gate struct {
	id       int
	j        *journal
	entered  chan struct{}
	release  chan struct{}
	answered chan sequencer.Result[int]
}

func newGate(j *journal, id int) *gate {
	return &gate{id: id, j: j, entered: make(chan struct{}), release: make(chan struct{}), answered: sequencer.Reply[int]()}
}

func (g *gate) Commit(ctx context.Context) sequencer.Publication {
	close(g.entered)
	<-g.release
	g.j.commit([]int{g.id})
	return func(context.Context) {
		g.j.publish(g.id)
		g.answered <- sequencer.Result[int]{Value: g.id}
	}
}

// single is a Work that commits at once.
type single struct {
	id int
	j  *journal
}

func (w single) Commit(ctx context.Context) sequencer.Publication {
	w.j.commit([]int{w.id})
	return func(context.Context) { w.j.publish(w.id) }
}

// MustRun starts s and stops it at the end of the test.
func MustRun(tb testing.TB, s *sequencer.Sequencer) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	tb.Cleanup(stop)
	return stop
}

// MustSubmit submits work and fails the test on error.
func MustSubmit(tb testing.TB, s *sequencer.Sequencer, w sequencer.Work) {
	tb.Helper()
	if err := s.Submit(context.Background(), w); err != nil {
		tb.Fatalf("submit: %v", err)
	}
}

// newBatch returns a batch of ints that journals each commit and each item's
// publication; fail, if set, fails a group holding it.
func newBatch(s *sequencer.Sequencer, j *journal, max int, fail func(items []int) error, answers map[int]chan sequencer.Result[int]) *sequencer.Batch[int] {
	return sequencer.NewBatch(s, max, func(ctx context.Context, items []int) sequencer.Publication {
		if fail != nil {
			if err := fail(items); err != nil {
				for _, it := range items {
					if ch := answers[it]; ch != nil {
						ch <- sequencer.Result[int]{Err: err}
					}
				}
				return nil
			}
		}
		j.commit(items)
		items = slices.Clone(items) // the batch reuses its buffer
		return func(context.Context) {
			j.publish(items...)
			for _, it := range items {
				if ch := answers[it]; ch != nil {
					ch <- sequencer.Result[int]{Value: it}
				}
			}
		}
	})
}

// waitFor waits until cond holds, failing the test after a generous bound.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatchGroupsWhatIsQueued(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		items  int
		groups [][]int
	}{
		{"all in one", 16, 10, [][]int{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}},
		{"split at the maximum", 4, 10, [][]int{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}}},
		{"one", 4, 1, [][]int{{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			s := sequencer.New(sequencer.Options{QueueDepth: 64, PublishDepth: 8})
			b := newBatch(s, j, tt.max, nil, nil)
			MustRun(t, s)
			// Hold the committer so the items queue up behind it.
			g := newGate(j, 0)
			MustSubmit(t, s, g)
			<-g.entered
			for i := 1; i <= tt.items; i++ {
				if err := b.Submit(context.Background(), i); err != nil {
					t.Fatal(err)
				}
			}
			close(g.release)
			waitFor(t, "every item published", func() bool { _, p := j.snapshot(); return len(p) == tt.items+1 })
			commits, published := j.snapshot()
			if want := append([][]int{{0}}, tt.groups...); !slices.EqualFunc(commits, want, slices.Equal) {
				t.Fatalf("commits %v, want %v", commits, want)
			}
			if !slices.IsSorted(published) {
				t.Fatalf("published out of order: %v", published)
			}
		})
	}
}

// Work of another kind between two batch items ends the first batch: every
// piece commits and publishes in the order it was submitted.
func TestOrderIsSubmissionOrder(t *testing.T) {
	j := &journal{}
	s := sequencer.New(sequencer.Options{QueueDepth: 64, PublishDepth: 8})
	b := newBatch(s, j, 100, nil, nil)
	MustRun(t, s)
	g := newGate(j, 0)
	MustSubmit(t, s, g)
	<-g.entered
	ctx := context.Background()
	b.Submit(ctx, 1)
	b.Submit(ctx, 2)
	MustSubmit(t, s, single{3, j})
	b.Submit(ctx, 4)
	MustSubmit(t, s, single{5, j})
	MustSubmit(t, s, single{6, j})
	b.Submit(ctx, 7)
	b.Submit(ctx, 8)
	close(g.release)
	waitFor(t, "every item published", func() bool { _, p := j.snapshot(); return len(p) == 9 })
	commits, published := j.snapshot()
	want := [][]int{{0}, {1, 2}, {3}, {4}, {5}, {6}, {7, 8}}
	if !slices.EqualFunc(commits, want, slices.Equal) {
		t.Fatalf("commits %v, want %v", commits, want)
	}
	if !slices.Equal(published, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("published %v", published)
	}
}

// The committer goes on while a publication is slow: publishing is
// pipelined, and still in commit order.
func TestPublisherRunsBesideTheCommitter(t *testing.T) {
	j := &journal{}
	s := sequencer.New(sequencer.Options{QueueDepth: 64, PublishDepth: 8})
	MustRun(t, s)
	slow := make(chan struct{})
	MustSubmit(t, s, publishing{id: 1, j: j, wait: slow})
	MustSubmit(t, s, single{2, j})
	MustSubmit(t, s, single{3, j})
	waitFor(t, "the later work committed while the first publication waits", func() bool {
		c, _ := j.snapshot()
		return len(c) == 3
	})
	if _, p := j.snapshot(); len(p) != 0 {
		t.Fatalf("published %v before the first publication", p)
	}
	close(slow)
	waitFor(t, "all published", func() bool { _, p := j.snapshot(); return len(p) == 3 })
	if _, p := j.snapshot(); !slices.Equal(p, []int{1, 2, 3}) {
		t.Fatalf("published %v", p)
	}
}

// publishing is a Work whose publication waits for a channel.
type publishing struct {
	id   int
	j    *journal
	wait chan struct{}
}

func (w publishing) Commit(ctx context.Context) sequencer.Publication {
	w.j.commit([]int{w.id})
	return func(context.Context) {
		<-w.wait
		w.j.publish(w.id)
	}
}

// A group that fails answers its own items with the error; the groups
// before and after it commit.
func TestFailedGroupFailsOnlyItsOwn(t *testing.T) {
	j := &journal{}
	s := sequencer.New(sequencer.Options{QueueDepth: 64, PublishDepth: 8})
	answers := map[int]chan sequencer.Result[int]{}
	for i := 1; i <= 6; i++ {
		answers[i] = sequencer.Reply[int]()
	}
	errBroken := chat.Errorf(chat.EInvalid, "broken")
	b := newBatch(s, j, 100, func(items []int) error {
		if slices.Contains(items, 4) {
			return errBroken
		}
		return nil
	}, answers)
	MustRun(t, s)
	ctx := context.Background()
	for _, group := range [][]int{{1, 2}, {3, 4}, {5, 6}} {
		g := newGate(j, 0)
		MustSubmit(t, s, g)
		<-g.entered
		for _, it := range group {
			b.Submit(ctx, it)
		}
		close(g.release)
		for _, it := range group {
			v, err := sequencer.Await(ctx, s, answers[it])
			switch {
			case it == 3 || it == 4:
				if !errors.Is(err, errBroken) {
					t.Fatalf("item %d of the broken group: %v, %v", it, v, err)
				}
			case err != nil || v != it:
				t.Fatalf("item %d: %v, %v", it, v, err)
			}
		}
	}
	if _, p := j.snapshot(); !slices.Equal(p, []int{0, 1, 2, 0, 0, 5, 6}) {
		t.Fatalf("published %v", p)
	}
}

// At shutdown everything queued is still committed and published, and a
// submission either is refused or commits: none is lost in between, even
// from submitters blocked on a full queue when the end comes.
func TestShutdownDrains(t *testing.T) {
	j := &journal{}
	s := sequencer.New(sequencer.Options{QueueDepth: 4, PublishDepth: 1})
	const n = 40
	answers := map[int]chan sequencer.Result[int]{}
	for i := 1; i <= n; i++ {
		answers[i] = sequencer.Reply[int]()
	}
	b := newBatch(s, j, 3, nil, answers)
	stop := MustRun(t, s)
	g := newGate(j, 0)
	MustSubmit(t, s, g)
	<-g.entered
	// The queue takes 4; the other submitters block on it.
	ctx := context.Background()
	submitted := make([]error, n+1)
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Go(func() { submitted[i] = b.Submit(ctx, i) })
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	close(g.release)
	wg.Wait()
	<-stopped
	select {
	case <-s.Stopped():
	default:
		t.Fatal("Stopped not closed after Run returned")
	}
	var want []int
	for i := 1; i <= n; i++ {
		switch err := submitted[i]; {
		case err == nil:
			want = append(want, i)
			if v, err := sequencer.Await(ctx, s, answers[i]); err != nil || v != i {
				t.Fatalf("item %d, queued before the end, answered %v, %v", i, v, err)
			}
		case !errors.Is(err, sequencer.ErrStopped):
			t.Fatalf("item %d refused with %v", i, err)
		}
	}
	if len(want) < 4 {
		t.Fatalf("only %d submissions were taken; the queue alone holds 4", len(want))
	}
	_, published := j.snapshot()
	slices.Sort(want)
	if got := published[1:]; !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("published %v, want exactly the %d taken: %v", got, len(want), want)
	}
	if err := s.Submit(ctx, single{7, j}); !errors.Is(err, sequencer.ErrStopped) {
		t.Fatalf("submit after stop: %v", err)
	}
}

// Await gives up with the caller's context, and reports ErrStopped for work
// that a stopped sequencer never answered.
func TestAwait(t *testing.T) {
	s := sequencer.New(sequencer.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sequencer.Await(ctx, s, sequencer.Reply[int]()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	stop := MustRun(t, s)
	stop()
	if _, err := sequencer.Await(context.Background(), s, sequencer.Reply[int]()); !errors.Is(err, sequencer.ErrStopped) {
		t.Fatalf("stopped: %v", err)
	}
}
