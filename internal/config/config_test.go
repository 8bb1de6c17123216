package config_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mapsim/mapsim-chat/internal/config"
)

// env returns a getenv that knows only the given NAME=value pairs.
func env(pairs ...string) func(string) string {
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			panic("env: " + p + " is not NAME=value")
		}
		m[name] = value
	}
	return func(name string) string { return m[name] }
}

// MustLoad loads a configuration that must be valid.
func MustLoad(tb testing.TB, getenv func(string) string) config.Config {
	tb.Helper()
	c, err := config.Load(getenv)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c := MustLoad(t, env())
	checks := []struct {
		name      string
		got, want any
	}{
		{"DBDriver", c.DBDriver, "sqlite"},
		// This machine only: a fresh install (plain HTTP, open
		// registration) is not reachable from others by accident.
		{"ListenAddr", c.ListenAddr, "127.0.0.1:8000"},
		{"DataDir", c.DataDir, "./data"},
		{"SQLitePath", c.SQLitePath(), filepath.Join("data", "chat.db")},
		{"SecretFile", c.SecretFile(), filepath.Join("data", "secret.key")},
		{"Registration", c.Registration, config.RegistrationOpen},
		{"RegistrationsPerHour", c.RegistrationsPerHour, 5},
		{"AccessTokenTTL", c.AccessTokenTTL, 24 * time.Hour},
		{"MaxMessageBytes", c.MaxMessageBytes, 8192},
		{"DBPort", c.DBPort, "3306"},
		{"DBName", c.DBName, "mapsim_chat"},
		{"UploadDir", c.UploadDir, "./uploads"},
		{"UploadMaxSizeBytes", c.UploadMaxSizeBytes, int64(10 << 30)},
		{"UploadMaxFileBytes", c.UploadMaxFileBytes, int64(100 << 20)},
		{"UploadCheckInterval", c.UploadCheckInterval, 5 * time.Minute},
		{"UploadUserQuotaBytes", c.UploadUserQuotaBytes, int64(1 << 30)},
		{"UploadRate", c.UploadRate, 30.0},
		{"UploadBurst", c.UploadBurst, 20},
		{"UploadIdleTimeout", c.UploadIdleTimeout, 60 * time.Second},
		{"RequestReadTimeout", c.RequestReadTimeout, 60 * time.Second},
		{"LogFormat", c.LogFormat, "text"},
		{"Debug", c.Debug, false},
		{"TLS", c.TLS(), false},
		{"ACMEDomain", c.ACMEDomain, ""},
		{"ACMEHTTPAddr", c.ACMEHTTPAddr, ""},
		{"ACMECacheDir", c.ACMECacheDir(), filepath.Join("data", "acme")},
		{"SecretKey is unset", c.SecretKey == nil, true},
		{"no AllowedOrigins", len(c.AllowedOrigins), 0},
		{"no TrustedProxies", len(c.TrustedProxies), 0},
	}
	for _, tt := range checks {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestLoadRefusesBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		// variable is the name the error must give; hint is part of what
		// it must say is accepted.
		variable, hint string
	}{
		{"port not a number", []string{"DB_PORT=abc"}, "DB_PORT", "65535"},
		{"port zero", []string{"DB_PORT=0"}, "DB_PORT", "65535"},
		{"port too big", []string{"DB_PORT=70000"}, "DB_PORT", "65535"},
		{"listen address", []string{"LISTEN_ADDR=nonsense"}, "LISTEN_ADDR", "127.0.0.1:8000"},
		{"listen port", []string{"LISTEN_ADDR=:99999"}, "LISTEN_ADDR", "port"},
		{"registration", []string{"REGISTRATION=maybe"}, "REGISTRATION", "open, invite, closed"},
		{"registrations per hour negative", []string{"REGISTRATION_PER_HOUR=-1"}, "REGISTRATION_PER_HOUR", "from 0 to"},
		{"registrations per hour words", []string{"REGISTRATION_PER_HOUR=few"}, "REGISTRATION_PER_HOUR", "whole number"},
		{"origin scheme", []string{"ALLOWED_ORIGINS=ftp://x"}, "ALLOWED_ORIGINS", "https://"},
		{"origin with a path", []string{"ALLOWED_ORIGINS=https://chat.example.com/app"}, "ALLOWED_ORIGINS", "path"},
		{"origin without scheme", []string{"ALLOWED_ORIGINS=chat.example.com"}, "ALLOWED_ORIGINS", "https://"},
		{"one bad origin of two", []string{"ALLOWED_ORIGINS=https://ok.example.com,ftp://x"}, "ALLOWED_ORIGINS", "ftp://x"},
		{"public URL with a path", []string{"PUBLIC_URL=https://example.com/chat"}, "PUBLIC_URL", "path"},
		{"public URL without scheme", []string{"PUBLIC_URL=chat.example.com"}, "PUBLIC_URL", "https://"},
		{"host with a path", []string{"ALLOWED_HOSTS=chat.example.com/x"}, "ALLOWED_HOSTS", "host name"},
		{"host with a bad port", []string{"ALLOWED_HOSTS=chat.example.com:99999"}, "ALLOWED_HOSTS", "port"},
		{"proxy", []string{"TRUSTED_PROXIES=notanip"}, "TRUSTED_PROXIES", "CIDR"},
		{"proxy prefix too long", []string{"TRUSTED_PROXIES=10.0.0.0/33"}, "TRUSTED_PROXIES", "CIDR"},
		{"message size too small", []string{"MAX_MESSAGE_BYTES=1"}, "MAX_MESSAGE_BYTES", "64"},
		{"message size too big", []string{"MAX_MESSAGE_BYTES=2000000"}, "MAX_MESSAGE_BYTES", "1048576"},
		{"message size not a number", []string{"MAX_MESSAGE_BYTES=8k"}, "MAX_MESSAGE_BYTES", "whole number"},
		{"message rate zero", []string{"RATE_LIMIT_MESSAGES_PER_SECOND=0"}, "RATE_LIMIT_MESSAGES_PER_SECOND", "0.01"},
		{"message rate nan", []string{"RATE_LIMIT_MESSAGES_PER_SECOND=nan"}, "RATE_LIMIT_MESSAGES_PER_SECOND", ""},
		{"message burst zero", []string{"RATE_LIMIT_MESSAGES_BURST=0"}, "RATE_LIMIT_MESSAGES_BURST", "1"},
		{"frame rate words", []string{"RATE_LIMIT_FRAMES_PER_SECOND=lots"}, "RATE_LIMIT_FRAMES_PER_SECOND", ""},
		{"frame burst negative", []string{"RATE_LIMIT_FRAMES_BURST=-5"}, "RATE_LIMIT_FRAMES_BURST", ""},
		{"clamav address", []string{"CLAMAV_ADDR=clamd"}, "CLAMAV_ADDR", "host:port"},
		{"presence limit zero", []string{"PRESENCE_LIMIT=0"}, "PRESENCE_LIMIT", "1"},
		{"write delay too long", []string{"WS_WRITE_DELAY=5000"}, "WS_WRITE_DELAY", "1s"},
		{"presence grace too long", []string{"PRESENCE_GRACE=1h"}, "PRESENCE_GRACE", "5m"},
		{"presence grace negative", []string{"PRESENCE_GRACE=-1s"}, "PRESENCE_GRACE", "0s"},
		{"write delay words", []string{"WS_WRITE_DELAY=soon"}, "WS_WRITE_DELAY", "milliseconds"},
		{"connection cap negative", []string{"MAX_CONNECTIONS_PER_IP=-1"}, "MAX_CONNECTIONS_PER_IP", "0"},
		{"user connection cap negative", []string{"MAX_CONNECTIONS_PER_USER=-1"}, "MAX_CONNECTIONS_PER_USER", "from 0 to"},
		{"user connection cap words", []string{"MAX_CONNECTIONS_PER_USER=many"}, "MAX_CONNECTIONS_PER_USER", "whole number"},
		{"read header timeout too short", []string{"READ_HEADER_TIMEOUT=100ms"}, "READ_HEADER_TIMEOUT", "1s"},
		{"read header timeout words", []string{"READ_HEADER_TIMEOUT=soon"}, "READ_HEADER_TIMEOUT", "seconds"},
		{"secret too short", []string{"SECRET_KEY=short"}, "SECRET_KEY", "openssl rand"},
		{"secret placeholder", []string{"SECRET_KEY=your-secret-key-change-me-in-production"}, "SECRET_KEY", "openssl rand"},
		{"debug", []string{"DEBUG=perhaps"}, "DEBUG", "true or false"},
		{"debug address on every interface", []string{"DEBUG_ADDR=:6060"}, "DEBUG_ADDR", "loopback"},
		{"debug address public", []string{"DEBUG_ADDR=192.0.2.1:6060"}, "DEBUG_ADDR", "loopback"},
		{"debug address name", []string{"DEBUG_ADDR=example.com:6060"}, "DEBUG_ADDR", "loopback"},
		{"debug address without port", []string{"DEBUG_ADDR=127.0.0.1"}, "DEBUG_ADDR", "loopback"},
		{"only the certificate", []string{"TLS_CERT_FILE=/etc/ssl/chat.pem"}, "TLS_CERT_FILE", "TLS_KEY_FILE"},
		{"only the key", []string{"TLS_KEY_FILE=/etc/ssl/chat.key"}, "TLS_CERT_FILE", "both or neither"},
		{"only the old certificate name", []string{"SSL_CERT_PATH=/etc/ssl/chat.pem"}, "TLS_CERT_FILE", "SSL_KEY_PATH"},
		{"ACME and certificate files", []string{"ACME_DOMAIN=chat.example.com", "TLS_CERT_FILE=/c.pem", "TLS_KEY_FILE=/k.pem"}, "ACME_DOMAIN", "not both"},
		{"ACME and the old certificate names", []string{"ACME_DOMAIN=chat.example.com", "SSL_CERT_PATH=/c.pem", "SSL_KEY_PATH=/k.pem"}, "ACME_DOMAIN", "TLS_CERT_FILE"},
		{"ACME for an IP address", []string{"ACME_DOMAIN=192.0.2.1"}, "ACME_DOMAIN", "IP address"},
		{"ACME for localhost", []string{"ACME_DOMAIN=localhost"}, "ACME_DOMAIN", "chat.example.com"},
		{"ACME for a wildcard", []string{"ACME_DOMAIN=*.example.com"}, "ACME_DOMAIN", "no wildcard"},
		{"ACME with a port", []string{"ACME_DOMAIN=chat.example.com:443"}, "ACME_DOMAIN", "port"},
		{"ACME with a scheme", []string{"ACME_DOMAIN=https://chat.example.com"}, "ACME_DOMAIN", "scheme"},
		{"ACME for two names", []string{"ACME_DOMAIN=a.example.com,b.example.com"}, "ACME_DOMAIN", "one name"},
		{"ACME email", []string{"ACME_DOMAIN=chat.example.com", "ACME_EMAIL=ops"}, "ACME_EMAIL", "admin@example.com"},
		{"ACME email with a name", []string{"ACME_DOMAIN=chat.example.com", "ACME_EMAIL=Ops <ops@example.com>"}, "ACME_EMAIL", "email address"},
		{"ACME email without a domain", []string{"ACME_EMAIL=ops@example.com"}, "ACME_EMAIL", "ACME_DOMAIN"},
		{"ACME HTTP address without a domain", []string{"ACME_HTTP_ADDR=:80"}, "ACME_HTTP_ADDR", "ACME_DOMAIN"},
		{"ACME HTTP address without a port", []string{"ACME_DOMAIN=chat.example.com", "ACME_HTTP_ADDR=80"}, "ACME_HTTP_ADDR", "off"},
		{"ACME HTTP address bad port", []string{"ACME_DOMAIN=chat.example.com", "ACME_HTTP_ADDR=:70000"}, "ACME_HTTP_ADDR", "port"},
		{"database host without user", []string{"DB_HOST=db.internal"}, "DB_USER", "required"},
		{"mysql without user", []string{"DB_DRIVER=mysql"}, "DB_USER", "required"},
		{"redis with SQLite", []string{"REDIS_URL=redis://localhost:6379"}, "REDIS_URL", "SQLite is a file of one node"},
		{"redis scheme", []string{"DB_HOST=db", "DB_USER=u", "REDIS_URL=http://localhost:6379"}, "REDIS_URL", "redis:// or rediss://"},
		{"redis without host", []string{"DB_HOST=db", "DB_USER=u", "REDIS_URL=redis://"}, "REDIS_URL", "no host"},
		{"redis database", []string{"DB_HOST=db", "DB_USER=u", "REDIS_URL=redis://localhost:6379/cache"}, "REDIS_URL", "0 to 15"},
		{"redis prefix pattern", []string{"REDIS_PREFIX=chat*"}, "REDIS_PREFIX", "pattern characters"},
		{"driver", []string{"DB_DRIVER=postgres"}, "DB_DRIVER", "sqlite, mysql"},
		{"log format", []string{"LOG_FORMAT=xml"}, "LOG_FORMAT", "text, json"},
		{"metrics token too short", []string{"METRICS_TOKEN=secret"}, "METRICS_TOKEN", "openssl rand -hex 32"},
		{"metrics token with a space", []string{"METRICS_TOKEN=0123456789abcdef 0123456789abcdef"}, "METRICS_TOKEN", "24 to 512"},
		{"metrics token with a quote", []string{`METRICS_TOKEN=0123456789abcdef"0123456789abcdef`}, "METRICS_TOKEN", "letters, digits"},
		{"token ttl not a duration", []string{"ACCESS_TOKEN_TTL=forever"}, "ACCESS_TOKEN_TTL", "24h"},
		{"token ttl too short", []string{"ACCESS_TOKEN_TTL=10s"}, "ACCESS_TOKEN_TTL", "1m0s"},
		{"token ttl too long", []string{"ACCESS_TOKEN_TTL=9000h"}, "ACCESS_TOKEN_TTL", "2160h"},
		{"refresh ttl too short", []string{"REFRESH_TOKEN_TTL=10m"}, "REFRESH_TOKEN_TTL", "1h0m0s"},
		{"refresh ttl not a duration", []string{"REFRESH_TOKEN_TTL=always"}, "REFRESH_TOKEN_TTL", "not a duration"},
		{"token minutes not a number", []string{"ACCESS_TOKEN_EXPIRE_MINUTES=lots"}, "ACCESS_TOKEN_EXPIRE_MINUTES", "minutes"},
		// 9007199254741052 minutes overflows to exactly one hour when
		// multiplied out; it must be refused, not taken as 1h.
		{"token minutes overflowing", []string{"ACCESS_TOKEN_EXPIRE_MINUTES=9007199254741052"}, "ACCESS_TOKEN_EXPIRE_MINUTES", "2160h"},
		{"upload quota negative", []string{"UPLOAD_MAX_SIZE_GB=-1"}, "UPLOAD_MAX_SIZE_GB", "number"},
		{"upload quota NaN", []string{"UPLOAD_MAX_SIZE_GB=NaN"}, "UPLOAD_MAX_SIZE_GB", "number"},
		{"upload file size NaN", []string{"UPLOAD_MAX_FILE_MB=nan"}, "UPLOAD_MAX_FILE_MB", "number"},
		{"upload file size infinite", []string{"UPLOAD_MAX_FILE_MB=+Inf"}, "UPLOAD_MAX_FILE_MB", "number"},
		{"file larger than the quota", []string{"UPLOAD_MAX_SIZE_GB=0.001", "UPLOAD_MAX_FILE_MB=10"}, "UPLOAD_MAX_FILE_MB", "UPLOAD_MAX_SIZE_GB"},
		{"check interval zero", []string{"UPLOAD_CHECK_INTERVAL=0"}, "UPLOAD_CHECK_INTERVAL", "1s"},
		{"user quota zero", []string{"UPLOAD_USER_QUOTA_MB=0"}, "UPLOAD_USER_QUOTA_MB", "number"},
		{"user quota below one file", []string{"UPLOAD_MAX_FILE_MB=100", "UPLOAD_USER_QUOTA_MB=50"}, "UPLOAD_USER_QUOTA_MB", "UPLOAD_MAX_FILE_MB"},
		{"upload rate zero", []string{"UPLOAD_RATE_PER_MINUTE=0"}, "UPLOAD_RATE_PER_MINUTE", "number"},
		{"upload burst zero", []string{"UPLOAD_RATE_BURST=0"}, "UPLOAD_RATE_BURST", "whole number"},
		{"idle timeout zero", []string{"UPLOAD_IDLE_TIMEOUT=0"}, "UPLOAD_IDLE_TIMEOUT", "1s"},
		{"idle timeout words", []string{"UPLOAD_IDLE_TIMEOUT=forever"}, "UPLOAD_IDLE_TIMEOUT", "duration"},
		{"request read timeout zero", []string{"REQUEST_READ_TIMEOUT=0s"}, "REQUEST_READ_TIMEOUT", "1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env...))
			if err == nil {
				t.Fatalf("%v was accepted", tt.env)
			}
			if !strings.Contains(err.Error(), tt.variable) {
				t.Fatalf("error does not name %s: %v", tt.variable, err)
			}
			if !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("error does not say %q: %v", tt.hint, err)
			}
		})
	}
}

func TestLoadKeepsSecretsOutOfErrors(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env("SECRET_KEY=tooshort1", "DB_HOST=db.internal", "DB_PASS=hunter2hunter2"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, secret := range []string{"tooshort1", "hunter2hunter2"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows a secret value: %v", err)
		}
	}
}

func TestLoadRedis(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env("DB_HOST=db", "DB_USER=chat", "REDIS_URL=rediss://chat:s3cret@redis.internal:6380/2", "REDIS_PREFIX=site-a:"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "rediss://chat:s3cret@redis.internal:6380/2" || c.RedisPrefix != "site-a:" {
		t.Fatalf("REDIS_URL %q, REDIS_PREFIX %q", c.RedisURL, c.RedisPrefix)
	}
	c, err = config.Load(env())
	if err != nil || c.RedisURL != "" || c.RedisPrefix != "mapsim:" {
		t.Fatalf("defaults: %q %q %v", c.RedisURL, c.RedisPrefix, err)
	}
	// A URL that does not parse must not be echoed: it holds a password.
	_, err = config.Load(env("DB_HOST=db", "DB_USER=chat", "REDIS_URL=redis://chat:pa%zzword@redis:6379"))
	if err == nil || strings.Contains(err.Error(), "pa%zzword") || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("bad URL: %v", err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env("DB_PORT=abc", "REGISTRATION=maybe", "DEBUG=perhaps", "MAX_MESSAGE_BYTES=1", "REDIS_URL=redis://x"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, name := range []string{"DB_PORT", "REGISTRATION", "DEBUG", "MAX_MESSAGE_BYTES", "REDIS_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not mention %s:\n%v", name, err)
		}
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != 5 {
		t.Errorf("%d lines for 5 problems:\n%v", lines, err)
	}
}

func TestLoadAcceptsGoodValues(t *testing.T) {
	t.Parallel()
	secret := make([]byte, 32)
	rand.Read(secret)
	tests := []struct {
		name  string
		env   []string
		check func(t *testing.T, c config.Config)
	}{
		{"DB_HOST implies mysql", []string{"DB_HOST=db.internal", "DB_USER=chat", "DB_PASS=pw", "DB_NAME=chat", "DB_PORT=3307"},
			func(t *testing.T, c config.Config) {
				if c.DBDriver != "mysql" || c.DBHost != "db.internal" || c.DBUser != "chat" || c.DBPass != "pw" || c.DBName != "chat" || c.DBPort != "3307" {
					t.Fatalf("database settings %+v", c)
				}
			}},
		{"mariadb is mysql on localhost", []string{"DB_DRIVER=MariaDB", "DB_USER=chat"},
			func(t *testing.T, c config.Config) {
				if c.DBDriver != "mysql" || c.DBHost != "127.0.0.1" {
					t.Fatalf("driver %q host %q", c.DBDriver, c.DBHost)
				}
			}},
		{"explicit sqlite wins over DB_HOST", []string{"DB_DRIVER=sqlite", "DB_HOST=db.internal"},
			func(t *testing.T, c config.Config) {
				if c.DBDriver != "sqlite" {
					t.Fatalf("driver %q", c.DBDriver)
				}
			}},
		{"registrations per hour", []string{"REGISTRATION_PER_HOUR=20"},
			func(t *testing.T, c config.Config) {
				if c.RegistrationsPerHour != 20 {
					t.Fatalf("RegistrationsPerHour = %d", c.RegistrationsPerHour)
				}
			}},
		{"no registration limit", []string{"REGISTRATION_PER_HOUR=0"},
			func(t *testing.T, c config.Config) {
				if c.RegistrationsPerHour != 0 {
					t.Fatalf("RegistrationsPerHour = %d", c.RegistrationsPerHour)
				}
			}},
		{"spaces around values", []string{"DB_PORT= 3307 ", "REGISTRATION= closed\t"},
			func(t *testing.T, c config.Config) {
				if c.DBPort != "3307" || c.Registration != "closed" {
					t.Fatalf("port %q registration %q", c.DBPort, c.Registration)
				}
			}},
		{"data dir", []string{"DATA_DIR=/var/lib/mapsim-chat"},
			func(t *testing.T, c config.Config) {
				if c.SQLitePath() != "/var/lib/mapsim-chat/chat.db" || c.SecretFile() != "/var/lib/mapsim-chat/secret.key" {
					t.Fatalf("paths %q %q", c.SQLitePath(), c.SecretFile())
				}
			}},
		{"TLS files", []string{"TLS_CERT_FILE=/c.pem", "TLS_KEY_FILE=/k.pem"},
			func(t *testing.T, c config.Config) {
				if !c.TLS() || c.TLSCert != "/c.pem" || c.TLSKey != "/k.pem" {
					t.Fatalf("TLS %v %q %q", c.TLS(), c.TLSCert, c.TLSKey)
				}
			}},
		{"SSL_CERT_PATH and SSL_KEY_PATH", []string{"SSL_CERT_PATH=/c.pem", "SSL_KEY_PATH=/k.pem"},
			func(t *testing.T, c config.Config) {
				if !c.TLS() || c.TLSCert != "/c.pem" || c.TLSKey != "/k.pem" {
					t.Fatalf("TLS %v %q %q", c.TLS(), c.TLSCert, c.TLSKey)
				}
			}},
		{"TLS names win over SSL names", []string{"TLS_CERT_FILE=/new.pem", "TLS_KEY_FILE=/new.key", "SSL_CERT_PATH=/old.pem", "SSL_KEY_PATH=/old.key"},
			func(t *testing.T, c config.Config) {
				if c.TLSCert != "/new.pem" || c.TLSKey != "/new.key" {
					t.Fatalf("TLS files %q %q", c.TLSCert, c.TLSKey)
				}
			}},
		{"ACCESS_TOKEN_EXPIRE_MINUTES", []string{"ACCESS_TOKEN_EXPIRE_MINUTES=60"},
			func(t *testing.T, c config.Config) {
				if c.AccessTokenTTL != time.Hour {
					t.Fatalf("AccessTokenTTL = %s", c.AccessTokenTTL)
				}
			}},
		{"ACCESS_TOKEN_TTL as a duration", []string{"ACCESS_TOKEN_TTL=2h30m"},
			func(t *testing.T, c config.Config) {
				if c.AccessTokenTTL != 150*time.Minute {
					t.Fatalf("AccessTokenTTL = %s", c.AccessTokenTTL)
				}
			}},
		{"ACCESS_TOKEN_TTL in seconds", []string{"ACCESS_TOKEN_TTL=3600"},
			func(t *testing.T, c config.Config) {
				if c.AccessTokenTTL != time.Hour {
					t.Fatalf("AccessTokenTTL = %s", c.AccessTokenTTL)
				}
			}},
		{"ACCESS_TOKEN_TTL wins over the old name", []string{"ACCESS_TOKEN_TTL=2h", "ACCESS_TOKEN_EXPIRE_MINUTES=5"},
			func(t *testing.T, c config.Config) {
				if c.AccessTokenTTL != 2*time.Hour {
					t.Fatalf("AccessTokenTTL = %s", c.AccessTokenTTL)
				}
			}},
		{"registration in capitals", []string{"REGISTRATION=Invite"},
			func(t *testing.T, c config.Config) {
				if c.Registration != config.RegistrationInvite {
					t.Fatalf("Registration = %q", c.Registration)
				}
			}},
		{"origins", []string{"ALLOWED_ORIGINS=https://Chat.Example.com:443, http://localhost:8000,http://a.example:80"},
			func(t *testing.T, c config.Config) {
				want := []string{"https://chat.example.com", "http://localhost:8000", "http://a.example"}
				if !slices.Equal(c.AllowedOrigins, want) {
					t.Fatalf("AllowedOrigins = %q, want %q", c.AllowedOrigins, want)
				}
			}},
		{"public URL and hosts", []string{"PUBLIC_URL=https://Chat.Example.com/", "ALLOWED_HOSTS=LAN.home:8443, [::1]:80"},
			func(t *testing.T, c config.Config) {
				if c.PublicURL != "https://chat.example.com" || !slices.Equal(c.AllowedHosts, []string{"lan.home:8443", "[::1]:80"}) {
					t.Fatalf("PublicURL = %q, AllowedHosts = %q", c.PublicURL, c.AllowedHosts)
				}
			}},
		{"proxies", []string{"TRUSTED_PROXIES=10.0.0.0/8 192.168.1.1,::1, ::ffff:10.1.2.3,172.16.5.4/12"},
			func(t *testing.T, c config.Config) {
				want := []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32"), netip.MustParsePrefix("::1/128"),
					netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("172.16.0.0/12"),
				}
				if !slices.Equal(c.TrustedProxies, want) {
					t.Fatalf("TrustedProxies = %v, want %v", c.TrustedProxies, want)
				}
			}},
		{"rate limit defaults", nil,
			func(t *testing.T, c config.Config) {
				if c.MessageRate != 10 || c.MessageBurst != 20 || c.FrameRate != 40 || c.FrameBurst != 80 || c.MaxConnsPerIP != 1000 || c.MaxConnsPerUser != 20 {
					t.Fatalf("rates %v/%d frames %v/%d conns %d per address, %d per user", c.MessageRate, c.MessageBurst, c.FrameRate, c.FrameBurst, c.MaxConnsPerIP, c.MaxConnsPerUser)
				}
				if c.ReadHeaderTimeout != 10*time.Second {
					t.Fatalf("ReadHeaderTimeout = %v, want 10s", c.ReadHeaderTimeout)
				}
			}},
		{"rate limits set", []string{"RATE_LIMIT_MESSAGES_PER_SECOND=0.5", "RATE_LIMIT_MESSAGES_BURST=3",
			"RATE_LIMIT_FRAMES_PER_SECOND=100", "RATE_LIMIT_FRAMES_BURST=200", "MAX_CONNECTIONS_PER_IP=0", "MAX_CONNECTIONS_PER_USER=5",
			"READ_HEADER_TIMEOUT=3"},
			func(t *testing.T, c config.Config) {
				if c.MessageRate != 0.5 || c.MessageBurst != 3 || c.FrameRate != 100 || c.FrameBurst != 200 || c.MaxConnsPerIP != 0 || c.MaxConnsPerUser != 5 {
					t.Fatalf("rates %v/%d frames %v/%d conns %d per address, %d per user", c.MessageRate, c.MessageBurst, c.FrameRate, c.FrameBurst, c.MaxConnsPerIP, c.MaxConnsPerUser)
				}
				if c.ReadHeaderTimeout != 3*time.Second {
					t.Fatalf("ReadHeaderTimeout = %v, want 3s", c.ReadHeaderTimeout)
				}
			}},
		{"message size limits", []string{"MAX_MESSAGE_BYTES=64"},
			func(t *testing.T, c config.Config) {
				if c.MaxMessageBytes != 64 {
					t.Fatalf("MaxMessageBytes = %d", c.MaxMessageBytes)
				}
			}},
		{"debug yes", []string{"DEBUG=yes", "LOG_FORMAT=JSON"},
			func(t *testing.T, c config.Config) {
				if !c.Debug || c.LogFormat != "json" {
					t.Fatalf("Debug %v LogFormat %q", c.Debug, c.LogFormat)
				}
			}},
		{"debug off", []string{"DEBUG=0"},
			func(t *testing.T, c config.Config) {
				if c.Debug {
					t.Fatal("Debug is on")
				}
			}},
		{"secret key", []string{"SECRET_KEY=" + base64.StdEncoding.EncodeToString(secret)},
			func(t *testing.T, c config.Config) {
				if !bytes.Equal(c.SecretKey, secret) {
					t.Fatalf("SecretKey = %x, want %x", c.SecretKey, secret)
				}
			}},
		{"uploads", []string{"UPLOAD_DIR=/srv/uploads", "UPLOAD_MAX_SIZE_GB=0.5", "UPLOAD_MAX_FILE_MB=1.5", "UPLOAD_CHECK_INTERVAL=90"},
			func(t *testing.T, c config.Config) {
				if c.UploadDir != "/srv/uploads" || c.UploadMaxSizeBytes != 512<<20 || c.UploadMaxFileBytes != 3<<19 || c.UploadCheckInterval != 90*time.Second {
					t.Fatalf("uploads %q %d %d %s", c.UploadDir, c.UploadMaxSizeBytes, c.UploadMaxFileBytes, c.UploadCheckInterval)
				}
			}},
		{"upload limits", []string{"UPLOAD_USER_QUOTA_MB=250", "UPLOAD_RATE_PER_MINUTE=6", "UPLOAD_RATE_BURST=3", "UPLOAD_IDLE_TIMEOUT=2m",
			"REQUEST_READ_TIMEOUT=20"},
			func(t *testing.T, c config.Config) {
				if c.UploadUserQuotaBytes != 250<<20 || c.UploadRate != 6 || c.UploadBurst != 3 || c.UploadIdleTimeout != 2*time.Minute ||
					c.RequestReadTimeout != 20*time.Second {
					t.Fatalf("upload limits %d %g %d %s %s", c.UploadUserQuotaBytes, c.UploadRate, c.UploadBurst, c.UploadIdleTimeout, c.RequestReadTimeout)
				}
				if q := MustLoad(t, env("UPLOAD_MAX_FILE_MB=2000", "UPLOAD_MAX_SIZE_GB=20")).UploadUserQuotaBytes; q != 2000<<20 {
					t.Fatalf("with files up to 2000 MB the default user quota is %d bytes, want one such file", q)
				}
				if d := MustLoad(t, env("UPLOAD_IDLE_TIMEOUT=5")).UploadIdleTimeout; d != 5*time.Second {
					t.Fatalf("UPLOAD_IDLE_TIMEOUT=5 gives %s", d)
				}
			}},
		{"write delay", []string{"WS_WRITE_DELAY=0"},
			func(t *testing.T, c config.Config) {
				if c.WriteDelay != 0 {
					t.Fatalf("WriteDelay = %s", c.WriteDelay)
				}
				if d := MustLoad(t, env("WS_WRITE_DELAY=12")).WriteDelay; d != 12*time.Millisecond {
					t.Fatalf("WS_WRITE_DELAY=12 gives %s", d)
				}
				if d := MustLoad(t, env()).WriteDelay; d != 5*time.Millisecond {
					t.Fatalf("default WriteDelay %s", d)
				}
			}},
		{"presence grace", []string{"PRESENCE_GRACE=0"},
			func(t *testing.T, c config.Config) {
				if c.PresenceGrace != 0 {
					t.Fatalf("PresenceGrace = %s", c.PresenceGrace)
				}
				if d := MustLoad(t, env("PRESENCE_GRACE=30")).PresenceGrace; d != 30*time.Second {
					t.Fatalf("PRESENCE_GRACE=30 gives %s", d)
				}
				if d := MustLoad(t, env("PRESENCE_GRACE=1500ms")).PresenceGrace; d != 1500*time.Millisecond {
					t.Fatalf("PRESENCE_GRACE=1500ms gives %s", d)
				}
				if d := MustLoad(t, env()).PresenceGrace; d != 10*time.Second {
					t.Fatalf("default PresenceGrace %s", d)
				}
			}},
		{"debug address", []string{"DEBUG_ADDR=127.0.0.1:6060"},
			func(t *testing.T, c config.Config) {
				if c.DebugAddr != "127.0.0.1:6060" {
					t.Fatalf("DebugAddr = %q", c.DebugAddr)
				}
			}},
		{"ACME", []string{"ACME_DOMAIN=Chat.Example.COM.", "ACME_EMAIL=ops@example.com", "DATA_DIR=/srv/chat"},
			func(t *testing.T, c config.Config) {
				if c.ACMEDomain != "chat.example.com" || c.ACMEEmail != "ops@example.com" || c.ACMEHTTPAddr != ":80" || !c.TLS() {
					t.Fatalf("ACME %q %q %q, TLS %v", c.ACMEDomain, c.ACMEEmail, c.ACMEHTTPAddr, c.TLS())
				}
				if c.ACMECacheDir() != filepath.Join("/srv/chat", "acme") {
					t.Fatalf("ACMECacheDir = %q", c.ACMECacheDir())
				}
				if !slices.Contains(c.AllowedHosts, "chat.example.com") {
					t.Fatalf("the ACME domain is not an allowed host: %v", c.AllowedHosts)
				}
			}},
		{"ACME without HTTP-01", []string{"ACME_DOMAIN=chat.example.com", "ACME_HTTP_ADDR=off"},
			func(t *testing.T, c config.Config) {
				if c.ACMEHTTPAddr != "" {
					t.Fatalf("ACMEHTTPAddr = %q", c.ACMEHTTPAddr)
				}
			}},
		{"ACME HTTP address", []string{"ACME_DOMAIN=chat.example.com", "ACME_HTTP_ADDR=192.0.2.1:8080"},
			func(t *testing.T, c config.Config) {
				if c.ACMEHTTPAddr != "192.0.2.1:8080" {
					t.Fatalf("ACMEHTTPAddr = %q", c.ACMEHTTPAddr)
				}
			}},
		{"listen on every interface", []string{"LISTEN_ADDR=:8000"},
			func(t *testing.T, c config.Config) {
				if c.ListenAddr != ":8000" {
					t.Fatalf("ListenAddr = %q", c.ListenAddr)
				}
			}},
		{"listen on loopback", []string{"LISTEN_ADDR=[::1]:9000"},
			func(t *testing.T, c config.Config) {
				if c.ListenAddr != "[::1]:9000" {
					t.Fatalf("ListenAddr = %q", c.ListenAddr)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, MustLoad(t, env(tt.env...)))
		})
	}
}

func TestNormalizeOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		origin, want string // want "" means refused
	}{
		{"https://chat.example.com", "https://chat.example.com"},
		{"https://chat.example.com/", "https://chat.example.com"},
		{"HTTPS://CHAT.EXAMPLE.COM", "https://chat.example.com"},
		{"https://chat.example.com:443", "https://chat.example.com"},
		{"https://chat.example.com:8443", "https://chat.example.com:8443"},
		{"http://chat.example.com:80", "http://chat.example.com"},
		{"http://chat.example.com:443", "http://chat.example.com:443"},
		{"http://[::1]:80", "http://[::1]"},
		{" http://localhost:8000 ", "http://localhost:8000"},
		{"", ""},
		{"chat.example.com", ""},
		{"ftp://chat.example.com", ""},
		{"https://", ""},
		{"https://chat.example.com/app", ""},
		{"https://chat.example.com?x=1", ""},
		{"https://chat.example.com#top", ""},
		{"https://user:pw@chat.example.com", ""},
		{"javascript:alert(1)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			got, err := config.NormalizeOrigin(tt.origin)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeOrigin = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestLoadRefusesForeignSettings: a name the server does not read but that
// looks like one of its own (SecureChat's DATABASE_URL, a framework's
// JWT_SECRET, a platform's PORT) stops the start with a sentence naming it
// and what to set instead, and never shows its value; set beside the
// setting it stands for, it is let through.
func TestLoadRefusesForeignSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		refused string // the foreign name the error must give, "" when accepted
		instead string // what the error must say to set
	}{
		{"SecureChat's DATABASE_URL", []string{"DATABASE_URL=mysql://chat:hunter2hunter2@db/chat"}, "DATABASE_URL", "DB_HOST"},
		{"DB_URL", []string{"DB_URL=mysql://db/chat"}, "DB_URL", "DB_USER"},
		{"MYSQL_URL", []string{"MYSQL_URL=mysql://db/chat"}, "MYSQL_URL", "DB_PASS"},
		{"SecureChat's DB_FILE", []string{"DB_FILE=/srv/chat.db"}, "DB_FILE", "DATA_DIR"},
		{"DB_PASSWORD", []string{"DB_HOST=db", "DB_USER=chat", "DB_PASSWORD=hunter2hunter2"}, "DB_PASSWORD", "DB_PASS"},
		{"JWT_SECRET", []string{"JWT_SECRET=hunter2hunter2"}, "JWT_SECRET", "SECRET_KEY"},
		{"SECRET", []string{"SECRET=hunter2hunter2"}, "SECRET", "SECRET_KEY"},
		{"PORT", []string{"PORT=9000"}, "PORT", "LISTEN_ADDR"},
		{"HOST", []string{"HOST=0.0.0.0"}, "HOST", "LISTEN_ADDR"},
		{"UPLOAD_FOLDER", []string{"UPLOAD_FOLDER=/srv/up"}, "UPLOAD_FOLDER", "UPLOAD_DIR"},
		{"MAX_CONTENT_LENGTH", []string{"MAX_CONTENT_LENGTH=1000"}, "MAX_CONTENT_LENGTH", "UPLOAD_MAX_FILE_MB"},
		{"CORS_ORIGINS", []string{"CORS_ORIGINS=https://x.example"}, "CORS_ORIGINS", "ALLOWED_ORIGINS"},
		{"LOG_LEVEL", []string{"LOG_LEVEL=debug"}, "LOG_LEVEL", "DEBUG=true"},
		{"empty is unset", []string{"DATABASE_URL= "}, "", ""},
		{"DATABASE_URL beside DB_HOST", []string{"DATABASE_URL=postgres://x", "DB_HOST=db", "DB_USER=chat"}, "", ""},
		{"DATABASE_URL beside DB_DRIVER=sqlite", []string{"DATABASE_URL=postgres://x", "DB_DRIVER=sqlite"}, "", ""},
		{"a platform's PORT beside LISTEN_ADDR", []string{"PORT=8080", "LISTEN_ADDR=:8080"}, "", ""},
		{"JWT_SECRET beside SECRET_KEY", []string{"JWT_SECRET=x", "SECRET_KEY=" + strings.Repeat("ab", 32)}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(tt.env...))
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("%v refused: %v", tt.env, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%v accepted: the server would start without it", tt.env)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.refused+": is not a Mapsim Chat setting, so it would be ignored") || !strings.Contains(msg, tt.instead) || !strings.Contains(msg, "once that is set, "+tt.refused+" is ignored") {
				t.Fatalf("the error should name %s, say to set %s and that it is then ignored: %v", tt.refused, tt.instead, msg)
			}
			if strings.Contains(msg, "hunter2hunter2") {
				t.Fatalf("the error shows the value: %v", msg)
			}
		})
	}
}

// TestLoadLetsTheShellsHOSTThrough: tcsh exports HOST as the machine's name;
// that is not an attempt to set the listen address.
func TestLoadLetsTheShellsHOSTThrough(t *testing.T) {
	t.Parallel()
	name, err := os.Hostname()
	if err != nil || name == "" {
		t.Skipf("this machine has no name: %v", err)
	}
	MustLoad(t, env("HOST="+name))
}

func TestMetricsTokenAccepted(t *testing.T) {
	for _, tok := range []string{"", "0123456789abcdef0123456789abcdef", "dGhpcyBpcyBhIGxvbmcgdG9rZW4gZm9yIHRlc3Rz+/=="} {
		c := MustLoad(t, env("METRICS_TOKEN="+tok))
		if c.MetricsToken != tok {
			t.Errorf("METRICS_TOKEN=%q read as %q", tok, c.MetricsToken)
		}
	}
}
