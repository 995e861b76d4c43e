"""pixltoken-client: verify pixltoken store API tokens from a Python app
server with psycopg 3, and report each request's final status and response
time.  Versioned with the extension (1.1.x for pixltoken 1.1).

    from pixltoken_client import PixlAuth, NO_SCOPE_REQUIRED
    auth = PixlAuth("host=... dbname=shop user=app_server")
    answer = auth.verify(authorization_header, scope="orders:read", store_id=store,
                         method="GET", route="/v1/stores/{store}/orders", ip=client_addr)
    if answer.status != 200:
        send(answer.status, answer.headers, answer.body)      # problem+json
    ...
    auth.report(answer.request_id, final_status, elapsed_ms)

What survives an upgrade of the extension with the app server running:
an explicit column list (never ``SELECT *``); request_id kept as an opaque
string (1.0 returned bigint, 1.1 text) and passed back as text; a
statement whose cached plan no longer matches (SQLSTATE 0A000, "cached plan
must not change result type") is retried once on a fresh connection.

Defaults that work through PgBouncer 1.18 in transaction pooling as well as
directly: ``prepare_threshold=None`` (psycopg would otherwise prepare
server-side from a statement's 6th execution, and a prepared statement lives
on one server connection only).  ``prepare=True`` opts into server-side
prepared statements, for direct connections only.

Fail closed: a database that cannot answer gives 503; a missing scope is a
TypeError (say NO_SCOPE_REQUIRED on purpose for authentication only).
"""
import ipaddress
import json
import re

import psycopg
import psycopg_pool

__version__ = "1.1.0"
__all__ = ["PixlAuth", "Answer", "NO_SCOPE_REQUIRED", "client_ip", "endpoint_name", "bearer"]


class _NoScopeRequired:
    __slots__ = ()

    def __repr__(self):
        return "NO_SCOPE_REQUIRED"


#: A route that deliberately requires no scope (authentication only).
NO_SCOPE_REQUIRED = _NoScopeRequired()
#: What a deliberate "no scope required" is sent as: the one place to change
#: if the extension spells "authentication only" differently.
NO_SCOPE_SQL_VALUE = '*'

VERIFY_COLUMNS = ("status", "reason", "token_id", "store_id", "mode", "scopes", "request_id",
                  "www_authenticate", "ratelimit_policy", "ratelimit", "retry_after", "problem")
VERIFY_SQL = ("SELECT " + ", ".join(VERIFY_COLUMNS) +
              " FROM pixl_verify_token_http(%s, %s, %s, %s, %s, %s::inet)")
# the count is read as text: whatever integer type a version returns
REPORT_SQL = "SELECT pixl_log_responses(%s::text[], %s::int[], %s::float8[])::text"

PLAN_CHANGED = "0A000"
UNAVAILABLE = ("08", "57P")   # connection exceptions, admin shutdown / cannot connect now


def client_ip(raw):
    """A string PostgreSQL's inet accepts, or None.  Ports, brackets and IPv6
    zone indexes are removed; IPv4-mapped IPv6 becomes the IPv4 address."""
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::\d{1,5})?", s)
    if m:
        s = m.group(1)
    m = re.fullmatch(r"([0-9.]+):\d{1,5}", s)
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


def endpoint_name(route):
    """The endpoint naming rule shared with the Node client
    (clients/endpoint-names.json): the route template with {name} parameters."""
    if not isinstance(route, str) or route == "":
        return None
    s = route.split("?", 1)[0]
    s = re.sub(r":([A-Za-z_][A-Za-z0-9_]*)(\([^/]*?\))?(?=/|$)", r"{\1}", s)
    s = re.sub(r"<(?:[A-Za-z_][A-Za-z0-9_]*:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", s)
    if len(s) > 1:
        s = s.rstrip("/")
    return s or "/"


def bearer(header):
    if header is None:
        return None
    m = re.fullmatch(r"Bearer +(\S+) *", header, re.IGNORECASE)
    # a header that is not "Bearer <token>" goes as-is: the database answers 401
    return m.group(1) if m else header


def _scope_param(scope):
    if scope is NO_SCOPE_REQUIRED:
        return NO_SCOPE_SQL_VALUE
    if isinstance(scope, str) and scope:
        return scope
    raise TypeError("pixltoken: a scope is required (a scope name, or NO_SCOPE_REQUIRED on purpose)")


class Answer:
    """status, headers (dict), body (problem+json text or None), request_id
    (opaque str or None), token_id, store_id, scopes, reason."""

    def __init__(self, status, headers, body, request_id=None, token_id=None,
                 store_id=None, scopes=None, reason=None):
        self.status, self.headers, self.body = status, headers, body
        self.request_id, self.token_id = request_id, token_id
        self.store_id, self.scopes, self.reason = store_id, scopes, reason


def _unavailable():
    body = {"type": "about:blank", "title": "Service Unavailable", "status": 503,
            "detail": "authentication is unavailable"}
    return Answer(503, {"Retry-After": "1", "Content-Type": "application/problem+json"},
                  json.dumps(body), reason="unavailable")


class PixlAuth:
    def __init__(self, conninfo="", prepare=False, timeout=2, min_size=1, max_size=10):
        self.prepare = prepare
        # `timeout` bounds the wait for a connection: a dead database is a quick 503
        self.pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, timeout=timeout, open=True,
            kwargs={"autocommit": True, "connect_timeout": timeout,
                    "prepare_threshold": 0 if prepare else None})

    def close(self):
        self.pool.close()

    def _run(self, sql, params):
        """One statement; retried once on a fresh connection on 0A000."""
        for attempt in (0, 1):
            try:
                with self.pool.connection() as conn:
                    try:
                        return conn.execute(sql, params, prepare=self.prepare).fetchone()
                    except psycopg.Error as e:
                        if getattr(e, "sqlstate", None) == PLAN_CHANGED:
                            conn.close()   # its prepared statement is stale: the pool replaces it
                        raise
            except psycopg.Error as e:
                if getattr(e, "sqlstate", None) != PLAN_CHANGED or attempt == 1:
                    raise

    def verify(self, authorization, scope, store_id=None, method=None, route=None, ip=None):
        params = (bearer(authorization), _scope_param(scope), store_id, method,
                  endpoint_name(route), client_ip(ip))
        try:
            row = self._run(VERIFY_SQL, params)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
            state = getattr(e, "sqlstate", None)
            if state is None or state.startswith(UNAVAILABLE) or isinstance(e, psycopg.OperationalError):
                return _unavailable()
            raise   # e.g. PX001: the route asked for a scope that does not exist: a bug
        (status, reason, token_id, store, _mode, scopes, request_id,
         www, policy, ratelimit, retry_after, problem) = row
        headers = {}
        for name, value in (("WWW-Authenticate", www), ("RateLimit-Policy", policy),
                            ("RateLimit", ratelimit), ("Retry-After", retry_after)):
            if value is not None:
                headers[name] = value
        rid = None if status == 401 or request_id is None else str(request_id)
        if status != 200:
            headers["Content-Type"] = "application/problem+json"
            return Answer(status, headers, json.dumps(problem), rid, token_id, store, scopes, reason)
        return Answer(200, headers, None, rid, token_id, store, scopes, reason)

    def report(self, request_id, status, response_ms):
        """The final status and response time, on the request's usage row
        (best effort: a failure is swallowed, verification is not)."""
        if request_id is None:
            return
        try:
            self._run(REPORT_SQL, ([str(request_id)], [int(status)], [max(0.0, float(response_ms))]))
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            pass
