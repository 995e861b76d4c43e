# Throwaway PostgreSQL clusters for the scripts that need one outside
# `make installcheck` (test/examples.sh, demo/run.sh,
# examples/node/bench/run.sh, grafana/bench-views.sh).  Source it, as root:
#
#   . test/helpers/cluster.sh
#   WORK=$(cluster_workdir pixltoken-demo)       # private directory, owned by postgres
#   cluster_start "$WORK" "$PORT" 127.0.0.1 "pixltoken.database = 'shop'"   # + postgresql.conf lines
#   cluster_psql "$WORK" "$PORT" -d shop -c 'SELECT 1'
#   cluster_stop "$WORK"                         # also from an EXIT trap
#
# The cluster runs as the postgres OS user from $PG_CONFIG's bindir, trusts
# local connections (a test cluster only), preloads pixltoken and listens
# on the given port of the given address ('' = its socket in $WORK only).
# KEEP=1 makes cluster_stop leave the directory.

: "${PG_CONFIG:=/usr/lib/postgresql/15/bin/pg_config}"
CLUSTER_BIN=$("$PG_CONFIG" --bindir)

# a free TCP port on the loopback (the machine may run other clusters)
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cluster_workdir() {
	local dir
	dir=$(mktemp -d "/tmp/${1:-pixltoken}.XXXXXX")
	chown postgres:postgres "$dir"
	chmod 755 "$dir"
	echo "$dir"
}

# cluster_start DIR PORT LISTEN_ADDRESS [EXTRA_POSTGRESQL_CONF_LINES]
cluster_start() {
	local dir=$1 port=$2 listen=${3-127.0.0.1} extra=${4-}
	runuser -u postgres -- "$CLUSTER_BIN/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
	{
		echo "port = $port"
		echo "listen_addresses = '$listen'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'pixltoken'"
		[ -z "$extra" ] || printf '%s\n' "$extra"
	} >>"$dir/data/postgresql.conf"
	runuser -u postgres -- "$CLUSTER_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

# cluster_psql DIR PORT psql-arguments...  (as the postgres superuser, over its socket)
cluster_psql() {
	local dir=$1 port=$2
	shift 2
	runuser -u postgres -- "$CLUSTER_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}

# cluster_wait_worker DIR PORT DB: until pixltoken's usage worker serves DB (10 s at most)
cluster_wait_worker() {
	local i
	for i in $(seq 1 100); do
		[ "$(cluster_psql "$1" "$2" -d "$3" -At -c "SELECT count(*) FROM pixl_stats() WHERE datname = '$3' AND worker_state = 'serving'")" = 1 ] && return 0
		sleep 0.1
	done
	echo "usage worker not serving $3" >&2
	return 1
}

# cluster_stop DIR: stop the cluster (if running) and remove DIR unless KEEP=1
cluster_stop() {
	local dir=$1
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	if [ -f "$dir/data/postmaster.pid" ]; then
		runuser -u postgres -- "$CLUSTER_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: left in $dir"; else rm -rf "$dir"; fi
}
