"""examples/webhooks/relay.py end to end: real PostgreSQL, the relay as a
process, a real HTTP receiver that checks every signature itself (Python's
hmac, per the Standard Webhooks spec), endpoints that fail, a relay killed
mid-batch.  test/examples.sh runs it with Debian's python3 (psycopg 3) and
PGHOST/PGPORT/PGDATABASE set, ADMIN_PGUSER a superuser, and the roles of
examples/roles.sql (the relay logs in as RELAY_PGUSER, default event_relay).
Straight to PostgreSQL only: LISTEN needs a session."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = str(os.getpid())
STORE_A, STORE_B, STORE_C = "wh-a-" + TAG, "wh-b-" + TAG, "wh-c-" + TAG
CONSUMER = "relay-test-" + TAG


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def until(what, fn, seconds=30):
    end = time.time() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


class Receiver(http.server.ThreadingHTTPServer):
    """POST /<store>: checks the Standard Webhooks headers against that
    store's secret; fail_first[store] requests answer 503 first; delay[store]
    seconds before answering.  Every request is recorded."""
    daemon_threads = True

    def __init__(self, secrets):
        super().__init__(("127.0.0.1", 0), Handler)
        self.secrets = secrets
        self.fail_first = {}
        self.delay = {}
        self.requests = []
        self.lock = threading.Lock()

    def accepted(self, store=None):
        with self.lock:
            return [r for r in self.requests if r["status"] == 200 and (store is None or r["store"] == store)]

    def of(self, store):
        with self.lock:
            return [r for r in self.requests if r["store"] == store]


def verify(secret, msg_id, ts, body, header):
    key = base64.b64decode(secret[len("whsec_"):])
    expected = base64.b64encode(hmac.new(key, ("%s.%s.%s" % (msg_id, ts, body)).encode(),
                                         hashlib.sha256).digest()).decode()
    return any(s.startswith("v1,") and hmac.compare_digest(s[3:], expected) for s in header.split(" "))


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        store = self.path.lstrip("/")
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        msg_id = self.headers.get("webhook-id")
        ts = self.headers.get("webhook-timestamp")
        sig = self.headers.get("webhook-signature") or ""
        rec = {"store": store, "id": msg_id, "ts": ts, "body": body}
        if srv.delay.get(store):
            time.sleep(srv.delay[store])
        ok = (msg_id and ts and ts.isdigit() and abs(time.time() - int(ts)) < 300
              and store in srv.secrets and verify(srv.secrets[store], msg_id, ts, body, sig))
        with srv.lock:
            if not ok:
                status = 401
            elif srv.fail_first.get(store, 0) > 0:
                srv.fail_first[store] -= 1
                status = 503
            else:
                status = 200
            rec["status"] = status
            srv.requests.append(rec)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


class RelayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = psycopg.connect(user=os.environ.get("ADMIN_PGUSER", "postgres"),
                                    autocommit=True, prepare_threshold=None)
        for s in (STORE_A, STORE_B, STORE_C):
            cls.admin.execute("SELECT pixl_set_store_plan(%s, 'growth')", (s,))
        cls.admin.execute("SELECT pixl_event_consumer_create(%s, max_attempts => 3)", (CONSUMER,))
        secrets = {s: new_secret() for s in (STORE_A, STORE_B, STORE_C)}
        cls.receiver = Receiver(secrets)
        threading.Thread(target=cls.receiver.serve_forever, daemon=True).start()
        base = "http://127.0.0.1:%d/" % cls.receiver.server_address[1]
        cfg = {"consumer": CONSUMER, "batch": 10, "visibility_timeout_s": 3, "poll_s": 1,
               "request_timeout_s": 5, "backoff_s": 0.2, "max_backoff_s": 1,
               "endpoints": {STORE_A: {"url": base + STORE_A, "secret": secrets[STORE_A]},
                             STORE_B: {"url": base + STORE_B, "secret_env": "WH_SECRET_B"},
                             # a secret the receiver does not hold: 401 every time
                             STORE_C: {"url": base + STORE_C, "secret": new_secret()}}}
        cls.env = dict(os.environ, RELAY_CONFIG=os.path.join(tempfile.mkdtemp(), "relay.json"),
                       PGUSER=os.environ.get("RELAY_PGUSER", "event_relay"),
                       WH_SECRET_B=secrets[STORE_B])
        with open(cls.env["RELAY_CONFIG"], "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        cls.relay = None
        cls.start_relay()

    @classmethod
    def start_relay(cls):
        cls.relay = subprocess.Popen([sys.executable, os.path.join(HERE, "relay.py")], env=cls.env)

    @classmethod
    def tearDownClass(cls):
        if cls.relay and cls.relay.poll() is None:
            cls.relay.send_signal(signal.SIGTERM)
            cls.relay.wait(30)
        cls.receiver.shutdown()
        cls.admin.execute("SELECT pixl_event_consumer_drop(%s)", (CONSUMER,))
        cls.admin.close()

    def create(self, store, n=1):
        """n new tokens in store; their events' webhook ids."""
        ids = [self.admin.execute("SELECT token_id FROM pixl_create_token(%s, %s, ARRAY['orders:read'])",
                                  (store, "hook %d" % i)).fetchone()[0] for i in range(n)]
        return {r[0] for r in self.admin.execute(
            "SELECT webhook_id FROM pixl_events WHERE token_id = ANY (%s)", (ids,)).fetchall()}

    def pending(self):
        return self.admin.execute(
            "SELECT ready + leased, dead FROM pixl_event_consumer_status WHERE consumer = %s",
            (CONSUMER,)).fetchone()

    def test_1_signed_deliveries(self):
        ids_a, ids_b = self.create(STORE_A), self.create(STORE_B)
        until("both deliveries", lambda: {r["id"] for r in self.receiver.accepted()} >= ids_a | ids_b)
        for r in self.receiver.accepted(STORE_A) + self.receiver.accepted(STORE_B):
            payload = self.admin.execute("SELECT payload FROM pixl_events WHERE webhook_id = %s",
                                         (r["id"],)).fetchone()[0]
            self.assertEqual(json.loads(r["body"]), payload)     # the outbox's payload, as signed
            self.assertEqual(payload["type"], "token.created")
            self.assertEqual(payload["data"]["store_id"], r["store"])
        self.assertEqual(len(self.receiver.of(STORE_A)), 1)
        until("acknowledged", lambda: self.pending() == (0, 0))

    def test_2_retry_until_success(self):
        self.receiver.fail_first[STORE_B] = 2
        ids = self.create(STORE_B)
        until("the delivery after two failures", lambda: {r["id"] for r in self.receiver.accepted(STORE_B)} >= ids)
        tries = [r["status"] for r in self.receiver.of(STORE_B) if r["id"] in ids]
        self.assertEqual(tries, [503, 503, 200])
        until("acknowledged", lambda: self.pending() == (0, 0))

    def test_3_dead_letter(self):
        ids = self.create(STORE_C)
        until("a dead letter", lambda: self.pending() == (0, 1))
        self.assertEqual([r["status"] for r in self.receiver.of(STORE_C)], [401, 401, 401])
        row = self.admin.execute(
            "SELECT webhook_id, attempts, last_error FROM pixl_event_dead_letters WHERE consumer = %s",
            (CONSUMER,)).fetchone()
        self.assertEqual(row, (ids.pop(), 3, "HTTP 401"))
        self.assertEqual(self.admin.execute("SELECT pixl_event_dead_letters_purge(%s)", (CONSUMER,)).fetchone()[0], 1)

    def test_4_killed_mid_batch(self):
        self.receiver.delay[STORE_A] = 0.7
        before = len(self.receiver.of(STORE_A))
        ids = self.create(STORE_A, 6)
        until("two deliveries under way", lambda: len(self.receiver.of(STORE_A)) - before >= 2)
        self.relay.kill()       # SIGKILL: no clean-up at all
        self.relay.wait(10)
        self.receiver.delay[STORE_A] = 0
        got = {r["id"] for r in self.receiver.accepted(STORE_A)} & ids
        self.assertTrue(0 < len(got) < 6, "killed mid-batch: %d of 6 delivered" % len(got))
        self.assertGreater(self.pending()[0], 0)
        self.start_relay()
        until("all six after the restart", lambda: {r["id"] for r in self.receiver.accepted(STORE_A)} >= ids)
        until("acknowledged", lambda: self.pending() == (0, 0))
        mine = [r for r in self.receiver.of(STORE_A)[before:]]
        # no loss; a duplicate only as a redelivery of the same event (same webhook-id)
        self.assertEqual({r["id"] for r in mine}, ids)
        self.assertTrue(all(r["status"] == 200 for r in mine))
        dups = len(mine) - len(ids)
        self.assertLessEqual(dups, 2, "at most the deliveries in flight at the kill come twice")


if __name__ == "__main__":
    unittest.main()
