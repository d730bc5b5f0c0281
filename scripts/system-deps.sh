#!/usr/bin/env bash
# Debian packages a target needs, installed only when missing (CI runs on a fresh machine as root).
set -euo pipefail
case "${1:-test}" in
  test)  need=(curl openssl haproxy redis-server redis-tools postgresql-client postgresql chromium) ;;
  bench) need=(curl wrk nginx-light squid haproxy) ;;
  *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac
export PATH=$PATH:/usr/sbin:/sbin  # haproxy and nginx live in sbin
missing=()
for pkg in "${need[@]}"; do
  case "$pkg" in
    nginx-light) bin=nginx ;;
    redis-tools) bin=redis-benchmark ;;
    postgresql-client) bin=psql ;;
    postgresql) bin=pgbench ;;  # Debian ships pgbench with the server package
    *) bin=$pkg ;;
  esac
  command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
