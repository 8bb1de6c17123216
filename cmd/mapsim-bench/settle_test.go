package main

import (
	"context"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	busy, all, err := parseStat([]byte("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || busy != 160 || all != 1000 {
		t.Fatalf("busy %d, all %d, %v; want 160 (user, nice, system, irq, softirq, steal…) and 1000", busy, all, err)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu  1 2 x 4 5\n", "cpu 1 2\n"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) took it", bad)
		}
	}
}

func TestParseDirty(t *testing.T) {
	kib, err := parseDirty([]byte("MemTotal: 100 kB\nDirty:            1200 kB\nWriteback:          34 kB\nWritebackTmp: 9 kB\n"))
	if err != nil || kib != 1234 {
		t.Fatalf("%d, %v; want 1234 (Dirty + Writeback, not WritebackTmp)", kib, err)
	}
	if _, err := parseDirty([]byte("MemTotal: 100 kB\nDirty: 5 kB\n")); err == nil {
		t.Fatal("took /proc/meminfo without Writeback")
	}
}

func TestQuiet(t *testing.T) {
	a := machineSample{busy: 1000, all: 10000}
	for _, c := range []struct {
		b    machineSample
		want bool
	}{
		{machineSample{busy: 1010, all: 10200}, true},                      // 5 % busy, nothing dirty
		{machineSample{busy: 1030, all: 10200}, false},                     // 15 % busy
		{machineSample{busy: 1010, all: 10200, dirtyKiB: 64 << 10}, false}, // 64 MiB to write back
		{machineSample{busy: 1000, all: 10000}, false},                     // no time passed
	} {
		if got := quiet(a, c.b); got != c.want {
			t.Errorf("quiet(%+v, %+v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

// settle reads this machine's /proc and ends by its bound at the latest.
func TestSettleIsBounded(t *testing.T) {
	took, _, err := settle(context.Background(), 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if took > 10*time.Second {
		t.Fatalf("settle took %s with a 1.5 s bound", took)
	}
	// A bound shorter than the first one-second sample ends the wait
	// before the machine can be found quiet, however quiet it is.
	took, ok, err := settle(context.Background(), 100*time.Millisecond)
	if err != nil || ok || took >= time.Second {
		t.Fatalf("settle with a 0.1 s bound: %s, quiet %v, %v; want under 1 s, not quiet", took, ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok, err := settle(ctx, time.Minute); ok || err == nil {
		t.Fatalf("settle with a cancelled context: %v, %v", ok, err)
	}
}
