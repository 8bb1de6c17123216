package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// machineSample is what settle watches: the machine's CPU time and its page
// cache not yet on disk.
type machineSample struct {
	busy, all int64 // clock ticks over every CPU since boot: not idle nor waiting for I/O, and in all
	dirtyKiB  int64 // Dirty + Writeback in /proc/meminfo
}

// The machine is quiet when under a tenth of its CPUs is busy over a
// second and under 32 MiB of the page cache waits to be written back.
const (
	quietBusy     = 0.10
	quietDirtyKiB = 32 << 10
)

// parseStat reads the "cpu" line of /proc/stat: user, nice, system, idle,
// iowait, irq, softirq, steal… Idle and iowait are not busy.
func parseStat(b []byte) (busy, all int64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		all += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, all, nil
}

// parseDirty sums Dirty and Writeback (kB) in /proc/meminfo.
func parseDirty(b []byte) (int64, error) {
	var kib int64
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "Dirty" && k != "Writeback") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo %s: %w", k, err)
		}
		kib += n
		seen++
	}
	if seen != 2 {
		return 0, errors.New("/proc/meminfo: no Dirty and Writeback lines")
	}
	return kib, nil
}

func readMachine() (machineSample, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSample{}, err
	}
	mem, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return machineSample{}, err
	}
	var s machineSample
	if s.busy, s.all, err = parseStat(stat); err != nil {
		return s, err
	}
	s.dirtyKiB, err = parseDirty(mem)
	return s, err
}

// quiet says whether the machine was quiet from a to b.
func quiet(a, b machineSample) bool {
	all := b.all - a.all
	if all <= 0 {
		return false
	}
	return float64(b.busy-a.busy)/float64(all) < quietBusy && b.dirtyKiB < quietDirtyKiB
}

// settle waits, for at most timeout, until the machine has been quiet for a
// second: after a fill of millions of messages the server, the database and
// the kernel go on writing for a while (SQLite's checkpoints, InnoDB's
// flushing, dirty pages going back to disk), and pages timed meanwhile
// measure that, not a page. It reports how long it waited and whether the
// machine went quiet.
func settle(ctx context.Context, timeout time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	prev, err := readMachine()
	if err != nil {
		return 0, false, err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Since(start), false, ctx.Err()
		case <-deadline.C:
			return time.Since(start), false, nil
		case <-tick.C:
		}
		cur, err := readMachine()
		if err != nil {
			return time.Since(start), false, err
		}
		if quiet(prev, cur) {
			return time.Since(start), true, nil
		}
		prev = cur
	}
}
