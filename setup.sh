#!/bin/sh
# Set up a fresh Debian machine for ocirun, as root: system packages, a virtualenv in .venv with
# ocirun and its Python dependencies, and the busybox rootfs of every bundle. Safe to run again.
set -eu
cd "$(dirname "$0")"

packages="busybox-static runc containerd podman iproute2 procps util-linux"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # no init system here: keep the packages' scripts from starting services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    rm -f /usr/sbin/policy-rc.d
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# compat mode: a plain path entry instead of an import hook, so every ocirun start stays cheap
if ! .venv/bin/python -c 'import ocirun, jsonschema, pyroute2, yaml, pytest' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' \
        --config-settings editable_mode=compat
    touch .venv/.installed
fi

for bundle in bundles/*/; do
    [ -f "$bundle/config.json" ] && bundles/make-rootfs "${bundle}rootfs"
done
exit 0
