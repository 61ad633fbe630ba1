#!/usr/bin/env bash
# Installs the Go reference implementation used by tests/go_interop.rs: Debian's golang-go and
# golang-golang-x-mod-dev (golang.org/x/mod/sumdb/{note,tlog} sources under /usr/share/gocode).
# Idempotent; works offline from the network except for Debian's package registry.
set -euo pipefail
if command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note ]; then
  echo "install-go: go $(go version | awk '{print $3}') and golang.org/x/mod already present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null
go version
test -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog
echo "install-go: installed"
