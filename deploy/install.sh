#!/usr/bin/env bash
# Install Mapsim Chat as a systemd service on Debian/Ubuntu.
#   make build && sudo deploy/install.sh
# Creates the mapsim-chat user, /var/lib/mapsim-chat (data and uploads),
# /etc/mapsim-chat/env with a fresh SECRET_KEY (kept if it exists), installs
# the binary and the unit, and starts the service. Run it again to upgrade:
# it replaces the binary and restarts, and never touches existing settings.
#
# Settings (environment variables):
#   BINARY=path   the binary to install (default: bin/mapsim-chat beside deploy/)
#   DESTDIR=dir   stage the files under dir instead of / (for a package or an
#                 image): dir/usr/local/bin/mapsim-chat, dir/etc/systemd/system/
#                 mapsim-chat.service, dir/etc/mapsim-chat/env, dir/var/lib/
#                 mapsim-chat/{data,uploads}. With DESTDIR nothing else is done:
#                 no user is created, nothing is chowned, systemd is not touched,
#                 and root is not needed; the package's own scripts do the rest.
#   e.g. DESTDIR=/tmp/stage BINARY=dist/mapsim-chat-v1.2.0-linux-amd64 deploy/install.sh
set -euo pipefail

root="${DESTDIR:-}"
here="$(cd "$(dirname "$0")" && pwd)"
binary="${BINARY:-$here/../bin/mapsim-chat}"

if [ ! -x "$binary" ]; then
  echo "no binary at $binary: run 'make build' first (or set BINARY=...)" >&2
  exit 1
fi
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "run as root (sudo $0)" >&2
  exit 1
fi

if [ -z "$root" ] && ! id mapsim-chat >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/mapsim-chat --shell /usr/sbin/nologin mapsim-chat
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
install -d -m 0750 "$root/etc/mapsim-chat"
install -d -m 0700 "$root/var/lib/mapsim-chat" "$root/var/lib/mapsim-chat/data" "$root/var/lib/mapsim-chat/uploads"
install -m 0755 "$binary" "$root/usr/local/bin/mapsim-chat"
install -m 0644 "$here/mapsim-chat.service" "$root/etc/systemd/system/mapsim-chat.service"

env_file="$root/etc/mapsim-chat/env"
if [ ! -f "$env_file" ]; then
  umask 077
  {
    echo "# Mapsim Chat settings; see .env.example for every variable."
    echo "SECRET_KEY=$(head -c 32 /dev/urandom | base64)"
    echo "DATA_DIR=/var/lib/mapsim-chat/data"
    echo "UPLOAD_DIR=/var/lib/mapsim-chat/uploads"
    echo "LISTEN_ADDR=127.0.0.1:8000"
    echo "LOG_FORMAT=json"
    echo "# Behind a reverse proxy on this machine:"
    echo "TRUSTED_PROXIES=127.0.0.1"
    echo "# For MySQL/MariaDB instead of SQLite:"
    echo "#DB_HOST=127.0.0.1"
    echo "#DB_NAME=mapsim_chat"
    echo "#DB_USER=mapsim_chat"
    echo "#DB_PASS="
  } > "$env_file"
  echo "wrote $env_file with a new SECRET_KEY: back it up, history cannot be read without it"
fi

if [ -z "$root" ]; then
  chown -R mapsim-chat:mapsim-chat /var/lib/mapsim-chat
  chown root:mapsim-chat /etc/mapsim-chat "$env_file"
  chmod 0640 "$env_file"
  systemctl daemon-reload
  systemctl enable mapsim-chat >/dev/null
  systemctl restart mapsim-chat
  echo "mapsim-chat is running: systemctl status mapsim-chat; logs: journalctl -u mapsim-chat"
fi
