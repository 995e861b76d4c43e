#!/usr/bin/python3
# An app server written against pixltoken 1.0, kept running across
# ALTER EXTENSION pixltoken UPDATE (test/t/091_upgrade_live.pl drives it).
#
# Its connections, all open from the start to the end:
#   prepared  direct, every statement prepared server-side (what psycopg
#             does by default from a statement's 6th execution)
#   plain     direct, never prepared (unnamed statements)
#   bouncer   through PgBouncer, transaction pooling, never prepared
# Each round, on each connection, 1.0's README calls: verify with
# "SELECT * FROM pixl_verify_token(...)" and report the response with
# pixl_log_response(bigint, ...), once singly and once as 1.0's batch
# (unnest($1::bigint[], ...)); and a verification with a NULL scope.
# Through PgBouncer the single report passes the id as an untyped string,
# as node-postgres does (int8 columns arrive as strings there).
# From phase 2 on (after the update) a 1.1 connection ("v11", prepared)
# calls pixl_verify_request the way README says, with an explicit column
# list, and the same statement as "SELECT *" (the form README says not to
# use) to show what the column list protects against.
#
# Phases: after phase N the script writes DIR/phaseN.done and waits for
# DIR/goN before the next; at the end it writes DIR/results.json, one
# record per call: phase, connection, call, endpoint, status or error.
# Ids verified in the last round of a phase are reported at the start of
# the next one ("held"): ids handed out just before the update, reported
# just after it.
import json
import os
import sys
import time

import psycopg

direct, bouncer, workdir, token, phases = sys.argv[1:6]
phases = int(phases)
ROUNDS = 3
results = []


def record(phase, conn, call, endpoint, status=None, error=None):
    results.append({"phase": phase, "conn": conn, "call": call,
                    "endpoint": endpoint, "status": status, "error": error})


def attempt(phase, name, call, endpoint, fn):
    try:
        return fn()
    except psycopg.Error as e:
        record(phase, name, call, endpoint, error=e.sqlstate or str(e))
        return None


conns = {
    "prepared": psycopg.connect(direct, autocommit=True, prepare_threshold=0),
    "plain": psycopg.connect(direct, autocommit=True, prepare_threshold=None),
    "bouncer": psycopg.connect(bouncer, autocommit=True, prepare_threshold=None),
}
v11 = psycopg.connect(direct, autocommit=True, prepare_threshold=0)

VERIFY_10 = "SELECT * FROM pixl_verify_token(%s, %s, %s, %s, %s, %s)"
REPORT_10 = "SELECT pixl_log_response(%s, %s, %s)"
BATCH_10 = ("SELECT pixl_log_response(u.id, u.st, u.ms)"
            " FROM unnest(%s::bigint[], %s::int[], %s::float8[]) AS u(id, st, ms)")
VERIFY_11 = ("SELECT status, reason, request_id FROM pixl_verify_request(%s, %s, %s, %s, %s, %s)")
VERIFY_11_STAR = "SELECT * FROM pixl_verify_request(%s, %s, %s, %s, %s, %s)"
REPORT_11 = "SELECT pixl_log_response(%s::text, %s, %s)"


def verify_10(phase, name, conn, endpoint, scope="orders:read"):
    row = attempt(phase, name, "verify", endpoint, lambda: conn.execute(
        VERIFY_10, (token, scope, "live-store", "GET", endpoint, "10.0.0.1")).fetchone())
    if row is None:
        return None
    # 1.0's eleven columns, request_id (bigint) last
    record(phase, name, "verify" if scope else "verify_null_scope", endpoint,
           status="%d/%d" % (row[0], len(row)))
    return row[10]


def report_10(phase, name, conn, endpoint, rid):
    if rid is None:
        return
    # through PgBouncer as node-postgres sends it: a string of the id, its
    # parameter type left to the server (psycopg sends a str untyped)
    if name == "bouncer":
        rid = str(rid)
    if attempt(phase, name, "report", endpoint,
               lambda: conn.execute(REPORT_10, (rid, 200, 5.0))) is not None:
        record(phase, name, "report", endpoint, status="ok")


def batch_10(phase, name, conn, endpoint, rids):
    rids = [r for r in rids if r is not None]
    if attempt(phase, name, "batch", endpoint, lambda: conn.execute(
            BATCH_10, (rids, [200] * len(rids), [7.0] * len(rids))).fetchall()) is not None:
        record(phase, name, "batch", endpoint, status="ok/%d" % len(rids))


held = {}
for phase in range(1, phases + 1):
    # the ids verified at the end of the last phase
    for name, (endpoint, rids) in held.items():
        batch_10(phase, name, conns[name], endpoint, rids)
    held = {}
    for rnd in range(ROUNDS):
        for name, conn in conns.items():
            endpoint = "/p%d/%s" % (phase, name)
            report_10(phase, name, conn, endpoint, verify_10(phase, name, conn, endpoint))
            rids = [verify_10(phase, name, conn, endpoint) for _ in range(3)]
            if rnd == ROUNDS - 1:
                held[name] = (endpoint, rids)
            else:
                batch_10(phase, name, conn, endpoint, rids)
            verify_10(phase, name, conn, "/p%d/null-scope" % phase, scope=None)
        if phase >= 2:
            endpoint = "/p%d/v11" % phase
            row = attempt(phase, "v11", "verify", endpoint, lambda: v11.execute(
                VERIFY_11, (token, "orders:read", "live-store", "GET", endpoint, "10.0.0.1")).fetchone())
            if row is not None:
                record(phase, "v11", "verify", endpoint, status="%d/%d" % (row[0], len(row)))
                if attempt(phase, "v11", "report", endpoint,
                           lambda: v11.execute(REPORT_11, (row[2], 200, 3.0))) is not None:
                    record(phase, "v11", "report", endpoint, status="ok")
            row = attempt(phase, "v11", "verify_star", "/p%d/v11-star" % phase, lambda: v11.execute(
                VERIFY_11_STAR, (token, "orders:read", "live-store", "GET",
                                 "/p%d/v11-star" % phase, "10.0.0.1")).fetchone())
            if row is not None:
                record(phase, "v11", "verify_star", "/p%d/v11-star" % phase,
                       status="%d/%d" % (row[0], len(row)))
    if phase < phases:
        open(os.path.join(workdir, "phase%d.done" % phase), "w").close()
        deadline = time.time() + 180
        while not os.path.exists(os.path.join(workdir, "go%d" % phase)):
            if time.time() > deadline:
                sys.exit("no go%d within 180 s" % phase)
            time.sleep(0.05)

# the ids verified in the last round of the last phase
for name, (endpoint, rids) in held.items():
    batch_10(phases, name, conns[name], endpoint, rids)

with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f)
