#!/usr/bin/env python3
"""disc-server.py DIR - the HTTPS server and the DNS black hole of the key
discovery tests (started and stopped by tests/discovery/disc-start.sh and
disc-stop.sh; one process, its PID in DIR/server.pid).

HTTPS, on 127.0.0.1, a free port written to DIR/https.port once it listens:
  - TLS with SNI: DIR/tls/server.pem + server.key (issued by the test CA
    DIR/ca.pem for every test host name) by default; a host name listed in
    DIR/tls/untrusted.names (one a line) gets DIR/tls/untrusted.pem + .key,
    issued by a second CA nobody trusts.
  - Each request is served from the tree of its Host header (port removed):
    DIR/www/HOST/PATH (the query string is ignored), 200 with the file's
    bytes, 404 when there is no such file. The tree is read on every
    request, so a test may change it while the server runs (replace a
    published key with its revoked copy).
  - DIR/www/HOST/_behaviour, when present, changes the host's answers:
      500       every request gets 500 Internal Server Error
      hang      the connection is accepted, TLS done, the request read,
                and nothing is ever answered (until the server stops)
      nolength  files are sent without Content-Length (the body ends when
                the connection closes)
The handshake runs in the request's thread, so a slow or hanging client
never holds up the others.

DNS black hole, on 127.0.0.1, a free port written to DIR/blackhole.port:
a UDP socket that reads every query and never answers, and a TCP listener
on the same port that accepts and never answers.

Everything listens on 127.0.0.1 only. SIGTERM stops the process.
"""
import http.server
import os
import signal
import socket
import ssl
import sys
import threading

DIR = ""
STOP = threading.Event()


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def tls_contexts():
    tls = os.path.join(DIR, "tls")
    trusted = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trusted.load_cert_chain(os.path.join(tls, "server.pem"),
                            os.path.join(tls, "server.key"))
    untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    untrusted.load_cert_chain(os.path.join(tls, "untrusted.pem"),
                              os.path.join(tls, "untrusted.key"))
    names = set()
    p = os.path.join(tls, "untrusted.names")
    if os.path.exists(p):
        with open(p) as f:
            names = {ln.strip().lower() for ln in f if ln.strip()}

    def sni(sock, name, _ctx):
        if name and name.lower() in names:
            sock.context = untrusted
        return None

    trusted.sni_callback = sni
    return trusted


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection
    server_version = "smp-disc-test"
    sys_version = ""
    tls = None

    def setup(self):
        self.request.settimeout(30)
        self.request = Handler.tls.wrap_socket(self.request,
                                               server_side=True)
        super().setup()

    def log_message(self, fmt, *args):
        log("https: %s %s" % (self.address_string(), fmt % args))

    def host(self):
        h = (self.headers.get("Host") or "").strip().lower()
        if h.startswith("["):
            return h.split("]")[0] + "]"
        return h.split(":")[0]

    def behaviour(self, root):
        try:
            with open(os.path.join(root, "_behaviour")) as f:
                return f.read().strip()
        except OSError:
            return ""

    def do_GET(self):
        host = self.host()
        www = os.path.realpath(os.path.join(DIR, "www"))
        root = os.path.realpath(os.path.join(www, host))
        if not host or os.path.dirname(root) != www:
            self.send_error(404)
            return
        how = self.behaviour(root)
        if how == "hang":
            STOP.wait(600)
            self.close_connection = True
            return
        if how == "500":
            self.send_error(500)
            return
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        f = os.path.realpath(os.path.join(root, path.lstrip("/")))
        if (not f.startswith(root + os.sep) or not os.path.isfile(f)
                or os.path.basename(f) == "_behaviour"):
            self.send_error(404)
            return
        with open(f, "rb") as fh:
            body = fh.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if how != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # the default backlog (5) drops SYNs of 8 clients connecting at once:
    # a 1 s retry each (make bench-discovery, WKD with 8 threads)
    request_queue_size = 128

    def handle_error(self, request, client_address):
        log("https: %s: %s" % (client_address, sys.exc_info()[1]))


def blackhole():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for _ in range(100):
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        try:
            t.bind(("127.0.0.1", port))
            break
        except OSError:
            u.close()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    else:
        raise SystemExit("disc-server: no port for the black hole")
    t.listen(16)
    held = []

    def udp():
        while True:
            u.recvfrom(65535)  # read, never answer

    def tcp():
        while True:
            c, _ = t.accept()
            held.append(c)  # kept open, never answered

    threading.Thread(target=udp, daemon=True).start()
    threading.Thread(target=tcp, daemon=True).start()
    return port


def write_port(name, port):
    p = os.path.join(DIR, name)
    with open(p + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.replace(p + ".tmp", p)


def main():
    global DIR
    if len(sys.argv) != 2:
        raise SystemExit("usage: disc-server.py DIR")
    DIR = os.path.realpath(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Handler.tls = tls_contexts()
    srv = Server(("127.0.0.1", 0), Handler)
    bh = blackhole()
    write_port("blackhole.port", bh)
    write_port("https.port", srv.server_address[1])
    log("disc-server: https on 127.0.0.1:%d, black hole on 127.0.0.1:%d"
        % (srv.server_address[1], bh))
    srv.serve_forever()


if __name__ == "__main__":
    main()
