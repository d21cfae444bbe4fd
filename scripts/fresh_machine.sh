#!/usr/bin/env bash
# Run the README's two set-up commands on a fresh machine: a clean Debian root built by debootstrap
# (minbase: no python, no sox, nothing installed by hand), a fresh `git clone` of this repository copied in,
# then, inside the chroot as root, exactly `bash scripts/main_job.sh` and `bash scripts/test.sh`, each timed.
# What a new machine of this kind provides is given to the chroot as it is on the host: the apt sources,
# resolv.conf, the local CA certificates, the pip configuration (/etc/pip.conf, /etc/xdg/pip, ~/.config/pip) and the local wheels under
# /opt (bind-mounted read-only; the CPU torch wheel lies in /opt/wheels).
# Usage (root): bash scripts/fresh_machine.sh [ROOT_DIR]   -> results/fresh-machine/<commit>/log.txt, times.txt
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${1:-/var/tmp/steer-audio-fresh-root}"
SHA="$(git -C "$REPO" rev-parse --short HEAD)"
RES="${RES:-$REPO/results/fresh-machine/$SHA}"
LOG="$RES/log.txt"
SUITE="${SUITE:-bookworm}"
mkdir -p "$RES"
: >"$LOG"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

[ "$(id -u)" = 0 ] || { echo "error: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

if [ -e "$ROOT" ]; then
  say "removing the old root $ROOT"
  rm -rf --one-file-system "$ROOT"
fi
say "debootstrap --variant=minbase $SUITE $ROOT"
t0=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$ROOT" http://deb.debian.org/debian >>"$LOG" 2>&1
say "debootstrap done in $(($(date +%s) - t0)) s"

# what the host machine provides: apt sources, DNS, pip configuration, the local wheels under /opt
rm -f "$ROOT/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the machine's local CA certificates (its HTTPS egress goes through them); ca-certificates, once install.sh
# apt-installs it, folds them into the bundle pip reads, as on the host
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
[ -d /etc/xdg/pip ] && mkdir -p "$ROOT/etc/xdg" && cp -r /etc/xdg/pip "$ROOT/etc/xdg/"
[ -d /root/.config/pip ] && mkdir -p "$ROOT/root/.config" && cp -r /root/.config/pip "$ROOT/root/.config/"
for d in /opt/*; do bind "$d" "$ROOT$d" ro; done
bind /proc "$ROOT/proc"
bind /sys "$ROOT/sys"
bind /dev "$ROOT/dev"

# a fresh clone of the committed tree (nothing untracked, no .venv, no caches)
git clone -q "$REPO" "$ROOT/root/steer-audio"
say "clone at $(git -C "$ROOT/root/steer-audio" rev-parse HEAD)"

# the pip environment of a machine of this kind (variables the host sets for every shell)
PIPENV=(PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  PIP_FIND_LINKS=/opt/wheels)
run_in() { # run_in NAME COMMAND
  say "\$ $2"
  local t=$(date +%s) rc=0
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb "${PIPENV[@]}" bash -lc "cd /root/steer-audio && $2" >>"$LOG" 2>&1 || rc=$?
  local dt=$(($(date +%s) - t))
  say "$1: exit $rc after ${dt} s ($((dt / 60)) min $((dt % 60)) s)"
  echo "$1 exit=$rc seconds=$dt" >>"$RES/times.txt"
  return 0
}
: >"$RES/times.txt"
run_in main_job "bash scripts/main_job.sh"
run_in tests "bash scripts/test.sh"
say "done"
