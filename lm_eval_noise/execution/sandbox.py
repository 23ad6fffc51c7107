"""Run untrusted programs in hardened child processes, many at once.

Each worker slot keeps one warm server (`_harness.py`, started with `python -I -S` in a new session)
inside the strongest isolation that works on this machine, chosen once per process by trying it
(`detect_isolation`):

  bwrap        bubblewrap: new user, network, PID, IPC and UTS namespaces, read-only host, tmpfs /tmp
  unshare      util-linux unshare: network, PID, mount, IPC and UTS namespaces (plus a user namespace
               when not root); the server makes every mount read-only and nosuid and mounts private
               tmpfs on /tmp, /var/tmp and /dev/shm and a private /proc
  unshare-net  only a network namespace
  none         no namespace: network and filesystem are NOT isolated (logged once, loudly)

The server forks one child per test (see `_harness.py`): own process group and, where the kernel allows,
init of its own PID namespace; RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE; a wall-clock timeout per test and per
sample; output read incrementally up to a cap; a private working folder removed afterwards. When the
evaluator is real root outside a user namespace, the code also runs under a uid of its own per worker
slot (see `_UidSlots`) with no capability but CAP_DAC_READ_SEARCH (when the interpreter lives in a
private home): it cannot signal the evaluator or write root's files, and RLIMIT_NPROC (not enforced for
root) bounds fork bombs. Teardown kills the test's process group and then every descendant left, which
the server (a child subreaper) inherits whatever session it moved to.

What each mode does not contain: without a mount namespace (unshare-net, none) a program can write
wherever its uid may (with a private uid: world-writable places such as /tmp, nothing of root's);
without a network namespace (none) it can reach the network; without a private uid or a PID namespace
(non-root, none) a fork bomb is bounded only by the timeout, and the code may signal the evaluator.

Every outcome is one of `VERDICTS`; a crash, a hang or a hostile program is a failed sample with a
reason, never an exception out of `run` / `run_many`.
"""

from __future__ import annotations

import atexit
import errno
import logging
import marshal
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from lm_eval_noise.execution._harness import VERDICTS

log = logging.getLogger("lm_eval_noise.execution")

HARNESS = str(Path(__file__).with_name("_harness.py"))
# Imports the harness as a module (from the bytecode the parent's own import of it cached, rather than
# compiling it as a script), then takes its folder off sys.path again so that the programs cannot
# import this package's modules.
_BOOTSTRAP = (f"import sys; sys.path.insert(0, {str(Path(HARNESS).parent)!r}); import _harness; "
              "del sys.path[0]; sys.exit(_harness.main())")
ISOLATION_MODES = ("auto", "bwrap", "unshare", "unshare-net", "none")
ENV_ISOLATION = "LM_EVAL_NOISE_SANDBOX"
ENV_UID_BASE = "LM_EVAL_NOISE_SANDBOX_UID_BASE"
DEFAULT_UID_BASE = 1_000_000_000  # + (pid << 8) + slot stays below 2**31, far above human and container ids
_CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sample. `cpu_s` defaults to ceil(timeout_s) + 1 per test process."""

    timeout_s: float = 3.0  # wall clock, per test
    sample_timeout_s: float | None = None  # wall clock, whole sample; default timeout_s * tests + 5
    memory_mb: int = 2048  # RLIMIT_AS of each test process
    cpu_s: int | None = None  # RLIMIT_CPU of each test process
    fsize_mb: int = 64  # RLIMIT_FSIZE, and a quarter of the private tmpfs size
    nproc: int = 256  # RLIMIT_NPROC, applied where the code runs under a uid of its own
    output_bytes: int = 16 << 20  # stdout / stderr cap per test process

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "fsize_mb", "nproc", "output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)!r}")

    def for_harness(self) -> dict[str, int]:
        cpu = self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1
        return {"memory_mb": self.memory_mb, "cpu_s": cpu, "fsize_mb": self.fsize_mb,
                "nproc": self.nproc, "output_bytes": self.output_bytes}


@dataclass(frozen=True)
class Isolation:
    mode: str
    network: bool  # a network namespace of its own, with nothing but (its own) loopback
    filesystem: bool  # read-only host, private tmpfs /tmp emptied after every sample
    pid_namespace: bool  # the worker's server is init of its own PID namespace
    private_uid: bool  # untrusted code runs under a per-slot uid (RLIMIT_NPROC enforced)
    test_pid_namespace: bool = False  # each test is init of a PID namespace of its own (probed)

    def prefix(self, hostdir: str) -> list[str]:
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        if self.mode == "bwrap":
            args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
                    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                    "--tmpfs", "/dev/shm"]
            if os.path.isdir("/var/tmp"):
                args += ["--tmpfs", "/var/tmp"]
            return args + ["--bind", hostdir, hostdir, "--chdir", hostdir, "--"]
        if self.mode == "unshare":
            return ["unshare", *user, "--net", "--pid", "--mount", "--ipc", "--uts", "--fork",
                    "--kill-child", "--"]
        if self.mode == "unshare-net":
            return ["unshare", *user, "--net", "--"]
        return []

    @property
    def fs_setup(self) -> str:
        """Who gives the server its read-only host and private tmpfs: itself ("mount"), bwrap, or nobody."""
        return {"unshare": "mount", "bwrap": "bwrap"}.get(self.mode, "none")


@dataclass
class ExecResult:
    """Outcome of one sample: `reason` is one of VERDICTS; passed iff reason == "passed"."""

    reason: str
    detail: str = ""
    tests_run: int = 0
    failed_test: int | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.reason == "passed"

    @property
    def compiled(self) -> bool:
        return self.reason != "syntax_error"


# ----------------------------------------------------------------------------------------- jobs
def script_job(program: str) -> dict:
    """Passes iff the whole program runs to its end (HumanEval: prompt + completion + test + check)."""
    return {"kind": "script", "program": program, "tests": [None]}


def stdio_job(program: str, tests: Sequence[tuple[str, str]]) -> dict:
    """One run per (stdin, expected stdout) pair, outputs compared the APPS way."""
    return {"kind": "stdio", "program": program,
            "tests": [{"input": i, "output": o} for i, o in tests]}


def call_job(program: str, fn_name: str, tests: Sequence[tuple[list, Any]]) -> dict:
    """Calls `fn_name(*args)` (or `Solution().fn_name`) once per (args, expected) pair, in one process."""
    return {"kind": "call", "program": program, "fn_name": fn_name,
            "tests": [{"input": list(a), "output": o} for a, o in tests]}


# ----------------------------------------------------------------------------------------- isolation
_detect_lock = threading.Lock()
_detected: dict[str, Isolation] = {}
_warned = False


def _host_ns(kind: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""


def _host_mnt_ns() -> str:
    return _host_ns("mnt")


def _probe(iso: Isolation) -> dict | None:
    hostdir = tempfile.mkdtemp(prefix="lmen-probe-")
    try:
        cfg = {"fs": iso.fs_setup, "host_mnt_ns": _host_mnt_ns(), "host_net_ns": _host_ns("net"),
               "fsize_mb": 1}
        cmd = iso.prefix(hostdir) + [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, "--probe",
                                     marshal.dumps(cfg).hex()]
        proc = subprocess.run(cmd, cwd=hostdir, env=_CHILD_ENV, capture_output=True, timeout=20,
                              start_new_session=True)
        if proc.returncode != 0:
            log.debug("sandbox probe %s failed: %s", iso.mode, proc.stderr[-500:])
            return None
        return marshal.loads(bytes.fromhex(proc.stdout.decode().strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, EOFError) as exc:
        log.debug("sandbox probe %s failed: %r", iso.mode, exc)
        return None
    finally:
        shutil.rmtree(hostdir, ignore_errors=True)


def _candidates(requested: str) -> list[Isolation]:
    out = []
    # private_uid and test_pid_namespace are settled by the probe
    if requested in ("auto", "bwrap") and shutil.which("bwrap"):
        out.append(Isolation("bwrap", True, True, True, False))
    if requested in ("auto", "unshare") and shutil.which("unshare"):
        out.append(Isolation("unshare", True, True, True, False))
    if requested in ("auto", "unshare-net") and shutil.which("unshare"):
        out.append(Isolation("unshare-net", True, False, False, False))
    if requested in ("auto", "none"):
        out.append(Isolation("none", False, False, False, False))
    return out


def detect_isolation(requested: str | None = None) -> Isolation:
    """The strongest isolation that works here (tried once per process and mode, then cached).

    `requested` (else $LM_EVAL_NOISE_SANDBOX, else "auto") is one of ISOLATION_MODES; a named mode
    that does not work here raises RuntimeError instead of silently running with less.
    """
    global _warned
    requested = requested or os.environ.get(ENV_ISOLATION) or "auto"
    if requested not in ISOLATION_MODES:
        raise ValueError(f"sandbox isolation {requested!r}: must be one of {', '.join(ISOLATION_MODES)}")
    with _detect_lock:
        if requested in _detected:
            return _detected[requested]
        chosen = None
        for cand in _candidates(requested):
            info = _probe(cand)
            if cand.mode != "none":
                if info is None or info.get("network") != "isolated":
                    continue
                if cand.filesystem and info.get("fs") != "private":
                    continue
                if cand.pid_namespace and info.get("pid") != 1:
                    continue
            chosen = replace(cand, test_pid_namespace=bool(info and info.get("nest")),
                             private_uid=bool(info and info.get("can_drop")))
            break
        if chosen is None:
            raise RuntimeError(f"sandbox isolation {requested!r} does not work on this machine "
                               f"(valid: {', '.join(ISOLATION_MODES)}; 'auto' picks the best that works)")
        if chosen.mode in ("none", "unshare-net") and not _warned:
            _warned = True
            what = "network and filesystem" if chosen.mode == "none" else "filesystem"
            log.warning("code sandbox: %s NOT isolated (mode %r: neither bwrap nor a working "
                        "`unshare --net --pid --mount` here); untrusted code runs with rlimits, a "
                        "timeout and process-group cleanup only%s", what, chosen.mode,
                        ", under a private uid" if chosen.private_uid else "")
        _detected[requested] = chosen
        return chosen


class _UidSlots:
    """One uid per warm server (worker slot), unique on the machine: base + (our pid << 8) + slot, so that
    RLIMIT_NPROC and the uid-wide cleanup stay within one slot, even with several evaluators running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: set[int] = set()

    def acquire(self) -> int:
        with self._lock:
            slot = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
            if slot >= 256:  # the process's uid range; a wrapped slot would share a live server's uid
                raise RuntimeError("more than 256 sandbox servers are alive in this process; use fewer workers")
            self._busy.add(slot)
        return self._base() + slot

    def release(self, uid: int) -> None:
        with self._lock:
            self._busy.discard(uid - self._base())

    @staticmethod
    def _base() -> int:
        return int(os.environ.get(ENV_UID_BASE, DEFAULT_UID_BASE)) + (os.getpid() << 8)


_uid_slots = _UidSlots()


def _kill_uid(uid: int) -> None:
    """Every process of `uid` (only a sandbox's code runs under it): kill(-1) from that uid."""
    try:
        subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[], env=_CHILD_ENV, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("sandbox: could not clean up uid %d: %r", uid, exc)


def _world_readable(path: str) -> bool:
    """Whether a uid of no group can reach and read `path` (every ancestor searchable by others)."""
    import stat

    path = os.path.realpath(path)
    parts = Path(path).parents
    try:
        if not all(os.stat(p).st_mode & stat.S_IXOTH for p in parts):
            return False
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def _needs_read_caps() -> bool:
    """The private uid needs CAP_DAC_READ_SEARCH when the interpreter's own files are not world-readable."""
    paths = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")] + _site_paths()
    return not all(_world_readable(p) for p in paths)


def _site_paths() -> list[str]:
    paths = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and p not in paths and os.path.isdir(p):
            paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------- running
class _ServerGone(Exception):
    pass


class _Server:
    """One long-lived harness (inside the isolation) serving one worker slot: each sample it is sent runs
    in a process forked from it, so no sample pays for a fresh interpreter."""

    def __init__(self, sandbox: "Sandbox"):
        iso = sandbox.isolation
        self.uid = _uid_slots.acquire() if iso.private_uid else None
        self.pid_namespace = iso.pid_namespace
        self.hostdir = tempfile.mkdtemp(prefix="lmen-sbx-")
        os.chmod(self.hostdir, 0o711)  # the private uid may pass through to its own working folder
        cfg = {"fs": iso.fs_setup, "host_mnt_ns": sandbox._mnt_ns,
               "nest": iso.test_pid_namespace, "workroot": self.hostdir, "uid": self.uid,
               "read_caps": sandbox._read_caps, "sys_path": sandbox._site,
               "fsize_mb": sandbox.limits.fsize_mb}
        cmd = iso.prefix(self.hostdir) + [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, "--serve",
                                          marshal.dumps(cfg).hex(), sandbox.label]
        self.log_path = os.path.join(self.hostdir, "server.log")
        with open(self.log_path, "wb") as log_file:
            for attempt in range(4):
                try:
                    self.proc = subprocess.Popen(cmd, cwd=self.hostdir, env=_CHILD_ENV, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=log_file,
                                                 start_new_session=True, close_fds=True)
                    break
                except OSError as exc:  # e.g. EAGAIN while another sample's fork bomb is torn down
                    if exc.errno not in (errno.EAGAIN, errno.ENOMEM) or attempt == 3:
                        self.close()
                        raise
                    time.sleep(0.2 * 2 ** attempt)

    def run(self, job: dict, backstop_s: float) -> dict:
        payload = marshal.dumps(job)
        try:
            self.proc.stdin.write(len(payload).to_bytes(4, "big") + payload)
            self.proc.stdin.flush()
        except OSError as exc:
            raise _ServerGone(f"sandbox server gone: {exc!r}") from None
        deadline = time.monotonic() + backstop_s
        header = self._read(4, deadline)
        return marshal.loads(self._read(int.from_bytes(header, "big"), deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, n - len(buf))
                if not chunk:
                    raise _ServerGone(f"sandbox server exited: {self.log_tail()}")
                buf += chunk
        return bytes(buf)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-300:].decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the server and anything left in its group
            except OSError:
                pass
            proc.wait()
            proc.stdout.close()
        if self.uid is not None:
            if not self.pid_namespace:
                _kill_uid(self.uid)
            _uid_slots.release(self.uid)
            self.uid = None
        shutil.rmtree(self.hostdir, ignore_errors=True)


class Sandbox:
    """Runs jobs (see `script_job`, `stdio_job`, `call_job`) under `limits` with `workers` in parallel.

    Keeps one warm server per worker slot; `close()` (or the context manager, or interpreter exit) ends them.
    """

    def __init__(self, limits: Limits | None = None, workers: int | None = None,
                 isolation: str | Isolation | None = None, label: str = "lm-eval-noise-sandbox"):
        self.limits = limits or Limits()
        if workers is not None and not 1 <= workers <= 256:
            raise ValueError(f"workers must be between 1 and 256, got {workers}")
        self.workers = min(workers or os.cpu_count() or 1, 256)
        self.isolation = isolation if isinstance(isolation, Isolation) else detect_isolation(isolation)
        if not label.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"label {label!r}: use letters, digits, '-' and '_' only")
        self.label = label
        self._site = _site_paths()
        self._mnt_ns = _host_mnt_ns()
        self._read_caps = self.isolation.private_uid and _needs_read_caps()
        self._idle: list[_Server] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._finalizer = weakref.finalize(self, _close_servers, self._idle, self._lock)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        _close_servers(self._idle, self._lock)

    def run(self, job: dict, limits: Limits | None = None) -> ExecResult:
        """One sample; never raises for anything the program does."""
        start = time.monotonic()
        try:
            result = self._run(job, limits or self.limits)
        except Exception as exc:  # noqa: BLE001 - a sandbox failure is one failed sample, not a crash
            log.exception("sandbox error")
            result = ExecResult("runtime_error", f"sandbox error: {exc!r}"[:500])
        result.wall_s = round(time.monotonic() - start, 4)
        return result

    def run_many(self, jobs: Iterable[dict], limits: Limits | None = None) -> list[ExecResult]:
        """All jobs on a bounded pool of worker threads (each waits on its own server); results in order."""
        jobs = list(jobs)
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(jobs))) as pool:
            return list(pool.map(lambda j: self.run(j, limits), jobs))

    # -------------------------------------------------------------------------------------------
    def _run(self, job: dict, limits: Limits) -> ExecResult:
        if job.get("kind") not in ("script", "stdio", "call"):
            raise ValueError(f"job kind {job.get('kind')!r}: must be script, stdio or call")
        if job["kind"] != "script" and not job["tests"]:
            return ExecResult("failed", "no tests to run")
        n_runs = len(job["tests"]) if job["kind"] == "stdio" else 1
        sample_timeout = limits.sample_timeout_s or (
            limits.timeout_s * (len(job["tests"]) if job["kind"] != "script" else 1) + 5.0)
        full = dict(job, token=secrets.token_hex(16), timeout=limits.timeout_s,
                    limits=limits.for_harness(), sample_timeout=sample_timeout)
        with self._slots:
            server = self._checkout()
            try:
                report = server.run(full, backstop_s=sample_timeout + 15.0)
            except (TimeoutError, _ServerGone, OSError, ValueError, EOFError) as exc:
                server.close()
                server = None
                if isinstance(exc, TimeoutError):
                    return ExecResult("timeout", f"sample wall clock over {sample_timeout:.1f}s (server killed)")
                return ExecResult("runtime_error", str(exc)[:500])
            finally:
                if server is not None:
                    with self._lock:
                        self._idle.append(server)
        return self._result(report, n_runs)

    def _checkout(self) -> _Server:
        with self._lock:
            while self._idle:
                server = self._idle.pop()
                if server.proc.poll() is None:
                    return server
                server.close()
        return _Server(self)

    @staticmethod
    def _result(report: dict, n_runs: int) -> ExecResult:
        try:
            tests = report["tests"]
            last = tests[-1]
        except (KeyError, IndexError, TypeError):
            return ExecResult("runtime_error", f"malformed sandbox report: {report!r}"[:300])
        reason = last["verdict"] if last["verdict"] in VERDICTS else "runtime_error"
        if reason == "passed" and len(tests) < n_runs:
            reason = "failed"
        extra = {k: v for k, v in last.items() if k in ("stderr", "stdout", "signal", "exit_code", "got")
                 and v not in ("", None)}
        return ExecResult(reason, last.get("detail", ""), len(tests),
                          None if reason == "passed" else last.get("test"), extra=extra)


def _close_servers(idle: list, lock: threading.Lock) -> None:
    with lock:
        servers, idle[:] = list(idle), []
    for server in servers:
        server.close()


_shared: dict[tuple, Sandbox] = {}
_shared_lock = threading.Lock()


def shared_sandbox(limits: Limits, workers: int | None = None, isolation: str | None = None) -> Sandbox:
    """One warm Sandbox per (limits, workers, isolation) for the whole process (lm-eval calls the task
    hooks many times); closed at interpreter exit."""
    key = (limits, workers, isolation)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Sandbox(limits, workers=workers, isolation=isolation)
        return _shared[key]


@atexit.register
def _close_shared() -> None:
    for sb in list(_shared.values()):
        sb.close()
