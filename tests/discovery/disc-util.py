#!/usr/bin/env python3
"""disc-util.py - small helpers for tests/discovery/disc-start.sh.

  disc-util.py wkdhash LOCAL          the WKD hashed local part
  disc-util.py daneowner ADDRESS      the RFC 7929 OPENPGPKEY owner name
  disc-util.py names ADDRESS...       per address one line: address, local
                                      part, WKD hash, OPENPGPKEY owner
  disc-util.py freeport               a 127.0.0.1 port free for TCP and UDP
  disc-util.py dnsprobe PORT NAME TYPE MIN_ANSWERS [TIMEOUT_S]
                                      exit 0 once 127.0.0.1@PORT answers
                                      NAME/TYPE with NOERROR and at least
                                      MIN_ANSWERS answer records (DO bit
                                      set, so a signed zone's RRSIGs count)
  disc-util.py tcpprobe PORT [TIMEOUT_S]
                                      exit 0 once 127.0.0.1:PORT accepts
  disc-util.py revoke CERT REVSIG OUT  CERT (binary) with the key
                                      revocation signature REVSIG (binary)
                                      put right after the primary key
                                      packet, where RFC 4880 11.1 wants it

The names are written here independently of lib/smp_discovery_names.c so
that the tests check the C code against a second implementation
(tests/unit/test_discovery_net.c compares them).
"""
import hashlib
import os
import random
import socket
import struct
import sys
import time

ZB32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def zbase32(data):
    nbits = len(data) * 8
    v = int.from_bytes(data, "big")
    nchars = (nbits + 4) // 5
    v <<= nchars * 5 - nbits
    return "".join(ZB32[(v >> (5 * (nchars - 1 - i))) & 31]
                   for i in range(nchars))


def ascii_lower(s):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def wkdhash(local):
    return zbase32(hashlib.sha1(ascii_lower(local).encode()).digest())


def daneowner(address):
    local, _, domain = address.rpartition("@")
    h = hashlib.sha256(local.encode()).hexdigest()[:56]
    return "%s._openpgpkey.%s." % (h, ascii_lower(domain))


def freeport():
    for _ in range(200):
        port = random.randint(20000, 60000)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", port))
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise SystemExit("freeport: no free port found")


TYPES = {"A": 1, "NS": 2, "SOA": 6, "AAAA": 28, "DS": 43, "DNSKEY": 48,
         "OPENPGPKEY": 61}


def dns_query(name, qtype):
    qid = random.randint(0, 65535)
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", TYPES[qtype], 1)
    # OPT: root owner, type 41, payload 1232, DO bit
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0x00008000, 0)
    return qid, q


def dnsprobe(port, name, qtype, min_answers, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        qid, q = dns_query(name, qtype)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            r, _ = s.recvfrom(65535)
            rid, flags, _, ancount = struct.unpack(">HHHH", r[:8])
            if rid == qid and flags & 0xF == 0 and ancount >= min_answers:
                return 0
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
    return 1


def tcpprobe(port, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


def packet_len(b):
    """Length of the first OpenPGP packet (header included) in b."""
    c = b[0]
    if not c & 0x80:
        raise SystemExit("revoke: not an OpenPGP packet")
    if c & 0x40:
        o = b[1]
        if o < 192:
            return 2 + o
        if o < 224:
            return 3 + ((o - 192) << 8) + b[2] + 192
        if o == 255:
            return 6 + struct.unpack(">I", b[2:6])[0]
        raise SystemExit("revoke: partial length in a key packet")
    lt = c & 3
    if lt == 0:
        return 2 + b[1]
    if lt == 1:
        return 3 + struct.unpack(">H", b[1:3])[0]
    if lt == 2:
        return 5 + struct.unpack(">I", b[1:5])[0]
    raise SystemExit("revoke: indeterminate length")


def revoke(cert, revsig, out):
    with open(cert, "rb") as f:
        c = f.read()
    with open(revsig, "rb") as f:
        r = f.read()
    n = packet_len(c)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(c[:n] + r + c[n:])
    os.replace(tmp, out)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "wkdhash" and len(argv) == 3:
        print(wkdhash(argv[2]))
    elif cmd == "daneowner" and len(argv) == 3:
        print(daneowner(argv[2]))
    elif cmd == "names":
        for a in argv[2:]:
            local = a.rpartition("@")[0]
            print("%s %s %s %s" % (a, local, wkdhash(local), daneowner(a)))
    elif cmd == "freeport" and len(argv) == 2:
        print(freeport())
    elif cmd == "dnsprobe" and len(argv) in (6, 7):
        t = float(argv[6]) if len(argv) == 7 else 10
        return dnsprobe(int(argv[2]), argv[3], argv[4], int(argv[5]), t)
    elif cmd == "tcpprobe" and len(argv) in (3, 4):
        t = float(argv[3]) if len(argv) == 4 else 10
        return tcpprobe(int(argv[2]), t)
    elif cmd == "revoke" and len(argv) == 5:
        revoke(argv[2], argv[3], argv[4])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
