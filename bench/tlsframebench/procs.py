"""Processes the runner starts: each in its own process group, all stopped on exit,
error or signal; and what /proc says about a running process."""

import os
import resource
import signal
import subprocess
import threading

from .common import BenchError

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
FD_LIMIT = 20000

_procs = []  # every Popen we started; killed by process group on exit
_procs_lock = threading.Lock()


def child_setup():
    """Raises the open-file limit (the loadgen and servers hold thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def spawn(cmd, **kw):
    """Starts cmd in its own session (process group), with the fd limit raised."""
    p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=child_setup, **kw)
    with _procs_lock:
        _procs.append(p)
    return p


def kill_group(p, grace=3.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left in the group (the leader may be gone already).
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with _procs_lock:
        if p in _procs:
            _procs.remove(p)


def kill_all():
    with _procs_lock:
        ps = list(_procs)
    for p in ps:
        kill_group(p, grace=1.0)


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_quiet(cmd, timeout, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:3])}... failed ({r.returncode}): {r.stdout[-800:]}")
    return r.stdout


def install_signal_handlers():
    """SIGTERM, SIGHUP and SIGINT raise KeyboardInterrupt, so that every process
    started is stopped on the way out."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # also when started with SIGINT ignored (&)


def proc_cpu_s(pid):
    """utime+stime of a process (all its threads), seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except OSError:
        return None


def proc_threads(pid):
    """Number of threads of a process (/proc/PID/task); None if gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            t = f.read()
    except OSError:
        return "(no log)"
    return t[-n:].strip().replace("\n", " | ")

