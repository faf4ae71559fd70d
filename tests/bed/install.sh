#!/usr/bin/env bash
# Install the Debian packages the Croupier local test bed needs
# (single-node SLURM 22.05 with slurmdbd + MariaDB, OpenSSH server, and the
# Prometheus server that scrapes `croupier exporter` in the tests, and the
# headless Chromium with its driver that the portal's browser tests use, and the
# GridFTP server and client that GRIDFTP transfers run over sshftp://).
# Idempotent: does nothing (and touches no network) when all are installed.
set -euo pipefail

PACKAGES=(lmod slurmctld slurmd slurm-client munge slurmdbd mariadb-server
          openssh-server slurm-wlm-torque rsync curl procps prometheus
          chromium chromium-driver
          globus-gridftp-server-progs globus-gass-copy-progs)

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: must run as root" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install.sh: all ${#PACKAGES[@]} packages already installed, nothing to do"
    exit 0
fi

echo "install.sh: missing packages: ${missing[*]}"
start="$(date +%s)"
export DEBIAN_FRONTEND=noninteractive
echo "install.sh: running apt-get update"
apt-get update -q
echo "install.sh: installing ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install.sh: installed ${#missing[@]} package(s) in $(( $(date +%s) - start )) s"
