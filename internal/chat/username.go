package chat

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Usernames follow RFC 8265 (PRECIS). A name is stored as its
// UsernameCasePreserved form, so "Alice" keeps its capital where people see
// it, and it is found and kept unique by its key: the UsernameCaseMapped
// form with a few folds of letters that look alike within one script (see
// UsernameKey). The RFC itself recommends exactly this pairing: preserve
// case for display, map case for comparison. On top of PRECIS's
// IdentifierClass, which would also let in "@", "/" and ":" (and so break
// "@name" and URLs), a name holds only letters, combining marks, decimal
// digits and "_", "." and "-"; and it may not mix scripts in a way that
// makes it look like another name (UTS #39's "highly restrictive" level).

// Username lengths, in characters (code points) of the stored form. Two is
// enough for a name in Han or Hangul, where one character is a syllable.
const (
	MinUsernameChars = 2
	MaxUsernameChars = 32
)

// usernameRule is the one sentence shown when a name breaks the basic rule.
const usernameRule = "A username is 2 to 32 letters or digits in one script (Latin, Persian, Cyrillic, Greek, Chinese…), with '_', '.' and '-' allowed."

// CheckUsername validates a new username and returns the form to store:
// PRECIS UsernameCasePreserved (full-width letters made normal width, NFC),
// 2 to 32 characters of letters, marks, digits and "_.-", one script (or
// Han with Hiragana and Katakana, Bopomofo or Hangul), one digit system.
// Names registered before these rules are not checked again: they log in
// by UsernameKey, which accepts any string.
func CheckUsername(username string) (string, error) {
	if !utf8.ValidString(username) {
		return "", Errorf(EInvalid, "The username is not valid UTF-8.")
	}
	for _, r := range username {
		if unicode.IsControl(r) || unicode.IsSpace(r) || IsBidiControl(r) {
			return "", Errorf(EInvalid, "A username may not contain spaces or invisible control characters.")
		}
	}
	name, err := precis.UsernameCasePreserved.String(username)
	if err != nil {
		if strings.Contains(err.Error(), "bidi") {
			return "", Errorf(EInvalid, "A right-to-left username must start with a letter and end with a letter or a digit, and may not hold left-to-right letters.")
		}
		return "", Errorf(EInvalid, "%s", usernameRule)
	}
	if n := utf8.RuneCountInString(name); n < MinUsernameChars || n > MaxUsernameChars {
		return "", Errorf(EInvalid, "%s", usernameRule)
	}
	if err := checkUsernameRunes(name); err != nil {
		return "", err
	}
	if _, err := precis.UsernameCaseMapped.String(name); err != nil {
		return "", Errorf(EInvalid, "%s", usernameRule)
	}
	return name, nil
}

// Script sets for the mixed-script rule: one bit per script in
// unicode.Scripts, and one for each of UTS #39's CJK writing systems
// (Japanese, Korean, Han with Bopomofo), which Han and the kana, Hangul and
// Bopomofo carry as well. A name's scripts then intersect to something
// non-empty exactly when it is in one script or one of those combinations.
type scriptSet [4]uint64

const (
	bitJpan = iota // Han + Hiragana + Katakana
	bitKore        // Han + Hangul
	bitHanb        // Han + Bopomofo
	bitFirstScript
)

// anyScript is the set of Common and Inherited characters, which go with
// every script.
var anyScript = scriptSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}

func (s scriptSet) and(t scriptSet) scriptSet {
	for i := range s {
		s[i] &= t[i]
	}
	return s
}

func (s scriptSet) or(t scriptSet) scriptSet {
	for i := range s {
		s[i] |= t[i]
	}
	return s
}

func (s scriptSet) empty() bool { return s == scriptSet{} }

func bit(n int) scriptSet {
	var s scriptSet
	s[n/64] = 1 << (n % 64)
	return s
}

// scriptBits and scriptTables give each script its set; the scripts names
// are mostly written in come first in scriptTables, to be looked up first.
var scriptBits, scriptTables = func() (map[string]scriptSet, []scriptTable) {
	first := []string{"Latin", "Arabic", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo",
		"Hebrew", "Armenian", "Georgian", "Devanagari", "Bengali", "Tamil", "Telugu", "Thai", "Ethiopic", "Syriac", "Thaana"}
	seen := map[string]bool{"Common": true, "Inherited": true}
	for _, n := range first {
		seen[n] = true
	}
	var rest []string
	for n := range unicode.Scripts {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	names := append(first, rest...)
	if len(names)+bitFirstScript > 64*len(scriptSet{}) {
		panic("chat: more scripts than a scriptSet holds")
	}
	bits := make(map[string]scriptSet, len(names))
	tables := make([]scriptTable, 0, len(names))
	for i, n := range names {
		b := bit(bitFirstScript + i)
		switch n {
		case "Han":
			b = b.or(bit(bitJpan)).or(bit(bitKore)).or(bit(bitHanb))
		case "Hiragana", "Katakana":
			b = b.or(bit(bitJpan))
		case "Hangul":
			b = b.or(bit(bitKore))
		case "Bopomofo":
			b = b.or(bit(bitHanb))
		}
		bits[n] = b
		tables = append(tables, scriptTable{unicode.Scripts[n], b})
	}
	return bits, tables
}()

type scriptTable struct {
	table *unicode.RangeTable
	set   scriptSet
}

// commonExtensions are the Common and Inherited characters a username may
// hold beyond ASCII digits and "_.-" and the combining marks of Latin,
// Greek and Cyrillic, with their Script_Extensions (Unicode's
// ScriptExtensions.txt): the Arabic vowel marks belong to Arabic, the kana
// sound marks to Japanese. Other Common letters (modifier letters like
// "ʼ", which pass for an apostrophe) are refused.
var commonExtensions = func() map[rune]scriptSet {
	m := map[rune]scriptSet{}
	arabic := scriptBits["Arabic"].or(scriptBits["Syriac"])
	for r := rune(0x064B); r <= 0x0655; r++ { // fathatan … hamza below
		m[r] = arabic
	}
	m[0x0670] = arabic // superscript alef
	kana := scriptBits["Hiragana"].or(scriptBits["Katakana"])
	m[0x3099], m[0x309A] = kana, kana // combining voiced sound marks
	m[0x30FC] = kana                  // prolonged sound mark ー
	for r := rune(0x3031); r <= 0x3035; r++ {
		m[r] = kana // vertical kana repeat marks
	}
	m[0x3006] = scriptBits["Han"] // 〆
	m[0x200C] = anyScript         // ZWNJ, ZWJ: PRECIS checks their context
	m[0x200D] = anyScript
	return m
}()

// scriptOf returns the scripts a character of a username may go with, and
// false if it may not be in a username at all.
func scriptOf(r rune) (scriptSet, bool) {
	if r < utf8.RuneSelf {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return scriptBits["Latin"], true
		case r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-':
			return anyScript, true
		}
		return scriptSet{}, false
	}
	if s, ok := commonExtensions[r]; ok {
		return s, true
	}
	if !unicode.In(r, unicode.L, unicode.Mn, unicode.Mc, unicode.Nd) {
		return scriptSet{}, false
	}
	if unicode.Is(unicode.Inherited, r) {
		// Combining marks not listed above (U+0300 accents and the like)
		// take the script of the letter they sit on.
		return anyScript, true
	}
	if unicode.Is(unicode.Common, r) {
		return scriptSet{}, false
	}
	for _, t := range scriptTables {
		if unicode.Is(t.table, r) {
			return t.set, true
		}
	}
	return scriptSet{}, false
}

// checkUsernameRunes applies the character, mixed-script and digit rules to
// a name already in PRECIS form.
func checkUsernameRunes(name string) error {
	scripts := anyScript
	var zero rune = -1
	for _, r := range name {
		s, ok := scriptOf(r)
		if !ok {
			return Errorf(EInvalid, "%s", usernameRule)
		}
		scripts = scripts.and(s)
		if scripts.empty() {
			return Errorf(EInvalid, "A username may not mix letters of different scripts (such as a Cyrillic letter among Latin ones), as it could pass for someone else's name.")
		}
		if unicode.Is(unicode.Nd, r) {
			z := digitZero(r)
			if zero >= 0 && z != zero {
				return Errorf(EInvalid, "A username may not mix digits of different kinds (such as 1 and ۱).")
			}
			zero = z
		}
	}
	return nil
}

// digitZero returns the zero of r's decimal digits: Unicode encodes each
// digit system as ten consecutive code points from 0 to 9, and where such
// runs sit side by side each starts ten after the last.
func digitZero(r rune) rune {
	z := r
	for unicode.Is(unicode.Nd, z-1) {
		z--
	}
	return r - (r-z)%10
}

// keyFolds are letters that look alike within one script and are typed
// either way by the same people: Persian and Arabic yeh and kaf (the same
// shape in the middle of a word), and Greek's final sigma.
var keyFolds = map[rune]rune{
	'\u064A': '\u06CC', // ARABIC LETTER YEH → FARSI YEH
	'\u0649': '\u06CC', // ALEF MAKSURA → FARSI YEH
	'\u0643': '\u06A9', // ARABIC LETTER KAF → KEHEH
	'\u03C2': '\u03C3', // ς → σ
}

// caseMapper lower-cases as PRECIS UsernameCaseMapped does (Unicode
// toLower, no language).
var caseMapper = cases.Lower(language.Und, cases.HandleFinalSigma(false))

// UsernameKey is the key a username is unique by and found by: the
// UsernameCaseMapped form (full-width letters narrowed, lower case, NFC),
// with Arabic vowel marks, zero-width joiners and tatweel dropped, the
// lookalike letters of keyFolds folded and every digit written as ASCII. So
// "Ａlice" and "alice" share a key, as do "علي۱" and "علی1". It accepts any
// string, valid username or not, so that a name registered under older
// rules, or a mistyped one, is simply looked up; for ASCII it is just lower
// case, which is what migration 0009 filled in for existing accounts.
func UsernameKey(username string) string {
	s := width.Fold.String(username)
	s = caseMapper.String(s)
	s = norm.NFC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 0x064B && r <= 0x0652, r == 0x0670, r == 0x200C, r == 0x200D, r == 0x0640:
			continue
		case r >= '0' && r <= '9':
		case unicode.Is(unicode.Nd, r):
			r = '0' + (r - digitZero(r))
		default:
			if f, ok := keyFolds[r]; ok {
				r = f
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}
