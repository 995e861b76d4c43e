"""pixltoken authentication for a Python API, with psycopg 3 (Debian 12:
python3-psycopg).  Copy this file into your app.

    auth = PixlAuth(conninfo, via_pgbouncer=False)
    answer = auth.verify(authorization_header, scope, store_id, method, route, client_ip)
    if answer.status != 200:
        send(answer.status, answer.headers, answer.body)      # problem+json
    ...
    auth.report(answer.request_id, final_status, elapsed_ms)

- The secret and everything else are bind parameters (never in the SQL text).
- Directly connected, the verification is a server-side prepared statement
  (prepare=True: parsed and planned once per connection).  Through PgBouncer
  in transaction pooling (1.18: no prepared statements), connect with
  prepare_threshold=None and never prepare: psycopg then sends unnamed
  statements, which keep bind parameters and work on any pooled connection.
- The client IP is validated (ipaddress) before it is passed as inet:
  '1.2.3.4:5555' -> 1.2.3.4, 'fe80::1%eth0' -> fe80::1, 'unknown' -> NULL.
- request_id stays the opaque string the database returned.
- Database errors are told apart by SQLSTATE (e.sqlstate): a database that
  cannot answer means 503 (fail closed); PX... codes are pixltoken's.
"""
import ipaddress
import json
import re

import psycopg
import psycopg_pool

VERIFY_SQL = (
    "SELECT status, reason, token_id, store_id, mode, scopes, request_id, "
    "www_authenticate, ratelimit_policy, ratelimit, retry_after, problem "
    "FROM pixl_verify_token_http(%s, %s, %s, %s, %s, %s)")
LOG_SQL = "SELECT pixl_log_response(%s, %s, %s)"


def client_ip(raw):
    """A string PostgreSQL's inet accepts, or None."""
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::\d{1,5})?", s)
    if m:
        s = m.group(1)
    m = re.fullmatch(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}", s)
    if m:
        s = m.group(1)
    if "%" in s and ":" in s:   # an IPv6 zone index (fe80::1%eth0): inet has none
        s = s.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


def bearer(header):
    if header is None:
        return None
    m = re.fullmatch(r"Bearer +(\S+) *", header, re.IGNORECASE)
    return m.group(1) if m else header


class Answer:
    def __init__(self, status, headers, body, request_id=None, token_id=None):
        self.status, self.headers, self.body = status, headers, body
        self.request_id, self.token_id = request_id, token_id


UNAVAILABLE = ("08", "57P")   # connection exceptions, admin shutdown / cannot connect now


class PixlAuth:
    def __init__(self, conninfo, via_pgbouncer=False, timeout=2, max_size=10):
        self.via_pgbouncer = via_pgbouncer
        # a pool (python3-psycopg-pool): a handful of connections shared by
        # the server's threads; `timeout` bounds the wait for one, so a dead
        # database turns into a quick 503
        self.pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=1, max_size=max_size, timeout=timeout, open=True,
            kwargs={"autocommit": True, "connect_timeout": timeout,
                    # through PgBouncer 1.18: never prepare (psycopg would from the 6th call)
                    "prepare_threshold": None if via_pgbouncer else 5})

    def close(self):
        self.pool.close()

    def verify(self, authorization, scope, store_id, method, endpoint, ip):
        try:
            with self.pool.connection() as conn:
                cur = conn.execute(
                    VERIFY_SQL,
                    (bearer(authorization), scope, store_id, method, endpoint, client_ip(ip)),
                    prepare=not self.via_pgbouncer)
                (status, reason, token_id, _store, _mode, _scopes, request_id,
                 www, policy, ratelimit, retry_after, problem) = cur.fetchone()
        except psycopg.Error as e:
            state = getattr(e, "sqlstate", None)
            # PoolTimeout / OperationalError without SQLSTATE: could not connect at all
            if state is None or state.startswith(UNAVAILABLE) or isinstance(e, psycopg.OperationalError):
                body = {"type": "about:blank", "title": "Service Unavailable", "status": 503,
                        "detail": "authentication is unavailable"}
                return Answer(503, {"Retry-After": "1",
                                    "Content-Type": "application/problem+json"}, json.dumps(body))
            raise   # e.g. PX001: the route asked for a scope that does not exist: a bug
        headers = {}
        for name, value in (("WWW-Authenticate", www), ("RateLimit-Policy", policy),
                            ("RateLimit", ratelimit), ("Retry-After", retry_after)):
            if value is not None:
                headers[name] = value
        if status != 200:
            headers["Content-Type"] = "application/problem+json"
            return Answer(status, headers, json.dumps(problem),
                          request_id if status != 401 else None, token_id)
        return Answer(200, headers, None, request_id, token_id)

    def report(self, request_id, status, response_ms):
        """The final status and response time, on the request's usage row."""
        if request_id is None:
            return
        try:
            with self.pool.connection() as conn:
                conn.execute(LOG_SQL, (request_id, status, response_ms),
                             prepare=not self.via_pgbouncer)
        except psycopg.Error:
            pass   # usage is best effort; verification is not
