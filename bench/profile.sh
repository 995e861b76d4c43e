# shellcheck shell=bash
# perf profile of pixl_verify_token (sourced by bench/run.sh with PROFILE=1,
# after the cases, on the same cluster; uses its variables and helpers:
# pgbench_run, wait_drained, wait_quiet, WARM_RANDOM, WORK, OUT).
# (The server-side µs per call, cold and warm, are measured by run.sh itself.)
#
# profile_perf: perf record (frame pointers: Debian builds PostgreSQL with
#   -fno-omit-frame-pointer, and PGXS inherits it) over all CPUs during a
#   verify_random pgbench run; the samples whose stack holds
#   pixl_verify_token, divided by the calls made, give CPU µs per call, and
#   the table says where inside it the time goes.

PROFILE_SECONDS=${PROFILE_SECONDS:-10}
PERF_FREQ=${PERF_FREQ:-999}

profile_perf() {
    command -v perf >/dev/null || { echo "perf: not installed (apt-get install linux-perf); no profile."; return 0; }
    local name=perf_verify_random
    local warm=$WARM_RANDOM
    log "perf record -a -g -F $PERF_FREQ during ${PROFILE_SECONDS}s of verify_random at 8 clients (after ${warm}s of cache warm-up)"
    wait_drained >/dev/null
    wait_quiet
    pgbench_run "$name" "$HERE/pgbench/verify_random.sql" 8 $((warm + PROFILE_SECONDS + 2)) &
    local pg_pid=$!
    sleep "$warm"
    perf record -a -g -F "$PERF_FREQ" -o "$WORK/perf.data" -- sleep "$PROFILE_SECONDS" >"$OUT/perf-record.log" 2>&1 \
        || { wait "$pg_pid"; echo "perf record failed: $(tail -3 "$OUT/perf-record.log")"; return 0; }
    wait "$pg_pid" || return 0
    # calls made while perf recorded: the progress lines of that window
    local n
    n=$(awk -v a="$warm" -v b="$PROFILE_SECONDS" '/^progress:/ {t = $2 + 0; if (t > a && t <= a + b) s += $4} END {printf "%.0f", s}' "$OUT/$name.log")
    # A library file replaced on disk during the run (another engineer's
    # `make install` on this shared machine) shows as "(deleted)": perf then
    # cannot resolve its symbols.  Say so instead of printing nothing useful.
    if perf script -i "$WORK/perf.data" -F ip,dso 2>/dev/null | grep -q 'pixltoken.so (deleted)'; then
        echo "perf: pixltoken.so was replaced on disk while the cluster ran (a \`make install\` elsewhere), so perf cannot resolve its symbols; rerun the profile when nobody installs."
        return 0
    fi
    # perf script: one block per sample, "comm pid ... :" then one frame a line.
    perf script -i "$WORK/perf.data" -F comm,pid,ip,sym 2>/dev/null | awk -v freq="$PERF_FREQ" -v calls="$n" -v secs="$PROFILE_SECONDS" '
        function flush(   i, inv, callee, leaf, wk) {
            if (nf == 0) return
            all++
            wk = 0
            for (i = 1; i <= nf; i++) if (fr[i] == "pixl_usage_worker_main") { wk = 1; break }
            if (comm == "swapper") cat["idle (swapper)"]++
            else if (comm ~ /^pgbench/) cat["pgbench (the clients)"]++
            else if (comm ~ /^postgres/ && wk) {
                cat["usage worker (pixl_usage_worker_main)"]++
                wn++
                for (i = 1; i <= nf; i++) wseen[fr[i]] = 1
                for (k in wseen) wincl[k]++
                for (k in wseen) delete wseen[k]
            }
            else if (comm !~ /^postgres/) cat["other processes (other engineers, perf, kernel threads)"]++
            if (comm ~ /^postgres/ && !wk) {
                pg++
                inv = 0
                for (i = 1; i <= nf; i++) if (fr[i] == "pixl_verify_token") { inv = i; break }
                if (!inv) cat["backends, outside pixl_verify_token (protocol, executor, bench_tokens lookup)"]++
                if (inv) {
                    v++
                    cat["backends, inside pixl_verify_token"]++
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
            print "Where the CPU of the machine went (all samples of both cores):"
            print ""
            print "| who | share of all samples | µs of CPU per verify call |"
            print "|---|---:|---:|"
            for (k in cat) printf "| %s | %.1f%% | %.2f |\n", k, 100 * cat[k] / all, cat[k] / freq / calls * 1e6
            print ""
            print "| where (direct callee of pixl_verify_token) | share of verify samples | µs per call |"
            print "|---|---:|---:|"
            for (k in child) line[k] = child[k]
            for (r = 0; r < 12; r++) { best = ""; for (k in line) if (best == "" || line[k] > line[best]) best = k
                if (best == "") break
                printf "| `%s` | %.1f%% | %.2f |\n", best, 100 * line[best] / v, line[best] / freq / calls * 1e6; delete line[best] }
            print ""
            for (k in line) delete line[k]
            if (wn > 0) {
                print "| inside the usage worker: function on the stack (inclusive) | share of worker samples | µs per event |"
                print "|---|---:|---:|"
                for (k in wincl) if (wincl[k] < 0.97 * wn && k != "[unknown]") line[k] = wincl[k]
                for (r = 0; r < 20; r++) { best = ""; for (k in line) if (best == "" || line[k] > line[best]) best = k
                    if (best == "") break
                    printf "| `%s` | %.1f%% | %.2f |\n", best, 100 * line[best] / wn, line[best] / freq / calls * 1e6; delete line[best] }
                for (k in line) delete line[k]
                print ""
            }
            print "| leaf function (self time) inside pixl_verify_token | share of verify samples |"
            print "|---|---:|"
            for (k in self) line[k] = self[k]
            for (r = 0; r < 15; r++) { best = ""; for (k in line) if (best == "" || line[k] > line[best]) best = k
                if (best == "") break
                printf "| `%s` | %.1f%% |\n", best, 100 * line[best] / v; delete line[best] }
        }'
}
