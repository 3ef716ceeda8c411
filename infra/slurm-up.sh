#!/usr/bin/env bash
# Hyperion's Slurm for tests, CI and `bench/run slurm`.
# Bring up a single-node Slurm 22.05 cluster on this machine (Debian 12
# packages; no systemd, no cgroups): munged + slurmctld + slurmd as plain
# background daemons, node = this host at 127.0.0.1 with SLURM_CPUS
# (default 16) advertised CPUs so many 1-CPU jobs run at once on 2 cores.
#
# Usage:  slurm_up.sh [up|stop|status]     (default: up)
#   up      install if needed, write /etc/slurm/slurm.conf, start whatever is
#           not running, resume the node if it is down, run a smoke job.
#           Idempotent: safe to run again at any time.
#   stop    cancel all jobs, then stop slurmrestd, slurmd, slurmctld, slurmdbd,
#           mariadb, munged (each by the PID in its PID file).
#   status  show daemons, sinfo, squeue.
#
# Settings (environment variables, defaults in brackets):
#   SLURM_CPUS [16]          CPUs advertised for the node (jobs with -c1 => this many at once)
#   SLURM_PARTITION [debug]  partition name (the default partition)
#   SLURM_CLUSTER [local]    ClusterName
#   SLURM_MIN_JOB_AGE [3600] seconds a finished job stays visible to squeue/scontrol
#   SLURM_ACCOUNTING [0]     1 = also install MariaDB + slurmdbd so that sacct works
#   SLURM_SMOKE [1]          0 = skip the smoke job at the end
#   SLURM_RESTD_USER []      non-empty = also run slurmrestd (REST/JSON API) as this
#                            non-root user (created if missing) on the unix socket
#                            /run/slurmrestd/slurmrestd.sock (rest_auth/local: only
#                            that user and root may connect)
# Must run as root.
set -euo pipefail

SLURM_CPUS=${SLURM_CPUS:-16}
SLURM_PARTITION=${SLURM_PARTITION:-debug}
SLURM_CLUSTER=${SLURM_CLUSTER:-local}
SLURM_MIN_JOB_AGE=${SLURM_MIN_JOB_AGE:-3600}
SLURM_ACCOUNTING=${SLURM_ACCOUNTING:-0}
SLURM_SMOKE=${SLURM_SMOKE:-1}
SLURM_RESTD_USER=${SLURM_RESTD_USER:-}
CMD=${1:-up}

CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
RUN=/run/slurm
LOGDIR=/var/log/slurm
STATE=/var/lib/slurm/slurmctld
SPOOL=/var/lib/slurm/slurmd
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN/slurmctld.pid
SLURMD_PID=$RUN/slurmd.pid
DBD_PID=$RUN/slurmdbd.pid
MARIADB_PID=/run/mysqld/mysqld.pid
DB_PASS_FILE=/etc/slurm/.slurmdbd_db_pass
RESTD_DIR=/run/slurmrestd
RESTD_SOCK=$RESTD_DIR/slurmrestd.sock
RESTD_PID=$RESTD_DIR/slurmrestd.pid

T_START=$(date +%s%3N)
T_LAST=$T_START
ms2s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
step() { # step "label" -- prints time since previous step
    local now; now=$(date +%s%3N)
    printf '[slurm_up] %-44s %7ss (total %7ss)\n' "$1" "$(ms2s $((now - T_LAST)))" "$(ms2s $((now - T_START)))" >&2
    T_LAST=$now
}
die() { echo "[slurm_up] ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

# is the process named in pidfile $1 alive (and is it $2)?
pid_alive() {
    local f=$1 name=$2 pid
    [ -s "$f" ] || return 1
    pid=$(head -1 "$f" | tr -dc 0-9)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    grep -q "$name" "/proc/$pid/comm" 2>/dev/null
}
# stop by PID file: SIGTERM, wait up to $3 s, then SIGKILL
stop_pidfile() {
    local f=$1 name=$2 wait_s=${3:-15} pid i
    if pid_alive "$f" "$name"; then
        pid=$(head -1 "$f" | tr -dc 0-9)
        kill "$pid"
        for ((i = 0; i < wait_s * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
        echo "[slurm_up] stopped $name (pid $pid)"
    fi
}

case "$CMD" in
  stop)
    # cancel queued/running jobs first: job processes (slurmstepd + the job's
    # own children) would otherwise outlive slurmd/slurmctld
    if pid_alive "$CTLD_PID" slurmctld; then
        ids=$(squeue -h -t PD,CF,R,S,CG -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
        if [ -n "${ids// }" ]; then
            echo "[slurm_up] cancelling jobs: $ids"
            scancel $ids 2>/dev/null || true
            for _ in $(seq 1 150); do
                [ -z "$(squeue -h -t R,CG,S,CF -o '%A' 2>/dev/null)" ] && break; sleep 0.1
            done
        fi
    fi
    stop_pidfile "$RESTD_PID" slurmrestd 10
    stop_pidfile "$SLURMD_PID" slurmd 15
    stop_pidfile "$CTLD_PID" slurmctld 15
    stop_pidfile "$DBD_PID" slurmdbd 15
    stop_pidfile "$MARIADB_PID" mariadbd 30
    stop_pidfile "$MUNGE_PID" munged 10
    exit 0 ;;
  status)
    for p in "$MUNGE_PID munged" "$MARIADB_PID mariadbd" "$DBD_PID slurmdbd" "$CTLD_PID slurmctld" "$SLURMD_PID slurmd" "$RESTD_PID slurmrestd"; do
        set -- $p
        if pid_alive "$1" "$2"; then echo "$2: running (pid $(head -1 "$1"))"; else echo "$2: not running"; fi
    done
    sinfo 2>&1 || true
    squeue 2>&1 || true
    exit 0 ;;
  up) ;;
  *) die "unknown command $CMD (up|stop|status)" ;;
esac

# 1. Packages -------------------------------------------------------------
pkgs=(slurm-wlm slurmctld slurmd slurm-client munge)
[ "$SLURM_ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
[ -n "$SLURM_RESTD_USER" ] && pkgs+=(slurmrestd)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    step "packages already installed"
else
    export DEBIAN_FRONTEND=noninteractive
    # lists may be absent or stale on a fresh machine (stale => 404 on install):
    # update once, only when something has to be installed.
    apt-get update -q >/dev/null
    step "apt-get update"
    # Debian's /usr/sbin/policy-rc.d (exit 101) keeps postinst from starting
    # daemons; tested without it too (no daemon was left running by postinst).
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    step "apt-get install ${missing[*]}"
fi

# 2. munge ----------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then           # Debian's postinst normally creates it
    runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge   # /run is tmpfs; systemd would create it
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if pid_alive "$MUNGE_PID" munged; then
    step "munged already running"
else
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock "$MUNGE_PID"
    runuser -u munge -- /usr/sbin/munged
    step "start munged"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed (see /var/log/munge/munged.log)"

# 3. slurm.conf -----------------------------------------------------------
HOST=$(hostname -s)
# RealMemory from what slurmd sees (MB); memory is not a consumable resource
# here (CR_CPU), this only lets jobs ask for --mem up to that value.
REALMEM=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
REALMEM=${REALMEM:-1000}
if [ "$SLURM_ACCOUNTING" = 1 ]; then
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
NEW_CONF=$(cat <<EOF
# Written by slurm_up.sh -- single-node test cluster, no cgroups, no systemd.
ClusterName=${SLURM_CLUSTER}
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# no cgroups: track job processes through /proc parentage, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
${ACCT_LINES}
# finished-job log with exit codes (works without slurmdbd)
JobCompType=jobcomp/filetxt
JobCompLoc=${LOGDIR}/jobcomp.log
SchedulerType=sched/backfill
# default batch_sched_delay=3 makes back-to-back sbatch jobs wait ~3 s
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# node may advertise more CPUs than the hardware has, and is not drained for it
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=${SLURM_MIN_JOB_AGE}
MaxJobCount=50000
MaxArraySize=10001
KillWait=5
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmdSpoolDir=${SPOOL}
StateSaveLocation=${STATE}
SlurmctldLogFile=${LOGDIR}/slurmctld.log
SlurmdLogFile=${LOGDIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${SLURM_CPUS} RealMemory=${REALMEM} State=UNKNOWN
PartitionName=${SLURM_PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$NEW_CONF" ]; then
    printf '%s\n' "$NEW_CONF" > "$CONF"
    chmod 0644 "$CONF"
    conf_changed=1
fi
install -d -o slurm -g slurm -m 0755 "$RUN" "$LOGDIR" "$STATE" /var/lib/slurm
install -d -o root -g root -m 0755 "$SPOOL"
step "write slurm.conf (changed: $conf_changed)"

# 4. optional accounting: MariaDB + slurmdbd ---------------------------------
if [ "$SLURM_ACCOUNTING" = 1 ]; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if ! pid_alive "$MARIADB_PID" mariadbd; then
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        # --bind-address: loopback only; runs as user mysql; detached from this shell
        setsid /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --socket=/run/mysqld/mysqld.sock --pid-file="$MARIADB_PID" \
            --bind-address=127.0.0.1 --port=3306 \
            --innodb-buffer-pool-size=128M \
            >>/var/log/slurm/mariadb.log 2>&1 < /dev/null &
        for _ in $(seq 1 100); do mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1 && break; sleep 0.2; done
        mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1 || die "mariadb did not start (see $LOGDIR/mariadb.log)"
        step "start mariadb"
    else
        step "mariadb already running"
    fi
    if [ ! -s "$DB_PASS_FILE" ]; then
        head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$DB_PASS_FILE"
        chmod 0600 "$DB_PASS_FILE"
    fi
    DBPASS=$(cat "$DB_PASS_FILE")
    mariadb --socket=/run/mysqld/mysqld.sock -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DBPASS}';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '${DBPASS}';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${DBPASS}';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '${DBPASS}';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
    NEW_DBD=$(cat <<EOF
# Written by slurm_up.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=${DBD_PID}
LogFile=${LOGDIR}/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=${DBPASS}
StorageLoc=slurm_acct_db
EOF
)
    dbd_changed=0
    if [ "$(cat "$DBD_CONF" 2>/dev/null)" != "$NEW_DBD" ]; then
        printf '%s\n' "$NEW_DBD" > "$DBD_CONF"; dbd_changed=1
    fi
    chown slurm:slurm "$DBD_CONF"; chmod 0600 "$DBD_CONF"   # slurmdbd refuses a world-readable file
    if pid_alive "$DBD_PID" slurmdbd && [ "$dbd_changed" = 1 ]; then stop_pidfile "$DBD_PID" slurmdbd 15; fi
    if ! pid_alive "$DBD_PID" slurmdbd; then
        /usr/sbin/slurmdbd
        # slurmdbd listens on 6819 once it has created/checked its tables
        for _ in $(seq 1 150); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.2; done
        (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null || die "slurmdbd not listening on 6819 (see $LOGDIR/slurmdbd.log)"
        step "start slurmdbd"
    else
        step "slurmdbd already running"
    fi
    # register the cluster (needed before slurmctld can store jobs)
    if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$SLURM_CLUSTER"; then
        sacctmgr -i add cluster "$SLURM_CLUSTER" >/dev/null
        step "sacctmgr add cluster $SLURM_CLUSTER"
    fi
fi

# 5. slurmctld --------------------------------------------------------------
if pid_alive "$CTLD_PID" slurmctld; then
    if [ "$conf_changed" = 1 ]; then
        # reconfigure is enough for most keys; a restart would be needed for
        # a few (e.g. SlurmctldHost, plugin types) -- do a clean restart.
        stop_pidfile "$SLURMD_PID" slurmd 15
        stop_pidfile "$CTLD_PID" slurmctld 15
        step "stop slurmd+slurmctld (config changed)"
    else
        step "slurmctld already running"
    fi
fi
if ! pid_alive "$CTLD_PID" slurmctld; then
    /usr/sbin/slurmctld        # daemonizes; logs to $LOGDIR/slurmctld.log
    for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
    scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld not responding (see $LOGDIR/slurmctld.log)"
    step "start slurmctld"
fi

# 6. slurmd -----------------------------------------------------------------
if pid_alive "$SLURMD_PID" slurmd; then
    step "slurmd already running"
else
    /usr/sbin/slurmd           # daemonizes; logs to $LOGDIR/slurmd.log
    step "start slurmd"
fi
# wait for the node to register; resume it if it came back DOWN/DRAIN
for i in $(seq 1 100); do
    st=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -1)
    case "$st" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|drained*|fail*)
            [ $i -gt 20 ] && scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.1
done
st=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -1)
case "$st" in idle|mixed|allocated|completing) ;; *) die "node $HOST is '$st' (see scontrol show node $HOST; $LOGDIR/slurmd.log)";; esac
step "node $HOST is $st"

# 7. optional slurmrestd ------------------------------------------------------
if [ -n "$SLURM_RESTD_USER" ]; then
    [ "$SLURM_RESTD_USER" != root ] || die "slurmrestd refuses to run as root"
    id "$SLURM_RESTD_USER" >/dev/null 2>&1 || useradd -m "$SLURM_RESTD_USER"
    install -d -o "$SLURM_RESTD_USER" -m 0755 "$RESTD_DIR"
    if pid_alive "$RESTD_PID" slurmrestd; then
        step "slurmrestd already running"
    else
        rm -f "$RESTD_SOCK"
        touch "$LOGDIR/slurmrestd-$SLURM_RESTD_USER.log"
        chown "$SLURM_RESTD_USER" "$LOGDIR/slurmrestd-$SLURM_RESTD_USER.log"
        # load only the slurmctld API unless slurmdbd is there: with
        # openapi/dbv0.0.38 loaded and no slurmdbd it dies at start
        plugins=openapi/v0.0.38
        [ "$SLURM_ACCOUNTING" = 1 ] && plugins=openapi/v0.0.38,openapi/dbv0.0.38
        # "cd /; setsid X &" (a simple command, so $! is slurmrestd itself);
        # all fds redirected so that no caller's pipe is held open
        runuser -u "$SLURM_RESTD_USER" -- bash -c \
            "cd /; setsid /usr/sbin/slurmrestd -s $plugins -a rest_auth/local unix:$RESTD_SOCK \
               >>$LOGDIR/slurmrestd-$SLURM_RESTD_USER.log 2>&1 </dev/null & echo \$! > $RESTD_PID" \
            </dev/null >/dev/null 2>&1
        for _ in $(seq 1 50); do [ -S "$RESTD_SOCK" ] && break; sleep 0.1; done
        [ -S "$RESTD_SOCK" ] || die "slurmrestd did not create $RESTD_SOCK (see $LOGDIR/slurmrestd-$SLURM_RESTD_USER.log)"
        step "start slurmrestd as $SLURM_RESTD_USER"
    fi
fi

# 8. smoke test -------------------------------------------------------------
# (not sbatch --wait: it polls with growing sleeps and returns ~10 s late)
if [ "$SLURM_SMOKE" = 1 ]; then
    out=$(mktemp /tmp/slurm-smoke.XXXXXX)
    jid=$(sbatch --parsable -J smoke -o "$out" --wrap 'echo "ok $SLURM_JOB_ID"') || die "sbatch failed"
    jid=${jid%%;*}
    for _ in $(seq 1 600); do
        st=$(squeue -h -t all -j "$jid" -o '%T' 2>/dev/null | head -1)
        case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) break ;; esac
        sleep 0.1
    done
    [ "$st" = COMPLETED ] || die "smoke job $jid ended as '$st' (scontrol show job $jid)"
    grep -q "^ok $jid" "$out" || die "smoke job output missing in $out"
    rm -f "$out"
    step "smoke job $jid COMPLETED"
fi

cat <<EOF

Slurm ${SLURM_CLUSTER}: node ${HOST} (127.0.0.1), ${SLURM_CPUS} CPUs advertised, partition ${SLURM_PARTITION} (default)
  munged pid $(head -1 $MUNGE_PID)  slurmctld pid $(head -1 $CTLD_PID)  slurmd pid $(head -1 $SLURMD_PID)$( [ "$SLURM_ACCOUNTING" = 1 ] && echo "  slurmdbd pid $(head -1 $DBD_PID)  mariadbd pid $(head -1 $MARIADB_PID)")
  config ${CONF}; logs ${LOGDIR}/{slurmctld,slurmd}.log; finished jobs ${LOGDIR}/jobcomp.log
Use:
  sbatch --parsable --wrap 'echo hi'          # prints the job id
  sbatch --parsable --array=0-9 -o 'out-%A_%a.txt' script.sh
  squeue -t all -o '%i %T %r'   |   scontrol show job ID   (ExitCode=code:signal)
  scancel ID
$( [ "$SLURM_ACCOUNTING" = 1 ] && echo "  sacct -j ID -X -o JobID,State,ExitCode,Elapsed" || echo "  (sacct needs SLURM_ACCOUNTING=1; finished jobs stay in squeue/scontrol for ${SLURM_MIN_JOB_AGE}s)")
$( [ -n "$SLURM_RESTD_USER" ] && echo "  REST (as $SLURM_RESTD_USER or root): curl --unix-socket $RESTD_SOCK http://localhost/slurm/v0.0.38/ping")
Stop:
  $0 stop
EOF
