#!/usr/bin/env bash
# Checks `make release`: builds it into a temporary folder with a version of
# its own, then insists that SHA256SUMS lists every target and matches, that
# each binary is stripped, static and built for its target, and that the
# binary for this machine prints its version. Run by `make test-release`
# (part of `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"

dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
version="check-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
targets="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64"

start=$(date +%s)
make --no-print-directory release DIST="$dist" VERSION="$version" >/dev/null
echo "make release: $(( $(date +%s) - start )) s"

fail() { echo "check-release: $*" >&2; exit 1; }

# The sums: one line per target, and every one matches.
[ -f "$dist/SHA256SUMS" ] || fail "no SHA256SUMS"
[ "$(wc -l < "$dist/SHA256SUMS")" -eq 5 ] || fail "SHA256SUMS should list 5 binaries:
$(cat "$dist/SHA256SUMS")"
if command -v sha256sum >/dev/null; then
  (cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match"
else
  (cd "$dist" && shasum -a 256 -c SHA256SUMS >/dev/null) || fail "SHA256SUMS does not match"
fi

for t in $targets; do
  os=${t%/*} arch=${t#*/} ext=
  [ "$os" = windows ] && ext=.exe
  name="mapsim-chat-$version-$os-$arch$ext"
  bin="$dist/$name"
  [ -f "$bin" ] || fail "no $name"
  grep -q "  $name\$" "$dist/SHA256SUMS" || fail "SHA256SUMS does not list $name"
  # What it was built for and how, as the binary itself records it (with
  # -trimpath it leaves -ldflags out; the symbols and the version are
  # checked below).
  info="$("$GO" version -m "$bin")"
  for want in "GOOS=$os" "GOARCH=$arch" "CGO_ENABLED=0" "-trimpath=true"; do
    grep -qF -- "$want" <<<"$info" || fail "$name: not built with $want:
$info"
  done
  # Stripped: no symbol table left. (A macOS binary still names the
  # libSystem functions it imports, type U: every macOS program links
  # libSystem, even one built without cgo.)
  nm_out="$("$GO" tool nm "$bin" 2>&1 || true)"
  defined="$({ grep -v -e "no symbols" -e "no symbol section" <<<"$nm_out" || true; } | awk 'NF && $(NF-1) != "U"' | wc -l)"
  [ "$defined" -eq 0 ] || fail "$name is not stripped: go tool nm lists $defined symbols it defines"
  echo "ok  $name ($(wc -c < "$bin") bytes)"
done

# The one this machine can run prints its version.
host="$("$GO" env GOOS)/$("$GO" env GOARCH)"
case "$host" in
  linux/amd64|linux/arm64|darwin/amd64|darwin/arm64)
    got="$("$dist/mapsim-chat-$version-${host%/*}-${host#*/}" version)"
    [ "$got" = "mapsim-chat $version" ] || fail "$host binary says \"$got\", want \"mapsim-chat $version\""
    echo "ok  $host binary prints: $got" ;;
  *) echo "no release binary runs on $host; version not checked" ;;
esac
echo "release checked: $(( $(date +%s) - start )) s"
