#!/usr/bin/env python3
"""tests/faults/faults.py - the helper of the fault scenarios (tests/faults/).

  faults.py send --port P --prefix PFX --count N [--rate R] [--sessions S]
                 [--from ADDR] [--to ADDR] [--autocrypt KEY.gpg]
                 [--sent FILE] [--first K]
      SMTP to 127.0.0.1:P ("out"): N messages, Message-ID
      <PFX-NNNN@faults.smp-test.invalid>, at most R messages a second in
      all, over S sessions, each session reused for its share. The body
      holds the marker "FAULTS-PLAINTEXT PFX-NNNN" (visible at the sink
      only when the message travelled in plain). Each accepted Message-ID
      is appended to FILE at once. With --autocrypt the message carries an
      Autocrypt: header for --from with that (binary) key. Exit 0 when every
      message was accepted.

  faults.py count --sink DIR --sent FILE --prefix PFX [--rcpt ADDR]
                  [--after QIDFILE]
      Counts what the sink received (top-level Message-ID only):
      sent, delivered (distinct Message-IDs of FILE at the sink), lost
      (sent - delivered), duplicates (dumps beyond one per Message-ID),
      unknown (dumps with PFX that were never sent), plaintext (dumps to
      ADDR that are not PGP/MIME), encrypted; with --after: after (dumps
      whose mx queue ID is in QIDFILE), after_plaintext (of those to ADDR,
      not PGP/MIME). Printed as key=value, one line. --list-plain: the
      plaintext ones (with --after: those after) on stderr.

  faults.py split-log --log LOG --marker TEXT --before F --after F
      The milter log's per-message lines ("QID: direction=...") before and
      after the LAST line containing TEXT: their queue IDs into the files.
      Prints the marker's line number (1-based), 0 if absent.

  faults.py sessions --maillog MX_MAILLOG --before F --after F
      SMTP sessions of mx (smtpd PID between "connect from" and
      "disconnect from") that carried a message decided before AND one
      decided after the marker. Prints three numbers: those sessions, the
      messages decided after the marker that they carried, all sessions.

  faults.py backup --db SRC --to DST
      A consistent copy of an SQLite database (the backup API).

  faults.py lock --db PATH --seconds S --ready FILE
      Holds BEGIN EXCLUSIVE on PATH for S seconds; writes "locked <time>"
      to FILE once it holds the lock, "released <time>" after ROLLBACK.

  faults.py busy-bound SOURCE.c
      The longest a keyring write waits for a lock, in whole seconds
      rounded up, from KR_BUSY_TIMEOUT_MS, KR_BEGIN_RETRIES and
      KR_BACKOFF_MS in lib/smp_keyring_sqlite.c (30 if they are not found).
"""
import base64
import email.utils
import math
import os
import re
import smtplib
import sqlite3
import sys
import threading
import time

DOMAIN = "faults.smp-test.invalid"
MARKER = "FAULTS-PLAINTEXT"


def opt(argv, name, default=None, conv=str):
    if name in argv:
        return conv(argv[argv.index(name) + 1])
    return default


def msgid(prefix, i):
    return "%s-%04d" % (prefix, i)


def make_message(mid, sender, rcpt, autocrypt):
    lines = [
        "From: <%s>" % sender,
        "To: <%s>" % rcpt,
        "Subject: fault scenario message %s" % mid,
        "Date: %s" % email.utils.formatdate(localtime=True),
        "Message-ID: <%s@%s>" % (mid, DOMAIN),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
    ]
    if autocrypt:
        kd = base64.b64encode(autocrypt).decode()
        folded = "\r\n ".join(kd[i:i + 76] for i in range(0, len(kd), 76))
        lines.append("Autocrypt: addr=%s; keydata=\r\n %s" % (sender, folded))
    body = ["", "%s %s" % (MARKER, mid), "",
            "A message of smp-milter's fault scenarios (tests/faults).",
            "It must reach the sink exactly once."]
    return "\r\n".join(lines + body) + "\r\n"


def cmd_send(argv):
    port = opt(argv, "--port", conv=int)
    prefix = opt(argv, "--prefix")
    count = opt(argv, "--count", conv=int)
    rate = opt(argv, "--rate", 0.0, float)
    sessions = opt(argv, "--sessions", 1, int)
    first = opt(argv, "--first", 1, int)
    sender = opt(argv, "--from", "alice@example.org")
    rcpt = opt(argv, "--to", "bob@example.net")
    sent_file = opt(argv, "--sent")
    ac_file = opt(argv, "--autocrypt")
    autocrypt = open(ac_file, "rb").read() if ac_file else None
    lock = threading.Lock()
    state = {"next": first, "accepted": 0, "failed": 0}
    last = first + count - 1
    t0 = time.monotonic()
    out = open(sent_file, "a") if sent_file else None

    def take():
        with lock:
            i = state["next"]
            if i > last:
                return None
            state["next"] += 1
        if rate > 0:  # message k leaves no earlier than t0 + k / rate
            due = t0 + (i - first) / rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
        return i

    def worker():
        conn = None
        while True:
            i = take()
            if i is None:
                break
            mid = msgid(prefix, i)
            data = make_message(mid, sender, rcpt, autocrypt)
            for attempt in range(5):
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", port, "client." + DOMAIN, timeout=60)
                    conn.sendmail(sender, [rcpt], data)
                    with lock:
                        state["accepted"] += 1
                        if out:
                            out.write(mid + "\n")
                            out.flush()
                    break
                except (smtplib.SMTPException, OSError) as e:
                    sys.stderr.write("send %s (attempt %d): %s\n" % (mid, attempt + 1, e))
                    try:
                        if conn:
                            conn.close()
                    except Exception:
                        pass
                    conn = None
                    time.sleep(0.5)
            else:
                with lock:
                    state["failed"] += 1
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass

    threads = [threading.Thread(target=worker) for _ in range(max(1, sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("sent=%d failed=%d seconds=%.1f" % (state["accepted"], state["failed"],
                                               time.monotonic() - t0))
    return 0 if state["failed"] == 0 else 1


HDR_END = re.compile(rb"\r?\n\r?\n")


def top_headers(raw):
    """{name lower: [values]} of the top header block, unfolded."""
    m = HDR_END.search(raw)
    block = raw[:m.start()] if m else raw
    out = {}
    name = None
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and name is not None:
            out[name][-1] += b" " + line.strip()
            continue
        if b":" not in line:
            name = None
            continue
        n, v = line.split(b":", 1)
        name = n.strip().lower().decode("ascii", "replace")
        out.setdefault(name, []).append(v.strip())
    return out


def mx_qid(hdrs):
    """The queue ID mx gave the message (its Received: header)."""
    for v in hdrs.get("received", []):
        m = re.search(rb"by mx\.smp-test\.invalid \(Postfix\) with E?SMTP id ([0-9A-Za-z]+)", v)
        if m:
            return m.group(1).decode()
    return None


def dumps(sink):
    for root, _dirs, files in os.walk(sink):
        for f in files:
            if f.startswith("msg."):
                yield os.path.join(root, f)


def classify(path, prefix):
    """(message id without domain or None, rcpts, encrypted, qid)"""
    try:
        raw = open(path, "rb").read()
    except OSError:
        return None
    h = top_headers(raw)
    ids = h.get("message-id", [])
    mid = None
    if ids:
        m = re.match(rb"<(" + re.escape(prefix.encode()) + rb"-[0-9]+)@", ids[0])
        if m:
            mid = m.group(1).decode()
    rcpts = set()
    for v in h.get("x-rcpt-args", []):
        m = re.match(rb"<([^>]*)>", v)
        if m:
            rcpts.add(m.group(1).decode().lower())
    ctype = b" ".join(h.get("content-type", [])).lower()
    enc = (ctype.startswith(b"multipart/encrypted") and
           b"application/pgp-encrypted" in ctype and
           any(v.strip() == b"pgp-mime" for v in h.get("x-smp-encrypted", [])) and
           MARKER.encode() not in raw)
    return mid, rcpts, enc, mx_qid(h)


def cmd_count(argv):
    sink = opt(argv, "--sink")
    prefix = opt(argv, "--prefix")
    rcpt = opt(argv, "--rcpt", "bob@example.net").lower()
    sent = [l.strip() for l in open(opt(argv, "--sent")) if l.strip()]
    after_file = opt(argv, "--after")
    after_qids = set()
    if after_file:
        after_qids = set(l.strip() for l in open(after_file) if l.strip())
    sent_set = set(sent)
    seen = {}
    unknown = plaintext = encrypted = after = after_plain = 0
    plain_ids = []
    after_plain_ids = []
    for p in dumps(sink):
        c = classify(p, prefix)
        if not c or c[0] is None:
            continue
        mid, rcpts, enc, qid = c
        if mid not in sent_set:
            unknown += 1
            continue
        seen[mid] = seen.get(mid, 0) + 1
        if rcpt in rcpts:
            if enc:
                encrypted += 1
            else:
                plaintext += 1
                plain_ids.append(mid)
        if qid and qid in after_qids:
            after += 1
            if rcpt in rcpts and not enc:
                after_plain += 1
                after_plain_ids.append("%s (mx %s)" % (mid, qid))
    delivered = len(seen)
    dup = sum(v - 1 for v in seen.values())
    fields = [("sent", len(sent_set)), ("delivered", delivered),
              ("lost", len(sent_set) - delivered), ("duplicates", dup),
              ("unknown", unknown), ("plaintext", plaintext), ("encrypted", encrypted)]
    if after_file:
        fields += [("after", after), ("after_plaintext", after_plain)]
    print(" ".join("%s=%d" % f for f in fields))
    if "--list-plain" in argv:
        for mid in sorted(after_plain_ids if after_file else plain_ids):
            sys.stderr.write("plain: %s\n" % mid)
    return 0


LOG_LINE = re.compile(r"^smp-milter\[info\]: ([0-9A-Za-z]+): direction=")


def cmd_split_log(argv):
    log = opt(argv, "--log")
    marker = opt(argv, "--marker")
    lines = open(log, errors="replace").read().split("\n")
    at = 0
    for i, l in enumerate(lines):
        if marker in l:
            at = i + 1
    before, after = [], []
    for i, l in enumerate(lines):
        m = LOG_LINE.match(l)
        if m and m.group(1) != "NOQUEUE":
            (after if at and i + 1 > at else before).append(m.group(1))
    with open(opt(argv, "--before"), "w") as f:
        f.write("".join(q + "\n" for q in before))
    with open(opt(argv, "--after"), "w") as f:
        f.write("".join(q + "\n" for q in after))
    print(at)
    return 0


SMTPD = re.compile(r"/smtpd\[(\d+)\]: (.*)$")


def cmd_sessions(argv):
    before = set(l.strip() for l in open(opt(argv, "--before")) if l.strip())
    after = set(l.strip() for l in open(opt(argv, "--after")) if l.strip())
    sess = {}      # pid -> current session number
    qids = {}      # (pid, session) -> [qid]
    n = 0
    for l in open(opt(argv, "--maillog"), errors="replace"):
        m = SMTPD.search(l)
        if not m:
            continue
        pid, rest = m.group(1), m.group(2)
        if rest.startswith("connect from "):
            n += 1
            sess[pid] = n
            continue
        q = re.match(r"([0-9A-Za-z]+): client=", rest)
        if q and pid in sess:
            qids.setdefault((pid, sess[pid]), []).append(q.group(1))
    spanning = after_on = 0
    for key, ql in qids.items():
        b = [q for q in ql if q in before]
        a = [q for q in ql if q in after]
        if b and a:
            spanning += 1
            after_on += len(a)
    print("%d %d %d" % (spanning, after_on, len(qids)))
    return 0


def cmd_backup(argv):
    src = sqlite3.connect(opt(argv, "--db"))
    dst = sqlite3.connect(opt(argv, "--to"))
    with dst:
        src.backup(dst)
    dst.close()
    src.close()
    return 0


def cmd_lock(argv):
    db = opt(argv, "--db")
    secs = opt(argv, "--seconds", conv=float)
    ready = opt(argv, "--ready")
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    with open(ready, "a") as f:
        f.write("locked %.3f\n" % time.time())
    time.sleep(secs)
    conn.execute("ROLLBACK")
    conn.close()
    with open(ready, "a") as f:
        f.write("released %.3f\n" % time.time())
    return 0


def cmd_busy_bound(argv):
    try:
        src = open(argv[2]).read()
        t = int(re.search(r"#define\s+KR_BUSY_TIMEOUT_MS\s+(\d+)", src).group(1))
        r = int(re.search(r"#define\s+KR_BEGIN_RETRIES\s+(\d+)", src).group(1))
        b = int(re.search(r"#define\s+KR_BACKOFF_MS\s+(\d+)", src).group(1))
    except (OSError, AttributeError):
        print(30)
        return 0
    ms = (r + 1) * t + sum(b * 4 ** i for i in range(r))
    print(int(math.ceil(ms / 1000.0)))
    return 0


def main(argv):
    cmds = {"send": cmd_send, "count": cmd_count, "split-log": cmd_split_log,
            "sessions": cmd_sessions, "backup": cmd_backup, "lock": cmd_lock,
            "busy-bound": cmd_busy_bound}
    if len(argv) < 2 or argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 64
    return cmds[argv[1]](argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
