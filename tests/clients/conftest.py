"""Fixtures for tests where real container managers (containerd, podman) drive a runtime.

Each test runs once per runtime named in OCIRUN_CLIENT_RUNTIMES (default "runc,ocirun").
The managers run privately: all their state lives in one temporary directory, containerd's
containers in a namespace of this session's own; everything is removed at the end.
"""

import os
import tempfile
from pathlib import Path

import pytest
from client_managers import (
    REPO,
    RUNC,
    RUNTIMES,
    Containerd,
    Ctr,
    Podman,
    PodmanStore,
    Runtime,
    remove_tree,
    run,
    selected_runtimes,
)


@pytest.fixture(params=selected_runtimes())
def runtime(request) -> Runtime:
    runtime = RUNTIMES[request.param]
    if not os.access(runtime.path, os.X_OK):
        pytest.fail(f"runtime {runtime.name}: {runtime.path} is not an executable")
    return runtime


@pytest.fixture(scope="session")
def workdir():
    """The session's private directory (short: socket paths must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ocirun-clients-"))
    yield path
    remove_tree(path)


@pytest.fixture(scope="session")
def rootfs(workdir) -> Path:
    path = workdir / "rootfs"
    run([str(REPO / "bundles/make-rootfs"), str(path)])
    return path


@pytest.fixture(scope="session")
def containerd(workdir, rootfs):
    service = Containerd(workdir / "containerd", f"ocirun-clients-{os.getpid()}")
    try:
        service.start()
        service.import_image(rootfs)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def podman_store(workdir, rootfs):
    store = PodmanStore(workdir / "podman")
    try:
        store.import_image(rootfs)
        yield store
    finally:
        store.stop()


def container_prefix(request, runtime: Runtime) -> str:
    """Names for the test's containers: the test's name and the runtime's."""
    return f"{request.node.originalname.removeprefix('test_')}-{runtime.name}"


@pytest.fixture
def ctr(containerd, runtime, request):
    client = Ctr(containerd, runtime, container_prefix(request, runtime))
    yield client
    client.remove_all()


@pytest.fixture
def runc_ctr(containerd, runtime, request):
    """ctr with runc, to compare the runtime under test with."""
    client = Ctr(containerd, RUNC, container_prefix(request, runtime) + "-runc")
    yield client
    client.remove_all()


@pytest.fixture
def podman(podman_store, runtime, request):
    client = Podman(podman_store, runtime, container_prefix(request, runtime))
    yield client
    client.remove_all()


@pytest.fixture
def runc_podman(podman_store, runtime, request):
    """podman with runc, to compare the runtime under test with."""
    client = Podman(podman_store, RUNC, container_prefix(request, runtime) + "-runc")
    yield client
    client.remove_all()
