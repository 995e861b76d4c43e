# Per-call cost of pixl_verify_token (sourced by bench/run.sh after the
# phases, on the same cluster; uses its variables and helpers).
#
# profile_percall: server-side microseconds per call, without the client
#   round trip: one statement verifies all 10,000 bench tokens, timed with
#   clock_timestamp(), minus the same join without the verification.
#   "cold" is the first pass of a new connection (every token misses the
#   per-backend cache), "warm" the following passes (200 path), "hot" 10,000
#   calls on the hot token (its limit is spent by then: the 429 path).
# profile_perf: perf record (frame pointers: Debian builds PostgreSQL with
#   -fno-omit-frame-pointer, and PGXS inherits it) over all CPUs during a
#   verify_random pgbench run; the samples whose stack holds
#   pixl_verify_token, divided by the calls made, give CPU µs per call, and
#   the table says where inside it the time goes.

PROFILE_SECONDS=${PROFILE_SECONDS:-10}
PERF_FREQ=${PERF_FREQ:-999}

profile_percall() {
    local reps=5
    wait_drained >/dev/null
    # One psql session: pass 1 is cold for this backend, passes 2.. are warm.
    "${PSQL[@]}" -At -F ' ' >"$OUT/percall.log" 2>&1 <<EOF
CREATE TEMP TABLE percall (pass int, what text, calls int, ok int, ms float8);
DO \$\$
DECLARE t0 timestamptz; t1 timestamptz; n int; ok int; hot text;
BEGIN
  SELECT tok INTO hot FROM bench_tokens WHERE id = 0;
  FOR p IN 1..$((reps + 1)) LOOP
    -- the join alone (what the verify statement does besides verifying)
    t0 := clock_timestamp();
    SELECT count(*), count(*) INTO n, ok FROM bench_tokens b, LATERAL (SELECT b.tok, b.store_id) v WHERE b.id > 0;
    t1 := clock_timestamp();
    INSERT INTO percall VALUES (p, 'join', n, ok, extract(epoch FROM t1 - t0) * 1000);
    t0 := clock_timestamp();
    SELECT count(*), count(*) FILTER (WHERE v.status = 200) INTO n, ok
      FROM bench_tokens b,
           pixl_verify_token(b.tok, 'products:read', b.store_id, 'GET', '/v1/products', '203.0.113.7') v
     WHERE b.id > 0;
    t1 := clock_timestamp();
    INSERT INTO percall VALUES (p, 'random', n, ok, extract(epoch FROM t1 - t0) * 1000);
    t0 := clock_timestamp();
    SELECT count(*), count(*) FILTER (WHERE v.status = 200) INTO n, ok
      FROM generate_series(1, 10000) g,
           pixl_verify_token(CASE WHEN g > 0 THEN hot END, 'products:read', 'store_hot', 'GET', '/v1/products', '203.0.113.7') v;
    t1 := clock_timestamp();
    INSERT INTO percall VALUES (p, 'hot', n, ok, extract(epoch FROM t1 - t0) * 1000);
    -- let the worker drain (the queue holds 16,384 events by default)
    PERFORM pg_sleep(1.5);
  END LOOP;
END \$\$;
SELECT 'cold', round(((SELECT ms FROM percall WHERE pass = 1 AND what = 'random')
                     - (SELECT ms FROM percall WHERE pass = 1 AND what = 'join'))::numeric * 1000 / 10000, 2),
       (SELECT ok || '/' || calls FROM percall WHERE pass = 1 AND what = 'random');
SELECT 'warm', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ms - j.ms))::numeric * 1000 / 10000, 2),
       sum(r.ok) || '/' || sum(r.calls)
  FROM percall r JOIN percall j USING (pass) WHERE r.what = 'random' AND j.what = 'join' AND pass > 1;
SELECT 'hot', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY h.ms - j.ms))::numeric * 1000 / 10000, 2),
       sum(h.ok) || '/' || sum(h.calls)
  FROM percall h JOIN percall j USING (pass) WHERE h.what = 'hot' AND j.what = 'join' AND pass > 1;
EOF
    local cold warm hot
    cold=$(awk '$1 == "cold" {print $2 " µs (" $3 " answered 200)"}' "$OUT/percall.log")
    warm=$(awk '$1 == "warm" {print $2 " µs (" $3 " answered 200)"}' "$OUT/percall.log")
    hot=$(awk '$1 == "hot" {print $2 " µs (" $3 " answered 200; the others 429)"}' "$OUT/percall.log")
    echo "Server-side time per call (one statement verifies all 10,000 bench tokens, timed with clock_timestamp(), minus the same join without verifying; median of $reps passes; worker serving the bench database):"
    echo
    echo "| case | µs per call |"
    echo "|---|---|"
    echo "| first verification of each token on a new backend (cache cold) | ${cold:-n/a} |"
    echo "| random token, cached (200 path) | ${warm:-n/a} |"
    echo "| one hot token, 10,000 calls in a row (429 path) | ${hot:-n/a} |"
}

profile_perf() {
    command -v perf >/dev/null || { echo "perf: not installed (apt-get install linux-perf); no profile."; return 0; }
    local name=perf_verify_random
    log "perf record -a -g -F $PERF_FREQ during ${PROFILE_SECONDS}s of verify_random at 8 clients"
    wait_drained >/dev/null
    wait_quiet
    perf record -a -g -F "$PERF_FREQ" -o "$WORK/perf.data" -- sleep $((PROFILE_SECONDS + 1)) >"$OUT/perf-record.log" 2>&1 &
    local perf_pid=$!
    sleep 0.5
    pgbench_run "$name" "$HERE/pgbench/verify_random.sql" 8 "$PROFILE_SECONDS"
    wait "$perf_pid" || { echo "perf record failed: $(tail -3 "$OUT/perf-record.log")"; return 0; }
    local n
    n=$(awk -F': ' '/^number of transactions actually processed/ {print $2}' "$OUT/$name.log")
    # perf script: one block per sample, "comm pid ... :" then one frame a line.
    perf script -i "$WORK/perf.data" -F comm,pid,ip,sym 2>/dev/null | awk -v freq="$PERF_FREQ" -v calls="$n" -v secs="$PROFILE_SECONDS" '
        function flush(   i, inv, callee, leaf) {
            if (nf == 0) return
            if (comm ~ /^postgres/) {
                pg++
                inv = 0
                for (i = 1; i <= nf; i++) if (fr[i] == "pixl_verify_token") { inv = i; break }
                if (inv) {
                    v++
                    leaf = fr[1]; self[leaf]++
                    callee = (inv > 1) ? fr[inv - 1] : "(self)"
                    child[callee]++
                }
            }
            nf = 0
        }
        /^[^ \t]/ { flush(); comm = $1; next }
        /^[ \t]*$/ { flush(); next }
        { sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym); if (sym == "") sym = "[unknown]"; fr[++nf] = sym }
        END {
            flush()
            if (v == 0) { print "perf: no sample inside pixl_verify_token (symbols missing?)"; exit }
            printf "perf (cpu-clock, %d Hz, all CPUs, frame-pointer stacks) during %d s of verify random at 8 clients, %d calls: ", freq, secs, calls
            printf "%d samples in PostgreSQL backends, %d of them inside pixl_verify_token = **%.2f µs of CPU per call** (%.1f%% of backend CPU).\n\n",
                pg, v, v / freq / calls * 1e6, 100 * v / pg
            print "| where (direct callee of pixl_verify_token) | share of verify samples | µs per call |"
            print "|---|---:|---:|"
            for (k in child) line[k] = child[k]
            for (r = 0; r < 12; r++) { best = ""; for (k in line) if (best == "" || line[k] > line[best]) best = k
                if (best == "") break
                printf "| `%s` | %.1f%% | %.2f |\n", best, 100 * line[best] / v, line[best] / freq / calls * 1e6; delete line[best] }
            print ""
            for (k in line) delete line[k]
            print "| leaf function (self time) inside pixl_verify_token | share of verify samples |"
            print "|---|---:|"
            for (k in self) line[k] = self[k]
            for (r = 0; r < 15; r++) { best = ""; for (k in line) if (best == "" || line[k] > line[best]) best = k
                if (best == "") break
                printf "| `%s` | %.1f%% |\n", best, 100 * line[best] / v; delete line[best] }
        }'
}
