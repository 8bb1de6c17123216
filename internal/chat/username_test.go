package chat_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

func TestCheckUsername(t *testing.T) {
	t.Parallel()
	tests := []struct {
		username string
		want     string // the stored form; "" when refused
	}{
		// Latin, as before, and now with accents.
		{"abc", "abc"},
		{"Alice_99", "Alice_99"},
		{"a.b-c", "a.b-c"},
		{"alíce", "alíce"},
		{"ali\u0301ce", "alíce"}, // NFC joins the accent to its letter
		{"Ａlice", "Alice"},       // full-width letters narrowed
		{"Zoë-Ørsted", "Zoë-Ørsted"},
		{strings.Repeat("x", 32), strings.Repeat("x", 32)},
		// Persian and Arabic, with their digits or ASCII ones, and a ZWNJ
		// where Persian needs one.
		{"علی", "علی"},
		{"علی\u200cرضا", "علی\u200cرضا"},
		{"مریم۱۳۷۰", "مریم۱۳۷۰"},
		{"مریم1370", "مریم1370"},
		{"محمد_رضا", "محمد_رضا"},
		{"عَلي", "عَلي"},
		{"أحمد٢٠", "أحمد٢٠"},
		// Cyrillic, Greek, Hebrew, Devanagari.
		{"Наташа", "Наташа"},
		{"Σωκράτης", "Σωκράτης"},
		{"דוד", "דוד"},
		{"अर्जुन", "अर्जुन"},
		// CJK: Han alone (two characters are enough), Japanese mixing Han
		// with both kana, Korean mixing Han with Hangul, Han with Bopomofo.
		{"王伟", "王伟"},
		{"山田たろう", "山田たろう"},
		{"やまだ・", ""},
		{"スズキー", "スズキー"},
		{"김민준", "김민준"},
		{"金민준", "金민준"},
		{"王ㄅㄆ", "王ㄅㄆ"},

		{"", ""},
		{"a", ""},
		{strings.Repeat("x", 33), ""},
		{strings.Repeat("ب", 33), ""},
		{"alice smith", ""},
		{" alice", ""},
		{"alice\n", ""},
		{"alice!", ""},
		{"al/ce", ""},
		{"ali@ce", ""},
		{"al:ce", ""},
		{"<script>", ""},
		{"al\x00ce", ""},
		{"al\u202Eice", ""},
		{"bob\u2066x", ""},
		{"al\u200Bce", ""}, // zero-width space
		{"a\u200Cb", ""},   // ZWNJ outside the joining scripts
		{"ʼalice", ""},     // a modifier letter that passes for an apostrophe
		{"\xff\xfe", ""},
		{"ℌello", ""}, // compatibility letters PRECIS refuses
		// Mixed scripts: Cyrillic а (U+0430) in a Latin name, Greek ο,
		// Latin with Persian, Hangul with kana.
		{"p\u0430ypal", ""},
		{"g\u03BFogle", ""},
		{"aliعلی", ""},
		{"김たろう", ""},
		{"Nаташа", ""},
		// Digits: two systems in one name; Arabic-Indic digits with Latin.
		{"مریم1۳۷۰", ""},
		{"علی٣۴", ""},
		{"alice٣", ""},
		// Right-to-left names start with a letter and end with a letter or
		// digit (RFC 5893's rule, part of PRECIS).
		{"علی_", ""},
		{"_علی", ""},
		{"1علی", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.username), func(t *testing.T) {
			got, err := chat.CheckUsername(tt.username)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("CheckUsername = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if chat.ErrorCode(err) != chat.EInvalid {
				t.Fatalf("CheckUsername = %q, %v; want an %s error", got, err, chat.EInvalid)
			}
		})
	}
}

func TestUsernameKey(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{"alice", "Alice", "ALICE", "Ａlice", "ａｌｉｃｅ"},
		{"alíce", "ALI\u0301CE"},
		{"علی", "علي", "علىٰ", "عَلی"},
		{"علی\u200cرضا", "علیرضا"},
		{"مریم۱۳", "مریم13", "مريم١٣"},
		{"ملک", "ملك"},
		{"ΟΔΟΣ", "οδος", "οδοσ"},
		{"Наташа", "НАТАША"},
	}
	for _, group := range same {
		want := chat.UsernameKey(group[0])
		for _, name := range group[1:] {
			if got := chat.UsernameKey(name); got != want {
				t.Errorf("UsernameKey(%q) = %q; UsernameKey(%q) = %q; want them equal", name, got, group[0], want)
			}
		}
	}
	differ := [][2]string{{"alice", "alíce"}, {"alice", "p\u0430ypal"}, {"علی", "علا"}, {"ali", "a.li"}}
	for _, p := range differ {
		if chat.UsernameKey(p[0]) == chat.UsernameKey(p[1]) {
			t.Errorf("UsernameKey(%q) = UsernameKey(%q); want them apart", p[0], p[1])
		}
	}
	// Existing ASCII accounts: the key is plain lower case, as migration
	// 0009 fills it in.
	for _, name := range []string{"Bob_2", "---", "x.y", "ALL-CAPS"} {
		if got, want := chat.UsernameKey(name), strings.ToLower(name); got != want {
			t.Errorf("UsernameKey(%q) = %q, want %q", name, got, want)
		}
	}
}

// FuzzCheckUsername: whatever comes in, an accepted name is valid UTF-8,
// within the length, unchanged by a second check, and its key is stable.
func FuzzCheckUsername(f *testing.F) {
	for _, s := range []string{"alice", "Ａlice", "علی\u200cرضا", "p\u0430ypal", "山田たろう", "مریم۱۳۷۰", "e\u0301e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := chat.CheckUsername(s)
		key := chat.UsernameKey(s)
		if !utf8.ValidString(s) {
			return
		}
		if chat.UsernameKey(key) != key {
			t.Fatalf("UsernameKey is not idempotent on %q: %q then %q", s, key, chat.UsernameKey(key))
		}
		if err != nil {
			return
		}
		if n := utf8.RuneCountInString(name); n < chat.MinUsernameChars || n > chat.MaxUsernameChars {
			t.Fatalf("accepted %q of %d characters", name, n)
		}
		again, err := chat.CheckUsername(name)
		if err != nil || again != name {
			t.Fatalf("CheckUsername(%q) = %q, %v; want it unchanged", name, again, err)
		}
		if chat.UsernameKey(name) != key {
			t.Fatalf("key of %q differs from key of its stored form %q", s, name)
		}
	})
}
