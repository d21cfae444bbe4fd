"""The listening TCP sockets of the processes that deploy/ndif/start.sh started, read from /proc (no ss/ps needed).

Usage: python listeners.py PIDS_DIR [--json | --alive]
PIDS_DIR holds one file per service with its session id (start.sh's $NDIF_STATE_DIR/pids). Every process whose
session is one of them counts; its socket inodes are matched against /proc/net/tcp and /proc/net/tcp6 (state 0A,
LISTEN). Prints one line per listener ("ADDR:PORT pid=N comm service") and exits 1 if any is not on loopback.
--alive: print the live processes of those sessions; exit 0 if there is any, 1 if none.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path


def _sessions(pids_dir: Path) -> dict[int, str]:
    out = {}
    for f in sorted(pids_dir.iterdir()):
        if f.is_file() and not f.name.endswith(".tmp"):
            try:
                out[int(f.read_text().strip())] = f.name
            except ValueError:
                continue
    return out


def _procs(sessions: dict[int, str]) -> dict[int, tuple[str, str]]:
    """pid -> (comm, service) for every live process in one of the sessions."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, sid = fields[0], int(fields[3])
        if sid in sessions and state != "Z":
            out[int(d.name)] = (comm, sessions[sid])
    return out


def _inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(int(link[8:-1]))
    except OSError:
        pass
    return out


def _addr(hexaddr: str) -> str:
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        a = ipaddress.IPv4Address(raw[::-1])
        return f"{a}:{int(port, 16)}"
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    b = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{ipaddress.IPv6Address(b)}]:{int(port, 16)}"


def _listening() -> dict[int, str]:
    """socket inode -> address of every LISTEN socket on the machine (this network namespace)."""
    out = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A":
                out[int(f[9])] = _addr(f[1])
    return out


def is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def listeners(pids_dir: Path) -> list[dict]:
    sessions = _sessions(pids_dir)
    listen = _listening()
    rows = []
    for pid, (comm, service) in sorted(_procs(sessions).items()):
        for ino in _inodes(pid):
            if ino in listen:
                rows.append({"addr": listen[ino], "pid": pid, "comm": comm, "service": service})
    return sorted(rows, key=lambda r: (r["service"], r["addr"]))


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if "--alive" in sys.argv[2:]:
        procs = _procs(_sessions(Path(sys.argv[1])))
        for pid, (comm, service) in sorted(procs.items()):
            print(f"pid={pid} {comm} {service}")
        return 0 if procs else 1
    rows = listeners(Path(sys.argv[1]))
    bad = [r for r in rows if not is_loopback(r["addr"])]
    if "--json" in sys.argv[2:]:
        print(json.dumps({"listeners": rows, "non_loopback": bad, "all_loopback": not bad and bool(rows)}))
    else:
        for r in rows:
            print(f"{r['addr']:<24} pid={r['pid']:<7} {r['comm']:<16} {r['service']}")
        if bad:
            print(f"NOT ON LOOPBACK: {', '.join(r['addr'] for r in bad)}")
    return 1 if bad or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
