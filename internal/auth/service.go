package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/ratelimit"
)

const issuer = "mapsim-chat"

// TicketTTL is how long a WebSocket ticket stays valid.
const TicketTTL = 30 * time.Second

// Store is the part of the store that accounts and access need: users,
// sessions and invites.
type Store interface {
	// CreateUser inserts u, sets u.ID and adds the user to the global chat,
	// in one transaction. A username or email already taken (ignoring case)
	// is EConflict. A non-nil invite is consumed in the same transaction; a
	// used or expired invite is EInvalid.
	CreateUser(ctx context.Context, u *chat.User, invite []byte) error
	// UserByUsername finds a user ignoring case; ENotFound when there is none.
	UserByUsername(ctx context.Context, username string) (chat.User, error)
	// SetPassword replaces a user's password hash and revokes every session.
	SetPassword(ctx context.Context, userID int64, hash string, at time.Time) error
	// CreateSession inserts s and sets s.ID.
	CreateSession(ctx context.Context, s *chat.Session) error
	// AccessByTokenHash reads what an access check needs of the session with
	// this token hash and of its user; ENotFound when either is missing.
	AccessByTokenHash(ctx context.Context, tokenHash []byte) (chat.Access, error)
	// AccessBySessionID is AccessByTokenHash for a session id, which a
	// WebSocket ticket carries.
	AccessBySessionID(ctx context.Context, id int64) (chat.Access, error)
	// RevokeSession marks a session revoked at the given time.
	RevokeSession(ctx context.Context, id int64, at time.Time) error
	// RevokedSince returns the sessions revoked and the users disabled
	// (SessionID 0) at or after the given time.
	RevokedSince(ctx context.Context, since time.Time) ([]chat.Revocation, error)
	// DeleteExpiredSessions removes sessions that expired before the given
	// time and returns how many it removed.
	DeleteExpiredSessions(ctx context.Context, before time.Time) (int64, error)
	// CreateInvite stores a new invite.
	CreateInvite(ctx context.Context, inv chat.Invite) error

	SessionStore
}

// Service registers users, logs them in and out, and verifies tokens and
// tickets.
type Service struct {
	store      Store
	signingKey []byte
	tokenTTL   time.Duration
	// refreshKey keys the hashes of refresh tokens; it is derived from
	// signingKey, so rotating SECRET_KEY ends every browser's session.
	refreshKey []byte
	refreshTTL time.Duration
	// mediaKey signs media URLs (MediaToken); derived from signingKey too.
	mediaKey     []byte
	registration string
	now          func() time.Time
	throttle     *Throttle
	// registrations limits open registration per client address; nil for
	// no limit.
	registrations *registrationLimit
	// hashing bounds concurrent argon2id work (19 MiB each) so a burst of
	// logins cannot exhaust memory.
	hashing chan struct{}
	tickets *ticketTable
	// shared, when set, keeps tickets where every node sees them.
	shared TicketStore

	// beforeVerify, when set (by tests only), runs just before each
	// password verification of a login.
	beforeVerify func()
}

// Options configure a Service.
type Options struct {
	Store          Store
	SigningKey     []byte
	TokenTTL       time.Duration
	Registration   string // "open", "invite" or "closed"
	Now            func() time.Time
	ConcurrentHash int

	// RegistrationsPerHour is how many accounts one client address may
	// create an hour by open registration (see Register); 0 for no limit.
	RegistrationsPerHour int
	// SharedLimits, when set, keeps each address's registration budget in
	// Redis, one budget across the nodes (see ratelimit.Shared).
	SharedLimits *ratelimit.Shared

	// Tickets, when set, keeps WebSocket tickets for every node (several
	// nodes behind one address); nil keeps them in this node's memory.
	Tickets TicketStore

	// RefreshTTL is how long a browser stays signed in without being
	// used: each refresh moves its session's expiry this far ahead
	// (DefaultRefreshTTL when 0).
	RefreshTTL time.Duration
}

// TicketStore keeps WebSocket tickets where every node of an installation
// sees them.
type TicketStore interface {
	// Put stores a ticket of a session for ttl.
	Put(ctx context.Context, ticket string, userID, sessionID int64, ttl time.Duration) error
	// Take consumes a ticket and returns its session; ok is false for a
	// ticket that is unknown, used or expired.
	Take(ctx context.Context, ticket string) (sessionID int64, ok bool, err error)
}

// NewService returns a Service. It panics on a signing key shorter than 32
// bytes: that is a wiring mistake, and an empty key would accept tokens
// signed with an empty key.
func NewService(o Options) *Service {
	if len(o.SigningKey) < 32 {
		panic("auth: signing key shorter than 32 bytes")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConcurrentHash <= 0 {
		o.ConcurrentHash = 4
	}
	if o.RefreshTTL <= 0 {
		o.RefreshTTL = DefaultRefreshTTL
	}
	s := &Service{
		store: o.Store, signingKey: o.SigningKey, tokenTTL: o.TokenTTL, registration: o.Registration, now: o.Now,
		refreshKey: deriveRefreshKey(o.SigningKey), refreshTTL: o.RefreshTTL, mediaKey: deriveMediaKey(o.SigningKey),
		throttle: NewThrottle(o.Now),
		hashing:  make(chan struct{}, o.ConcurrentHash),
		tickets:  newTicketTable(),
		shared:   o.Tickets,
	}
	if o.RegistrationsPerHour > 0 {
		s.registrations = newRegistrationLimit(o.RegistrationsPerHour, o.SharedLimits)
	}
	return s
}

// Run does the service's housekeeping every minute (throttle and ticket
// sweeps, expired sessions) until ctx ends.
func (s *Service) Run(ctx context.Context) {
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			s.throttle.sweep()
			s.tickets.sweep(s.now())
			if s.registrations != nil {
				s.registrations.sweep(s.now())
			}
			s.store.DeleteExpiredSessions(ctx, s.now().Add(-24*time.Hour))
			// A spent token older than a cookie lives can no longer be
			// presented by a browser: nothing to recognise a replay of.
			s.store.DeleteSpentRefreshTokens(ctx, s.now().Add(-s.refreshTTL))
		}
	}
}

func (s *Service) hash(ctx context.Context, f func()) error {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return chat.Errorf(chat.EUnavailable, "The server is busy; try again.")
	}
	defer func() { <-s.hashing }()
	f()
	return nil
}

// RegisterRequest is what a new user sends.
type RegisterRequest struct {
	Username string
	Password string
	Email    string
	Invite   string
	// Addr is the client's address, which open registration is limited by.
	Addr string
}

// Register creates an account under the configured registration mode. Open
// registration is limited per client address (Options.RegistrationsPerHour);
// only accounts actually created count, so a refused name or password costs
// nothing. Invite codes are not limited: each is an administrator's leave.
func (s *Service) Register(ctx context.Context, req RegisterRequest) (chat.User, error) {
	var inviteHash []byte
	switch s.registration {
	case "closed":
		return chat.User{}, chat.Errorf(chat.EForbidden, "Registration is closed on this server; ask an administrator for an account.")
	case "invite":
		if req.Invite == "" {
			return chat.User{}, chat.Errorf(chat.EForbidden, "Registration on this server needs an invite code.")
		}
		h := sha256.Sum256([]byte(strings.TrimSpace(req.Invite)))
		inviteHash = h[:]
	}
	username, email, err := checkNewUser(req.Username, req.Password, req.Email)
	if err != nil {
		return chat.User{}, err
	}
	if inviteHash == nil && s.registrations != nil {
		// The account is reserved before hashing, so parallel requests
		// cannot all pass the check; a refusal gives it back.
		wait, shared := s.registrations.take(req.Addr, s.now())
		if wait > 0 {
			return chat.User{}, tooMany("Too many accounts were created from your address; try again in ", wait)
		}
		u, err := s.createUser(ctx, username, req.Password, email, chat.RoleMember, nil)
		if err != nil {
			s.registrations.giveBack(req.Addr, s.now(), shared)
		}
		return u, err
	}
	return s.createUser(ctx, username, req.Password, email, chat.RoleMember, inviteHash)
}

// CreateUser checks and creates an account; admins use it directly.
func (s *Service) CreateUser(ctx context.Context, username, password, email, role string, inviteHash []byte) (chat.User, error) {
	username, email, err := checkNewUser(username, password, email)
	if err != nil {
		return chat.User{}, err
	}
	return s.createUser(ctx, username, password, email, role, inviteHash)
}

// checkNewUser checks a new account's username, password and email, and
// returns the username in the form to store (chat.CheckUsername) and the
// email trimmed.
func checkNewUser(username, password, email string) (string, string, error) {
	username, err := chat.CheckUsername(username)
	if err != nil {
		return "", "", err
	}
	if err := CheckPassword(password, username); err != nil {
		return "", "", err
	}
	email = strings.TrimSpace(email)
	if email != "" {
		addr, err := mail.ParseAddress(email)
		if err != nil || addr.Address != email || len(email) > 254 {
			return "", "", chat.Errorf(chat.EInvalid, "That is not an email address.")
		}
	}
	return username, email, nil
}

// createUser hashes the password and stores an account already checked.
func (s *Service) createUser(ctx context.Context, username, password, email, role string, inviteHash []byte) (chat.User, error) {
	u := chat.User{Username: username, Email: email, Role: role, CreatedAt: s.now().UTC()}
	if err := s.hash(ctx, func() { u.PasswordHash = HashPassword(password) }); err != nil {
		return chat.User{}, err
	}
	if err := s.store.CreateUser(ctx, &u, inviteHash); err != nil {
		return chat.User{}, err
	}
	return u, nil
}

// SetPassword checks and sets a new password and revokes every session.
func (s *Service) SetPassword(ctx context.Context, u chat.User, password string) error {
	if err := CheckPassword(password, u.Username); err != nil {
		return err
	}
	var hash string
	if err := s.hash(ctx, func() { hash = HashPassword(password) }); err != nil {
		return err
	}
	return s.store.SetPassword(ctx, u.ID, hash, s.now())
}

// CreateInvite makes a single-use invite code valid for ttl.
func (s *Service) CreateInvite(ctx context.Context, ttl time.Duration) (string, error) {
	code := randomToken(18)
	h := sha256.Sum256([]byte(code))
	now := s.now()
	if err := s.store.CreateInvite(ctx, chat.Invite{CodeHash: h[:], CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
		return "", err
	}
	return code, nil
}

// Token is a freshly issued access token.
type Token struct {
	AccessToken string
	ExpiresIn   int // seconds
	Identity    chat.Identity
}

type claims struct {
	Username string `json:"username"`
	// SessionID is set in the access tokens of a browser's session, which
	// has many at once (one per tab and refresh): they are checked by the
	// session's id, not by their own jti as a bearer session's one token is.
	SessionID int64 `json:"sid,omitempty"`
	jwt.RegisteredClaims
}

var errBadLogin = chat.Errorf(chat.EUnauthorized, "Wrong username or password.")

// maxLoginName is the longest username Login looks up, in bytes (32
// characters of up to 4 bytes each); longer ones fail without a lookup, and
// share one throttle key so that they cannot fill its memory.
const maxLoginName = 4 * chat.MaxUsernameChars

// Login checks a username and password and opens a session. A wrong
// username and a wrong password get the same answer and cost the same time.
// The throttle (see Throttle) reserves the check before the password is
// hashed, so parallel guesses get no more checks than sequential ones.
func (s *Service) Login(ctx context.Context, username, password, addr, userAgent string) (Token, error) {
	u, err := s.checkLogin(ctx, username, password, addr)
	if err != nil {
		return Token{}, err
	}
	return s.issue(ctx, u, addr, userAgent)
}

// checkLogin is Login's check of a username and password, throttled.
func (s *Service) checkLogin(ctx context.Context, username, password, addr string) (chat.User, error) {
	key := throttleKey(username)
	attempt, wait := s.throttle.Begin(key, addr)
	if wait > 0 {
		return chat.User{}, tooMany("Too many failed logins; try again in ", wait)
	}
	// A check that never happens (the server is busy, the store fails)
	// gives its reservation back; after Fail or Succeed this does nothing.
	defer attempt.Cancel()
	if len(username) > maxLoginName || len(password) > 4*MaxPasswordLen {
		attempt.Fail()
		return chat.User{}, errBadLogin
	}
	u, err := s.store.UserByUsername(ctx, username)
	if err == nil && !u.DeletedAt.IsZero() {
		// A deleted account keeps no password: it is answered as an
		// unknown name is, in the same time.
		err = chat.Errorf(chat.ENotFound, "No such user.")
	}
	var ok bool
	switch {
	case err == nil:
		s.verifying()
		if herr := s.hash(ctx, func() { ok, err = VerifyPassword(u.PasswordHash, password) }); herr != nil {
			return chat.User{}, herr
		}
		if err != nil {
			return chat.User{}, err
		}
	case chat.ErrorCode(err) == chat.ENotFound:
		s.verifying()
		if herr := s.hash(ctx, func() { VerifyPassword(dummyHash, password) }); herr != nil {
			return chat.User{}, herr
		}
	default:
		return chat.User{}, err
	}
	if !ok || !u.DisabledAt.IsZero() {
		attempt.Fail()
		return chat.User{}, errBadLogin
	}
	attempt.Succeed()
	return u, nil
}

// throttleKey is the throttle's key for a username: its chat.UsernameKey,
// so that "Ａlice" and "alice", which log in to one account, share one
// throttle.
func throttleKey(username string) string {
	if len(username) > maxLoginName {
		return strings.Repeat("~", maxLoginName+1)
	}
	return chat.UsernameKey(username)
}

func (s *Service) verifying() {
	if s.beforeVerify != nil {
		s.beforeVerify()
	}
}

// tooMany is a too_many error whose sentence ends with the wait, rounded up
// to whole seconds (or minutes, from two minutes on), as Retry-After is.
func tooMany(sentence string, wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	var in string
	switch {
	case secs == 1:
		in = "1 second"
	case secs < 120:
		in = strconv.Itoa(secs) + " seconds"
	default:
		in = strconv.Itoa((secs+59)/60) + " minutes"
	}
	return &chat.Error{Code: chat.ETooMany, Message: sentence + in + ".", RetryAfter: time.Duration(secs) * time.Second}
}

func (s *Service) issue(ctx context.Context, u chat.User, addr, userAgent string) (Token, error) {
	jti := randomToken(16)
	h := sha256.Sum256([]byte(jti))
	now := s.now()
	sess := chat.Session{UserID: u.ID, TokenHash: h[:], CreatedAt: now, ExpiresAt: now.Add(s.tokenTTL), UserAgent: userAgent, IP: addr}
	if err := s.store.CreateSession(ctx, &sess); err != nil {
		return Token{}, err
	}
	c := claims{
		Username: u.Username,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   strconv.FormatInt(u.ID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(sess.ExpiresAt),
			ID:        jti,
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.signingKey)
	if err != nil {
		return Token{}, err
	}
	return Token{
		AccessToken: signed,
		ExpiresIn:   int(s.tokenTTL / time.Second),
		Identity:    chat.Identity{UserID: u.ID, Username: u.Username, Role: u.Role, SessionID: sess.ID, ExpiresAt: sess.ExpiresAt},
	}, nil
}

var errBadToken = chat.Errorf(chat.EUnauthorized, "Invalid or expired token; log in again.")

// Authenticate verifies an access token: signature (HS256 only, with the key
// derived from SECRET_KEY), issuer, expiry, and a live session behind it.
func (s *Service) Authenticate(ctx context.Context, token string) (chat.Identity, error) {
	if token == "" || len(token) > 4096 {
		return chat.Identity{}, errBadToken
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.signingKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now), jwt.WithStrictDecoding())
	if err != nil || c.ID == "" {
		return chat.Identity{}, errBadToken
	}
	var a chat.Access
	if c.SessionID != 0 {
		a, err = s.store.AccessBySessionID(ctx, c.SessionID)
	} else {
		h := sha256.Sum256([]byte(c.ID))
		a, err = s.store.AccessByTokenHash(ctx, h[:])
	}
	if err == nil && c.Subject != strconv.FormatInt(a.UserID, 10) {
		return chat.Identity{}, errBadToken
	}
	id, err := s.identity(a, err)
	if err == nil {
		s.touch(ctx, a)
	}
	return id, err
}

// identity turns a looked-up session and its user into an identity,
// refusing a revoked or expired session and a disabled account.
func (s *Service) identity(a chat.Access, lookupErr error) (chat.Identity, error) {
	if chat.ErrorCode(lookupErr) == chat.ENotFound {
		return chat.Identity{}, errBadToken
	}
	if lookupErr != nil {
		return chat.Identity{}, lookupErr
	}
	if !a.RevokedAt.IsZero() || !s.now().Before(a.ExpiresAt) || !a.DisabledAt.IsZero() {
		return chat.Identity{}, errBadToken
	}
	return chat.Identity{UserID: a.UserID, Username: a.Username, Role: a.Role, SessionID: a.SessionID, ExpiresAt: a.ExpiresAt}, nil
}

// Logout revokes the session behind an identity.
func (s *Service) Logout(ctx context.Context, id chat.Identity) error {
	return s.store.RevokeSession(ctx, id.SessionID, s.now())
}

// IssueTicket returns a single-use ticket, valid for TicketTTL, that opens a
// WebSocket in the identity's session without putting a token in a URL.
// A session holds at most 16 pending tickets and a user 64; asking for more
// evicts the oldest, so no account can crowd anyone else out. With a
// shared store the ticket opens a socket on any node (once); the error is
// then the store's (unavailable).
func (s *Service) IssueTicket(ctx context.Context, id chat.Identity) (string, error) {
	if s.shared == nil {
		return s.tickets.issue(id, s.now()), nil
	}
	t := randomToken(32)
	if err := s.shared.Put(ctx, t, id.UserID, id.SessionID, TicketTTL); err != nil {
		return "", fmt.Errorf("%w (%w)", errTicketsAway, err)
	}
	return t, nil
}

// errTicketsAway answers a ticket request while the shared store (Redis)
// does not answer.
var errTicketsAway = chat.Errorf(chat.EUnavailable, "WebSocket tickets cannot be handled right now; try again shortly.")

// RedeemTicket consumes a ticket and returns the identity it was issued for,
// if its session is still live.
func (s *Service) RedeemTicket(ctx context.Context, t string) (chat.Identity, error) {
	var (
		sessionID int64
		ok        bool
	)
	if s.shared == nil {
		sessionID, ok = s.tickets.redeem(t, s.now())
	} else {
		var err error
		if sessionID, ok, err = s.shared.Take(ctx, t); err != nil {
			return chat.Identity{}, fmt.Errorf("%w (%w)", errTicketsAway, err)
		}
	}
	if !ok {
		return chat.Identity{}, chat.Errorf(chat.EUnauthorized, "Invalid, used or expired ticket; ask for a new one.")
	}
	a, err := s.store.AccessBySessionID(ctx, sessionID)
	id, err := s.identity(a, err)
	if err == nil {
		s.touch(ctx, a)
	}
	return id, err
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
