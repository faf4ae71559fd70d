#!/usr/bin/env bash
# Install the Debian packages the Croupier local test bed needs
# (single-node SLURM 22.05 with slurmdbd + MariaDB, OpenSSH server, and the
# Prometheus server that scrapes `croupier exporter` in the tests, and the
# headless Chromium with its driver that the portal's browser tests use, the
# GridFTP server and client that GRIDFTP transfers run over sshftp://), and
# CKAN from PyPI into its own venv (with PostgreSQL and Redis from Debian; see
# tests/bed/ckan/ for how it runs without Solr).
# Idempotent: does nothing (and touches no network) when all are installed.
set -euo pipefail

PACKAGES=(lmod slurmctld slurmd slurm-client munge slurmdbd mariadb-server
          openssh-server slurm-wlm-torque rsync curl procps prometheus
          chromium chromium-driver
          globus-gridftp-server-progs globus-gass-copy-progs
          postgresql redis-server libpq-dev gcc python3-dev python3-venv)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CKAN_VERSION="2.11.6"
CKAN_VENV="${CROUPIER_BED_CKAN_VENV:-/opt/croupier-ckan}"

# install_ckan: CKAN and the bed's no-Solr plugin into CKAN_VENV, unless there
install_ckan() {
    if [ -x "${CKAN_VENV}/bin/ckan" ] && \
            "${CKAN_VENV}/bin/pip" show croupier-ckan-bed >/dev/null 2>&1 && \
            [ "$("${CKAN_VENV}/bin/pip" show ckan 2>/dev/null | sed -n 's/^Version: //p')" = "${CKAN_VERSION}" ]; then
        echo "install.sh: CKAN ${CKAN_VERSION} already in ${CKAN_VENV}"
        return 0
    fi
    local start
    start="$(date +%s)"
    echo "install.sh: installing CKAN ${CKAN_VERSION} into ${CKAN_VENV}"
    python3 -m venv "${CKAN_VENV}"
    # CKAN pins its dependencies in its 'requirements' extra
    "${CKAN_VENV}/bin/pip" install -q "ckan[requirements]==${CKAN_VERSION}"
    # built from a copy, so that no build/ folder is left in the source tree
    local src
    src="$(mktemp -d)"
    cp -r "${HERE}/ckan/." "${src}/"
    "${CKAN_VENV}/bin/pip" install -q "${src}"
    rm -rf "${src}"
    echo "install.sh: CKAN installed in $(( $(date +%s) - start )) s"
}

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
    echo "install.sh: all ${#PACKAGES[@]} packages already installed"
    install_ckan
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
install_ckan
