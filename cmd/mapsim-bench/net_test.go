package main

import (
	"net/netip"
	"slices"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000"},
		{"http://127.0.0.1:8000/", "http://127.0.0.1:8000"},
		{"http://127.1.2.3:9", "http://127.1.2.3:9"},
		{"http://localhost:8000", "http://127.0.0.1:8000"},
		{"http://127.0.0.1", "http://127.0.0.1:80"},
		{"http://10.0.0.1:8000", ""},
		{"http://192.168.1.10:8000", ""},
		{"http://0.0.0.0:8000", ""},
		{"http://[::1]:8000", ""},
		{"http://example.com:8000", ""},
		{"http://127.0.0.1.example.com:8000", ""},
		{"http://localhost.evil.com", ""},
		{"https://127.0.0.1:8000", ""},
		{"ws://127.0.0.1:8000", ""},
		{"127.0.0.1:8000", ""},
		{"http://user:pw@127.0.0.1:8000", ""},
		{"http://127.0.0.1:8000/api", ""},
		{"http://127.0.0.1:99999", ""},
		{"http://128.0.0.1:8000", ""},
	} {
		u, err := checkURL(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q accepted as %s; it must be refused", tc.in, u)
		case tc.want != "" && err != nil:
			t.Errorf("%q refused: %v", tc.in, err)
		case tc.want != "" && u.String() != tc.want:
			t.Errorf("%q became %s, want %s", tc.in, u, tc.want)
		}
	}
}

func TestParseSourceAddrs(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		in   string
		want []netip.Addr // nil: refused
	}{
		{"127.0.0.1", addrs("127.0.0.1")},
		{"127.0.0.1-127.0.0.4", addrs("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")},
		{"127.0.0.1-127.0.0.2, 127.0.5.9", addrs("127.0.0.1", "127.0.0.2", "127.0.5.9")},
		{"127.0.0.1-127.0.0.3,127.0.0.2", addrs("127.0.0.1", "127.0.0.2", "127.0.0.3")}, // duplicates once
		{"127.0.0.250-127.0.0.255", addrs("127.0.0.250", "127.0.0.251", "127.0.0.252", "127.0.0.253", "127.0.0.254", "127.0.0.255")},
		{"127.0.0.7-127.0.0.7", addrs("127.0.0.7")},
		{"", nil},
		{"127.0.0.8-127.0.0.1", nil}, // downwards
		{"127.0.0.1-127.0.1.1", nil}, // more than the last number
		{"10.0.0.1", nil},            // not loopback
		{"127.0.0.1-10.0.0.1", nil},  // range leaves loopback
		{"::1", nil},                 // loopback, but not 127.x
		{"127.0.0.1-", nil},          // half a range
		{"localhost", nil},           // addresses only
		{"127.0.0.1-127.0.0.255,127.0.1.0-127.0.1.255", nil}, // over the cap
	} {
		got, err := parseSourceAddrs(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q accepted as %v", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"5-10", 5, 10, true}, {"7", 7, 7, true}, {" 1-1 ", 1, 1, true},
		{"10-5", 0, 0, false}, {"0", 0, 0, false}, {"a-b", 0, 0, false}, {"5-", 0, 0, false}, {"1-100001", 0, 0, false},
	} {
		lo, hi, err := parseRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("%q: %d-%d %v", tc.in, lo, hi, err)
		}
	}
}
