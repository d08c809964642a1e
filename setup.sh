#!/bin/sh
# Set up a fresh Debian machine for ocirun, as root: system packages, a virtualenv in .venv with
# ocirun and its Python dependencies, and the busybox rootfs of every bundle. Safe to run again.
set -eu
cd "$(dirname "$0")"

# uidmap: newuidmap/newgidmap, for rootless containers mapping subordinate ids (and podman);
# user-mode-linux: the cgroup v2 test guest (tests/guest/README.md); gcc and libc6-dev build
# its helper and the CRI tests' pause program; containernetworking-plugins: the CRI tests' CNI
packages="busybox-static runc containerd podman iproute2 procps util-linux libseccomp2 python3-venv
          uidmap user-mode-linux containernetworking-plugins gcc libc6-dev"
# docker.io's recommends (apparmor, cgroupfs-mount, needrestart, ...) would change the host
plain_packages="docker.io"
missing=""
missing_plain=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
for p in $plain_packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing_plain="$missing_plain $p"
done
if [ -n "$missing$missing_plain" ]; then
    apt-get update -q
    # no init system here: keep the packages' scripts from starting services (dockerd, containerd)
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    [ -z "$missing_plain" ] \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing_plain
    rm -f /usr/sbin/policy-rc.d
fi

# Debian's python3 (built with PGO and LTO, libpython linked in) starts 2-4 ms sooner than a
# --enable-shared build such as pyenv's, and every ocirun command is a new interpreter
python=${PYTHON:-/usr/bin/python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "ocirun needs Python 3.11+"'
if [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$(command -v "$python")")" ]; then
    rm -rf .venv  # made from another interpreter (or missing): make it again
    "$python" -m venv .venv
fi
# an editable install; pip puts bin/ocirun, the launcher every install gets, into .venv/bin
if ! .venv/bin/python -c 'import ocirun, jsonschema, pyroute2, yaml, pytest, cri_api' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ] || [ bin/ocirun -nt .venv/.installed ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    .venv/bin/pip uninstall -q -y setuptools 2>/dev/null || true  # its .pth costs every start
    touch .venv/.installed
fi
# byte-compile now: where PYTHONDONTWRITEBYTECODE is set, every command would compile ocirun anew
.venv/bin/python -m compileall -q ocirun >/dev/null

for bundle in bundles/*/; do
    [ -f "$bundle/config.json" ] && bundles/make-rootfs "${bundle}rootfs"
done
exit 0
