#!/bin/sh
# Set up a fresh Debian machine for ocirun, as root: system packages, a virtualenv in .venv with
# ocirun and its Python dependencies, and the busybox rootfs of every bundle. Safe to run again.
set -eu
cd "$(dirname "$0")"

# uidmap: newuidmap/newgidmap, for rootless containers mapping subordinate ids (and podman)
packages="busybox-static runc containerd podman iproute2 procps util-linux libseccomp2 python3-venv
          uidmap"
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

# Debian's python3 (built with PGO and LTO, libpython linked in) starts 2-4 ms sooner than a
# --enable-shared build such as pyenv's, and every ocirun command is a new interpreter
python=${PYTHON:-/usr/bin/python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "ocirun needs Python 3.11+"'
if [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$(command -v "$python")")" ]; then
    rm -rf .venv  # made from another interpreter (or missing): make it again
    "$python" -m venv .venv
fi
# compat mode: a plain path entry instead of an import hook, so every ocirun start stays cheap
if ! .venv/bin/python -c 'import ocirun, jsonschema, pyroute2, yaml, pytest' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' \
        --config-settings editable_mode=compat
    .venv/bin/pip uninstall -q -y setuptools 2>/dev/null || true  # its .pth costs every start
    touch .venv/.installed
fi
# pip's console-script launcher imports `re` (~9 ms per command here) and Python's `site` costs
# ~5 ms more: this launcher skips both (ocirun.load_site_packages() brings site-packages back
# on the rare paths that need a third-party package)
cat >.venv/bin/ocirun <<EOF
#!$PWD/.venv/bin/python -S
import sys
sys.path[0] = "$PWD"  # instead of the launcher's own directory, where nothing is to be found
from ocirun.cli import entry
entry()
EOF
# byte-compile now: where PYTHONDONTWRITEBYTECODE is set, every command would compile ocirun anew
.venv/bin/python -m compileall -q ocirun >/dev/null

for bundle in bundles/*/; do
    [ -f "$bundle/config.json" ] && bundles/make-rootfs "${bundle}rootfs"
done
exit 0
