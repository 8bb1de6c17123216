package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procSample is what /proc says about a process at one moment.
type procSample struct {
	at       time.Time
	rssKiB   int64
	threads  int64
	cpuTicks int64 // user + system, in clock ticks (USER_HZ, 100 on Linux)
	fds      int64
}

// userHZ is Linux's clock tick for /proc times; it is 100 on every
// architecture Go supports there.
const userHZ = 100

// readProc samples /proc/<pid> ("self" for the tool).
func readProc(pid string) (procSample, error) {
	s := procSample{at: time.Now()}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssKiB = n
		case "Threads":
			s.threads = n
		}
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		f := strings.Fields(string(stat[i+1:]))
		// f[0] is field 3 (state); utime and stime are fields 14 and 15.
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			s.cpuTicks = ut + st
		}
	}
	if ents, err := os.ReadDir("/proc/" + pid + "/fd"); err == nil {
		s.fds = int64(len(ents))
	}
	return s, nil
}

// cpuPercent is the CPU a process used between two samples, in percent of
// one core.
func cpuPercent(a, b procSample) float64 {
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(b.cpuTicks-a.cpuTicks) / userHZ / d * 100
}

// sampler samples the server and the tool every second for the plots and
// the peaks.
type sampler struct {
	pid     string // "" when no -server-pid was given
	mu      sync.Mutex
	server  []procSample
	tool    []procSample
	maxRSS  int64
	lastErr error
}

func (s *sampler) sample() {
	tool, _ := readProc("self")
	var srv procSample
	var err error
	if s.pid != "" {
		srv, err = readProc(s.pid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tool = append(s.tool, tool)
	if s.pid == "" {
		return
	}
	if err != nil {
		s.lastErr = err
		return
	}
	s.server = append(s.server, srv)
	s.maxRSS = max(s.maxRSS, srv.rssKiB)
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample()
		}
	}
}

// between returns the first and last samples taken within [from, to].
func between(samples []procSample, from, to time.Time) (a, b procSample, ok bool) {
	for _, s := range samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		if !ok {
			a, ok = s, true
		}
		b = s
	}
	return a, b, ok && b.at.After(a.at)
}

// goroutineLine starts each goroutine in a Go traceback
// ("goroutine 7 [select]:", or with GOTRACEBACK=all in recent Go
// "goroutine 7 gp=0xc000… m=nil [select]:").
var goroutineLine = regexp.MustCompile(`(?m)^goroutine \d+ (?:\S+=\S+ )*\[`)

// dumpGoroutines ends the server with SIGQUIT, which makes the Go runtime
// print every goroutine's stack to its standard error, waits for it to exit,
// and counts the goroutines in its log: all of them, and those running hub
// code (the per-connection ones). The server has no /metrics or pprof
// endpoint, so this is the only way to see its goroutines without changing
// it. The caller opted in with -goroutine-dump.
func dumpGoroutines(pid int, logPath string) (total, hub int, err error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return 0, 0, err
	}
	before, _ := os.Stat(logPath)
	if err := p.Signal(syscall.SIGQUIT); err != nil {
		return 0, 0, fmt.Errorf("SIGQUIT to %d: %w", pid, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			break
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && bytes.Contains(st, []byte(") Z ")) {
			break // exited; its parent has not reaped it yet
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("server %d still running 60 s after SIGQUIT", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0, err
	}
	if before != nil && int64(len(data)) > before.Size() {
		data = data[before.Size():]
	}
	blocks := goroutineLine.FindAllIndex(data, -1)
	for i, loc := range blocks {
		end := len(data)
		if i+1 < len(blocks) {
			end = blocks[i+1][0]
		}
		if bytes.Contains(data[loc[0]:end], []byte("/internal/hub.")) {
			hub++
		}
	}
	return len(blocks), hub, nil
}
