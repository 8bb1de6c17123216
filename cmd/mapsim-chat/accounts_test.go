package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// from returns the header a trusted proxy sends for a client at addr.
func from(addr string) http.Header {
	return http.Header{"X-Forwarded-For": {addr}}
}

// TestRegistrationPerAddress: with the default REGISTRATION_PER_HOUR, one
// address creates five accounts and is then told when to come back; a
// refused registration does not count, and another address (as a trusted
// proxy reports it) is not affected.
func TestRegistrationPerAddress(t *testing.T) {
	env := baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"})
	delete(env, "REGISTRATION_PER_HOUR")
	srv := MustStart(t, env)
	register := func(name, addr string) apiResponse {
		return srv.callWith(t, "POST", "/register/", "", from(addr), url.Values{"username": {name}, "password": {testPassword}})
	}
	const neighbour = "198.51.100.7"

	if r := srv.call(t, "POST", "/register/", "", url.Values{"username": {"weak"}, "password": {"password123"}}); r.Status != http.StatusBadRequest {
		t.Fatalf("a weak password: %d %s", r.Status, r.Raw)
	}
	for i := range 5 {
		if r := srv.call(t, "POST", "/register/", "", url.Values{"username": {fmt.Sprint("user", i)}, "password": {testPassword}}); r.Status != http.StatusCreated {
			t.Fatalf("account %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	r := srv.call(t, "POST", "/register/", "", url.Values{"username": {"user5"}, "password": {testPassword}})
	wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != http.StatusTooManyRequests || r.str("code") != "too_many" || wait < 1 || wait > 12*60 ||
		!strings.Contains(r.str("detail"), "from your address") {
		t.Fatalf("the sixth account: %d, Retry-After %q, %s", r.Status, r.Header.Get("Retry-After"), r.Raw)
	}
	if r := register("neighbour", neighbour); r.Status != http.StatusCreated {
		t.Fatalf("another address: %d %s", r.Status, r.Raw)
	}
	if r := srv.call(t, "POST", "/login/", "", url.Values{"username": {"user5"}, "password": {testPassword}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("the refused account can log in: %d %s", r.Status, r.Raw)
	}
}

// TestLoginGuesserCannotLockOwnerOut: six wrong passwords from one address
// lock the account out there, not from the owner's address.
func TestLoginGuesserCannotLockOwnerOut(t *testing.T) {
	srv := MustStart(t, baseEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"}))
	srv.MustUser(t, "dora")
	const guesser, owner = "203.0.113.9", "198.51.100.2"
	login := func(addr, password string) apiResponse {
		return srv.callWith(t, "POST", "/login/", "", from(addr), url.Values{"username": {"dora"}, "password": {password}})
	}
	for i := range 6 {
		if r := login(guesser, fmt.Sprint("guess-", i)); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if r := login(guesser, testPassword); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "30" {
		t.Fatalf("the right password from the guesser's address: %d, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if r := login(owner, testPassword); r.Status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("the owner from home: %d %s", r.Status, r.Raw)
	}
}

// TestTicketsPerSession: a session asking for more than 16 tickets loses
// its oldest; its newest opens a WebSocket.
func TestTicketsPerSession(t *testing.T) {
	srv := MustStart(t, baseEnv(t, nil))
	tok := srv.MustUser(t, "tina")
	var tickets []string
	for i := range 17 {
		r := srv.call(t, "POST", "/ws-ticket/", tok, nil)
		if r.Status != http.StatusOK || r.str("ticket") == "" {
			t.Fatalf("ticket %d: %d %s", i+1, r.Status, r.Raw)
		}
		tickets = append(tickets, r.str("ticket"))
	}
	if _, err := srv.dial(t, "ticket="+url.QueryEscape(tickets[0]), nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the evicted ticket: %v", err)
	}
	c, err := srv.dial(t, "ticket="+url.QueryEscape(tickets[16]), nil)
	if err != nil {
		t.Fatalf("the newest ticket: %v", err)
	}
	c.nextType("hello")
}
