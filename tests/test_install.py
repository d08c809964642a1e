"""ocirun as users install it: a wheel built from the project and an editable install, each
pip-installed into a fresh venv, run through the `ocirun` that pip put into the venv's bin
(bin/ocirun), directly and through a symlink in a directory of its own, from another cwd."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, Runtime

PIP_QUIET = ["--disable-pip-version-check", "-q"]


def make_venv(path: Path) -> Path:
    """A fresh venv on the interpreter the tests run on; returns its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the checkout, the way `pip install .` builds one."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", *PIP_QUIET, "--no-deps", "-w", str(out), str(REPO)], check=True)
    (built,) = out.glob("ocirun-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> Path:
    """bin/ocirun of a fresh venv into which pip installed the wheel (and its dependencies)."""
    bin_dir = make_venv(tmp_path_factory.mktemp("venv") / "venv")
    subprocess.run([str(bin_dir / "pip"), "install", *PIP_QUIET, str(wheel)], check=True)
    return bin_dir / "ocirun"


@pytest.fixture(scope="module")
def editable(tmp_path_factory) -> Path:
    """bin/ocirun of a fresh venv with a plain `pip install -e` of the checkout."""
    bin_dir = make_venv(tmp_path_factory.mktemp("venv-e") / "venv")
    subprocess.run(
        [str(bin_dir / "pip"), "install", *PIP_QUIET, "--no-deps", "-e", str(REPO)], check=True
    )
    return bin_dir / "ocirun"


@pytest.fixture(scope="module")
def linked(tmp_path_factory, installed) -> Path:
    """The installed ocirun linked as `runc` in a directory of its own (as podman users do)."""
    link = tmp_path_factory.mktemp("link") / "runc"
    link.symlink_to(installed)
    return link


def run_verbose(launcher: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the launcher with PYTHONVERBOSE, which makes Python list every module it imports."""
    env = {**os.environ, "PYTHONVERBOSE": "1"}
    return subprocess.run(
        [str(launcher), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def imported(stderr: str) -> set[str]:
    """Module names from PYTHONVERBOSE's "import 'name' # ..." lines."""
    return {line.split("'")[1] for line in stderr.splitlines() if line.startswith("import '")}


def test_the_wheel_installs_bin_ocirun_not_a_generated_entry_point(installed):
    assert installed.read_bytes() == (REPO / "bin" / "ocirun").read_bytes()
    assert os.access(installed, os.X_OK)


@pytest.mark.parametrize("which", ["installed", "linked", "editable"])
def test_version_starts_without_site_or_re_from_any_cwd(request, which, tmp_path):
    launcher = request.getfixturevalue(which)
    result = run_verbose(launcher, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{launcher.name} version ")  # as called: runc's layout
    modules = imported(result.stderr)
    assert "ocirun.cli" in modules
    assert not modules & {"site", "re", "sitecustomize"}, sorted(modules)


def test_editable_install_runs_the_checkout(editable, tmp_path):
    result = run_verbose(editable, "--version", cwd=tmp_path)
    assert f"{REPO}/ocirun/__init__.py" in result.stderr, result.stderr


def test_relative_invocation_from_the_bin_directory(installed):
    result = subprocess.run(
        ["./ocirun", "--version"], cwd=installed.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ocirun version ")


@pytest.mark.parametrize("which", ["installed", "linked"])
def test_a_container_through_the_installed_launcher(request, which, make_bundle, cid, tmp_path):
    runtime = Runtime(tmp_path / "state", binary=str(request.getfixturevalue(which)))
    try:
        result = runtime("run", "--bundle", make_bundle(["echo", "installed"]).write(), cid)
        assert (result.returncode, result.stdout) == (0, "installed\n"), result.stderr
        bundle = make_bundle(["sleep", "100"]).write()
        runtime("create", "--bundle", bundle, f"{cid}-2", check=True)
        runtime("start", f"{cid}-2", check=True)
        assert runtime.state(f"{cid}-2")["status"] == "running"
        runtime("kill", f"{cid}-2", "KILL", check=True)
        runtime("delete", "--force", f"{cid}-2", check=True)
        assert runtime.ids() == []
    finally:
        runtime.cleanup()


def test_a_bad_config_is_worded_by_jsonschema_from_the_venv(installed, make_bundle, cid, tmp_path):
    """The rare path that needs a dependency finds it in the venv's site-packages."""
    runtime = Runtime(tmp_path / "state", binary=str(installed))
    bundle = make_bundle()
    bundle.config["process"]["args"] = "true"
    result = runtime("create", "--bundle", bundle.write(), cid)
    assert result.returncode != 0
    assert "process.args" in result.stderr and "is not of type 'array'" in result.stderr
    assert runtime.ids() == []
