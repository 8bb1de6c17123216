package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/delivery"
	"github.com/mapsim/mapsim-chat/internal/keyring"
	"github.com/mapsim/mapsim-chat/internal/sequencer"
	"github.com/mapsim/mapsim-chat/internal/uploads"
)

// chatExport is a chat's history as the export writes it; its JSON is the
// json format.
type chatExport struct {
	Chat       exportChat      `json:"chat"`
	ExportedAt time.Time       `json:"exported_at"`
	Members    []string        `json:"members"`
	Messages   []exportMessage `json:"messages"`
}

type exportChat struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
}

// exportMessage is one message in its final state: edited text as it was
// last edited, a deleted message with no text, a file by its name.
type exportMessage struct {
	ID        int64       `json:"id"`
	Username  string      `json:"username"`
	Type      string      `json:"type"` // text, file or system
	Text      string      `json:"text"`
	Timestamp time.Time   `json:"timestamp"`
	EditedAt  *time.Time  `json:"edited_at,omitempty"`
	Deleted   bool        `json:"deleted,omitempty"`
	ReplyTo   int64       `json:"reply_to,omitempty"`
	File      *exportFile `json:"file,omitempty"`
}

type exportFile struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	MimeType string `json:"mime_type"`
	Expired  bool   `json:"expired,omitempty"`
}

// exportPage is how many messages each read of the history takes (a
// variable so that a test can make pages small).
var exportPage = 500

// export writes a chat's history as json, txt or html. End-to-end
// encrypted chats are refused: the server holds no key to them.
func (a *adminRun) export(ctx context.Context, f adminFlags, key []byte) error {
	c, err := a.st.ChatByName(ctx, f.chat)
	if chat.ErrorCode(err) == chat.ENotFound {
		if id, perr := strconv.ParseInt(f.chat, 10, 64); perr == nil {
			c, err = a.st.ChatByID(ctx, id)
		}
	}
	if chat.ErrorCode(err) == chat.ENotFound {
		return fmt.Errorf("no chat is named %q (the global chat is \"global\"; other chats' names are in GET /chats/)", f.chat)
	}
	if err != nil {
		return err
	}
	if c.E2EE {
		return fmt.Errorf("chat %s is end-to-end encrypted: its messages are sealed with keys that only its members' devices hold, "+
			"so the server cannot read them and cannot export them; members can keep their own records", c.Name)
	}
	ring, err := keyring.Load(ctx, a.st, key)
	if err != nil {
		return err
	}
	d := delivery.New(delivery.Options{Store: a.st, Ring: ring, Sequencer: sequencer.New(sequencer.Options{}), Log: a.log, CommitTimeout: time.Minute})

	members, err := a.st.Members(ctx, c.ID)
	if err != nil {
		return err
	}
	// The export runs up to the newest message when it starts, read in
	// pages oldest first and written as it goes: a chat of millions of
	// messages takes a page of memory, not the whole history.
	newest, _, err := d.History(ctx, c, 0, 1)
	if err != nil {
		return err
	}
	var last int64
	if len(newest) > 0 {
		last = newest[0].ID
	}
	head := chatExport{Chat: exportChat{ID: c.ID, Name: c.Name, Kind: c.Kind, Title: c.Title}, ExportedAt: time.Now().UTC().Truncate(time.Second)}
	for _, m := range members {
		head.Members = append(head.Members, m.Username)
	}

	out := a.stdout
	var file *os.File
	if f.out != "" {
		// O_EXCL: an export never overwrites a file (another record).
		file, err = os.OpenFile(f.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("-out: %w", err)
		}
		out = file
	}
	bw := bufio.NewWriter(out)
	var w exportWriter
	switch f.format {
	case "json":
		w = &jsonExport{w: bw}
	case "txt":
		w = &textExport{w: bw}
	case "html":
		w = &htmlExport{w: bw}
	}
	p := newProgress(a.stdout, "exporting messages")
	if file == nil {
		p.on = false // the export itself is on standard output
	}
	count := 0
	err = w.begin(head)
	for after := int64(0); err == nil && after < last; {
		var page []chat.Message
		if page, err = d.After(ctx, c, after, exportPage); err != nil || len(page) == 0 {
			break
		}
		for _, m := range page {
			after = m.ID
			if m.ID > last {
				break
			}
			if m.TargetID != 0 || m.Kind == chat.MessageEdit || m.Kind == chat.MessageDelete {
				continue // an event: its target already shows what it did
			}
			if err = w.message(exported(m)); err != nil {
				break
			}
			count++
		}
		p.setCount(count)
	}
	if err == nil {
		err = w.end(count)
	}
	p.finish()
	if err == nil {
		err = bw.Flush()
	}
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.out)
		}
	}
	if err != nil {
		return fmt.Errorf("write the export: %w", err)
	}
	dest := f.out
	if dest == "" {
		dest = "standard output"
	}
	if err := a.record(ctx, "export", c.Name, fmt.Sprintf("%d messages as %s to %s", count, f.format, dest)); err != nil {
		return err
	}
	if file != nil {
		fmt.Fprintf(a.stdout, "exported %d messages of chat %s to %s (%s)\n", count, c.Name, f.out, f.format)
	}
	return nil
}

// exportWriter writes one format: the chat, each message in order, the end.
type exportWriter interface {
	begin(head chatExport) error
	message(m exportMessage) error
	end(count int) error
}

// jsonExport writes chatExport's JSON, one message a line.
type jsonExport struct {
	w     io.Writer
	first bool
}

func (j *jsonExport) begin(head chatExport) error {
	head.Messages = nil
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// {"chat":…,"members":[…],"messages":null} → …,"messages":[
	b = bytes.TrimSuffix(b, []byte("null}"))
	j.first = true
	_, err = fmt.Fprintf(j.w, "%s[\n", b)
	return err
}

func (j *jsonExport) message(m exportMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sep := ",\n"
	if j.first {
		sep, j.first = "", false
	}
	_, err = fmt.Fprintf(j.w, "%s  %s", sep, b)
	return err
}

func (j *jsonExport) end(int) error {
	_, err := io.WriteString(j.w, "\n]}\n")
	return err
}

// htmlExport writes exportHTML's three parts.
type htmlExport struct{ w io.Writer }

func (h *htmlExport) begin(head chatExport) error {
	return exportHTML.ExecuteTemplate(h.w, "head", head)
}
func (h *htmlExport) message(m exportMessage) error {
	return exportHTML.ExecuteTemplate(h.w, "message", m)
}
func (h *htmlExport) end(count int) error { return exportHTML.ExecuteTemplate(h.w, "foot", count) }

// exported is a message as the export shows it.
func exported(m chat.Message) exportMessage {
	e := exportMessage{ID: m.ID, Username: m.Username, Type: m.Kind, Text: m.Text, Timestamp: m.CreatedAt.UTC(), ReplyTo: m.ReplyTo}
	if !m.EditedAt.IsZero() {
		t := m.EditedAt.UTC()
		e.EditedAt = &t
	}
	if !m.DeletedAt.IsZero() {
		e.Deleted, e.Text, e.EditedAt = true, "", nil
		return e
	}
	if m.Kind == chat.MessageFile {
		e.Text = ""
		if m.File != nil {
			e.Text = m.File.Name
			e.File = &exportFile{ID: hex.EncodeToString(m.File.ID), Name: m.File.Name, Size: m.File.Size, MimeType: m.File.MimeType, Expired: !m.File.ExpiredAt.IsZero()}
		}
	}
	return e
}

// textExport writes one line per message, "[time] name: text"; the
// further lines of a text of several lines follow indented by four spaces,
// so every line that starts with "[" starts a message. Control characters
// are shown escaped: the file may be read in a terminal, and a message must
// not drive it.
type textExport struct{ w io.Writer }

func (x *textExport) begin(head chatExport) error {
	title := head.Chat.Name
	if head.Chat.Title != "" && head.Chat.Title != head.Chat.Name {
		title += " (" + escapeControls(head.Chat.Title) + ")"
	}
	_, err := fmt.Fprintf(x.w, "# Mapsim Chat: chat %s, exported %s\n# members: %s\n",
		title, head.ExportedAt.Format(time.RFC3339), escapeControls(strings.Join(head.Members, ", ")))
	return err
}

func (x *textExport) message(m exportMessage) error {
	var body string
	switch {
	case m.Deleted:
		body = "[message deleted]"
	case m.File != nil:
		body = "[file: " + m.File.Name + ", " + uploads.HumanBytes(m.File.Size)
		if m.File.Expired {
			body += ", expired"
		}
		body += "]"
	case m.Type == chat.MessageFile:
		body = "[file: no longer stored]"
	default:
		body = m.Text
	}
	if m.EditedAt != nil {
		body += " (edited)"
	}
	sep := ": "
	if m.Type == chat.MessageSystem {
		sep = " * "
	}
	lines := strings.Split(body, "\n")
	for i := range lines {
		lines[i] = escapeControls(strings.TrimSuffix(lines[i], "\r"))
	}
	_, err := fmt.Fprintf(x.w, "[%s] %s%s%s\n", m.Timestamp.Format("2006-01-02 15:04:05Z"), escapeControls(m.Username), sep, strings.Join(lines, "\n    "))
	return err
}

func (x *textExport) end(count int) error {
	_, err := fmt.Fprintf(x.w, "# %d messages\n", count)
	return err
}

// escapeControls escapes control characters (except tab) as \u{…}.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\u{%x}`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r))
}

// exportHTML is the html format: a page that stands alone, with every
// piece of user text escaped by html/template, and a policy that lets it
// run no script and load nothing.
var exportHTML = template.Must(template.New("export").Funcs(template.FuncMap{
	"when":  func(t time.Time) string { return t.Format("2006-01-02 15:04:05Z") },
	"iso":   func(t time.Time) string { return t.Format(time.RFC3339) },
	"bytes": uploads.HumanBytes,
	"join":  strings.Join,
}).Parse(`{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>{{.Chat.Name}}{{if .Chat.Title}} ({{.Chat.Title}}){{end}} · Mapsim Chat export</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 50rem; padding: 0 1rem; color: #1b1b1b; }
header p, footer p { color: #555; }
ol { list-style: none; padding: 0; }
li { padding: .35rem 0; border-bottom: 1px solid #eee; }
time { color: #777; font-size: .85em; margin-right: .5em; }
.who { font-weight: 600; margin-right: .4em; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.note, .system { color: #666; font-style: italic; }
</style>
</head>
<body>
<header>
<h1>{{.Chat.Name}}{{if .Chat.Title}} ({{.Chat.Title}}){{end}}</h1>
<p>Exported {{when .ExportedAt}} from Mapsim Chat. Members: {{join .Members ", "}}.</p>
</header>
<ol>
{{- end}}

{{define "message"}}
<li id="m{{.ID}}"><time datetime="{{iso .Timestamp}}">{{when .Timestamp}}</time><span class="who">{{.Username}}</span>
{{- if .Deleted}} <span class="note">message deleted</span>
{{- else if .File}} <span class="file">file: {{.File.Name}} ({{bytes .File.Size}}{{if .File.Expired}}, expired{{end}})</span>
{{- else if eq .Type "file"}} <span class="note">file no longer stored</span>
{{- else if eq .Type "system"}} <span class="system">{{.Text}}</span>
{{- else}} <span class="text">{{.Text}}</span>{{end}}
{{- if .EditedAt}} <span class="note">(edited)</span>{{end}}</li>
{{- end}}

{{define "foot"}}
</ol>
<footer><p>{{.}} messages.</p></footer>
</body>
</html>
{{end}}`))

// setCount shows a count of messages read, for reads whose total is not
// known in advance.
func (p *progress) setCount(n int) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.shown) < progressEvery {
		return
	}
	p.shown = time.Now()
	fmt.Fprintf(p.w, "\r%s: %d\033[K", p.label, n)
	p.drawn = true
}
