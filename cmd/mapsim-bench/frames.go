package main

import (
	"bytes"
	"strconv"
)

// frame is the part of a server frame the tool looks at. Byte slices point
// into the frame's buffer and are valid until the next read.
type frame struct {
	typ      []byte
	id       int64
	chatName []byte
	text     []byte // raw JSON string contents (escapes left in place)
	clientID []byte
	code     []byte
	lastID   int64
	dup      bool
	retry    float64
}

// parseFrame reads the top-level fields of a JSON object without allocating.
// Nested values (a chat, a reply preview, a list of users) are skipped.
// It reports false for anything that is not a well-formed object.
func parseFrame(data []byte, f *frame) bool {
	*f = frame{}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		if data[i] == '}' {
			return skipSpace(data, i+1) == len(data)
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		if i >= len(data) || data[i] != '"' {
			return false
		}
		keyEnd := endOfString(data, i)
		if keyEnd < 0 {
			return false
		}
		key := data[i+1 : keyEnd-1]
		i = skipSpace(data, keyEnd)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		end := endOfValue(data, i)
		if end < 0 {
			return false
		}
		val := data[i:end]
		switch string(key) { // no allocation: the compiler special-cases this
		case "type":
			f.typ = unquote(val)
		case "id":
			f.id, _ = strconv.ParseInt(string(val), 10, 64)
		case "chat_name":
			f.chatName = unquote(val)
		case "text":
			f.text = unquote(val)
		case "client_id":
			f.clientID = unquote(val)
		case "code":
			f.code = unquote(val)
		case "last_id":
			f.lastID, _ = strconv.ParseInt(string(val), 10, 64)
		case "duplicate":
			f.dup = string(val) == "true"
		case "retry_after":
			f.retry, _ = strconv.ParseFloat(string(val), 64)
		}
		i = end
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}

// unquote strips the quotes of a JSON string; a non-string gives nil.
func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' {
		return v[1 : len(v)-1]
	}
	return nil
}

// endOfString returns the index just past the string starting at data[i]
// (a quote), or -1.
func endOfString(data []byte, i int) int {
	// Each quote found (bytes.IndexByte, which is vectorised: the text of
	// every delivery is scanned here) ends the string unless an odd number
	// of backslashes escapes it.
	for j := i + 1; ; {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		escaped := false
		for p := q - 1; p > i && data[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return q + 1
		}
		j = q + 1
	}
}

// endOfValue returns the index just past the JSON value starting at
// data[i], or -1.
func endOfValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return endOfString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				e := endOfString(data, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
	scan:
		for ; j < len(data); j++ {
			switch data[j] {
			case ',', '}', ']', ' ', '\n', '\t', '\r':
				break scan
			}
		}
		if j == i {
			return -1
		}
		return j
	}
}

// The text of a benchmark message is "<send unix-nanos> <room> <seq> <run>"
// followed by padding, and its client_id is "<run>.<room>.<seq>".

// appendText appends a message text of at least size bytes.
func appendText(b []byte, sentNanos int64, roomIdx, seq int, run string, size int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, sentNanos, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(roomIdx), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ' ')
	b = append(b, run...)
	if len(b)-start < size {
		b = append(b, ' ')
		for len(b)-start < size {
			b = append(b, "lorem ipsum dolor sit amet "[(len(b)-start)%27])
		}
	}
	return b
}

// parseText reads a benchmark text; ok is false for any other message.
func parseText(text []byte, run string) (sentNanos int64, roomIdx, seq int, ok bool) {
	fields := [4][]byte{}
	rest := text
	for k := range fields {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			if k < 3 {
				return 0, 0, 0, false
			}
			fields[k] = rest
			break
		}
		fields[k], rest = rest[:sp], rest[sp+1:]
	}
	if string(fields[3]) != run {
		return 0, 0, 0, false
	}
	ns, err1 := strconv.ParseInt(string(fields[0]), 10, 64)
	r, err2 := strconv.Atoi(string(fields[1]))
	s, err3 := strconv.Atoi(string(fields[2]))
	if err1 != nil || err2 != nil || err3 != nil || r < 0 || s < 0 {
		return 0, 0, 0, false
	}
	return ns, r, s, true
}

func appendClientID(b []byte, run string, roomIdx, seq int) []byte {
	b = append(b, run...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(roomIdx), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64(seq), 10)
}

// parseClientID reads a client id of this run.
func parseClientID(id []byte, run string) (roomIdx, seq int, ok bool) {
	if len(id) <= len(run)+1 || string(id[:len(run)]) != run || id[len(run)] != '.' {
		return 0, 0, false
	}
	rest := id[len(run)+1:]
	dot := bytes.IndexByte(rest, '.')
	if dot < 0 {
		return 0, 0, false
	}
	r, err1 := strconv.Atoi(string(rest[:dot]))
	s, err2 := strconv.Atoi(string(rest[dot+1:]))
	if err1 != nil || err2 != nil || r < 0 || s < 0 {
		return 0, 0, false
	}
	return r, s, true
}

// appendSendFrame appends a text frame for a room.
func appendSendFrame(b []byte, chatName string, clientID, text []byte) []byte {
	b = append(b, `{"type":"text","chat_name":`...)
	b = strconv.AppendQuote(b, chatName)
	b = append(b, `,"client_id":"`...)
	b = append(b, clientID...)
	b = append(b, `","text":"`...)
	b = append(b, text...) // digits, letters and spaces only: no escaping needed
	return append(b, `"}`...)
}
