#!/usr/bin/env bash
# Installs the ecobench binaries, systemd units, the RAPL udev rule and group, a token.
#
#   deploy/install.sh [--bin-dir DIR] [--prefix PREFIX] [--no-data]
#
#   --bin-dir DIR   where coordinator and worker are (default: target/release)
#   --prefix P      installation prefix of the binaries (default: /usr/local)
#   --no-data       do not copy data/fashion-mnist to /var/lib/ecobench-data
#   DESTDIR=ROOT    install into ROOT instead of / (packaging, tests); nothing is
#                   started, reloaded or triggered then
#
# What it writes (under DESTDIR):
#   PREFIX/bin/{coordinator,worker}                    0755
#   etc/systemd/system/ecobench-{coordinator,worker}.service (ExecStart on PREFIX/bin)
#   etc/udev/rules.d/60-ecobench-powercap.rules        RAPL read access for ecobench-power
#   etc/sysusers.d/ecobench.conf                       the group ecobench-power (created)
#   etc/ecobench/token                                 0600 root, random; kept if present
#   var/lib/ecobench-data/fashion-mnist/               the shipped subset
#   PREFIX/share/doc/ecobench/README.md
# It enables nothing: edit the worker unit's --join and --country, then
#   systemctl enable --now ecobench-coordinator   # on the head machine
#   systemctl enable --now ecobench-worker        # on every machine
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir="$repo/target/release"
prefix=/usr/local
with_data=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=${2:?--bin-dir needs a folder}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a path}; shift 2 ;;
    --no-data) with_data=0; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
root=${DESTDIR:-}
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute, got '$prefix'" >&2; exit 2 ;; esac
for bin in coordinator worker; do
  if [ ! -x "$bin_dir/$bin" ]; then
    echo "install.sh: $bin_dir/$bin is missing: run 'cargo build --release' or pass --bin-dir" >&2
    exit 1
  fi
done
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: installing into / needs root (or set DESTDIR=folder)" >&2
  exit 1
fi

say() { echo "install.sh: $*"; }

install -d -m 0755 "$root$prefix/bin" "$root/etc/systemd/system" "$root/etc/udev/rules.d" \
  "$root/etc/sysusers.d" "$root$prefix/share/doc/ecobench"
install -d -m 0700 "$root/etc/ecobench"
for bin in coordinator worker; do
  install -m 0755 "$bin_dir/$bin" "$root$prefix/bin/$bin"
done
for unit in ecobench-coordinator.service ecobench-worker.service; do
  sed "s|/usr/local/bin/|$prefix/bin/|g" "$repo/deploy/systemd/$unit" > "$root/etc/systemd/system/$unit"
  chmod 0644 "$root/etc/systemd/system/$unit"
done
install -m 0644 "$repo/deploy/systemd/60-ecobench-powercap.rules" "$root/etc/udev/rules.d/"
install -m 0644 "$repo/deploy/systemd/ecobench.sysusers" "$root/etc/sysusers.d/ecobench.conf"
install -m 0644 "$repo/README.md" "$root$prefix/share/doc/ecobench/README.md"
say "installed $prefix/bin/{coordinator,worker} and the units under ${root:-/}"

# The group that may read RAPL counters.
if command -v systemd-sysusers >/dev/null 2>&1; then
  if [ -n "$root" ]; then
    systemd-sysusers --root="$root" "$root/etc/sysusers.d/ecobench.conf"
  else
    systemd-sysusers /etc/sysusers.d/ecobench.conf
  fi
elif [ -z "$root" ] && ! getent group ecobench-power >/dev/null; then
  groupadd --system ecobench-power
fi

# The token: created once, never overwritten (workers and clients share it).
token="$root/etc/ecobench/token"
if [ -e "$token" ]; then
  say "kept the existing token /etc/ecobench/token"
else
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$token")
  chmod 0600 "$token"
  say "wrote a new token to /etc/ecobench/token (0600): copy it to every machine"
fi

if [ "$with_data" = 1 ] && [ -d "$repo/data/fashion-mnist" ]; then
  install -d -m 0755 "$root/var/lib/ecobench-data/fashion-mnist"
  install -m 0644 "$repo"/data/fashion-mnist/*.gz "$root/var/lib/ecobench-data/fashion-mnist/"
fi

if [ -z "$root" ]; then
  command -v udevadm >/dev/null 2>&1 &&
    udevadm control --reload && udevadm trigger --subsystem-match=powercap --action=add || true
  command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload || true
  say "next: edit --join/--country in /etc/systemd/system/ecobench-worker.service, then"
  say "  systemctl enable --now ecobench-coordinator   (head machine)"
  say "  systemctl enable --now ecobench-worker        (every machine)"
fi
