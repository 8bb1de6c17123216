package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
)

// MediaTTL is how long a media URL works. A media element asks for ranges
// all through playback, so the URL must outlive the first request; the
// browser asks for a new one when a later range is refused (a seek after
// the URL expired).
const MediaTTL = 5 * time.Minute

// A media token is version | user id | session id | expiry (Unix
// seconds), each 8 bytes big-endian after the 1-byte version, then an
// HMAC-SHA256 of all that and the file's id under mediaKey.
const (
	mediaVersion   = 1
	mediaBody      = 1 + 8 + 8 + 8
	mediaTokenSize = mediaBody + sha256.Size
	mediaLabel     = "mapsim-chat/v1/media-url"
)

// deriveMediaKey derives the key of media tokens from the token-signing key
// (itself derived from SECRET_KEY), under its own label.
func deriveMediaKey(signingKey []byte) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte(mediaLabel))
	return m.Sum(nil)
}

func (s *Service) mediaMAC(body, fileID []byte) []byte {
	m := hmac.New(sha256.New, s.mediaKey)
	m.Write([]byte(mediaLabel))
	m.Write([]byte{0})
	m.Write(fileID)
	m.Write(body)
	return m.Sum(nil)
}

// MediaToken signs a credential for one file, one user and one of the
// user's sessions, valid for MediaTTL (or until the session ends, if that
// is sooner), and returns it with how long it lasts. It goes in the query of a URL that a media element can play
// without sending the bearer token; CheckMediaToken takes it back. It is
// a secret: it must never be logged. fileID is the file's raw 16-byte id.
func (s *Service) MediaToken(id chat.Identity, fileID []byte) (token string, ttl time.Duration) {
	now := s.now()
	expires := now.Add(MediaTTL).Truncate(time.Second)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(expires) {
		expires = id.ExpiresAt.Truncate(time.Second)
	}
	raw := make([]byte, mediaBody, mediaTokenSize)
	raw[0] = mediaVersion
	binary.BigEndian.PutUint64(raw[1:], uint64(id.UserID))
	binary.BigEndian.PutUint64(raw[9:], uint64(id.SessionID))
	binary.BigEndian.PutUint64(raw[17:], uint64(expires.Unix()))
	raw = append(raw, s.mediaMAC(raw, fileID)...)
	return base64.RawURLEncoding.EncodeToString(raw), max(0, expires.Sub(now))
}

var errBadMediaToken = chat.Errorf(chat.EUnauthorized, "This media link is not valid (it has expired, or is for another file); open the file again.")

// CheckMediaToken verifies a media token for the file it is presented
// with: its signature, its file, its expiry, and that its session is still
// live and its user not disabled. It returns the identity the token was
// signed for; whether that user may still read the file (is still a
// member of its chat) is the caller's check, on every request.
func (s *Service) CheckMediaToken(ctx context.Context, token string, fileID []byte) (chat.Identity, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(mediaTokenSize) {
		return chat.Identity{}, errBadMediaToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != mediaTokenSize || raw[0] != mediaVersion {
		return chat.Identity{}, errBadMediaToken
	}
	body, mac := raw[:mediaBody], raw[mediaBody:]
	if !hmac.Equal(mac, s.mediaMAC(body, fileID)) {
		return chat.Identity{}, errBadMediaToken
	}
	userID := int64(binary.BigEndian.Uint64(body[1:]))
	sessionID := int64(binary.BigEndian.Uint64(body[9:]))
	expires := time.Unix(int64(binary.BigEndian.Uint64(body[17:])), 0)
	if !s.now().Before(expires) {
		return chat.Identity{}, errBadMediaToken
	}
	a, err := s.store.AccessBySessionID(ctx, sessionID)
	if err == nil && a.UserID != userID {
		return chat.Identity{}, errBadMediaToken
	}
	id, err := s.identity(a, err)
	if chat.ErrorCode(err) == chat.EUnauthorized {
		return chat.Identity{}, errBadMediaToken
	}
	return id, err
}
