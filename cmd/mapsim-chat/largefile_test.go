package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader yields size bytes: a 1 MiB random block, repeated, with
// the block number stamped into each copy so that no two blocks match.
type patternReader struct {
	block []byte
	off   int64
	size  int64
}

func newPatternReader(size int64) *patternReader {
	block := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(block)
	return &patternReader{block: block, size: size}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := len(b)
	if rest := p.size - p.off; int64(n) > rest {
		n = int(rest)
	}
	done := 0
	for done < n {
		i := int((p.off + int64(done)) % int64(len(p.block)))
		c := copy(b[done:n], p.block[i:])
		if i == 0 && c >= 8 {
			copy(b[done:done+8], fmt.Appendf(nil, "%08x", (p.off+int64(done))>>20))
		}
		done += c
	}
	p.off += int64(n)
	return n, nil
}

// heapWatch samples the in-use heap of this process (server and client
// together) until stopped, and keeps the peak.
type heapWatch struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchHeap() *heapWatch {
	h := &heapWatch{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapWatch) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

// TestLargeFileConstantMemory uploads and downloads a 1 GiB file over
// loopback: it arrives intact, and the heap stays small on the way in and
// on the way out, whatever the file's size.
func TestLargeFileConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload skipped in -short mode")
	}
	const size = 1 << 30
	env := baseEnv(t, map[string]string{"UPLOAD_MAX_FILE_MB": "1100", "UPLOAD_MAX_SIZE_GB": "2"})
	srv := MustStart(t, env)
	tok := srv.MustUser(t, "big")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	want := sha256.New()
	watch := watchHeap()
	start := time.Now()
	r := srv.upload(t, tok, "", "big.bin", "application/octet-stream", io.TeeReader(newPatternReader(size), want))
	upPeak := watch.Stop()
	upTime := time.Since(start)
	if r.Status != http.StatusCreated || int64(r.Body["size"].(float64)) != size {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}

	watch = watchHeap()
	start = time.Now()
	req, _ := http.NewRequest("GET", srv.URL+r.str("file_url"), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	downPeak := watch.Stop()
	downTime := time.Since(start)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("download: %d bytes, %v, digest match %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	t.Logf("1 GiB up in %v (heap peak %d MiB), down in %v (heap peak %d MiB); heap before %d MiB",
		upTime.Round(time.Millisecond), upPeak>>20, downTime.Round(time.Millisecond), downPeak>>20, base.HeapInuse>>20)
	const limit = 64 << 20
	if upPeak > base.HeapInuse+limit || downPeak > base.HeapInuse+limit {
		t.Fatalf("heap grew by more than 64 MiB while moving 1 GiB: up %d MiB, down %d MiB", upPeak>>20, downPeak>>20)
	}
}
