"""pixltoken-client (Python) against a real cluster.  test/examples.sh
installs the package into a venv and sets PGHOST/PGPORT/PGDATABASE,
PGUSER=app_server, ADMIN_PGUSER; VIA_PGBOUNCER=1 when PGPORT is PgBouncer's
in transaction pooling."""
import json
import os
import threading
import time
import unittest

import psycopg

import pixltoken_client as px
from pixltoken_client import NO_SCOPE_REQUIRED, PixlAuth

VIA = os.environ.get("VIA_PGBOUNCER") == "1"
STORE = "clpy-%s-%d" % ("pgbouncer" if VIA else "direct", os.getpid())
VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "endpoint-names.json")


def until(what, fn, seconds=10):
    end = time.time() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = psycopg.connect(user=os.environ.get("ADMIN_PGUSER", "postgres"),
                                    autocommit=True, prepare_threshold=None)
        cls.admin.execute("SELECT pixl_set_store_plan(%s, 'enterprise')", (STORE,))
        cls.auth = PixlAuth()

    @classmethod
    def tearDownClass(cls):
        cls.auth.close()
        cls.admin.close()

    def token(self, name, scopes, rate_limit=1000, allowed_ips=None):
        return self.admin.execute(
            "SELECT token_id, token FROM pixl_create_token(%s, %s, %s, rate_limit => %s, allowed_ips => %s)",
            (STORE, name, scopes, rate_limit, allowed_ips)).fetchone()

    def calls(self, token_id, n):
        def rows():
            r = self.admin.execute("SELECT endpoint, status, response_ms FROM pixl_recent_calls(%s) ORDER BY at",
                                   (token_id,)).fetchall()
            return r if len(r) == n and all(x[2] is not None for x in r) else None
        return until("%d reported calls" % n, rows)

    def test_client_ip(self):
        cases = [("1.2.3.4", "1.2.3.4"), ("1.2.3.4:5555", "1.2.3.4"), ("[2001:db8::1]:443", "2001:db8::1"),
                 ("fe80::1%eth0", "fe80::1"), ("::ffff:203.0.113.9", "203.0.113.9"),
                 ("[::ffff:203.0.113.9]:80", "203.0.113.9"), ("2001:DB8::1", "2001:db8::1"),
                 ("unknown", None), ("", None), ("127.1", None), ("0x7f.0.0.1", None),
                 ("1.2.3.4; DROP TABLE x", None), (None, None)]
        for raw, want in cases:
            self.assertEqual(px.client_ip(raw), want, raw)

    def test_endpoint_names_shared_with_node(self):
        with open(VECTORS) as f:
            for route, want in json.load(f)["cases"]:
                self.assertEqual(px.endpoint_name(route), want, route)

    def test_scope_required(self):
        _, secret = self.token("noscope", ["orders:read"])
        for scope in (None, ""):
            with self.assertRaises(TypeError):
                self.auth.verify("Bearer " + secret, scope, STORE)
        self.assertEqual(self.auth.verify("Bearer " + secret, NO_SCOPE_REQUIRED, STORE).status, 200)
        self.assertEqual(self.auth.verify("Bearer " + secret, "products:write", STORE).status, 403)

    def test_ipv4_mapped_allowlist(self):
        _, secret = self.token("allow", ["orders:read"], allowed_ips=["203.0.113.0/24"])
        self.assertEqual(self.auth.verify("Bearer " + secret, "orders:read", STORE, ip="::ffff:203.0.113.9").status, 200)
        self.assertEqual(self.auth.verify("Bearer " + secret, "orders:read", STORE, ip="::ffff:198.51.100.1").status, 403)

    def test_request_ids_and_reports(self):
        tid, secret = self.token("ids", ["orders:read"])
        ids = []
        for i in range(5):
            a = self.auth.verify("Bearer " + secret, "orders:read", STORE, "GET", "/v1/stores/<store>/orders")
            self.assertEqual(a.status, 200)
            self.assertIsInstance(a.request_id, str)
            ids.append(a.request_id)
            self.auth.report(a.request_id, 200 + i, 7.5)
        self.assertEqual(len(set(ids)), 5)
        r = self.calls(tid, 5)
        self.assertEqual([(x[0], x[1]) for x in r], [("/v1/stores/{store}/orders", 200 + i) for i in range(5)])

    def test_concurrent_defaults_no_failures(self):
        """psycopg prepares from a statement's 6th execution by default, which
        fails through PgBouncer 1.18; the client's defaults never prepare."""
        _, secret = self.token("load", ["orders:read"])
        auth = PixlAuth(max_size=8)
        statuses, errors = [], []

        def worker():
            for _ in range(50):
                try:
                    a = auth.verify("Bearer " + secret, "orders:read", STORE, "GET", "/v1/stores/{store}/orders",
                                    "127.0.0.1")
                    statuses.append(a.status)
                    auth.report(a.request_id, 200, 1.0)
                except Exception as e:   # noqa: BLE001 - counted, then asserted
                    errors.append(repr(e))
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        auth.close()
        self.assertEqual(errors, [])
        self.assertEqual((len(statuses), set(statuses)), (400, {200}))

    if VIA:
        def test_psycopg_defaults_fail_through_pgbouncer_the_clients_do_not(self):
            """Why the client never prepares: psycopg's default prepares a
            statement from its 6th execution, on the server connection
            PgBouncer lent for that transaction.  Client B then holds that
            server connection in a transaction, and A's next execution lands
            on another one, which has no such statement (26000)."""
            _, secret = self.token("bouncer", ["orders:read"])
            params = (secret, "orders:read", STORE, None, None, None)
            a = psycopg.connect(autocommit=True)           # psycopg's defaults: prepare_threshold=5
            b = psycopg.connect(autocommit=True)
            try:
                for _ in range(6):
                    self.assertEqual(a.execute(px.VERIFY_SQL, params).fetchone()[0], 200)
                b.execute("BEGIN")
                b.execute("SELECT 1")
                with self.assertRaises(psycopg.Error) as cm:
                    a.execute(px.VERIFY_SQL, params)
                self.assertEqual(cm.exception.sqlstate, "26000")
                b.execute("COMMIT")
                # PgBouncer lends the server connection released last (LIFO):
                # the one with the stray statement, removed for later clients
                a.execute("DEALLOCATE ALL")
            finally:
                a.close()
                b.close()
            # the client's defaults, the same sequence: every call answered
            one = PixlAuth(min_size=1, max_size=1)
            b = psycopg.connect(autocommit=True)
            try:
                for _ in range(6):
                    self.assertEqual(one.verify("Bearer " + secret, "orders:read", STORE).status, 200)
                b.execute("BEGIN")
                b.execute("SELECT 1")
                self.assertEqual(one.verify("Bearer " + secret, "orders:read", STORE).status, 200)
                b.execute("COMMIT")
            finally:
                b.close()
                one.close()

    # server-side prepared statements are for direct connections only
    if not VIA:
        def test_prepared_survives_changed_result_type(self):
            """An update that changes a returned column's type under a prepared
            statement (simulated with a wrapper on the search path): 0A000 once,
            re-prepared on a fresh connection, answered."""
            schema = "upgpy_%d" % os.getpid()

            def replace(id_type, extra, extra_val):
                self.admin.execute("DROP FUNCTION IF EXISTS %s.pixl_verify_token_http(text, text, text, text, text, inet)"
                                   % schema)
                self.admin.execute(
                    "CREATE FUNCTION %s.pixl_verify_token_http(text, text, text, text, text, inet) "
                    "RETURNS TABLE (status int, reason text, token_id text, store_id text, mode text, scopes text[], "
                    "request_id %s, www_authenticate text, ratelimit_policy text, ratelimit text, retry_after text, "
                    "problem jsonb%s) LANGUAGE sql AS $$ SELECT status, reason, token_id, store_id, mode, scopes, "
                    "request_id::%s, www_authenticate, ratelimit_policy, ratelimit, retry_after, problem%s "
                    "FROM public.pixl_verify_token_http($1, $2, $3, $4, $5, $6) $$"
                    % (schema, id_type, extra, id_type, extra_val))
            self.admin.execute("CREATE SCHEMA %s" % schema)
            try:
                self.admin.execute("GRANT USAGE ON SCHEMA %s TO PUBLIC" % schema)
                replace("text", "", "")
                _, secret = self.token("upgrade", ["orders:read"])
                conninfo = "options='-c search_path=%s,public'" % schema
                auth = PixlAuth(conninfo, prepare=True, min_size=1, max_size=1)
                raw = psycopg.connect(conninfo, autocommit=True)   # a 1.0-style app: prepared, no retry
                params = (secret, "orders:read", STORE, None, None, None)
                try:
                    self.assertEqual(raw.execute(px.VERIFY_SQL, params, prepare=True).fetchone()[0], 200)
                    self.assertEqual(auth.verify("Bearer " + secret, "orders:read", STORE).status, 200)
                    replace("text", ", added boolean", ", true")   # an added column: no change
                    self.assertEqual(raw.execute(px.VERIFY_SQL, params, prepare=True).fetchone()[0], 200)
                    self.assertEqual(auth.verify("Bearer " + secret, "orders:read", STORE).status, 200)
                    replace("varchar", ", added boolean", ", true")   # a changed type
                    with self.assertRaises(psycopg.Error) as cm:
                        raw.execute(px.VERIFY_SQL, params, prepare=True)
                    self.assertEqual(cm.exception.sqlstate, "0A000")
                    a = auth.verify("Bearer " + secret, "orders:read", STORE)
                    self.assertEqual(a.status, 200)
                    self.assertIsInstance(a.request_id, str)
                    self.assertEqual(auth.verify("Bearer " + secret, "orders:read", STORE).status, 200)
                finally:
                    raw.close()
                    auth.close()
            finally:
                self.admin.execute("DROP SCHEMA %s CASCADE" % schema)


if __name__ == "__main__":
    unittest.main()
