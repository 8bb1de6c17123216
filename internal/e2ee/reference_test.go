package e2ee_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"strings"
	"testing"
)

// A second reading of E2EE.md, written from the text and kept apart from
// the package: the vector tests compare the package's bytes with these, so
// a misreading would have to be made twice, in two styles, to pass.

// refU32 is u32(n).
func refU32(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

// refLP is LP(x).
func refLP(x []byte) []byte { return append(refU32(uint32(len(x))), x...) }

// refT is T(label, f1, …, fn).
func refT(label string, fields ...[]byte) []byte {
	out := refLP([]byte(label))
	for _, f := range fields {
		out = append(out, refLP(f)...)
	}
	return out
}

// refUser is a username as transcripts hold it.
func refUser(u string) []byte { return []byte(strings.ToLower(u)) }

// refGCM is AES-256-GCM under key.
func refGCM(tb testing.TB, key []byte) cipher.AEAD {
	tb.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	return gcm
}

// refHKDF is HKDF(ikm, salt, info, 32) with SHA-256.
func refHKDF(tb testing.TB, ikm, salt, info []byte) []byte {
	tb.Helper()
	k, err := hkdf.Key(sha256.New, ikm, salt, string(info), 32)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// refChunkAAD is the additional data of file chunk i.
func refChunkAAD(i uint32, last bool) []byte {
	flag := "0"
	if last {
		flag = "1"
	}
	return refT("mapsim-e2ee/v1/file-chunk", refU32(i), []byte(flag))
}
