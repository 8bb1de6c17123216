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
	"github.com/mapsim/mapsim-chat/internal/e2eeclient"
)

// chatHelp is what /help prints.
const chatHelp = `-- commands:
--   /verify USER           show the safety number of you and USER, to compare out of band
--   /verify USER confirm   mark USER verified once the numbers match
--   /accept USER           trust USER's changed identity key (sending waits until then)
--   /help                  this list
--   //text                 send a line that starts with "/"
-- every other line is sent as a message; Ctrl-D quits`

// runChat is a small terminal client: it logs in, opens the chat (a direct
// chat with -chat @bob, created if needed; a group by name or title; the
// global chat), prints its recent history and every message that arrives,
// and sends each line typed. The first line of standard input is the
// password, unless MAPSIM_CHAT_PASSWORD is set; from a terminal it is asked
// for on stderr and typed without echo. An end-to-end encrypted chat needs
// the account's keys: the next line is the recovery passphrase (or
// MAPSIM_CHAT_PASSPHRASE), which opens the key file, protects new keys, or
// restores them from the backup.
func runChat(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stdout)
	server := fs.String("url", "http://127.0.0.1:8000", "the server's address")
	username := fs.String("username", "", "who to log in as")
	chatArg := fs.String("chat", "global", "the chat to open: global, @USER for the direct chat with USER, or a group's name or title")
	keysPath := fs.String("keys", "", "the key file (default: <config dir>/mapsim-chat/keys/<server>/<username>.json)")
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
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("chat: -url must be http://… or https://…")
	}
	in := bufio.NewReader(stdin)
	password := getenv("MAPSIM_CHAT_PASSWORD")
	if password == "" {
		if password, err = readSecret(ctx, in, stdin, stderr, fmt.Sprintf("Password for %s: ", *username), "password"); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C at the prompt
			}
			return err
		}
	}

	var login struct {
		AccessToken string `json:"access_token"`
	}
	if err := postJSON(ctx, base.String()+"/login/", "", map[string]string{"username": *username, "password": password}, &login); err != nil {
		return err
	}
	api := &e2eeclient.API{Base: base.String(), Token: login.AccessToken}
	target, err := openTarget(ctx, api, *chatArg)
	if err != nil {
		return err
	}
	chatName := target.Name
	s := &chatSession{out: stdout, chatName: chatName, pending: map[string]*pendingLine{}, sent: map[int64]sentMessage{}}
	if !target.E2EE {
		fmt.Fprintf(stdout, "-- %s is not end-to-end encrypted: the server can read it\n", chatLabel(*chatArg, target))
	} else {
		path := *keysPath
		if path == "" {
			if path, err = e2eeclient.DefaultKeyPath(api.Base, *username); err != nil {
				return err
			}
		}
		need, err := e2eeclient.Prepare(ctx, api, *username, path)
		if err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		passphrase := getenv("MAPSIM_CHAT_PASSPHRASE")
		if passphrase == "" {
			prompt := map[e2eeclient.Need]string{
				e2eeclient.NeedOpen:    "Recovery passphrase (opens your key file): ",
				e2eeclient.NeedNew:     "New recovery passphrase (protects your new keys and their backup; keep it safe): ",
				e2eeclient.NeedRestore: "Recovery passphrase (restores your keys from the backup): ",
			}[need]
			if passphrase, err = readSecret(ctx, in, stdin, stderr, prompt, "recovery passphrase"); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// A new passphrase typed without echo is typed twice: a typo
			// would lock the user out of their own backup.
			if need == e2eeclient.NeedNew && isTerminalFile(stdin) {
				again, err := readSecret(ctx, in, stdin, stderr, "Repeat the new recovery passphrase: ", "recovery passphrase")
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if again != passphrase {
					return errors.New("chat: the two recovery passphrases differ; no keys were made, run the command again")
				}
			}
		}
		acct, err := e2eeclient.Unlock(ctx, api, *username, path, passphrase)
		if err != nil {
			if errors.Is(err, e2eeclient.ErrWrongPassphrase) {
				return errors.New("chat: the recovery passphrase is wrong; nothing was changed")
			}
			return fmt.Errorf("chat: %w", err)
		}
		acct.Warn = func(w string) { fmt.Fprintf(stdout, "!! %s\n", w) }
		switch need {
		case e2eeclient.NeedNew:
			fmt.Fprintf(stdout, "-- new keys made, published and backed up; the key file is %s\n", path)
		case e2eeclient.NeedRestore:
			n := 0
			for _, epochs := range acct.State.RoomKeys {
				n += len(epochs)
			}
			fmt.Fprintf(stdout, "-- keys restored from the backup (%d room keys); the key file is %s\n", n, path)
		}
		ch, events, err := acct.OpenChat(ctx, chatName)
		if err != nil {
			return fmt.Errorf("chat: %w", err)
		}
		s.acct, s.chat = acct, ch
		fmt.Fprintf(stdout, "-- %s is end-to-end encrypted (members: %s)\n", chatLabel(*chatArg, target), strings.Join(ch.Members(), ", "))
		s.trustEvents(events)
		s.save()
	}

	var ticket struct {
		Ticket string `json:"ticket"`
	}
	if err := postJSON(ctx, base.String()+"/ws-ticket/", login.AccessToken, nil, &ticket); err != nil {
		return err
	}
	var history struct {
		Messages []chatLine `json:"messages"`
	}
	if err := getJSON(ctx, base.String()+"/messages/?limit=20&chat_id="+url.QueryEscape(chatName), login.AccessToken, &history); err != nil {
		return err
	}
	var lastID int64
	for _, m := range history.Messages {
		s.show(ctx, m)
		lastID = m.ID
	}
	s.save()

	wsURL := *base
	wsURL.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	wsURL.Path = "/ws"
	// resume=1 holds live messages until the sync below, so nothing sent
	// between the history page and now is missed or shown twice.
	wsURL.RawQuery = url.Values{"ticket": {ticket.Ticket}, "chat_name": {chatName}, "resume": {"1"}}.Encode()
	conn, _, err := websocket.Dial(ctx, wsURL.String(), nil)
	if err != nil {
		return fmt.Errorf("chat: open WebSocket: %w", err)
	}
	defer conn.CloseNow()
	s.conn = conn
	syncFrame, _ := json.Marshal(map[string]any{"type": "sync", "chat_name": chatName, "after_id": lastID})
	if err := conn.Write(ctx, websocket.MessageText, syncFrame); err != nil {
		return fmt.Errorf("chat: sync: %w", err)
	}
	fmt.Fprintf(stdout, "-- connected to %s as %s; type a message and press Enter (/help lists commands, Ctrl-D quits)\n", chatName, *username)

	frames := make(chan []byte)
	readDone := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readDone <- err
				return
			}
			select {
			case frames <- data:
			case <-ctx.Done():
				readDone <- ctx.Err()
				return
			}
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := in.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
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
				s.save()
				conn.Close(websocket.StatusNormalClosure, "bye")
				return nil
			}
			if err := s.typed(ctx, line); err != nil {
				return err
			}
			s.save()
		case data := <-frames:
			if err := s.frame(ctx, data); err != nil {
				return err
			}
			s.save()
		case err := <-readDone:
			s.save()
			if websocket.CloseStatus(err) == websocket.StatusServiceRestart {
				return errors.New("chat: the server is restarting; run the command again")
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("chat: connection closed: %w", err)
		case <-ctx.Done():
			s.save()
			conn.Close(websocket.StatusNormalClosure, "bye")
			return nil
		}
	}
}

// chatTarget is the chat the client opens, as GET or POST /chats/ give it.
type chatTarget struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	E2EE  bool   `json:"e2ee"`
}

// openTarget resolves -chat: "global"; "@bob", the direct chat with bob,
// made if it does not exist yet; or one of my chats by name or title.
func openTarget(ctx context.Context, api *e2eeclient.API, arg string) (chatTarget, error) {
	if arg == "global" {
		return chatTarget{Name: "global", Kind: "global"}, nil
	}
	if peer, ok := strings.CutPrefix(arg, "@"); ok {
		if peer == "" {
			return chatTarget{}, errors.New("chat: -chat @USER needs a username after the @")
		}
		var t chatTarget
		if err := api.Do(ctx, http.MethodPost, "/chats/", map[string]any{"kind": "direct", "members": []string{peer}}, &t); err != nil {
			return chatTarget{}, fmt.Errorf("chat: open the direct chat with %s: %w", peer, err)
		}
		return t, nil
	}
	var list struct {
		Chats []chatTarget `json:"chats"`
	}
	if err := api.Do(ctx, http.MethodGet, "/chats/", nil, &list); err != nil {
		return chatTarget{}, fmt.Errorf("chat: list my chats: %w", err)
	}
	for _, c := range list.Chats {
		if c.Name == arg {
			return c, nil
		}
	}
	var found []chatTarget
	for _, c := range list.Chats {
		if c.Kind == "group" && strings.EqualFold(c.Title, arg) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return chatTarget{}, fmt.Errorf("chat: none of your chats is named or titled %q (use @USER for a direct chat)", arg)
	case 1:
		return found[0], nil
	}
	return chatTarget{}, fmt.Errorf("chat: %d of your groups are titled %q; give the group's name (%s, …) instead", len(found), arg, found[0].Name)
}

func chatLabel(arg string, t chatTarget) string {
	if t.Kind == "group" && t.Title != "" {
		return fmt.Sprintf("%q (%s)", t.Title, t.Name)
	}
	if strings.HasPrefix(arg, "@") {
		return "the direct chat with " + arg[1:]
	}
	return t.Name
}

// chatSession is the state of one run of the client. Only the main loop
// uses it, so it needs no lock.
type chatSession struct {
	out      io.Writer
	conn     *websocket.Conn
	chatName string
	// acct and chat are set in an end-to-end encrypted chat.
	acct *e2eeclient.Account
	chat *e2eeclient.Chat
	// pending holds the lines sent and not acknowledged, by client id, so
	// that a stale_epoch refusal is sent again on a new epoch; held holds
	// the lines typed while a changed identity key waits for /accept.
	pending map[string]*pendingLine
	held    []string
	// sent holds who sent each message shown and its client id, which an
	// edit of it is checked against.
	sent map[int64]sentMessage
}

type pendingLine struct {
	text    string
	retries int
}

type sentMessage struct {
	username, clientID string
}

func (s *chatSession) save() {
	if s.acct == nil {
		return
	}
	if err := s.acct.Save(); err != nil {
		fmt.Fprintf(s.out, "!! could not save the key file: %v\n", err)
	}
}

func (s *chatSession) trustEvents(events []e2eeclient.TrustEvent) {
	for _, ev := range events {
		switch ev.Trust {
		case e2eeclient.TrustFirstUse:
			fmt.Fprintf(s.out, "-- %s's identity key is new to this client and now trusted; compare safety numbers with /verify %s\n", ev.Username, ev.Username)
		case e2eeclient.TrustChanged:
			if strings.EqualFold(ev.Username, s.acct.Username) {
				fmt.Fprintf(s.out, "!! WARNING: the server now lists another identity key for YOUR account than your key file holds\n")
				continue
			}
			fmt.Fprintf(s.out, "!! WARNING: %s's IDENTITY KEY HAS CHANGED. Someone may be impersonating them, or they reset their keys.\n", ev.Username)
			fmt.Fprintf(s.out, "!! Sending to this chat is held until you check with %s (/verify %s) and type /accept %s\n", ev.Username, ev.Username, ev.Username)
		}
	}
}

// show prints a message of the chat, opening it in an encrypted chat.
func (s *chatSession) show(ctx context.Context, m chatLine) {
	if s.chat != nil && m.Type == "text" {
		s.sent[m.ID] = sentMessage{m.Username, m.ClientID}
		c, err := s.chat.Decrypt(ctx, e2eeclient.Message{ID: m.ID, Username: m.Username, ClientID: m.ClientID, Text: m.Text})
		m.Text = opened(c, err)
	}
	m.print(s.out)
}

func opened(c e2eeclient.Content, err error) string {
	var de *e2eeclient.DecryptError
	if errors.As(err, &de) {
		return "[cannot decrypt: " + de.Reason + "]"
	}
	if err != nil {
		return "[cannot decrypt: " + err.Error() + "]"
	}
	text := c.Text
	var reply struct {
		Username string `json:"username"`
		Text     string `json:"text"`
	}
	if len(c.Reply) > 0 && json.Unmarshal(c.Reply, &reply) == nil && reply.Username != "" {
		text = fmt.Sprintf("(replying to %s: %q) %s", reply.Username, reply.Text, text)
	}
	var file struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	}
	if len(c.File) > 0 && json.Unmarshal(c.File, &file) == nil {
		text += fmt.Sprintf(" [encrypted file %q, %d bytes: open it in the web client]", file.Name, file.Size)
	}
	return text
}

// frame handles one frame from the server.
func (s *chatSession) frame(ctx context.Context, data []byte) error {
	var f chatLine
	if json.Unmarshal(data, &f) != nil {
		return nil
	}
	if f.ChatName != "" && f.ChatName != s.chatName && f.Type != "error" {
		return nil // another of the user's chats
	}
	switch f.Type {
	case "text", "file":
		s.show(ctx, f)
	case "system":
		f.print(s.out)
		if s.chat != nil { // members came or went: their devices too
			events, err := s.chat.Refresh(ctx)
			if err != nil {
				fmt.Fprintf(s.out, "!! %v\n", err)
			}
			s.trustEvents(events)
		}
	case "edit":
		if s.chat != nil && !f.Deleted {
			orig, ok := s.sent[f.MessageID]
			if !ok {
				f.Text = "(edited a message this client has not shown) [cannot decrypt: " + e2eeclient.ReasonUnknownDevice + "]"
			} else {
				c, err := s.chat.Decrypt(ctx, e2eeclient.Message{ID: f.MessageID, Username: orig.username, ClientID: orig.clientID, Text: f.Text, Edit: true})
				f.Text = "(edited) " + opened(c, err)
			}
		} else {
			f.Text = "(edited) " + f.Text
		}
		f.print(s.out)
	case "delete":
		f.Text = "(deleted a message)"
		f.print(s.out)
	case "presence":
		state := "left"
		if f.Online {
			state = "is online"
		}
		fmt.Fprintf(s.out, "-- %s %s\n", f.Username, state)
	case "epoch":
		if s.chat != nil {
			s.chat.NoteEpoch(f.Epoch)
		}
	case "keys":
		if s.chat != nil {
			events, err := s.chat.Refresh(ctx)
			if err != nil {
				fmt.Fprintf(s.out, "!! %v\n", err)
			}
			s.trustEvents(events)
		}
	case "ack":
		delete(s.pending, f.ClientID)
	case "chat_removed":
		fmt.Fprintf(s.out, "-- you are no longer a member of %s\n", s.chatName)
	case "error":
		if p := s.pending[f.ClientID]; p != nil && f.Code == "stale_epoch" && s.chat != nil && p.retries < 3 {
			p.retries++
			return s.sendEncrypted(ctx, f.ClientID, p.text, true)
		}
		delete(s.pending, f.ClientID)
		fmt.Fprintf(s.out, "!! %s\n", f.Detail)
	}
	return nil
}

// typed handles a line of standard input: a command or a message.
func (s *chatSession) typed(ctx context.Context, line string) error {
	if strings.HasPrefix(line, "//") {
		return s.send(ctx, line[1:])
	}
	if !strings.HasPrefix(line, "/") {
		return s.send(ctx, line)
	}
	fields := strings.Fields(line)
	switch {
	case fields[0] == "/help":
		fmt.Fprintln(s.out, chatHelp)
	case (fields[0] == "/verify" || fields[0] == "/accept") && s.chat == nil:
		fmt.Fprintf(s.out, "!! %s is not end-to-end encrypted: there are no keys to verify or accept\n", s.chatName)
	case fields[0] == "/verify" && (len(fields) == 2 || len(fields) == 3 && fields[2] == "confirm"):
		s.verify(ctx, fields[1], len(fields) == 3)
	case fields[0] == "/accept" && len(fields) == 2:
		if err := s.chat.Accept(ctx, fields[1]); err != nil {
			fmt.Fprintf(s.out, "!! %v\n", err)
			return nil
		}
		fmt.Fprintf(s.out, "-- %s's new identity key is accepted (compare safety numbers again with /verify %s)\n", fields[1], fields[1])
		if len(s.chat.Held()) == 0 {
			held := s.held
			s.held = nil
			for _, text := range held {
				if err := s.send(ctx, text); err != nil {
					return err
				}
			}
		}
	case fields[0] == "/verify" || fields[0] == "/accept":
		fmt.Fprintf(s.out, "!! usage: /verify USER, /verify USER confirm, /accept USER\n")
	default:
		fmt.Fprintf(s.out, "!! unknown command %q; /help lists the commands (start a line with // to send it as it is)\n", fields[0])
	}
	return nil
}

// verify prints the safety number with username, or marks them verified.
func (s *chatSession) verify(ctx context.Context, username string, confirm bool) {
	if _, known := s.acct.State.TrustOf(username); !known {
		keys, err := s.acct.API.UserKeys(ctx, username)
		if err != nil || keys.Identity == nil {
			fmt.Fprintf(s.out, "!! %s has no identity key yet\n", username)
			return
		}
		s.acct.State.CheckIdentity(keys.Username, *keys.Identity)
		s.acct.MarkChanged()
	}
	if confirm {
		if err := s.acct.State.MarkVerified(username); err != nil {
			fmt.Fprintf(s.out, "!! %v\n", err)
			return
		}
		s.acct.MarkChanged()
		fmt.Fprintf(s.out, "-- %s is verified\n", username)
		return
	}
	number, err := s.acct.State.SafetyNumber(s.acct.Username, username)
	if err != nil {
		fmt.Fprintf(s.out, "!! %v\n", err)
		return
	}
	trust, _ := s.acct.State.TrustOf(username)
	fmt.Fprintf(s.out, "-- safety number of you and %s (%s):\n--   %s\n-- compare it with %s's out of band; if they match, type /verify %s confirm\n",
		username, trust, number, username, username)
}

// send sends a line as a message: as it is in a plaintext chat, encrypted
// in an encrypted one (held while a changed key waits for /accept).
func (s *chatSession) send(ctx context.Context, text string) error {
	id := make([]byte, 8)
	rand.Read(id)
	clientID := "cli-" + hex.EncodeToString(id)
	if s.chat == nil {
		return s.write(ctx, map[string]string{"type": "text", "chat_name": s.chatName, "text": text, "client_id": clientID})
	}
	if held := s.chat.Held(); len(held) > 0 {
		s.held = append(s.held, text)
		fmt.Fprintf(s.out, "!! not sent yet: %s's identity key changed; %d message(s) wait for /accept %s\n", held[0], len(s.held), held[0])
		return nil
	}
	s.pending[clientID] = &pendingLine{text: text}
	return s.sendEncrypted(ctx, clientID, text, false)
}

// sendEncrypted seals the line on the current epoch (on a new one when
// fresh is set: the server said the epoch is stale) and sends it.
func (s *chatSession) sendEncrypted(ctx context.Context, clientID, text string, fresh bool) error {
	seal := s.chat.Seal
	if fresh {
		seal = s.chat.Reseal
	}
	sealed, err := seal(ctx, clientID, e2eeclient.Content{Text: text})
	var held *e2eeclient.HeldError
	if errors.As(err, &held) {
		delete(s.pending, clientID)
		s.held = append(s.held, text)
		fmt.Fprintf(s.out, "!! not sent yet: %v\n", err)
		return nil
	}
	if err != nil {
		delete(s.pending, clientID)
		fmt.Fprintf(s.out, "!! not sent: %v\n", err)
		return nil
	}
	return s.write(ctx, map[string]string{"type": "text", "chat_name": s.chatName, "text": sealed, "client_id": clientID})
}

func (s *chatSession) write(ctx context.Context, frame any) error {
	data, _ := json.Marshal(frame)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("chat: send: %w", err)
	}
	return nil
}

// isTerminalFile reports whether r is a terminal.
func isTerminalFile(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f.Fd())
}

// readSecret reads a password or passphrase, the next line of in. When
// stdin is a terminal it asks for it on stderr and turns echo off while it
// is typed, so that it is neither on the screen nor in the terminal's
// scrollback; Ctrl-C (which cancels ctx) gives the terminal back as it was.
func readSecret(ctx context.Context, in *bufio.Reader, stdin io.Reader, stderr io.Writer, prompt, what string) (string, error) {
	if !isTerminalFile(stdin) {
		return readLine(in, what)
	}
	f := stdin.(*os.File)
	fmt.Fprint(stderr, prompt)
	restore, err := echoOff(f.Fd())
	if err != nil {
		return "", fmt.Errorf("chat: cannot turn off echo to read the %s (%w); pipe it in or set its environment variable", what, err)
	}
	defer fmt.Fprintln(stderr) // the Enter typed was not echoed either
	defer restore()
	type result struct {
		line string
		err  error
	}
	read := make(chan result, 1)
	go func() {
		line, err := readLine(in, what)
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
	ClientID  string `json:"client_id"`
	Code      string `json:"code"`
	MessageID int64  `json:"message_id"`
	Deleted   bool   `json:"deleted"`
	Epoch     uint32 `json:"epoch"`
}

func (m chatLine) print(w io.Writer) {
	ts := m.Timestamp
	if t, err := time.Parse(time.RFC3339, m.Timestamp); err == nil {
		ts = t.Local().Format("15:04")
	}
	fmt.Fprintf(w, "[%s] %s: %s\n", ts, printable(m.Username), printable(m.Text))
}

// printable makes text safe to print on a terminal: control characters
// (escape sequences that could move the cursor, retitle the window or
// rewrite earlier lines, line breaks that could fake another sender's
// line) and bidirectional overrides show as visible escapes instead.
func printable(text string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0),
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return '\uFFFD'
		}
		return r
	}, text)
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
