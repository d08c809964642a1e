"""Restrictive seccomp profiles: ocirun's own calls never meet the filter, and syscalls newer
than the profile get -ENOSYS (so that libc falls back) instead of the default action."""

import ctypes
import os

import pytest
from helpers import run_probe

from ocirun import seccomp

# What `sh -c "echo ...; cat ..."` from the static busybox needs, and execve: nothing for the
# runtime itself (no close_range, no rt_sigaction, no umask...).
BUSYBOX_CALLS = [
    "arch_prctl", "brk", "close", "dup2", "execve", "exit_group", "fcntl", "getpid", "getppid",
    "getrandom", "getuid", "mmap", "mprotect", "munmap", "newfstatat", "openat", "prctl",
    "prlimit64", "read", "readlink", "rseq", "rt_sigaction", "sendfile", "set_robust_list",
    "set_tid_address", "uname", "write", "rt_sigreturn", "rt_sigprocmask", "ioctl", "fstat",
    "wait4", "clone", "fork", "vfork", "lseek", "getcwd", "stat", "getdents64",
]  # fmt: skip
# Without no_new_privs the filter must load while CAP_SYS_ADMIN is still effective, so the
# final capability calls come after it (as in runc, which makes many more calls there).
CAPABILITY_CALLS = ["capset", "prctl"]

# Docker's default profile as it was in 2018 (moby's profiles/seccomp/default.json of that
# year, for a container without CAP_SYS_ADMIN): its unconditional allowlist holds nothing
# newer than statx (Linux 4.11): no close_range, no clone3, no openat2, no faccessat2.
DOCKER_2018_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_getres clock_gettime clock_nanosleep close connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
fstatfs64 fsync ftruncate ftruncate64 futex futimesat getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents ioprio_get ioprio_set
io_setup io_submit ipc kill lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise memfd_create mincore mkdir mkdirat
mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap nanosleep newfstatat _newselect open openat pause pipe pipe2 poll ppoll
prctl pread64 preadv preadv2 prlimit64 pselect6 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid
setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt
shmget shutdown sigaltstack signalfd signalfd4 sigreturn socket socketcall socketpair splice
stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee
tgkill time timer_create timer_delete timerfd_create timerfd_gettime timerfd_settime
timer_getoverrun timer_gettime timer_settime times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid waitpid write writev
arch_prctl modify_ldt
""".split()
CLONE_WITHOUT_NAMESPACES = 0x7E020000  # CLONE_NEWNS and CLONE_NEWCGROUP...CLONE_NEWNET


def docker_2018_profile() -> dict:
    rules = [{"names": DOCKER_2018_ALLOWED, "action": "SCMP_ACT_ALLOW"}]
    for persona in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]})  # fmt: skip
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": CLONE_WITHOUT_NAMESPACES, "valueTwo": 0,
         "op": "SCMP_CMP_MASKED_EQ"}]})  # fmt: skip
    return {"defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": rules}  # fmt: skip


def allowlist(names: list[str], default: str = "SCMP_ACT_KILL_PROCESS") -> dict:
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}  # fmt: skip


@pytest.mark.parametrize("nnp", [True, False])
def test_a_minimal_allowlist_runs_the_program(ocirun, make_bundle, cid, nnp):
    """Killed at the first call outside the list: only the program's calls (and execve, and
    without no_new_privs the capability calls) may follow the filter."""
    bundle = make_bundle()
    bundle.config["process"]["noNewPrivileges"] = nnp
    names = BUSYBOX_CALLS + ([] if nnp else CAPABILITY_CALLS)
    bundle.config["linux"]["seccomp"] = allowlist(names)
    out = run_probe(ocirun, bundle, cid, "echo allowed; cat /proc/self/status")
    assert out.startswith("allowed\n") and "Seccomp:\t2" in out


@pytest.mark.parametrize("nnp", [True, False])
def test_a_call_outside_the_allowlist_kills(ocirun, make_bundle, cid, nnp):
    """The control case: the list is strict, what it lacks kills (SIGSYS: 128 + 31)."""
    bundle = make_bundle()
    bundle.config["process"]["noNewPrivileges"] = nnp
    names = [n for n in BUSYBOX_CALLS + CAPABILITY_CALLS if n != "getdents64"]
    bundle.config["linux"]["seccomp"] = allowlist(names)
    out = run_probe(ocirun, bundle, cid, "echo before; exec ls /", expect_rc=159)
    assert out == "before\n"


@pytest.mark.parametrize("nnp", [True, False])
def test_the_2018_docker_profile_runs_containers(ocirun, make_bundle, cid, nnp):
    bundle = make_bundle()
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["linux"]["seccomp"] = docker_2018_profile()
    out = run_probe(ocirun, bundle, cid, "id -u; ls / >/dev/null && echo listed; pwd")
    assert out.split() == ["1000", "listed", "/"]


def with_host_python(bundle, rootfs: str) -> None:
    """The host's /usr read-only in a copy of the rootfs: glibc and python3 for the probe."""
    root = bundle.own_rootfs(rootfs)
    for name in ("lib", "lib64"):
        os.symlink(f"usr/{name}", os.path.join(root, name))
    bundle.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                    "options": ["rbind", "ro"]})  # fmt: skip


THREAD_PROBE = (
    "import threading, _thread; t = threading.Thread(target=print, args=('thread ran',)); "
    "t.start(); t.join()"
)


@pytest.mark.parametrize("nnp", [True, False])
def test_glibc_falls_back_from_clone3_under_an_older_profile(
    ocirun, make_bundle, cid, rootfs, nnp
):  # fmt: skip
    """clone3 is newer than the 2018 profile: it gets ENOSYS (not the default EPERM), so
    glibc's pthread_create falls back to clone and a thread starts."""
    bundle = make_bundle()
    with_host_python(bundle, rootfs)
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["linux"]["seccomp"] = docker_2018_profile()
    bundle.config["process"]["args"] = ["/usr/bin/python3", "-S", "-c", THREAD_PROBE]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert (result.returncode, result.stdout) == (0, "thread ran\n"), result.stderr


def _errno_under(profile: dict, number: int) -> int:
    """Load profile in a forked child, make syscall number there; its errno (0: success)."""
    program = seccomp.Filter(profile)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(38, 1, 0, 0, 0)  # no_new_privs: the child may load a filter
            program.load()
            result = libc.syscall(number, 0, 0, 0)
            os.write(write, str(0 if result >= 0 else ctypes.get_errno()).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    return int(answer)


def test_the_stub_answers_enosys_above_the_profile_and_leaves_the_rest_to_it():
    profile = allowlist(["getpid", "write", "exit_group", "read", "close"], "SCMP_ACT_ERRNO")
    profile["syscalls"].append({"names": ["uname"], "action": "SCMP_ACT_ERRNO",
                                "errnoRet": 28})  # fmt: skip
    assert _errno_under(profile, 39) == 0  # getpid: allowed
    assert _errno_under(profile, 63) == 28  # uname: the rule's errno
    assert _errno_under(profile, 87) == 1  # unlink, below the highest named: the default, EPERM
    assert _errno_under(profile, 435) == 38  # clone3, above it: ENOSYS
    profile["defaultAction"] = "SCMP_ACT_ALLOW"  # permissive defaults get no stub (as runc)
    profile["syscalls"][0] = {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}
    assert _errno_under(profile, 39) == 1
    assert _errno_under(profile, 63) == 28
    assert _errno_under(profile, 435) == 22  # clone3 reached the kernel: EINVAL, size 0


def test_x32_and_x86_64_each_get_their_own_highest_number():
    profile = allowlist(["getpid", "write", "exit_group", "read", "close"], "SCMP_ACT_ERRNO")
    profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86"]
    x32 = 0x40000000
    assert _errno_under(profile, 435) == 38
    assert _errno_under(profile, 87) == 1
    assert _errno_under(profile, x32 | 435) == 38
    assert _errno_under(profile, x32 | 87) == 1
