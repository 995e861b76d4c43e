"""A tiny API server (standard library http.server) behind pixltoken-client
(clients/python, installed from the repository path).  On Debian 12, with
psycopg from Debian's python3-psycopg and python3-psycopg-pool:

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation ./clients/python
    PGHOST=... PGDATABASE=shop PGUSER=app_server .venv/bin/python examples/python/app.py   # port 8000

(use Debian's /usr/bin/python3, not another python3 earlier on PATH: only
it sees python3-psycopg).  TRUST_PROXY=1 takes the client address from
X-Forwarded-For (only behind a proxy that sets it).
"""
import json
import os
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pixltoken_client import PixlAuth

# (method, path pattern, route template, scope, status).  The template is the
# endpoint reported to pixltoken: /v1/stores/{store}/products, the same name
# the Node example's /v1/stores/:store/products is reported under.
ROUTES = [
    ("GET", re.compile(r"^/v1/stores/([^/]+)/products$"), "/v1/stores/{store}/products", "products:read", 200),
    ("POST", re.compile(r"^/v1/stores/([^/]+)/products$"), "/v1/stores/{store}/products", "products:write", 201),
    ("GET", re.compile(r"^/v1/stores/([^/]+)/orders$"), "/v1/stores/{store}/orders", "orders:read", 200),
]


def make_handler(auth, trust_proxy=False):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, headers, body):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method):
            start = time.perf_counter()
            for m, rx, route, scope, ok in ROUTES:
                match = rx.match(self.path)
                if m == method and match:
                    break
            else:
                return self._send(404, {"Content-Type": "application/json"}, '{"error":"not found"}')
            ip = self.client_address[0]
            if trust_proxy and self.headers.get("X-Forwarded-For"):
                ip = self.headers["X-Forwarded-For"].split(",")[0]
            a = auth.verify(self.headers.get("Authorization"), scope, match.group(1), method, route, ip)
            if a.status != 200:
                self._send(a.status, a.headers, a.body)
            else:
                body = json.dumps({"store": match.group(1), "token_id": a.token_id})
                self._send(ok, {**a.headers, "Content-Type": "application/json"}, body)
            auth.report(a.request_id, ok if a.status == 200 else a.status,
                        (time.perf_counter() - start) * 1000)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    return Handler


def serve(auth, port=0, trust_proxy=False):
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(auth, trust_proxy))


if __name__ == "__main__":
    auth = PixlAuth("")   # conninfo from PG* variables; never prepares: fine through PgBouncer
    serve(auth, int(os.environ.get("PORT", "8000")), os.environ.get("TRUST_PROXY") == "1").serve_forever()
