"""The sandbox's inside: a warm server per worker slot, a runner per sample, a process per test.

Started by `runner.py` as `python -I -S -c BOOTSTRAP --serve CONFIG LABEL` inside the isolation
(unshare / bwrap / none), importing this module from its cached bytecode with the standard library only
(site-packages are appended to sys.path for the programs, without running .pth files).

Trust: nothing here decides a verdict. The server and its runners only run programs and carry plain
bytes (captured output, encoded return values) back to the judge in the evaluator (`judge.py`), which
alone holds expected outputs and check code. The server never receives a sample's program, inputs or
outputs at all: for every sample it forks a runner, which talks to the evaluator over the server's own
pipes and forks one test process per test. So a test process's memory holds its own program and the
inputs handed to it, nothing of other samples and nothing the judge compares against.

At start, in a private mount namespace (modes unshare, bwrap), the server builds a new root: a
read-only tmpfs holding read-only binds of only the paths programs need (system libraries, the
interpreter, the virtualenv; see `sandbox.sandbox_binds`), a minimal /dev, a private /proc, and
chroots into it. Each sample gets fresh tmpfs mounts on /tmp and /dev/shm, detached afterwards (no walk
of the tree, however deep). Without a mount namespace (none, unshare-net) the sample's working folder is
removed iteratively, never crossing into another mount. A server whose cleanup fails says so, and the
evaluator replaces it.

Each test process: own process group and, where the kernel allows (probed), init of a fresh PID
namespace; a fresh IPC namespace (SysV shm, semaphores and queues die with it); RLIMIT_AS / CPU / FSIZE /
CORE (and NPROC under a private uid); a private uid or, as (namespace) root, no capability at all; no
new privileges on exec; parent-death signal. Output is read incrementally up to a cap, with a per-test
and a per-sample wall clock; afterwards the test's group and every descendant left are killed.
"""

from __future__ import annotations

import gc
import marshal
import os
import resource
import select
import sys
import time

try:  # started as the sandbox server: this folder is on sys.path while it imports us
    from plain_data import NotPlainData, decode, encode
except ImportError:  # imported by the evaluator (which also caches our bytecode for the server)
    from lm_eval_noise.sandbox.plain_data import NotPlainData, decode, encode

# SIGKILL's number (the same on x86 and arm), so that the `signal` module (and `enum` with it) stays unloaded.
SIGKILL = 9
_SNIPPET = 2000
SETUP_FAILED = 120  # exit code of a test process whose sandbox setup failed
REQ_FD, REPLY_FD = 3, 4  # a test process's channel from / to its runner

# Standard modules generated programs commonly import: the server imports them once, so that a sample
# pays nothing for them (as it would not when run in an already-warm evaluator process either).
PRELOAD = ("typing", "math", "random", "copy", "string", "re", "collections", "itertools", "functools",
           "heapq", "bisect", "hashlib", "fractions", "statistics", "datetime", "json")


# ----------------------------------------------------------------------------------------- framing
def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, len(payload).to_bytes(4, "big") + payload)


def _recv_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, 4)
    return None if header is None else _read_exact(fd, int.from_bytes(header, "big"))


# ----------------------------------------------------------------------------------------- libc
_LIBC = None


def _libc():
    """(ctypes, libc), loaded once per process (the server loads them before forking anything)."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = (ctypes, ctypes.CDLL(None, use_errno=True))
    return _LIBC


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
MNT_DETACH = 2
CLONE_NEWIPC, CLONE_NEWPID = 0x08000000, 0x20000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# statvfs flags of a mount -> the mount flags a read-only remount must keep (a user namespace locks them)
_KEEP_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
               os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}


def _mount(source, target, fstype, flags, data=None) -> None:
    ctypes, libc = _libc()
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    ctypes, libc = _libc()
    if libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _bind_readonly(source: str, target: str, devices: bool = False) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID
    for st, ms in _KEEP_FLAGS.items():
        if os.statvfs(target).f_flag & st:
            flags |= ms
    if devices:  # device nodes stay writable (/dev/null), and usable
        flags &= ~MS_NODEV
    else:
        flags |= MS_RDONLY | MS_NODEV
    _mount(None, target, None, flags)


# ----------------------------------------------------------------------------------------- filesystem
_DEVICES = ("null", "zero", "full", "random", "urandom")
SAMPLE_TMPFS = ("/tmp", "/dev/shm")  # fresh for every sample, detached afterwards


def _make_target(path: str, like: str) -> None:
    if os.path.isdir(like):
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def setup_filesystem(cfg: dict) -> list[tuple[str, str]]:
    """Chroot into a new read-only root holding only `cfg["binds"]` (read-only), a minimal /dev and a
    private /proc. Returns (stash, path) pairs for binds that live under a per-sample tmpfs (a
    virtualenv under /tmp): bound again over each sample's fresh /tmp (see `sample_mounts`)."""
    if os.readlink("/proc/self/ns/mnt") == cfg.get("host_mnt_ns"):
        raise RuntimeError("refusing to build a root: not in a private mount namespace")
    root = cfg["newroot"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    tmp_roots = tuple(t + "/" for t in SAMPLE_TMPFS)
    stash = []
    for i, src in enumerate(cfg["binds"]):
        if os.path.islink(src) and os.path.dirname(src) == "/":  # /bin -> usr/bin and the like
            os.symlink(os.readlink(src), root + src)
            continue
        if not os.path.exists(src):
            continue
        if src.startswith(tmp_roots):
            target = f"/.ro/{i}"
            stash.append((target, src))
        else:
            target = src
        _make_target(root + target, src)
        _bind_readonly(src, root + target)
    os.makedirs(root + "/dev", mode=0o755, exist_ok=True)
    for dev in _DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            _make_target(f"{root}/dev/{dev}", f"/dev/{dev}")
            _bind_readonly(f"/dev/{dev}", f"{root}/dev/{dev}", devices=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    for path in SAMPLE_TMPFS:
        os.makedirs(root + path, mode=0o755, exist_ok=True)
    os.makedirs(root + "/proc", mode=0o555, exist_ok=True)
    if os.getpid() == 1:  # a /proc that shows only this PID namespace
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    os.chroot(".")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return stash


def sample_mounts(cfg: dict, stash: list[tuple[str, str]]) -> None:
    size = f"size={int(cfg['fsize_mb']) * 4}m,mode=1777"
    for path in SAMPLE_TMPFS:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, size)
    for target, path in stash:
        os.makedirs(path, mode=0o755, exist_ok=True)
        parent = path
        while parent not in SAMPLE_TMPFS and parent != "/":  # traversable by a private uid
            os.chmod(parent, 0o755)
            parent = os.path.dirname(parent)
        _bind_readonly(target, path)


def sample_unmounts() -> None:
    for path in SAMPLE_TMPFS:
        _umount(path)  # detaching drops the whole tree (and binds under it) at once, never walking it


def remove_tree(path: str, max_entries: int = 1_000_000) -> None:
    """Delete `path` without recursion and with two descriptors open at most: nested folders are moved
    up to the top level as they are found, so any depth costs the same. Stays on `path`'s filesystem.
    Raises OSError when something is left (the caller replaces the worker)."""
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        dev = os.fstat(top).st_dev
        os.fchmod(top, 0o700)
        moved = 0
        while True:
            names = os.listdir(top)
            if not names:
                break
            progress = False
            for name in names:
                st = os.stat(name, dir_fd=top, follow_symlinks=False)
                if not _is_dir(st):
                    os.unlink(name, dir_fd=top)
                    progress = True
                    continue
                if st.st_dev != dev:
                    raise OSError(f"{path}/{name} is another filesystem's mount point; not removed")
                os.chmod(name, 0o700, dir_fd=top, follow_symlinks=False)
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
                try:
                    for inner in os.listdir(sub):
                        if _is_dir(os.stat(inner, dir_fd=sub, follow_symlinks=False)):
                            moved += 1
                            if moved > max_entries:
                                raise OSError(f"{path}: more than {max_entries} folders")
                            os.rename(inner, f".m{moved}", src_dir_fd=sub, dst_dir_fd=top)
                        else:
                            os.unlink(inner, dir_fd=sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=top)
                progress = True
            if not progress:
                raise OSError(f"{path}: could not be emptied")
    finally:
        os.close(top)
    os.rmdir(path)


def _is_dir(st) -> bool:
    return (st.st_mode & 0o170000) == 0o040000


# ----------------------------------------------------------------------------------------- privileges
def _no_new_privileges() -> None:
    """Empty the bounding set and forbid gaining privileges on exec (setuid binaries)."""
    ctypes, libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the last capability this kernel knows
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _clear_capabilities() -> None:
    ctypes, libc = _libc()
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def drop_privileges(uid: int | None) -> None:
    """No capability of any kind: under `uid` (gid too, no supplementary groups) when given, else as the
    current (namespace) root with an empty capability set. Neither can read what the uid may not."""
    _no_new_privileges()
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # clears every capability set
    elif os.geteuid() == 0:
        _clear_capabilities()


# ----------------------------------------------------------------------------------------- test process
def _child_main(cfg: dict, code, mode: str, fn_name: str | None, fds: tuple) -> None:
    """Runs in the forked test process; never returns."""
    stdin_fd, out_w, err_w, req_r, rep_w = fds
    try:
        os.setpgid(0, 0)
        for fd, target in ((stdin_fd, 0), (out_w, 1), (err_w, 2), (req_r, REQ_FD), (rep_w, REPLY_FD)):
            os.dup2(fd, target)
        os.closerange(REPLY_FD + 1, 65536)
        limits = cfg["limits"]
        mem = int(limits["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        fsize = int(limits["fsize_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        ctypes, libc = _libc()
        if libc.unshare(CLONE_NEWIPC) != 0 and cfg["ipc"]:  # required where the mode promises it
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWIPC)")
        uid = cfg.get("uid")
        if uid is not None:
            nproc = int(limits["nproc"])
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        drop_privileges(uid)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)  # die with the runner (after the uid change)
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc entries stay its own
    except BaseException as exc:  # setup failure: report through the exit code alone
        os.write(2, f"sandbox child setup failed: {exc!r}\n".encode())
        os._exit(SETUP_FAILED)
    _run_untrusted(code, mode, fn_name)


def _error_frame(exc: BaseException) -> bytes:
    kind = "memory" if isinstance(exc, MemoryError) else "failed" if isinstance(exc, AssertionError) \
        else "runtime_error"
    try:
        detail = f"{type(exc).__name__}: {exc}"[:300].replace("\n", " ")
    except BaseException:  # noqa: BLE001 - a hostile __str__
        detail = "exception"
    return f"E{kind} {detail}".encode("utf-8", "replace")


def _run_untrusted(code, mode: str, fn_name: str | None) -> None:
    """mode "stdio" / "script": run the program, then say "D"one (or "E" and the error) on the reply
    channel. mode "serve": run the program, find `fn_name`, then answer each request (encoded args)
    with "R" + the encoded return value, "U" (not plain data) or "E" (an exception)."""
    glb = {"__name__": "__main__" if mode == "stdio" else "__solution__", "__builtins__": __builtins__}
    try:
        exec(code, glb)
        if mode == "serve":
            fn = glb.get(fn_name)
            if fn is None and "Solution" in glb:
                fn = getattr(glb["Solution"](), fn_name)
            if not callable(fn):
                raise NameError(f"function {fn_name!r} is not defined")
    except SystemExit as exc:
        _flush_quietly()
        if mode == "stdio":  # a script's own exit status
            code = exc.code
            os._exit(0 if code in (None, 0) else code if isinstance(code, int) and 0 < code < 100 else 1)
        _send_frame(REPLY_FD, f"Efailed SystemExit({exc.code!r}) before the checks finished".encode()[:400])
        os._exit(1)
    except BaseException as exc:
        _report(exc)
    if mode != "serve":
        _flush_quietly()
        _send_frame(REPLY_FD, b"D")
        os._exit(0)
    _send_frame(REPLY_FD, b"K")
    while True:
        request = _recv_frame(REQ_FD)
        if request is None:
            os._exit(0)
        try:
            got = fn(*decode(request))
            try:
                reply = b"R" + encode(got)
            except (NotPlainData, RecursionError) as exc:
                reply = b"U" + str(exc).encode()[:200]
        except SystemExit as exc:
            reply = f"Efailed SystemExit({exc.code!r}) inside the function".encode()[:400]
        except BaseException as exc:
            reply = _error_frame(exc)
        _flush_quietly()
        _send_frame(REPLY_FD, reply)


def _report(exc: BaseException) -> None:
    try:
        frame = _error_frame(exc)
        import traceback  # only now: importing it costs more than running a typical test

        traceback.print_exc(limit=5)
        _flush_quietly()
        _send_frame(REPLY_FD, frame)
    except BaseException:  # noqa: BLE001
        pass
    os._exit(1)


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


# ----------------------------------------------------------------------------------------- runner side
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


class _Test:
    """One test process as its runner sees it: forked, fed, watched, killed."""

    def __init__(self, cfg: dict, env: dict, code, mode: str, stdin_text: str | None, fn_name: str | None):
        self.cfg, self.mode = cfg, mode
        cap = int(cfg["limits"]["output_bytes"])
        if stdin_text is not None:
            in_path = os.path.join(env["workdir"], ".stdin")
            with open(in_path, "w") as f:
                f.write(stdin_text)
            stdin_fd = os.open(in_path, os.O_RDONLY)
            os.unlink(in_path)
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        req_r, self.req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        if env.get("pidns") is not None:
            ctypes, libc = _libc()
            # back to our own namespace first: unshare(CLONE_NEWPID) works once per "children" namespace
            if libc.setns(env["pidns"], CLONE_NEWPID) != 0 or libc.unshare(CLONE_NEWPID) != 0:
                raise OSError(ctypes.get_errno(), "fresh PID namespace for the test")
        pid = os.fork()
        if pid == 0:
            for fd in (out_r, err_r, self.req_w, rep_r):
                os.close(fd)
            _child_main(cfg, code, mode, fn_name, (stdin_fd, out_w, err_w, req_r, rep_w))
        for fd in (stdin_fd, out_w, err_w, req_r, rep_w):
            os.close(fd)
        try:
            os.setpgid(pid, pid)  # also done by the child; whichever runs first wins the race
        except OSError:
            pass
        self.pid = pid
        self.out = _Capture(out_r, cap, cap if mode == "stdio" else _SNIPPET)
        self.err = _Capture(err_r, cap, _SNIPPET)
        self.rep = _Capture(rep_r, cap, cap)
        self.streams = {c.fd: c for c in (self.out, self.err, self.rep)}
        for fd in self.streams:
            os.set_blocking(fd, False)
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.poller = select.poll()
        for fd in self.streams:
            self.poller.register(fd, select.POLLIN)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)
        self.status = None
        self.cpu = 0.0
        self.frames_read = 0

    def _next_frame(self) -> bytes | None:
        data = self.rep.data
        if len(data) < 4:
            return None
        n = int.from_bytes(data[:4], "big")
        if len(data) < 4 + n:
            return None
        frame = bytes(data[4:4 + n])
        del data[:4 + n]
        return frame

    def wait(self, deadline: float, for_frame: bool) -> tuple[str, bytes | None]:
        """("frame", payload) once the process sends one (when `for_frame`), else ("exit" | "timeout" |
        "output_limit", None)."""
        while True:
            if for_frame:
                frame = self._next_frame()
                if frame is not None:
                    return "frame", frame
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            events = self.poller.poll(min(wait_ms, 50) if self.pidfd is None else wait_ms)
            for fd, _ in events:
                if fd == self.pidfd:
                    continue
                state = self.streams[fd].read()
                if state == "cap":
                    return "output_limit", None
                if state == "eof":
                    self.poller.unregister(fd)
            if for_frame and self._next_frame_ready():
                continue
            done_pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if done_pid:
                self.status, self.cpu = status, usage.ru_utime + usage.ru_stime
                return "exit", None
            if time.monotonic() >= deadline:
                return "timeout", None

    def _next_frame_ready(self) -> bool:
        data = self.rep.data
        return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:4], "big")

    def send(self, payload: bytes, framed: bool = False) -> bool:
        try:
            os.set_blocking(self.req_w, True)
            if framed:
                _write_all(self.req_w, payload)
            else:
                _send_frame(self.req_w, payload)
            return True
        except OSError:  # it exited, or closed its channel
            return False

    def finish(self, verdict: str | None) -> dict:
        """Kill what is left, collect the exit status and output, close everything: the test's record."""
        try:
            os.killpg(self.pid, SIGKILL)
        except OSError:
            pass
        _kill_descendants()
        if self.status is None:
            try:
                _, self.status, usage = os.wait4(self.pid, 0)
                self.cpu = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                pass
        limits = self.cfg["limits"]
        if verdict is None and self.status is not None and self.cpu >= int(limits["cpu_s"]) - 0.05:
            verdict = "timeout"  # RLIMIT_CPU: SIGXCPU, or SIGKILL at the hard limit (init ignores SIGXCPU)
        for fd, stream in self.streams.items():  # what is left in the pipes (writers are gone)
            state = "data"
            while verdict != "output_limit" and state == "data":
                state = stream.read()
                if state == "cap":
                    verdict = "output_limit"
            os.close(fd)
        os.close(self.req_w)
        if self.pidfd is not None:
            os.close(self.pidfd)
        record = {"verdict": verdict, "stderr": self.err.data[:_SNIPPET].decode("utf-8", "replace"),
                  "stdout": self.out.data.decode("utf-8", "replace")}
        if self.status is not None:
            if os.WIFSIGNALED(self.status):
                record["signal"] = os.WTERMSIG(self.status)
            else:
                record["exit_code"] = os.WEXITSTATUS(self.status)
        frames = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        if frames:
            record["last_frame"] = frames[-1][:400]
        return record


def _runner(cfg: dict, env: dict, out_fd: int) -> None:
    """One sample: answer the evaluator's requests (framed marshal on fd 0 / `out_fd`) until "end"."""
    code = None
    test: _Test | None = None
    sample_deadline = time.monotonic() + float(cfg["sample_timeout"])

    def deadline(msg) -> float:
        return min(time.monotonic() + float(msg["timeout"]), sample_deadline)

    while True:
        raw = _recv_frame(0)
        if raw is None:
            break
        msg = marshal.loads(raw)
        op = msg["op"]
        if op == "end":
            break
        if op == "compile":
            # The one definition of "compiles" (lm_eval_noise.metrics.basic.compiles), applied here.
            try:
                code = compile(msg["program"], "<solution>", "exec")
                reply = {"ok": True}
            except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
                reply = {"verdict": "syntax_error", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        elif op in ("exec", "spawn") and code is None:
            reply = {"skipped": "not compiled"}  # sent along with a "compile" that failed
        elif op in ("exec", "spawn"):
            if test is not None:
                test.finish(None)
            mode = msg.get("mode", "serve")
            test = _Test(cfg, env, code, mode, msg.get("stdin"), msg.get("fn_name"))
            state, frame = test.wait(deadline(msg), for_frame=op == "spawn")
            if op == "spawn" and state == "frame" and frame == b"K":
                reply = {"ok": True}
            else:
                if state == "frame":
                    test.rep.data[:0] = len(frame).to_bytes(4, "big") + frame  # keep it for the record
                reply = test.finish(None if state in ("exit", "frame") else state)
                test = None
        elif op == "call":
            if test is None or not test.send(msg["args"]):
                reply = test.finish(None) if test is not None else {"verdict": None}
                test = None
            else:
                state, frame = test.wait(deadline(msg), for_frame=True)
                if state == "frame":
                    reply = {"frame": frame}
                else:
                    reply = test.finish(None if state == "exit" else state)
                    test = None
        elif op == "batch":  # calls one after another, up to the first that is not an answer
            replies = []
            batch_start = time.monotonic()
            batch_deadline = deadline(msg)
            payloads = msg["args"]
            # Small batches are written at once (they fit the pipe, so the writes cannot block while the
            # process waits for us to read its answers); the process answers them in one go.
            ahead = test is not None and sum(len(p) + 4 for p in payloads) <= 32768
            if ahead and not test.send(b"".join(len(p).to_bytes(4, "big") + p for p in payloads), framed=True):
                ahead = False
            for payload in payloads:
                if test is None or not (ahead or test.send(payload)):
                    replies.append(test.finish(None) if test is not None else {"verdict": None})
                    test = None
                    break
                state, frame = test.wait(batch_deadline, for_frame=True)
                if state != "frame":
                    replies.append(test.finish(None if state == "exit" else state))
                    test = None
                    break
                replies.append({"frame": frame})
                if frame[:1] != b"R":
                    break
            reply = {"replies": replies, "elapsed": time.monotonic() - batch_start}
        else:
            raise ValueError(f"unknown request {op!r}")
        _send_frame(out_fd, marshal.dumps(reply))
    if test is not None:
        test.finish(None)


# ----------------------------------------------------------------------------------------- server
def _sample(cfg: dict, sample: dict, env: dict, stash: list, out_fd: int, seq: int) -> dict:
    """Fork a runner for one sample, wait for it, clean up after it: the sample's closing report."""
    clean, detail = True, ""
    mounted = cfg["fs"] == "mount"
    workdir = "/tmp/w" if mounted else os.path.join(cfg["workroot"], f"w{seq}")
    try:
        if mounted:
            sample_mounts(cfg, stash)
        os.makedirs(workdir, mode=0o700)
        if cfg["uid"] is not None:
            os.chown(workdir, cfg["uid"], cfg["uid"])
    except OSError as exc:
        return {"done": True, "clean": False, "runner": None, "detail": f"sample setup: {exc!r}"[:300]}
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    run_cfg = dict(sample, uid=cfg["uid"], ipc=cfg["ipc"])
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.chdir(workdir)
            _libc()[1].prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            _runner(run_cfg, dict(env, workdir=workdir), out_fd)
        except BaseException as exc:  # noqa: BLE001
            os.write(2, f"sandbox runner failed: {exc!r}\n".encode())
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    _kill_descendants()
    os.chdir("/")
    try:
        if mounted:
            sample_unmounts()
        else:
            remove_tree(workdir)
    except (OSError, RecursionError) as exc:
        clean, detail = False, f"cleanup failed: {exc!r}"[:300]
    return {"done": True, "clean": clean, "runner": status, "detail": detail}


def serve(cfg: dict) -> int:
    """One server per worker slot: for each "sample" request on stdin, a runner that answers that
    sample's requests, then a closing report (framed marshal) on stdout; until stdin closes."""
    stash = setup_filesystem(cfg) if cfg["fs"] == "mount" else []
    ctypes, libc = _libc()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of a sample come back to us for cleanup
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # nothing of the sample may read or trace our memory
    env = {"pidns": os.open("/proc/self/ns/pid", os.O_RDONLY) if cfg["nest"] else None}
    for path in cfg.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    for name in PRELOAD:  # imported once here, inherited by every test's fork
        try:
            __import__(name)
        except ImportError:
            pass
    exec(cfg.get("preload_source", ""), {})  # e.g. the APPS call-based prelude
    gc.freeze()  # forked tests then copy fewer pages: the collector leaves these objects alone
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # the reply pipe stays ours: a test process never inherits it
    seq = 0
    while True:
        raw = _recv_frame(0)
        if raw is None:
            return 0
        seq += 1
        report = _sample(cfg, marshal.loads(raw), env, stash, out, seq)
        _send_frame(out, marshal.dumps(report))


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
    info["fs"] = "host"
    if cfg.get("fs") == "mount":
        try:
            stash = setup_filesystem(cfg)
            sample_mounts(cfg, stash)
            root_ro = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
            tmp_rw = not os.statvfs("/tmp").f_flag & os.ST_RDONLY
            hidden = not any(os.path.exists(p) for p in cfg.get("hidden", []))
            info["fs"] = "private" if root_ro and tmp_rw and hidden else "host"
            sample_unmounts()
        except Exception as exc:  # noqa: BLE001
            info["fs_error"] = repr(exc)
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
    pid = os.fork()  # a fresh IPC namespace per test?
    if pid == 0:
        os._exit(0 if _libc()[1].unshare(CLONE_NEWIPC) == 0 else 1)
    info["ipc"] = os.waitpid(pid, 0)[1] == 0
    return info


def main() -> int:
    mode, cfg = sys.argv[1], marshal.loads(bytes.fromhex(sys.argv[2]))
    if mode == "--probe":
        print(marshal.dumps(probe(cfg)).hex())
        return 0
    return serve(cfg)
