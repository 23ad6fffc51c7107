"""Run untrusted programs in hardened child processes, many at once, and judge them from outside.

Each worker slot keeps one warm server (`_harness.py`, started with `python -I -S` in a new session)
inside the strongest isolation that works on this machine, chosen once per process by trying it
(`detect_isolation`):

  bwrap        bubblewrap: new user, network, PID, IPC, UTS and mount namespaces
  unshare      util-linux unshare: network, PID, mount, IPC and UTS namespaces (plus a user namespace
               when not root)
  unshare-net  only a network namespace
  none         no namespace: network and filesystem are NOT isolated (logged once, loudly)

In bwrap and unshare mode the server chroots into a new read-only root that holds only the system
libraries, the interpreter and the virtualenv (`sandbox_binds`), a minimal /dev and a private /proc; each
sample gets fresh /tmp and /dev/shm. The host's home folders, /tmp, /etc/shadow, sockets and every other
path are not there. Every test process runs without any capability (under a uid of its own per worker
slot when the evaluator is real root, see `_UidSlots`), in a fresh IPC namespace, with the rlimits and
wall clocks of `Limits`; everything it started is killed afterwards.

The verdict is the judge's (`judge.py`), in this process: the sandbox hands back only output bytes and
return values as plain data, and never holds expected outputs or check code.

What each mode does not contain: without a mount namespace (unshare-net, none) a program can read and
write wherever its uid may (with a private uid: world-readable files and world-writable places such as
/tmp); without a network namespace (none) it can reach the network, and UNIX sockets on the host;
without a private uid or a PID namespace (non-root, none) a fork bomb is bounded only by the timeout and
the code may signal the evaluator; without root (none, non-root) no fresh IPC namespace per test.

Every outcome is one of `VERDICTS`; a crash, a hang or a hostile program is a failed sample with a reason,
never an exception out of `run` / `run_many`. A failure of the sandbox itself is `sandbox_error`; past
`max_sandbox_errors` of them, `run` raises SandboxBroken rather than report pass@k over broken verdicts.
"""

from __future__ import annotations

import atexit
import errno
import logging
import marshal
import math
import os
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from lm_eval_noise.sandbox._harness import remove_tree  # (also caches the server's bytecode)
from lm_eval_noise.sandbox.behaviour import verdict_signature
from lm_eval_noise.sandbox.judge import CALL_PRELUDE, VERDICTS, ExecResult, SandboxError, judge

log = logging.getLogger("lm_eval_noise.sandbox")

__all__ = ["VERDICTS", "ExecResult", "Isolation", "Limits", "Sandbox", "SandboxBroken", "call_job",
           "check_job", "detect_isolation", "script_job", "stdio_job"]

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
DEFAULT_MAX_SANDBOX_ERRORS = 5
_CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# What a program may see of /etc (dynamic linker, time zone, alternatives' symlinks, names of users).
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "passwd", "group",
        "nsswitch.conf", "hosts")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sample. `cpu_s` defaults to ceil(timeout_s) + 1 per test process."""

    timeout_s: float = 3.0  # wall clock, per test (HumanEval: the whole check)
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
    filesystem: bool  # a new read-only root with only the needed paths, fresh /tmp per sample
    pid_namespace: bool  # the worker's server is init of its own PID namespace
    private_uid: bool  # untrusted code runs under a per-slot uid (RLIMIT_NPROC enforced)
    test_pid_namespace: bool = False  # each test is init of a PID namespace of its own (probed)
    ipc_namespace: bool = False  # each test has a fresh IPC namespace (probed)

    def prefix(self, hostdir: str) -> list[str]:
        if self.mode == "bwrap":
            # The server gets (namespace) root with capabilities only to build its root and per-sample
            # mounts; the tests it forks have none.
            user = [] if os.geteuid() == 0 else ["--unshare-user", "--uid", "0", "--gid", "0"]
            return ["bwrap", "--unshare-all", *user, "--cap-add", "ALL",
                    "--new-session", "--as-pid-1", "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                    "--proc", "/proc", "--chdir", hostdir, "--"]
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        if self.mode == "unshare":
            return ["unshare", *user, "--net", "--pid", "--mount", "--ipc", "--uts", "--fork",
                    "--kill-child", "--"]
        if self.mode == "unshare-net":
            return ["unshare", *user, "--net", "--"]
        return []

    @property
    def fs_setup(self) -> str:
        """Whether the server builds its own root ("mount") or sees the host ("none")."""
        return "mount" if self.mode in ("unshare", "bwrap") else "none"

    @property
    def protects_server(self) -> bool:
        """Whether a program can neither see nor signal the server (so its death is the sandbox's fault)."""
        return self.private_uid or self.test_pid_namespace


# ----------------------------------------------------------------------------------------- jobs
def script_job(program: str) -> dict:
    """Passes iff the whole program runs to its end. Self-judging: for trusted test programs only (a
    program can always claim to have finished); untrusted answers are judged by the other kinds."""
    return {"kind": "script", "program": program, "tests": [None]}


def stdio_job(program: str, tests: Sequence[tuple[str, str]]) -> dict:
    """One run per (stdin, expected stdout) pair; the judge compares outputs the APPS way."""
    return {"kind": "stdio", "program": program,
            "tests": [{"input": i, "output": o} for i, o in tests]}


def call_job(program: str, fn_name: str, tests: Sequence[tuple[list, Any]], match: str = "apps") -> dict:
    """Calls `fn_name(*args)` (or `Solution().fn_name`) once per (args, expected) pair, in one process;
    the judge compares the returned plain data (`match`: "apps" rules, or "exact" equality)."""
    if match not in ("apps", "exact"):
        raise ValueError(f"call_job: match={match!r}: must be 'apps' or 'exact'")
    return {"kind": "call", "program": program, "fn_name": fn_name, "match": match,
            "tests": [{"input": list(a), "output": o} for a, o in tests]}


def check_job(program: str, entry_point: str, check: str) -> dict:
    """HumanEval style: `program` defines `entry_point`; `check` (trusted code defining check(candidate))
    runs in the judge, each call of candidate a round trip to the program's function."""
    return {"kind": "check", "program": program, "entry_point": entry_point, "check": check,
            "tests": [None]}


# ----------------------------------------------------------------------------------------- isolation
_detect_lock = threading.Lock()
_detected: dict[str, Isolation] = {}
_warned = False


def _host_ns(kind: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{kind}")
    except OSError:
        return ""


def sandbox_binds() -> list[str]:
    """The host paths a program sees (read-only) in a new root: system libraries, a few /etc files, the
    interpreter and the virtualenv, and site-packages. Nested paths are left to their ancestors."""
    venv_root = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    wanted = [p for p in _SYSTEM if os.path.lexists(p)]
    wanted += [f"/etc/{name}" for name in _ETC if os.path.exists(f"/etc/{name}")]
    for path in (sys.prefix, sys.base_prefix, venv_root, os.path.realpath(sys.executable), *_site_paths()):
        for p in {os.path.abspath(path), os.path.realpath(path)}:
            if p not in wanted:
                wanted.append(p)
    binds: list[str] = []
    for path in sorted(wanted, key=len):
        if not any(path == b or path.startswith(b.rstrip("/") + "/") for b in binds if not os.path.islink(b)):
            binds.append(path)
    return binds


def _site_paths() -> list[str]:
    paths = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and p not in paths and os.path.isdir(p):
            paths.append(p)
    return paths


def _server_cfg(iso: Isolation, hostdir: str, fsize_mb: int) -> dict:
    newroot = os.path.join(hostdir, "root")
    os.makedirs(newroot, exist_ok=True)
    return {"fs": iso.fs_setup, "host_mnt_ns": _host_ns("mnt"), "host_net_ns": _host_ns("net"),
            "newroot": newroot, "binds": sandbox_binds(), "workroot": hostdir, "fsize_mb": fsize_mb,
            "nest": iso.test_pid_namespace, "ipc": iso.ipc_namespace, "sys_path": _site_paths(),
            "preload_source": CALL_PRELUDE,
            "hidden": ["/etc/shadow", hostdir, os.path.expanduser("~") + "/.bashrc"]}


def _probe(iso: Isolation) -> dict | None:
    hostdir = tempfile.mkdtemp(prefix="lmen-probe-")
    try:
        cfg = _server_cfg(iso, hostdir, 1)
        cmd = iso.prefix(hostdir) + [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, "--probe",
                                     marshal.dumps(cfg).hex()]
        proc = subprocess.run(cmd, cwd=hostdir, env=_CHILD_ENV, capture_output=True, timeout=20,
                              start_new_session=True)
        if proc.returncode != 0:
            log.debug("sandbox probe %s failed: %s", iso.mode, proc.stderr[-500:])
            return None
        info = marshal.loads(bytes.fromhex(proc.stdout.decode().strip().splitlines()[-1]))
        if "fs_error" in info:
            log.debug("sandbox probe %s: %s", iso.mode, info["fs_error"])
        return info
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, EOFError) as exc:
        log.debug("sandbox probe %s failed: %r", iso.mode, exc)
        return None
    finally:
        shutil.rmtree(hostdir, ignore_errors=True)


def _candidates(requested: str) -> list[Isolation]:
    out = []
    # private_uid, test_pid_namespace and ipc_namespace are settled by the probe
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
                if cand.filesystem and (info.get("fs") != "private" or not info.get("ipc")):
                    continue
                if cand.pid_namespace and info.get("pid") != 1:
                    continue
            chosen = replace(cand, test_pid_namespace=bool(info and info.get("nest")),
                             private_uid=bool(info and info.get("can_drop")) and _uid_can_run(cand),
                             ipc_namespace=bool(info and info.get("ipc")))
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


def _world_readable(path: str) -> bool:
    """Whether a uid of no group can reach and read `path` (every ancestor searchable by others)."""
    import stat

    path = os.path.realpath(path)
    try:
        if not all(os.stat(p).st_mode & stat.S_IXOTH for p in Path(path).parents):
            return False
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def _uid_can_run(iso: Isolation) -> bool:
    """A private uid holds no capability, so it must be able to read the interpreter itself: always in
    a new root (the binds' parents are made traversable), on the host only if it is world-readable."""
    if iso.fs_setup == "mount":
        return True
    paths = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")] + _site_paths()
    ok = all(_world_readable(p) for p in paths)
    if not ok:
        log.warning("code sandbox (mode %r): the interpreter is not readable by other users, so programs "
                    "run as the evaluator's uid without capabilities rather than under a private uid",
                    iso.mode)
    return ok


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


# ----------------------------------------------------------------------------------------- running
class _ServerGone(Exception):
    pass


class _RunnerGone(Exception):
    """The sample's runner ended before answering (its closing report is `report`)."""

    def __init__(self, report: dict):
        super().__init__(report.get("detail") or "sandbox runner ended early")
        self.report = report


class SandboxBroken(RuntimeError):
    """Too many failures of the sandbox itself: the evaluation stops instead of scoring them."""


class _Server:
    """One long-lived server (inside the isolation) serving one worker slot: each sample it is sent runs
    in a runner forked from it, so no sample pays for a fresh interpreter."""

    def __init__(self, sandbox: "Sandbox"):
        iso = sandbox.isolation
        self.uid = _uid_slots.acquire() if iso.private_uid else None
        self.pid_namespace = iso.pid_namespace
        self.pending = False
        self._closing: dict | None = None
        self.hostdir = tempfile.mkdtemp(prefix="lmen-sbx-")
        os.chmod(self.hostdir, 0o711)  # the private uid may pass through to its own working folder
        cfg = _server_cfg(iso, self.hostdir, sandbox.limits.fsize_mb)
        cfg["uid"] = self.uid
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

    # One sample: begin, any number of requests (each answered by the sample's runner), end. The closing
    # report of a sample is read when the server is next used (`settle`), so that its cleanup overlaps
    # the judge's work instead of adding a round trip to every sample.
    def begin(self, sample: dict, backstop_s: float) -> None:
        self.deadline = time.monotonic() + backstop_s
        self._closing = None
        self._send(sample)

    def request(self, msg: dict) -> dict:
        return self.request_many([msg])[0]

    def request_many(self, msgs: list[dict]) -> list[dict]:
        self._send_many(msgs)
        replies = []
        for _ in msgs:
            reply = self._receive()
            if reply.get("done"):
                self._closing = reply
                raise _RunnerGone(reply)
            replies.append(reply)
        return replies

    def end(self) -> None:
        if self._closing is None:
            self._send({"op": "end"})
            self.pending = True

    def settle(self, backstop_s: float = 30.0) -> bool:
        """Read the previous sample's closing report; whether the server is clean and may be reused."""
        if self.pending:
            self.pending = False
            self.deadline = time.monotonic() + backstop_s
            try:
                report = self._receive()
                while not report.get("done"):  # a reply to a request the judge no longer needed
                    report = self._receive()
            except (TimeoutError, _ServerGone, OSError, ValueError, EOFError) as exc:
                report = {"clean": False, "detail": repr(exc)}
            self._closing = report
        report = self._closing or {"clean": True}
        if not report.get("clean"):
            log.warning("sandbox: replacing a worker whose cleanup failed (%s)", report.get("detail"))
        return bool(report.get("clean"))

    def _send(self, msg: dict) -> None:
        self._send_many([msg])

    def _send_many(self, msgs: list[dict]) -> None:
        data = bytearray()
        for msg in msgs:
            payload = marshal.dumps(msg)
            data += len(payload).to_bytes(4, "big") + payload
        stdin = self.proc.stdin
        assert stdin is not None  # started with stdin=PIPE
        try:
            stdin.write(data)
            stdin.flush()
        except OSError as exc:
            raise _ServerGone(f"sandbox server gone: {exc!r}") from None

    def _receive(self) -> dict:
        header = self._read(4)
        return marshal.loads(self._read(int.from_bytes(header, "big")))

    def _read(self, n: int) -> bytes:
        stdout = self.proc.stdout
        assert stdout is not None  # started with stdout=PIPE
        fd = stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            remaining = self.deadline - time.monotonic()
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
        if proc is not None and self.pending and proc.poll() is None:
            self.settle(backstop_s=10.0)  # let the last sample's cleanup finish
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
        try:
            remove_tree(self.hostdir)
        except OSError as exc:
            log.warning("sandbox: could not remove %s: %r", self.hostdir, exc)


class Sandbox:
    """Runs jobs (see `script_job`, `stdio_job`, `call_job`, `check_job`) under `limits` with `workers` in
    parallel. Keeps one warm server per worker slot; `close()` (or the context manager, or interpreter
    exit) ends them. After more than `max_sandbox_errors` failures of the sandbox itself, `run` raises
    SandboxBroken."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None,
                 isolation: str | Isolation | None = None, label: str = "lm-eval-noise-sandbox",
                 max_sandbox_errors: int = DEFAULT_MAX_SANDBOX_ERRORS):
        self.limits = limits or Limits()
        if workers is not None and not 1 <= workers <= 256:
            raise ValueError(f"workers must be between 1 and 256, got {workers}")
        if max_sandbox_errors < 0:
            raise ValueError(f"max_sandbox_errors must be >= 0, got {max_sandbox_errors}")
        self.workers = min(workers or os.cpu_count() or 1, 256)
        self.isolation = isolation if isinstance(isolation, Isolation) else detect_isolation(isolation)
        if not label.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"label {label!r}: use letters, digits, '-' and '_' only")
        self.label = label
        self.max_sandbox_errors = max_sandbox_errors
        self.sandbox_errors = 0
        self._broken_message = ""
        self.servers_replaced = 0
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
        """One sample; never raises for anything the program does (SandboxBroken when the sandbox fails
        more than `max_sandbox_errors` times)."""
        if self.sandbox_errors > self.max_sandbox_errors:  # the rest of a batch stops at once
            raise SandboxBroken(self._broken_message or f"the code sandbox itself failed more than "
                                f"max_sandbox_errors={self.max_sandbox_errors} times; stopping")
        start = time.monotonic()
        try:
            result = self._run(job, limits or self.limits)
        except Exception as exc:  # noqa: BLE001 - a sandbox failure is one sample's sandbox_error
            log.exception("sandbox error")
            result = ExecResult("sandbox_error", f"sandbox error: {exc!r}"[:500])
        if result.reason == "sandbox_error":
            with self._lock:
                self.sandbox_errors += 1
                broken = self.sandbox_errors > self.max_sandbox_errors
            log.warning("sandbox error: %s", result.detail)
            if broken:
                self._broken_message = (
                    f"the code sandbox itself failed {self.sandbox_errors} times (more than "
                    f"max_sandbox_errors={self.max_sandbox_errors}; last: {result.detail[:200]}); stopping "
                    f"rather than scoring broken verdicts as failures. Try another --isolation / "
                    f"${ENV_ISOLATION} (one of {', '.join(ISOLATION_MODES)}) or fewer workers.")
                raise SandboxBroken(self._broken_message)
        if result.behaviour is None:  # decided outside the judge: known by its verdict alone
            result.behaviour = verdict_signature(result.reason)
        result.wall_s = round(time.monotonic() - start, 4)
        return result

    def run_many(self, jobs: Iterable[dict], limits: Limits | None = None,
                 progress=None) -> list[ExecResult]:
        """All jobs on a bounded pool of worker threads (each waits on its own server); results in order.
        `progress`, if given, is called once per finished job."""
        jobs = list(jobs)
        if not jobs:
            return []

        def one(job):
            result = self.run(job, limits)
            if progress is not None:
                progress()
            return result

        with ThreadPoolExecutor(max_workers=min(self.workers, len(jobs))) as pool:
            return list(pool.map(one, jobs))

    # -------------------------------------------------------------------------------------------
    def _run(self, job: dict, limits: Limits) -> ExecResult:
        if job.get("kind") not in ("script", "stdio", "call", "check"):
            raise ValueError(f"job kind {job.get('kind')!r}: must be script, stdio, call or check")
        if job["kind"] in ("stdio", "call") and not job["tests"]:
            return ExecResult("failed", "no tests to run")
        per_test = len(job["tests"]) if job["kind"] in ("stdio", "call") else 1
        sample_timeout = limits.sample_timeout_s or limits.timeout_s * per_test + 5.0
        sample = {"limits": limits.for_harness(), "sample_timeout": sample_timeout}
        with self._slots:
            server = self._checkout()
            keep = False
            try:
                server.begin(sample, backstop_s=sample_timeout + 15.0)
                try:
                    result = judge(job, server, limits.timeout_s)
                except _RunnerGone as exc:
                    result = self._runner_gone(exc.report)
                except SandboxError as exc:
                    result = ExecResult("sandbox_error", str(exc)[:500])
                server.end()
                keep = True
                return result
            except TimeoutError:
                return ExecResult("timeout", f"sample wall clock over {sample_timeout:.1f}s (server killed)")
            except (_ServerGone, OSError, ValueError, EOFError) as exc:
                if self.isolation.protects_server:
                    return ExecResult("sandbox_error", str(exc)[:500])
                return ExecResult("runtime_error", f"the program may have killed its sandbox: {exc}"[:500])
            finally:
                if keep:
                    with self._lock:
                        self._idle.append(server)
                else:
                    server.close()

    def _runner_gone(self, report: dict) -> ExecResult:
        detail = f"sandbox runner ended early (status {report.get('runner')}) {report.get('detail', '')}"
        if self.isolation.protects_server:
            return ExecResult("sandbox_error", detail[:500])
        return ExecResult("runtime_error", f"the program may have killed its runner: {detail}"[:500])

    def _checkout(self) -> _Server:
        with self._lock:
            idle, self._idle[:] = list(self._idle), []
        while idle:
            server = idle.pop()
            if server.proc.poll() is None and server.settle():
                with self._lock:
                    self._idle.extend(idle)
                return server
            if server.proc.poll() is None:
                with self._lock:
                    self.servers_replaced += 1
            server.close()
        return _Server(self)


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
