#!/bin/sh
# Installs what building, testing and running shlpt-vk need on Debian 12 or
# Ubuntu: the Vulkan loader and lavapipe (Mesa's CPU driver), the Khronos
# validation layer, the shader compiler, gcc and make, sentencepiece (for
# the tokenizer tests), and Go 1.23 or newer when no such Go is installed
# (Debian 12's own is 1.19: then golang-1.23 from bookworm-backports, linked
# into /usr/local/bin). Runs as root, or as a user through sudo. Safe to run
# again: it installs only what is missing.
#
#   sh tools/setup.sh        (or: make setup)
set -eu

# as_root CMD...: CMD as root, directly or through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: $* needs root: run this as root, or install sudo" >&2
    exit 1
  fi
}
export DEBIAN_FRONTEND=noninteractive

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: apt-get not found; install by hand: the Vulkan loader and a driver (Mesa's lavapipe), the Khronos" >&2
  echo "       validation layer, glslc, gcc, make and Go 1.23 or newer (https://go.dev/dl)" >&2
  exit 1
fi

packages="mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-validationlayers glslc gcc libc6-dev make sentencepiece ca-certificates"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root apt-get install -y -qq --no-install-recommends $missing
fi

# go_ok GO: GO runs and is Go 1.23 or newer (the floor in go.mod).
go_ok() {
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  major=${v%%.*}
  rest=${v#*.}
  minor=${rest%%[!0-9]*}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 23 ]; }
}

for g in go /usr/local/go/bin/go; do
  if command -v "$g" >/dev/null 2>&1 && go_ok "$g"; then
    gobin=$(command -v "$g")
    break
  fi
done
if [ -z "${gobin:-}" ]; then
  for g in /usr/lib/go-1.2[3-9]/bin/go; do
    [ -x "$g" ] && go_ok "$g" && gobin=$g
  done
fi
if [ -z "${gobin:-}" ]; then
  . /etc/os-release
  if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    echo "setup: no Go 1.23 or newer; installing golang-1.23-go from bookworm-backports"
    list=/etc/apt/sources.list.d/bookworm-backports.list
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee "$list" >/dev/null
    fi
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.23-go
    gobin=/usr/lib/go-1.23/bin/go
  else
    for v in 1.25 1.24 1.23; do
      if apt-cache show "golang-$v-go" >/dev/null 2>&1; then
        echo "setup: no Go 1.23 or newer; installing golang-$v-go"
        as_root apt-get install -y -qq --no-install-recommends "golang-$v-go"
        gobin=/usr/lib/go-$v/bin/go
        break
      fi
    done
  fi
  if [ -z "${gobin:-}" ] || ! go_ok "$gobin"; then
    echo "setup: no Go 1.23 or newer is installed or available as a package here; get one from https://go.dev/dl" >&2
    exit 1
  fi
fi
# The go that make and the README's commands run must be this one: link it
# where a shell finds it first when the go on PATH is missing or too old.
if ! command -v go >/dev/null 2>&1 || ! go_ok go; then
  echo "setup: linking $gobin into /usr/local/bin"
  as_root ln -sf "$gobin" /usr/local/bin/go
  as_root ln -sf "$(dirname "$gobin")/gofmt" /usr/local/bin/gofmt
  hash -r 2>/dev/null || true
fi
if ! command -v go >/dev/null 2>&1 || ! go_ok go; then
  echo "setup: the go first on your PATH ($(command -v go || echo none)) is not Go 1.23 or newer; put /usr/local/bin first on PATH" >&2
  exit 1
fi
echo "setup: ready: $(go version); libvulkan1 $(dpkg-query -W -f='${Version}' libvulkan1), mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
