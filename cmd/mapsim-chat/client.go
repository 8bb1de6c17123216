package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// runChat is a small terminal client: it logs in, opens a WebSocket with a
// ticket, prints the chat's recent history and every message that arrives,
// and sends each line typed. The first line of standard input is the
// password, unless MAPSIM_CHAT_PASSWORD is set; from a terminal it is asked
// for on stderr and typed without echo.
func runChat(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stdout)
	server := fs.String("url", "http://127.0.0.1:8000", "the server's address")
	username := fs.String("username", "", "who to log in as")
	chatName := fs.String("chat", "global", "the chat to open")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the usage is printed; asking for it is no failure
		}
		return err
	}
	if *username == "" {
		return errors.New("chat: -username is required")
	}
	base, err := url.Parse(strings.TrimRight(*server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") {
		return fmt.Errorf("chat: -url must be http://… or https://…")
	}
	in := bufio.NewReader(stdin)
	password := getenv("MAPSIM_CHAT_PASSWORD")
	if password == "" {
		if password, err = readPassword(ctx, in, stdin, stderr, *username); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C at the prompt
			}
			return err
		}
	}

	var login struct {
		AccessToken string `json:"access_token"`
		Detail      string `json:"detail"`
	}
	if err := postJSON(ctx, base.String()+"/login/", "", map[string]string{"username": *username, "password": password}, &login); err != nil {
		return err
	}
	var ticket struct {
		Ticket string `json:"ticket"`
		Detail string `json:"detail"`
	}
	if err := postJSON(ctx, base.String()+"/ws-ticket/", login.AccessToken, nil, &ticket); err != nil {
		return err
	}
	var history struct {
		Messages []chatLine `json:"messages"`
	}
	if err := getJSON(ctx, base.String()+"/messages/?limit=20&chat_id="+url.QueryEscape(*chatName), login.AccessToken, &history); err != nil {
		return err
	}
	var lastID int64
	for _, m := range history.Messages {
		m.print(stdout)
		lastID = m.ID
	}

	wsURL := *base
	wsURL.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	wsURL.Path = "/ws"
	// resume=1 holds live messages until the sync below, so nothing sent
	// between the history page and now is missed or shown twice.
	wsURL.RawQuery = url.Values{"ticket": {ticket.Ticket}, "chat_name": {*chatName}, "resume": {"1"}}.Encode()
	conn, _, err := websocket.Dial(ctx, wsURL.String(), nil)
	if err != nil {
		return fmt.Errorf("chat: open WebSocket: %w", err)
	}
	defer conn.CloseNow()
	syncFrame, _ := json.Marshal(map[string]any{"type": "sync", "chat_name": *chatName, "after_id": lastID})
	if err := conn.Write(ctx, websocket.MessageText, syncFrame); err != nil {
		return fmt.Errorf("chat: sync: %w", err)
	}
	fmt.Fprintf(stdout, "-- connected to %s as %s; type a message and press Enter (Ctrl-D quits)\n", *chatName, *username)

	readDone := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readDone <- err
				return
			}
			var f chatLine
			if json.Unmarshal(data, &f) != nil {
				continue
			}
			if f.ChatName != "" && f.ChatName != *chatName && f.Type != "error" {
				continue // another of the user's chats
			}
			switch f.Type {
			case "text", "file", "system":
				f.print(stdout)
			case "edit":
				f.Text = "(edited) " + f.Text
				f.print(stdout)
			case "delete":
				f.Text = "(deleted a message)"
				f.print(stdout)
			case "presence":
				state := "left"
				if f.Online {
					state = "is online"
				}
				fmt.Fprintf(stdout, "-- %s %s\n", f.Username, state)
			case "error":
				fmt.Fprintf(stdout, "!! %s\n", f.Detail)
			}
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := in.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				conn.Close(websocket.StatusNormalClosure, "bye")
				return nil
			}
			id := make([]byte, 8)
			rand.Read(id)
			frame, _ := json.Marshal(map[string]string{"type": "text", "chat_name": *chatName, "text": line, "client_id": "cli-" + hex.EncodeToString(id)})
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Write(wctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				return fmt.Errorf("chat: send: %w", err)
			}
		case err := <-readDone:
			if websocket.CloseStatus(err) == websocket.StatusServiceRestart {
				return errors.New("chat: the server is restarting; run the command again")
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("chat: connection closed: %w", err)
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "bye")
			return nil
		}
	}
}

// readPassword reads the password, the first line of in. When stdin is a
// terminal it asks for it on stderr and turns echo off while it is typed,
// so that it is neither on the screen nor in the terminal's scrollback;
// Ctrl-C (which cancels ctx) gives the terminal back as it was.
func readPassword(ctx context.Context, in *bufio.Reader, stdin io.Reader, stderr io.Writer, username string) (string, error) {
	f, ok := stdin.(*os.File)
	if !ok || !isTerminal(f.Fd()) {
		return readLine(in, "password")
	}
	fmt.Fprintf(stderr, "Password for %s: ", username)
	restore, err := echoOff(f.Fd())
	if err != nil {
		return "", fmt.Errorf("chat: cannot turn off echo to read the password (%w); pipe it in or set MAPSIM_CHAT_PASSWORD", err)
	}
	defer fmt.Fprintln(stderr) // the Enter typed was not echoed either
	defer restore()
	type result struct {
		line string
		err  error
	}
	read := make(chan result, 1)
	go func() {
		line, err := readLine(in, "password")
		read <- result{line, err}
	}()
	select {
	case r := <-read:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// chatLine is the part of a frame or history entry the client prints.
type chatLine struct {
	ID        int64  `json:"id"`
	ChatName  string `json:"chat_name"`
	Type      string `json:"type"`
	Username  string `json:"username"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp"`
	Online    bool   `json:"online"`
	Detail    string `json:"detail"`
}

func (m chatLine) print(w io.Writer) {
	ts := m.Timestamp
	if t, err := time.Parse(time.RFC3339, m.Timestamp); err == nil {
		ts = t.Local().Format("15:04")
	}
	fmt.Fprintf(w, "[%s] %s: %s\n", ts, m.Username, m.Text)
}

func postJSON(ctx context.Context, u, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(req, token, out)
}

func getJSON(ctx context.Context, u, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return doJSON(req, token, out)
}

func doJSON(req *http.Request, token string, out any) error {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Detail string `json:"detail"`
		}
		json.Unmarshal(raw, &e)
		return fmt.Errorf("chat: %s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, e.Detail)
	}
	return json.Unmarshal(raw, out)
}
