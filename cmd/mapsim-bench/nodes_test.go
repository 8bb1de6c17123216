package main

import (
	"io"
	"strings"
	"testing"

	"github.com/mapsim/mapsim-chat/internal/testutil/redistest"
)

func TestURLRepeatedSpreadsOverNodes(t *testing.T) {
	cfg, err := parseFlags([]string{"-scenario", "fanout", "-url", "http://127.0.0.1:8001", "-url", "http://127.0.0.2:8002/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.nodes) != 2 || cfg.nodes[1].String() != "http://127.0.0.2:8002" || cfg.url != cfg.nodes[0] {
		t.Fatalf("nodes %v, url %v", cfg.nodes, cfg.url)
	}
	cfg, err = parseFlags([]string{"-scenario", "fanout"}, io.Discard)
	if err != nil || len(cfg.nodes) != 1 || cfg.url.String() != "http://127.0.0.1:8000" {
		t.Fatalf("default: %v %v", cfg.nodes, err)
	}
	_, err = parseFlags([]string{"-scenario", "fanout", "-url", "http://127.0.0.1:8001", "-url", "http://example.com:80"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "example.com") {
		t.Fatalf("a second -url off loopback: %v", err)
	}
}

func TestRedisCPU(t *testing.T) {
	srv := redistest.Start(t)
	cpu, err := redisCPU(srv.Addr())
	if err != nil || cpu < 0 {
		t.Fatalf("redisCPU = %v, %v", cpu, err)
	}
	srv.Kill()
	if _, err := redisCPU(srv.Addr()); err == nil {
		t.Fatal("no error with Redis gone")
	}
}
