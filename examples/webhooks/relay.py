"""pixltoken's lifecycle events to store endpoints, as Standard Webhooks.

    PGUSER=event_relay RELAY_CONFIG=relay.json /usr/bin/python3 relay.py

The database never makes an HTTP call: this relay LISTENs for the
pixltoken wake-up (and polls, for a server with pixltoken.event_notify =
off or a notification lost with a connection), claims a batch of its
consumer's events with a lease (pixl_events_claim), POSTs each to its
store's endpoint with the headers webhook-id, webhook-timestamp and
webhook-signature (pixl_webhook_signature, PostgreSQL's HMAC), acknowledges
on 2xx (pixl_events_ack) and releases a failure with an exponential backoff
(pixl_events_nack, retry_after = backoff_s * 2^(attempt-1), at most
max_backoff_s).  The database keeps every schedule: a relay that dies
mid-batch loses nothing; the events it had not acknowledged come back
after the lease (at least once: the receiver dedupes by webhook-id).  After
the consumer's max_attempts they are dead letters (pixl_event_dead_letters).

Configuration (RELAY_CONFIG, a JSON file; never the database):
    {"consumer": "webhooks",            # made with pixl_event_consumer_create
     "batch": 10, "visibility_timeout_s": 120, "poll_s": 5,
     "request_timeout_s": 10, "backoff_s": 1, "max_backoff_s": 3600,
     "endpoints": {"<store_id>": {"url": "https://...", "secret": "whsec_..."}}}
A secret may be given as {"secret_env": "NAME"} instead, read from the
environment.  visibility_timeout_s must be longer than a batch can take
(batch x request_timeout_s at worst): an event whose lease runs out while
the batch is still being delivered may be claimed (and delivered) again.  An event of a store with no endpoint (and a plan-wide event,
store NULL) is acknowledged without a delivery: it stays in pixl_events
until the retention.  Connection: the libpq environment (PGHOST, ...).
The endpoint secret goes to the server as a bind parameter of the signature
query, nowhere else: run the relay as a role with log_parameter_max_length
= 0 and log_parameter_max_length_on_error = 0 (examples/roles.sql), so no
server log line holds it, and not through a pooler that logs statements.
LISTEN needs a session: connect straight to PostgreSQL, not through
PgBouncer in transaction pooling.
"""
import json
import os
import select
import signal
import sys
import time
import urllib.error
import urllib.request

import psycopg

stopping = False


def log(msg):
    print("relay: " + msg, file=sys.stderr, flush=True)


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for store, ep in cfg.get("endpoints", {}).items():
        if "secret_env" in ep:
            ep["secret"] = os.environ[ep.pop("secret_env")]
        if not ep.get("url") or not ep.get("secret"):
            raise SystemExit("relay: endpoint of store %r needs url and secret" % store)
    return cfg


def post(url, body, headers, timeout):
    """(ok, error text) of one POST; 2xx is success."""
    req = urllib.request.Request(url, data=body.encode("utf-8"), method="POST",
                                 headers=dict(headers, **{"content-type": "application/json"}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300, "HTTP %d" % resp.status
    except urllib.error.HTTPError as e:
        return False, "HTTP %d" % e.code
    except (urllib.error.URLError, OSError) as e:
        return False, "no answer: %s" % getattr(e, "reason", e)


def deliver_batch(conn, cfg):
    """Claims one batch and handles it; returns how many events it claimed."""
    consumer = cfg["consumer"]
    events = conn.execute(
        "SELECT event_id, webhook_id, store_id, body, attempt "
        "FROM pixl_events_claim(%s, %s, make_interval(secs => %s))",
        (consumer, cfg.get("batch", 10), cfg.get("visibility_timeout_s", 120))).fetchall()
    for event_id, webhook_id, store_id, body, attempt in events:
        if stopping:
            break               # the lease brings the rest back
        ep = cfg.get("endpoints", {}).get(store_id) if store_id is not None else None
        if ep is None:
            conn.execute("SELECT pixl_events_ack(%s, %s)", (consumer, [event_id]))
            log("event %s of store %s: no endpoint, acknowledged" % (webhook_id, store_id))
            continue
        ts = int(time.time())
        # the secret is a bind parameter only (see the module's comment)
        signature = conn.execute("SELECT pixl_webhook_signature(%s, %s, %s, %s)",
                                 (ep["secret"], webhook_id, ts, body)).fetchone()[0]
        ok, error = post(ep["url"], body, {"webhook-id": webhook_id,
                                           "webhook-timestamp": str(ts),
                                           "webhook-signature": signature},
                         cfg.get("request_timeout_s", 10))
        if ok:
            conn.execute("SELECT pixl_events_ack(%s, %s)", (consumer, [event_id]))
        else:
            backoff = min(cfg.get("backoff_s", 1) * 2 ** (attempt - 1), cfg.get("max_backoff_s", 3600))
            conn.execute("SELECT pixl_events_nack(%s, %s, make_interval(secs => %s), %s)",
                         (consumer, [event_id], backoff, error))
            log("event %s to store %s: %s, attempt %d, again in %.1f s"
                % (webhook_id, store_id, error, attempt, backoff))
    return len(events)


def main():
    global stopping
    cfg = load_config(os.environ.get("RELAY_CONFIG", "relay.json"))

    def stop(signum, frame):
        global stopping
        stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    while not stopping:
        try:
            with psycopg.connect(autocommit=True, prepare_threshold=None) as conn:
                conn.execute("LISTEN pixltoken")
                log("consumer %s: listening" % cfg["consumer"])
                while not stopping:
                    if deliver_batch(conn, cfg) == cfg.get("batch", 10):
                        continue        # a full batch: more may be waiting
                    # a wake-up (its payload says nothing), or the poll
                    ready, _, _ = select.select([conn.fileno()], [], [], cfg.get("poll_s", 5))
                    if ready:
                        conn.execute("SELECT")      # takes the notifications in
        except psycopg.OperationalError as e:
            log("connection lost (%s); again in 1 s" % str(e).strip())
            time.sleep(1)
    log("stopped")


if __name__ == "__main__":
    main()
