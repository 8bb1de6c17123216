package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mapsim/mapsim-chat/internal/chat"
)

// A browser's sign-in: login gives it a short-lived access token, kept in
// the page's memory only, and a refresh token in an HttpOnly cookie. The
// refresh token is traded, once, for a new access token and its successor;
// all the refresh tokens descended from one login are a family, which is
// the login's session. A token traded twice (after RefreshGrace) means that
// two parties hold the family: the session is revoked.

// DefaultRefreshTTL is how long a browser stays signed in unused, unless
// the options say otherwise.
const DefaultRefreshTTL = 30 * 24 * time.Hour

// MaxBrowserTokenTTL bounds a browser's access tokens, which page script
// can read; it renews them with its refresh cookie.
const MaxBrowserTokenTTL = 10 * time.Minute

// RefreshGrace is how long after its trade a refresh token still succeeds,
// without a successor: two tabs of one browser, or a reload in the middle
// of a refresh, send the same cookie at once, and the first answer has
// already set its successor in the browser.
const RefreshGrace = 20 * time.Second

// touchEvery is how stale a session's last use may get before an access
// check writes it again: the list of sessions shows it to the minutes,
// and a write on every request would cost the database for nothing.
const touchEvery = 5 * time.Minute

// maxRefreshToken is the longest refresh token worth hashing; ours are 43
// characters.
const maxRefreshToken = 128

// SessionStore is the part of the store that a browser's sessions need.
type SessionStore interface {
	// CreateRefreshSession inserts a session and the first refresh token
	// (its keyed hash) of its family, and sets sess.ID.
	CreateRefreshSession(ctx context.Context, sess *chat.Session, refreshHash []byte) error
	// RefreshSession trades a refresh token (see chat.RefreshOutcome);
	// ENotFound for a token never issued or whose session is gone.
	RefreshSession(ctx context.Context, r chat.Refresh) (chat.Access, chat.RefreshOutcome, error)
	// DeleteSpentRefreshTokens removes tokens traded before the time.
	DeleteSpentRefreshTokens(ctx context.Context, before time.Time) (int64, error)
	// TouchSession records when a session was last used.
	TouchSession(ctx context.Context, id int64, at time.Time) error
	// LiveSessions lists a user's sessions neither revoked nor expired.
	LiveSessions(ctx context.Context, userID int64, now time.Time) ([]chat.Session, error)
	// RevokeUserSession revokes one live session of the user; ENotFound
	// for any other.
	RevokeUserSession(ctx context.Context, userID, sessionID int64, at time.Time) error
	// RevokeOtherSessions revokes the user's sessions but keep and returns
	// their ids.
	RevokeOtherSessions(ctx context.Context, userID, keep int64, at time.Time) ([]int64, error)
	// ChangePassword sets the password hash and revokes the user's
	// sessions but keep, returning their ids.
	ChangePassword(ctx context.Context, userID int64, hash string, keep int64, at time.Time) ([]int64, error)
}

// deriveRefreshKey derives the key of refresh-token hashes from the
// token-signing key (itself derived from SECRET_KEY).
func deriveRefreshKey(signingKey []byte) []byte {
	m := hmac.New(sha256.New, signingKey)
	m.Write([]byte("mapsim-chat/v1/refresh-token"))
	return m.Sum(nil)
}

// refreshHash is what the store keeps of a refresh token: a copy of the
// database is no token, and rotating SECRET_KEY turns every one away.
func (s *Service) refreshHash(token string) []byte {
	m := hmac.New(sha256.New, s.refreshKey)
	m.Write([]byte(token))
	return m.Sum(nil)
}

// BrowserLogin is a browser's sign-in: an access token for the page's
// memory and a refresh token for its cookie.
type BrowserLogin struct {
	Token
	// Refresh is the refresh token to set in the cookie; "" when the
	// browser already has the right one (a trade within RefreshGrace).
	Refresh string
	// RefreshTTL is how long the cookie should live.
	RefreshTTL time.Duration
}

// LoginBrowser is Login for a browser: the same checks and throttle, and a
// session that lasts (see BrowserLogin) instead of one long-lived token.
func (s *Service) LoginBrowser(ctx context.Context, username, password, addr, userAgent string) (BrowserLogin, error) {
	u, err := s.checkLogin(ctx, username, password, addr)
	if err != nil {
		return BrowserLogin{}, err
	}
	now := s.now()
	refresh := randomToken(32)
	unused := sha256.Sum256([]byte(randomToken(16))) // no access token is checked by it
	sess := chat.Session{UserID: u.ID, TokenHash: unused[:], CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL), UserAgent: userAgent, IP: addr}
	if err := s.store.CreateRefreshSession(ctx, &sess, s.refreshHash(refresh)); err != nil {
		return BrowserLogin{}, err
	}
	tok, err := s.browserToken(chat.Access{SessionID: sess.ID, UserID: u.ID, Username: u.Username, Role: u.Role, ExpiresAt: sess.ExpiresAt})
	if err != nil {
		return BrowserLogin{}, err
	}
	return BrowserLogin{Token: tok, Refresh: refresh, RefreshTTL: s.refreshTTL}, nil
}

var (
	errBadRefresh = chat.Errorf(chat.EUnauthorized, "Your sign-in has ended; log in again.")
	// ErrRefreshReplayed answers a refresh token traded before: the
	// session it belongs to has just been revoked.
	ErrRefreshReplayed = chat.Errorf(chat.EUnauthorized, "This sign-in was used from somewhere else, so it has been ended everywhere; log in again.")
)

// Refresh trades a browser's refresh token for a new access token and the
// token's successor. An unknown token, or one of a session that ended, is
// unauthorized; a token traded more than RefreshGrace ago is
// ErrRefreshReplayed, and its session is revoked.
func (s *Service) Refresh(ctx context.Context, refresh string) (BrowserLogin, error) {
	if refresh == "" || len(refresh) > maxRefreshToken {
		return BrowserLogin{}, errBadRefresh
	}
	now := s.now()
	next := randomToken(32)
	a, outcome, err := s.store.RefreshSession(ctx, chat.Refresh{
		TokenHash: s.refreshHash(refresh), NextHash: s.refreshHash(next),
		At: now, Grace: RefreshGrace, ExpiresAt: now.Add(s.refreshTTL),
	})
	if chat.ErrorCode(err) == chat.ENotFound {
		return BrowserLogin{}, errBadRefresh
	}
	if err != nil {
		return BrowserLogin{}, err
	}
	switch outcome {
	case chat.RefreshReplayed:
		return BrowserLogin{Token: Token{Identity: chat.Identity{UserID: a.UserID, Username: a.Username, SessionID: a.SessionID}}}, ErrRefreshReplayed
	case chat.RefreshRotated, chat.RefreshGrace:
	default:
		return BrowserLogin{}, errBadRefresh
	}
	tok, err := s.browserToken(a)
	if err != nil {
		return BrowserLogin{}, err
	}
	out := BrowserLogin{Token: tok, RefreshTTL: s.refreshTTL}
	if outcome == chat.RefreshRotated {
		out.Refresh = next
	}
	return out, nil
}

// browserToken signs a short-lived access token of a browser's session,
// checked by the session's id (claims.SessionID).
func (s *Service) browserToken(a chat.Access) (Token, error) {
	now := s.now()
	ttl := min(s.tokenTTL, MaxBrowserTokenTTL)
	exp := now.Add(ttl)
	if a.ExpiresAt.Before(exp) {
		exp = a.ExpiresAt
	}
	c := claims{
		Username:  a.Username,
		SessionID: a.SessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(a.UserID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        randomToken(16),
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.signingKey)
	if err != nil {
		return Token{}, err
	}
	return Token{
		AccessToken: signed,
		ExpiresIn:   int(exp.Sub(now) / time.Second),
		Identity:    chat.Identity{UserID: a.UserID, Username: a.Username, Role: a.Role, SessionID: a.SessionID, ExpiresAt: a.ExpiresAt},
	}, nil
}

// touch records a session's use when the last record is stale. It is
// bookkeeping for the list of sessions: a failure costs the request
// nothing, and the next check tries again.
func (s *Service) touch(ctx context.Context, a chat.Access) {
	if now := s.now(); now.Sub(a.LastUsedAt) >= touchEvery {
		s.store.TouchSession(ctx, a.SessionID, now)
	}
}

// Sessions lists the live sessions of the identity's user, the most
// recently used first.
func (s *Service) Sessions(ctx context.Context, id chat.Identity) ([]chat.Session, error) {
	list, err := s.store.LiveSessions(ctx, id.UserID, s.now())
	if err != nil {
		return nil, err
	}
	sortByLastUse(list)
	return list, nil
}

// EndSession revokes one of the identity's user's sessions (its refresh
// family with it). Another user's session is not found, as is one already
// ended.
func (s *Service) EndSession(ctx context.Context, id chat.Identity, sessionID int64) error {
	return s.store.RevokeUserSession(ctx, id.UserID, sessionID, s.now())
}

// EndOtherSessions revokes every session of the identity's user but its
// own, and returns their ids.
func (s *Service) EndOtherSessions(ctx context.Context, id chat.Identity) ([]int64, error) {
	return s.store.RevokeOtherSessions(ctx, id.UserID, id.SessionID, s.now())
}

var errWrongPassword = chat.Errorf(chat.EForbidden, "Your current password is not right.")

// ChangePassword sets a new password for the identity's user, who proves
// it with the current one: the new one is checked as at registration, the
// check of the current one is throttled as a login is (and shares its
// count), and every other session of the user ends; the identity's own
// stays. It returns the ids of the sessions it ended.
func (s *Service) ChangePassword(ctx context.Context, id chat.Identity, current, next, addr string) ([]int64, error) {
	if err := CheckPassword(next, id.Username); err != nil {
		return nil, err
	}
	attempt, wait := s.throttle.Begin(throttleKey(id.Username), addr)
	if wait > 0 {
		return nil, tooMany("Too many wrong passwords; try again in ", wait)
	}
	defer attempt.Cancel()
	if len(current) > 4*MaxPasswordLen {
		attempt.Fail()
		return nil, errWrongPassword
	}
	u, err := s.store.UserByUsername(ctx, id.Username)
	if err != nil {
		return nil, err
	}
	if u.ID != id.UserID {
		return nil, errBadToken
	}
	var ok bool
	s.verifying()
	if herr := s.hash(ctx, func() { ok, err = VerifyPassword(u.PasswordHash, current) }); herr != nil {
		return nil, herr
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		attempt.Fail()
		return nil, errWrongPassword
	}
	attempt.Succeed()
	var hash string
	if err := s.hash(ctx, func() { hash = HashPassword(next) }); err != nil {
		return nil, err
	}
	return s.store.ChangePassword(ctx, u.ID, hash, id.SessionID, s.now())
}

// sortByLastUse orders sessions the most recently used first.
func sortByLastUse(list []chat.Session) {
	slices.SortStableFunc(list, func(a, b chat.Session) int { return b.LastUsedAt.Compare(a.LastUsedAt) })
}
