// Package config reads Mapsim Chat's settings from the environment (and
// .env, which main loads first) once at start-up. Load checks every value
// and names the variable and what it accepts when one is wrong.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mapsim/mapsim-chat/internal/chat"
	"github.com/mapsim/mapsim-chat/internal/keyring"
)

// Registration modes.
const (
	RegistrationOpen   = "open"
	RegistrationInvite = "invite"
	RegistrationClosed = "closed"
)

// Config is every setting, checked.
type Config struct {
	// Database.
	DBDriver string // "sqlite" or "mysql"
	DBHost   string
	DBPort   string
	DBName   string
	DBUser   string
	DBPass   string
	DataDir  string // SQLite file and generated secret live here

	// RedisURL turns on the Redis broker for running several nodes (""
	// for one node): redis:// or rediss://, with user and password.
	// RedisPrefix starts every key and channel name, so that two
	// installations can share one Redis.
	RedisURL    string
	RedisPrefix string
	// RedisLimitTimeout bounds one check of a shared rate limit in Redis;
	// past it the node's own limiter answers.
	RedisLimitTimeout time.Duration
	// PresenceNodeTTL is how long a node's presence heartbeat in Redis
	// holds: a node that dies stops counting this long after its last
	// beat, and its users go offline a PresenceGrace later.
	PresenceNodeTTL time.Duration

	// SecretKey is the parsed SECRET_KEY; nil when unset, in which case the
	// server uses (or creates) DataDir/secret.key.
	SecretKey []byte

	UploadDir           string
	UploadMaxSizeBytes  int64
	UploadMaxFileBytes  int64
	UploadCheckInterval time.Duration
	// UploadUserQuotaBytes caps the bytes of one user's files that are not
	// expired.
	UploadUserQuotaBytes int64
	// UploadRate uploads a minute per user, in bursts of UploadBurst.
	UploadRate  float64
	UploadBurst int
	// UploadIdleTimeout: an upload during which no bytes arrive for this
	// long is stopped. An upload may take as long as it needs otherwise.
	UploadIdleTimeout time.Duration
	// RequestReadTimeout bounds the time to read any other request's body.
	RequestReadTimeout time.Duration
	// ClamAVAddr is a clamd to scan uploads with: host:port or a unix
	// socket path; "" for no scanning.
	ClamAVAddr string

	Debug     bool
	LogFormat string // "text" or "json"
	// MetricsToken lets a scraper that sends it as a bearer token read
	// /metrics from anywhere; without it only loopback clients may.
	MetricsToken string
	ListenAddr   string
	// DebugAddr is a loopback host:port serving pprof profiles and runtime
	// counters (/debug/pprof/, /debug/vars); "" for none.
	DebugAddr string
	TLSCert   string
	TLSKey    string
	// ACMEDomain is the one public DNS name the server gets a certificate
	// for from Let's Encrypt ("" for none); the certificate and the ACME
	// account live in ACMECacheDir. ACMEEmail is the account's contact ("" for
	// none). ACMEHTTPAddr is where HTTP-01 challenges are answered and every
	// other plain-HTTP request is redirected to https ("" when turned off,
	// leaving TLS-ALPN-01 on the TLS listener).
	ACMEDomain   string
	ACMEEmail    string
	ACMEHTTPAddr string
	// ReadHeaderTimeout is how long a client may take to send a request's
	// line and headers; a connection that has not sent them by then is
	// closed (slowloris).
	ReadHeaderTimeout time.Duration

	AccessTokenTTL time.Duration
	// RefreshTokenTTL is how long a browser stays signed in without being
	// used (its refresh cookie and session), see auth.LoginBrowser.
	RefreshTokenTTL time.Duration
	Registration    string
	AllowedOrigins  []string // normalised "scheme://host[:port]"
	// PublicURL is the origin users reach the server at ("" when unset):
	// its host is served, and its pages may open WebSockets.
	PublicURL string
	// AllowedHosts are further host names (lower case, "host" for any port
	// or "host:port") the server answers to, besides IP addresses,
	// localhost and PublicURL's host. Any other Host header gets 421: a
	// page whose name was re-pointed at this server (DNS rebinding) reaches
	// nothing.
	AllowedHosts    []string
	TrustedProxies  []netip.Prefix
	MaxMessageBytes int

	// RegistrationsPerHour is how many accounts one client address may
	// create an hour by open registration (0: no limit).
	RegistrationsPerHour int

	// Rate limits. A user may send MessageRate messages per second with
	// bursts of MessageBurst (across all their connections on this node); a
	// connection may send FrameRate frames of any type per second with
	// bursts of FrameBurst; one client address may hold MaxConnsPerIP
	// WebSocket connections at once and one user MaxConnsPerUser (0: no
	// cap). The address cap is high because a school or an office may sit
	// behind one address; the user cap is what stops one account from
	// opening thousands.
	MessageRate     float64
	MessageBurst    int
	FrameRate       float64
	FrameBurst      int
	MaxConnsPerIP   int
	MaxConnsPerUser int

	// PresenceLimit: a chat with more connections than this carries no
	// presence (see hub.Options.PresenceLimit).
	PresenceLimit int

	// PresenceGrace: how long a user whose last connection closed stays
	// online to others (0: none). See hub.Options.PresenceGrace.
	PresenceGrace time.Duration

	// WriteDelay: while the server is busy, frames for one connection that
	// arrive within this time of its last write wait and go out together
	// (0: never wait). See hub.Options.WriteDelay.
	WriteDelay time.Duration

	// CommitTimeout bounds how long a message, edit or change may take to
	// commit before the sender is told the server is unavailable (and
	// sends it again later with the same client id).
	CommitTimeout time.Duration

	// The WebSocket hub's fixed settings (not read from the environment;
	// kept here so that each default is stated once): the frames that may
	// wait for one connection, the ping period, how long a silent
	// connection lives, how long one write may block, the page size of a
	// sync, how long a typing indicator holds, and the write rate above
	// which the hub coalesces (see hub.Options).
	WSQueueSize    int
	WSPingInterval time.Duration
	WSPongTimeout  time.Duration
	WSWriteTimeout time.Duration
	SyncPageSize   int
	TypingTTL      time.Duration
	WSBusyWrites   int
}

// Limits are the limits clients are held to and told of: the largest
// message, the message and frame rates, and the largest upload.
func (c Config) Limits() chat.Limits {
	return chat.Limits{
		MaxMessageBytes: c.MaxMessageBytes, MessageRate: c.MessageRate, MessageBurst: c.MessageBurst,
		FrameRate: c.FrameRate, FrameBurst: c.FrameBurst, UploadMaxBytes: c.UploadMaxFileBytes,
	}
}

// SQLitePath is the database file used with the sqlite driver.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "chat.db") }

// SecretFile is where a generated SECRET_KEY is kept.
func (c Config) SecretFile() string { return filepath.Join(c.DataDir, "secret.key") }

// TLS reports whether the server terminates TLS itself, with certificate
// files or with ACME.
func (c Config) TLS() bool { return c.TLSCert != "" || c.ACMEDomain != "" }

// ACMECacheDir is where ACME certificates and the account key are kept.
func (c Config) ACMECacheDir() string { return filepath.Join(c.DataDir, "acme") }

// loader collects every problem so that one start reports them all.
type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) boolean(name string, def bool) bool {
	v := strings.ToLower(l.str(name, ""))
	switch v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	l.fail(name, "%q is not a boolean; use true or false", v)
	return def
}

func (l *loader) number(name string, def, min, max float64) float64 {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	// Written so that NaN, which compares false with everything, fails too.
	if err != nil || !(f >= min && f <= max) {
		l.fail(name, "%q is not a number from %g to %g", v, min, max)
		return def
	}
	return f
}

func (l *loader) integer(name string, def, min, max int64) int64 {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		l.fail(name, "%q is not a whole number from %d to %d", v, min, max)
		return def
	}
	return n
}

// duration accepts a Go duration ("90s", "24h") or a bare number of unit.
func (l *loader) duration(name string, unit, def, min, max time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil {
			l.fail(name, "%q is not a duration; use a number of %s or a value such as 90s, 15m, 24h", v, unitName(unit))
			return def
		}
		// Checked before multiplying: a huge count would overflow and could
		// wrap round to a value inside the range.
		if n < 0 || n > int64(max/unit) {
			l.fail(name, "%s %s is outside %s to %s", v, unitName(unit), min, max)
			return def
		}
		d = time.Duration(n) * unit
	}
	if d < min || d > max {
		l.fail(name, "%s is outside %s to %s", d, min, max)
		return def
	}
	return d
}

func unitName(unit time.Duration) string {
	switch unit {
	case time.Millisecond:
		return "milliseconds"
	case time.Minute:
		return "minutes"
	case time.Hour:
		return "hours"
	}
	return "seconds"
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Load reads and checks every setting.
func Load(getenv func(string) string) (Config, error) {
	l := &loader{getenv: getenv}
	var c Config

	c.DBHost = l.str("DB_HOST", "")
	defDriver := "sqlite"
	if c.DBHost != "" {
		defDriver = "mysql"
	}
	c.DBDriver = l.oneOf("DB_DRIVER", defDriver, "sqlite", "mysql", "mariadb")
	if c.DBDriver == "mariadb" {
		c.DBDriver = "mysql"
	}
	c.DBPort = l.str("DB_PORT", "3306")
	if p, err := strconv.Atoi(c.DBPort); err != nil || p < 1 || p > 65535 {
		l.fail("DB_PORT", "%q is not a port number (1 to 65535)", c.DBPort)
	}
	c.DBName = l.str("DB_NAME", "mapsim_chat")
	c.DBUser = l.str("DB_USER", "")
	c.DBPass = l.getenv("DB_PASS")
	if c.DBDriver == "mysql" {
		if c.DBHost == "" {
			c.DBHost = "127.0.0.1"
		}
		if c.DBUser == "" {
			l.fail("DB_USER", "is required with MySQL/MariaDB (DB_HOST or DB_DRIVER=mysql is set)")
		}
	}
	c.DataDir = l.str("DATA_DIR", "./data")

	if v := l.getenv("SECRET_KEY"); strings.TrimSpace(v) != "" {
		key, err := keyring.ParseSecret(v)
		if err != nil {
			l.fail("SECRET_KEY", "%v", err)
		}
		c.SecretKey = key
	}

	c.UploadDir = l.str("UPLOAD_DIR", "./uploads")
	c.UploadMaxSizeBytes = int64(l.number("UPLOAD_MAX_SIZE_GB", 10, 0.001, 1<<20) * (1 << 30))
	c.UploadMaxFileBytes = int64(l.number("UPLOAD_MAX_FILE_MB", 100, 0.001, 1<<22) * (1 << 20))
	c.UploadCheckInterval = l.duration("UPLOAD_CHECK_INTERVAL", time.Second, 5*time.Minute, time.Second, 7*24*time.Hour)
	c.ClamAVAddr = l.str("CLAMAV_ADDR", "")
	if a := c.ClamAVAddr; a != "" && !strings.HasPrefix(a, "/") && !strings.HasPrefix(a, "unix:") {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			l.fail("CLAMAV_ADDR", "%q is neither host:port (127.0.0.1:3310) nor a unix socket path (/run/clamav/clamd.ctl)", a)
		}
	}
	if c.UploadMaxFileBytes > c.UploadMaxSizeBytes {
		l.fail("UPLOAD_MAX_FILE_MB", "is larger than UPLOAD_MAX_SIZE_GB; one file cannot exceed the whole quota")
	}
	// By default a user may keep 1 GiB, or one file of the largest size
	// when that is more; set lower, a file of that size could never be
	// stored, which is a mistake worth stopping for.
	if l.str("UPLOAD_USER_QUOTA_MB", "") == "" {
		c.UploadUserQuotaBytes = max(1<<30, c.UploadMaxFileBytes)
	} else {
		c.UploadUserQuotaBytes = int64(l.number("UPLOAD_USER_QUOTA_MB", 1024, 0.001, 1<<30) * (1 << 20))
		if c.UploadUserQuotaBytes < c.UploadMaxFileBytes {
			l.fail("UPLOAD_USER_QUOTA_MB", "is smaller than UPLOAD_MAX_FILE_MB; a file of the largest size could never be stored")
		}
	}
	c.UploadRate = l.number("UPLOAD_RATE_PER_MINUTE", 30, 0.01, 1e6)
	c.UploadBurst = int(l.integer("UPLOAD_RATE_BURST", 20, 1, 1e6))
	c.UploadIdleTimeout = l.duration("UPLOAD_IDLE_TIMEOUT", time.Second, 60*time.Second, time.Second, time.Hour)
	c.RequestReadTimeout = l.duration("REQUEST_READ_TIMEOUT", time.Second, 60*time.Second, time.Second, time.Hour)

	c.Debug = l.boolean("DEBUG", false)
	c.LogFormat = l.oneOf("LOG_FORMAT", "text", "text", "json")
	c.MetricsToken = l.str("METRICS_TOKEN", "")
	if t := c.MetricsToken; t != "" && !goodMetricsToken(t) {
		l.fail("METRICS_TOKEN", "must be %d to %d characters of letters, digits and - . _ ~ + / = (openssl rand -hex 32 makes one)", minMetricsToken, maxMetricsToken)
	}
	// This machine only, unless the operator says otherwise: a fresh
	// install serves plain HTTP with open registration, which must not be
	// reachable from other machines by accident.
	c.ListenAddr = l.str("LISTEN_ADDR", "127.0.0.1:8000")
	if _, port, err := net.SplitHostPort(c.ListenAddr); err != nil {
		l.fail("LISTEN_ADDR", "%q is not host:port (for example 127.0.0.1:8000, or :8000 for every interface)", c.ListenAddr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		l.fail("LISTEN_ADDR", "%q has no valid port", c.ListenAddr)
	}
	c.DebugAddr = l.str("DEBUG_ADDR", "")
	if a := c.DebugAddr; a != "" && !loopbackHostPort(a) {
		l.fail("DEBUG_ADDR", "%q is not a loopback host:port (127.0.0.1:6060 or [::1]:6060); profiles show the server's memory layout and must not be reachable from outside", a)
	}
	c.ReadHeaderTimeout = l.duration("READ_HEADER_TIMEOUT", time.Second, 10*time.Second, time.Second, 5*time.Minute)
	c.TLSCert = l.str("TLS_CERT_FILE", l.str("SSL_CERT_PATH", ""))
	c.TLSKey = l.str("TLS_KEY_FILE", l.str("SSL_KEY_PATH", ""))
	if (c.TLSCert == "") != (c.TLSKey == "") {
		l.fail("TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE (or SSL_CERT_PATH and SSL_KEY_PATH) go together; set both or neither")
	}
	l.acme(&c)

	if l.str("ACCESS_TOKEN_TTL", "") == "" && l.str("ACCESS_TOKEN_EXPIRE_MINUTES", "") != "" {
		c.AccessTokenTTL = l.duration("ACCESS_TOKEN_EXPIRE_MINUTES", time.Minute, 24*time.Hour, time.Minute, 90*24*time.Hour)
	} else {
		c.AccessTokenTTL = l.duration("ACCESS_TOKEN_TTL", time.Second, 24*time.Hour, time.Minute, 90*24*time.Hour)
	}
	c.RefreshTokenTTL = l.duration("REFRESH_TOKEN_TTL", time.Second, 30*24*time.Hour, time.Hour, 400*24*time.Hour)
	c.Registration = l.oneOf("REGISTRATION", RegistrationOpen, RegistrationOpen, RegistrationInvite, RegistrationClosed)
	c.RegistrationsPerHour = int(l.integer("REGISTRATION_PER_HOUR", 5, 0, 1e6))

	for _, o := range splitList(l.str("ALLOWED_ORIGINS", "")) {
		norm, err := NormalizeOrigin(o)
		if err != nil {
			l.fail("ALLOWED_ORIGINS", "%q: %v", o, err)
			continue
		}
		c.AllowedOrigins = append(c.AllowedOrigins, norm)
	}
	if v := l.str("PUBLIC_URL", ""); v != "" {
		u, err := url.Parse(v)
		if err == nil && (u.Path == "" || u.Path == "/") {
			v = strings.TrimSuffix(v, "/")
		}
		norm, err := NormalizeOrigin(v)
		if err != nil {
			l.fail("PUBLIC_URL", "%q: %v", v, err)
		}
		c.PublicURL = norm
	}
	for _, h := range splitList(l.str("ALLOWED_HOSTS", "")) {
		norm, err := NormalizeHost(h)
		if err != nil {
			l.fail("ALLOWED_HOSTS", "%q: %v", h, err)
			continue
		}
		c.AllowedHosts = append(c.AllowedHosts, norm)
	}
	for _, p := range splitList(l.str("TRUSTED_PROXIES", "")) {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				l.fail("TRUSTED_PROXIES", "%q is neither an IP address nor a CIDR range", p)
				continue
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	c.MaxMessageBytes = int(l.integer("MAX_MESSAGE_BYTES", 8192, 64, 1<<20))
	c.MessageRate = l.number("RATE_LIMIT_MESSAGES_PER_SECOND", 10, 0.01, 1e6)
	c.MessageBurst = int(l.integer("RATE_LIMIT_MESSAGES_BURST", 20, 1, 1e6))
	c.FrameRate = l.number("RATE_LIMIT_FRAMES_PER_SECOND", 40, 0.01, 1e6)
	c.FrameBurst = int(l.integer("RATE_LIMIT_FRAMES_BURST", 80, 1, 1e6))
	c.MaxConnsPerIP = int(l.integer("MAX_CONNECTIONS_PER_IP", 1000, 0, 1e6))
	c.MaxConnsPerUser = int(l.integer("MAX_CONNECTIONS_PER_USER", 20, 0, 1e6))
	c.PresenceLimit = int(l.integer("PRESENCE_LIMIT", 500, 1, 1e6))
	c.PresenceGrace = l.duration("PRESENCE_GRACE", time.Second, 10*time.Second, 0, 5*time.Minute)
	c.WriteDelay = l.duration("WS_WRITE_DELAY", time.Millisecond, 5*time.Millisecond, 0, time.Second)
	c.CommitTimeout = l.duration("COMMIT_TIMEOUT", time.Second, 5*time.Second, time.Second, time.Minute)
	c.WSQueueSize, c.WSPingInterval, c.WSPongTimeout, c.WSWriteTimeout = 256, 25*time.Second, 60*time.Second, 10*time.Second
	c.SyncPageSize, c.TypingTTL, c.WSBusyWrites = 200, 5*time.Second, 10000

	l.refuseForeign()
	l.redis(&c)
	return c, errors.Join(l.errs...)
}

// redis reads REDIS_URL and REDIS_PREFIX. Several nodes share their
// messages through the database, so SQLite, a file of one node, is refused
// with Redis.
func (l *loader) redis(c *Config) {
	c.RedisPrefix = l.str("REDIS_PREFIX", "mapsim:")
	c.PresenceNodeTTL = l.duration("PRESENCE_NODE_TTL", time.Second, 6*time.Second, time.Second, 5*time.Minute)
	c.RedisLimitTimeout = l.duration("REDIS_LIMIT_TIMEOUT", time.Millisecond, 50*time.Millisecond, time.Millisecond, 5*time.Second)
	if len(c.RedisPrefix) > 64 || strings.ContainsAny(c.RedisPrefix, " *?[]\\\r\n\t") {
		l.fail("REDIS_PREFIX", "at most 64 characters, without spaces or the pattern characters * ? [ ] \\")
	}
	v := l.str("REDIS_URL", "")
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		// url's error repeats the URL, password and all.
		l.fail("REDIS_URL", "not a URL; write redis://[user:password@]host:port[/db] or rediss:// for TLS")
		return
	case u.Scheme != "redis" && u.Scheme != "rediss":
		l.fail("REDIS_URL", "the scheme must be redis:// or rediss:// (TLS), not %q", chat.Clip(u.Scheme, 20))
		return
	case u.Host == "":
		l.fail("REDIS_URL", "no host; write redis://[user:password@]host:port[/db]")
		return
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || n > 15 {
			l.fail("REDIS_URL", "the path is the database number, 0 to 15, not %q", chat.Clip(db, 20))
			return
		}
	}
	if c.DBDriver != "mysql" {
		l.fail("REDIS_URL", "several nodes must share one MariaDB/MySQL database (set DB_HOST, DB_USER, DB_PASS, DB_NAME); SQLite is a file of one node, so it cannot be used with REDIS_URL")
		return
	}
	c.RedisURL = v
}

// acme reads ACME_DOMAIN, ACME_EMAIL and ACME_HTTP_ADDR.
func (l *loader) acme(c *Config) {
	c.ACMEDomain = strings.TrimSuffix(strings.ToLower(l.str("ACME_DOMAIN", "")), ".")
	email, httpAddr := l.str("ACME_EMAIL", ""), l.str("ACME_HTTP_ADDR", "")
	if c.ACMEDomain == "" {
		for _, s := range []struct{ name, value string }{{"ACME_EMAIL", email}, {"ACME_HTTP_ADDR", httpAddr}} {
			if s.value != "" {
				l.fail(s.name, "is set but ACME_DOMAIN is not; set ACME_DOMAIN to the public name to get a certificate for, or unset %s", s.name)
			}
		}
		return
	}
	if c.TLSCert != "" {
		l.fail("ACME_DOMAIN", "and TLS_CERT_FILE are both set; use certificate files or ACME, not both")
	}
	if err := checkPublicName(c.ACMEDomain); err != nil {
		l.fail("ACME_DOMAIN", "%q %v", c.ACMEDomain, err)
	}
	if email != "" {
		a, err := mail.ParseAddress(email)
		if err != nil || a.Name != "" || a.Address != email {
			l.fail("ACME_EMAIL", "%q is not an email address such as admin@example.com", email)
		}
		c.ACMEEmail = email
	}
	switch strings.ToLower(httpAddr) {
	case "":
		c.ACMEHTTPAddr = ":80"
	case "off":
	default:
		if _, port, err := net.SplitHostPort(httpAddr); err != nil || port == "" {
			l.fail("ACME_HTTP_ADDR", "%q is not host:port (:80) or off", httpAddr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			l.fail("ACME_HTTP_ADDR", "%q has no valid port", httpAddr)
		}
		c.ACMEHTTPAddr = httpAddr
	}
	// The name users reach the server at is one it answers to.
	c.AllowedHosts = append(c.AllowedHosts, c.ACMEDomain)
}

// checkPublicName accepts a DNS name a public certificate authority can
// issue for by HTTP-01 or TLS-ALPN-01: no IP address, no wildcard, no port,
// at least two labels.
func checkPublicName(name string) error {
	if _, err := netip.ParseAddr(name); err == nil {
		return errors.New("is an IP address; ACME needs a DNS name that points at this server")
	}
	if !strings.Contains(name, ".") || len(name) > 253 {
		return errors.New("is not a public DNS name such as chat.example.com")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("is not a public DNS name such as chat.example.com")
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
				return errors.New("is not a public DNS name such as chat.example.com (one name: no wildcard, port, scheme or list)")
			}
		}
	}
	return nil
}

// loopbackHostPort reports whether a is host:port with a port and a
// loopback IP address (or "localhost").
func loopbackHostPort(a string) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

// NormalizeHost checks a host name, or host:port, as a Host header carries
// it and returns it in lower case.
func NormalizeHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	u, err := url.Parse("http://" + h)
	if err != nil || u.Host != h || u.Hostname() == "" || strings.ContainsAny(h, "/?#@") {
		return "", errors.New("not a host name such as chat.example.com or chat.example.com:8443")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", errors.New("the port must be a number from 1 to 65535")
		}
	}
	return h, nil
}

// NormalizeOrigin returns an origin as browsers send it: lower-case
// "scheme://host[:port]" with default ports dropped.
func NormalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("not an origin such as https://chat.example.com")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", errors.New("an origin has no path, query, user or fragment")
	}
	host := strings.ToLower(u.Host)
	if (u.Scheme == "http" && strings.HasSuffix(host, ":80")) || (u.Scheme == "https" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return u.Scheme + "://" + host, nil
}

// Bounds of METRICS_TOKEN: long enough not to be guessed, short enough for
// a header.
const (
	minMetricsToken = 24
	maxMetricsToken = 512
)

// goodMetricsToken accepts the characters of an RFC 6750 bearer token, in
// a length that cannot be guessed.
func goodMetricsToken(t string) bool {
	if len(t) < minMetricsToken || len(t) > maxMetricsToken {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~+/=", c) >= 0:
		default:
			return false
		}
	}
	return true
}
