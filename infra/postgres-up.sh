#!/usr/bin/env bash
# Brings up the local PostgreSQL 15 server that Hyperion's tests and benchmarks use (Debian's
# packages, no systemd needed), listening on 127.0.0.1 only, with a password user, a database,
# and a second user that may not create schemas in it (for the test of that error).
# Adapted from the team's infrastructure notes; the project carries its own copy.
#
# Usage:  infra/postgres-up.sh [up|stop|status|env]      (default: up)
#   up      install if needed, configure, start if not running, create user+db,
#           verify a TCP login with psql, print connection info. Idempotent.
#   stop    stop the cluster (pg_ctlcluster stop = SIGTERM to the postmaster PID).
#   status  show pg_lsclusters line and try a TCP login.
#   env     print export lines only (eval "$(pg_up.sh env)").
#
# Settings (environment variables, defaults in brackets):
#   PG_VERSION [15]  PG_CLUSTER [main]  PG_PORT [5432]
#   PG_USER [hyperion]    PG_PASSWORD [hyperion]  PG_DB [hyperion]
#   PG_LIMITED_USER [hyperion_limited] (same password; may connect, may not create schemas)
#   PG_FAST [0]      1 = fsync/synchronous_commit/full_page_writes off
#                    (test speed; NOT crash-safe)
# Must run as root (apt-get, runuser). Works without systemd as PID 1.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-hyperion}
PG_PASSWORD=${PG_PASSWORD:-hyperion}
PG_DB=${PG_DB:-hyperion}
PG_LIMITED_USER=${PG_LIMITED_USER:-hyperion_limited}
PG_FAST=${PG_FAST:-0}
CMD=${1:-up}

T_START=$(date +%s%3N)
T_LAST=$T_START
ms2s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
step() { # step "label" -- prints time since previous step
    local now; now=$(date +%s%3N)
    printf '[postgres-up] %-40s %7ss (total %7ss)\n' "$1" "$(ms2s $((now - T_LAST)))" "$(ms2s $((now - T_START)))" >&2
    T_LAST=$now
}
die() { echo "[postgres-up] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

URL="postgresql://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PG_PORT}/${PG_DB}"

print_env() {
    cat <<EOF
export PGHOST=127.0.0.1
export PGPORT=${PG_PORT}
export PGUSER=${PG_USER}
export PGPASSWORD=${PG_PASSWORD}
export PGDATABASE=${PG_DB}
export DATABASE_URL=${URL}
EOF
}

as_pg() { (cd / && runuser -u postgres -- "$@"); }   # cd: postgres cannot read the caller's cwd (e.g. /root)
psql_admin() { as_pg psql -X -q -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@"; }

cluster_status() { # prints online/down/absent
    if ! command -v pg_lsclusters >/dev/null 2>&1; then echo absent; return; fi
    local line
    line=$(pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}')
    echo "${line:-absent}"
}

tcp_check() {
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=3 psql -X -At \
        "host=127.0.0.1 port=${PG_PORT} user=${PG_USER} dbname=${PG_DB}" \
        -c "select current_user || '@' || current_database() || ' via ' || inet_server_addr() || ':' || inet_server_port() || ' ' || split_part(version(), ' ', 2)"
}

case "$CMD" in
  stop)
    st=$(cluster_status)
    if [ "$st" = online ]; then pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast; fi
    echo "[postgres-up] cluster $PG_VERSION/$PG_CLUSTER: $(cluster_status)"
    exit 0 ;;
  status)
    pg_lsclusters 2>/dev/null || true
    tcp_check || true
    exit 0 ;;
  env)
    print_env; exit 0 ;;
  up) ;;
  *) die "unknown command $CMD (up|stop|status|env)" ;;
esac

# 1. Packages -------------------------------------------------------------
if dpkg-query -W -f='${Status}' "postgresql-${PG_VERSION}" 2>/dev/null | grep -q 'install ok installed' \
   && command -v psql >/dev/null 2>&1; then
    step "packages already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    # lists may be absent or stale on a fresh machine (stale => 404 on install):
    # update once, only when something has to be installed.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | head -1)" ]; then
        apt-get update -q >/dev/null
        step "apt-get update"
    fi
    apt-get install -y -q --no-install-recommends \
        "postgresql-${PG_VERSION}" "postgresql-client-${PG_VERSION}" postgresql-common >/dev/null
    step "apt-get install postgresql-${PG_VERSION}"
fi

# 2. Cluster --------------------------------------------------------------
# Debian's postinst normally creates cluster "main"; create it if missing.
if [ "$(cluster_status)" = absent ]; then
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
    step "pg_createcluster ${PG_VERSION}/${PG_CLUSTER}"
fi

# 3. Config ----------------------------------------------------------------
# Settings go to conf.d/ (included by Debian's postgresql.conf). Do not use
# pg_conftool for listen_addresses: it writes 127.0.0.1 unquoted -> syntax error.
# The port stays in postgresql.conf (pg_lsclusters/pg_ctlcluster read it there).
CONF_DIR=/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}
need_restart=0
if [ "$(pg_conftool -s "$PG_VERSION" "$PG_CLUSTER" show port 2>/dev/null)" != "$PG_PORT" ]; then
    pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
    need_restart=1
fi
# TLS with a certificate of the project's own test authority, for the sslmode tests: the
# server's certificate names localhost and 127.0.0.1, and the authority's certificate is
# left readable at $TLS_DIR/ca.crt (the tests' sslrootcert).
TLS_DIR=$CONF_DIR/hyperion-tls
if [ ! -s "$TLS_DIR/server.crt" ]; then
    command -v openssl >/dev/null || apt-get install -y -q --no-install-recommends openssl >/dev/null
    install -d -m 0755 "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Hyperion test authority" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        > "$TLS_DIR/server.ext"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 3650 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.crt" 2>/dev/null
    chown postgres:postgres "$TLS_DIR/server.key" "$TLS_DIR/server.crt"
    chmod 0600 "$TLS_DIR/server.key" "$TLS_DIR/ca.key"
    chmod 0644 "$TLS_DIR/ca.crt"
    step "TLS certificates"
fi
want_conf="# written by infra/postgres-up.sh
listen_addresses = '127.0.0.1'
max_connections = 200
ssl = on
ssl_cert_file = '$TLS_DIR/server.crt'
ssl_key_file = '$TLS_DIR/server.key'"
if [ "$PG_FAST" = 1 ]; then
    want_conf="$want_conf
fsync = off
synchronous_commit = off
full_page_writes = off"
fi
if [ "$(cat "$CONF_DIR/conf.d/50-hyperion.conf" 2>/dev/null)" != "$want_conf" ]; then
    install -d -o postgres -g postgres "$CONF_DIR/conf.d"
    printf '%s\n' "$want_conf" > "$CONF_DIR/conf.d/50-hyperion.conf"
    chown postgres:postgres "$CONF_DIR/conf.d/50-hyperion.conf"
    need_restart=1
fi
step "configure (restart needed: $need_restart)"

# 4. Start ------------------------------------------------------------------
# /run is a tmpfs: the socket dir can be gone after a reboot without systemd.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
st=$(cluster_status)
if [ "$st" = online ] && [ "$need_restart" = 1 ]; then
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart -m fast
    step "pg_ctlcluster restart (config changed)"
elif [ "$st" != online ]; then
    # A stale postmaster.pid from a killed server makes pg_ctl refuse only if
    # that PID is alive; pg_ctl handles a dead PID itself.
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    step "pg_ctlcluster start"
else
    step "already running"
fi
for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "server not ready on 127.0.0.1:$PG_PORT (see /var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log)"
step "pg_isready"

# 5. Role + database (idempotent; password is (re)set every run) -------------
# Identifiers/password are passed as psql variables and quoted by psql
# (:"var" = identifier, :'var' = literal), so odd characters are safe.
psql_admin -d postgres -v u="$PG_USER" -v p="$PG_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" WITH LOGIN CREATEDB PASSWORD :'p';
-- The benchmark settles the server after its bulk loads (CHECKPOINT).
GRANT pg_checkpoint TO :"u";
SQL
db_exists=$(psql_admin -d postgres -At -v d="$PG_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'d'")
if [ "$db_exists" != 1 ]; then
    psql_admin -d postgres -v d="$PG_DB" -v u="$PG_USER" <<<'CREATE DATABASE :"d" OWNER :"u"'
fi
psql_admin -d "$PG_DB" -v u="$PG_LIMITED_USER" -v p="$PG_PASSWORD" -v d="$PG_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
ALTER ROLE :"u" WITH LOGIN NOCREATEDB PASSWORD :'p';
REVOKE CREATE ON DATABASE :"d" FROM :"u";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
step "role + database"

# 6. Verify over TCP with the password ---------------------------------------
out=$(tcp_check) || die "TCP password login failed"
step "verify psql over TCP"
listeners=$(ss -ltnH "sport = :${PG_PORT}" 2>/dev/null | awk '{print $4}' | sort -u | tr '\n' ' ' || true)

cat <<EOF

PostgreSQL ${PG_VERSION}/${PG_CLUSTER} is up: ${out}
listening on: ${listeners:-127.0.0.1:${PG_PORT}}   postmaster pid: $(head -1 "/var/lib/postgresql/${PG_VERSION}/${PG_CLUSTER}/postmaster.pid" 2>/dev/null || echo '?')
log: /var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log

Connect:
  psql "${URL}"
  PGPASSWORD=${PG_PASSWORD} psql -h 127.0.0.1 -p ${PG_PORT} -U ${PG_USER} ${PG_DB}
  DATABASE_URL=${URL}
  (TLS: ?sslmode=verify-full&sslrootcert=${TLS_DIR}/ca.crt with host localhost or 127.0.0.1;
   ?sslmode=disable to skip it)
  eval "\$($0 env)"   # PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE/DATABASE_URL
Stop:
  $0 stop
EOF
