"""Hostile programs in the code sandbox: each is scored as a failure with a reason, the evaluator is
unharmed, and no process of the sample survives it.

Runs in every namespace mode that works on this machine (bwrap, unshare) and in the no-namespace
fallback ("none"), asserting for each only what that mode guarantees (`Isolation` says which).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from lm_eval_noise.execution import Limits, Sandbox, detect_isolation, script_job, stdio_job

LIMITS = Limits(timeout_s=1.0, memory_mb=512, output_bytes=1 << 20, nproc=64)
REPO = Path(__file__).resolve().parent.parent
GOOD = script_job("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n")

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in the test environment here
    psutil = None


def _marked_pids(marker: str) -> set[int]:
    """Processes whose command line carries `marker` (psutil, else /proc)."""
    found = set()
    if psutil is not None:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if marker in " ".join(proc.info["cmdline"] or ()):
                    found.add(proc.info["pid"])
            except (psutil.Error, TypeError):
                pass
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.add(int(entry))
            except OSError:
                pass
    return found


def _server_pids(sb: Sandbox) -> set[int]:
    """The warm servers (and their unshare wrappers), which legitimately carry the marker."""
    pids = set()
    for server in sb._idle:
        pids.add(server.proc.pid)
        if psutil is not None:
            pids.update(c.pid for c in psutil.Process(server.proc.pid).children())
        else:
            with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
                pids.update(int(p) for p in f.read().split())
    return pids


def _assert_no_strays(sb: Sandbox, marker: str, allowed: set[int] | None = None) -> None:
    allowed = _server_pids(sb) if allowed is None else allowed
    deadline = time.monotonic() + 10
    while True:
        strays = _marked_pids(marker) - allowed - {os.getpid()}
        if not strays or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not strays, f"processes of the sample survived: {strays}"


def _available_modes() -> list[str]:
    """Every namespace mode that works here, plus the no-namespace fallback."""
    modes = []
    for mode in ("bwrap", "unshare"):
        try:
            detect_isolation(mode)
            modes.append(mode)
        except RuntimeError:
            pass
    return modes + ["none"]


@pytest.fixture(params=_available_modes())
def sandbox(request):
    marker = f"lmen-hostile-{uuid.uuid4().hex[:12]}"
    iso = detect_isolation(request.param)
    sb = Sandbox(LIMITS, workers=2, isolation=iso, label=marker)
    sb.marker = marker
    yield sb
    sb.close()
    _assert_no_strays(sb, marker, allowed=set())


def _contained_processes(sb: Sandbox) -> bool:
    return sb.isolation.pid_namespace or sb.isolation.private_uid


def _check(sb: Sandbox, program: str, reasons: set[str], max_wall: float | None = None,
           limits: Limits | None = None):
    result = sb.run(script_job(program), limits)
    assert not result.passed
    assert result.reason in reasons, result
    if max_wall is not None:
        assert result.wall_s < max_wall, result
    _assert_no_strays(sb, sb.marker)
    # the evaluator (and the warm server) carry on
    assert sb.run(GOOD).passed
    return result


def test_good_program_passes(sandbox):
    result = sandbox.run(GOOD)
    assert result.passed and result.reason == "passed" and result.compiled


def test_program_may_start_python(sandbox):
    """Legitimate use keeps working: a program may run a Python subprocess (and gains no privilege)."""
    program = (
        "import subprocess, sys\n"
        "out = subprocess.run([sys.executable, '-c', 'import json; print(6 * 7)'], capture_output=True, text=True)\n"
        "assert out.stdout.strip() == '42', out.stderr\n"
        "status = open('/proc/self/status').read()\n"
        "assert 'NoNewPrivs:\\t1' in status\n"
    )
    result = sandbox.run(script_job(program))
    assert result.passed, result


def test_fork_bomb(sandbox):
    if not _contained_processes(sandbox):
        pytest.skip("neither a PID namespace nor a private uid here: a fork bomb would not be contained")
    _check(sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
           {"timeout", "memory", "runtime_error"})


def test_memory_bomb(sandbox):
    # a wall clock that even a loaded machine does not reach before 512 MB are filled
    _check(sandbox, "x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))\n", {"memory"},
           limits=Limits(timeout_s=10.0, memory_mb=512))


def test_infinite_loop(sandbox):
    r = _check(sandbox, "while True:\n    pass\n", {"timeout"})
    assert r.wall_s < LIMITS.timeout_s + 3


def test_cpu_limit(sandbox):
    """RLIMIT_CPU stops a busy program long before a generous wall clock would."""
    limits = Limits(timeout_s=20.0, cpu_s=1, memory_mb=512)
    result = sandbox.run(script_job("while True:\n    pass\n"), limits)
    assert result.reason == "timeout" and result.wall_s < 6, result


def test_busy_child_ignoring_sigterm(sandbox):
    if not _contained_processes(sandbox):
        pytest.skip("no PID namespace or private uid: a setsid() child escapes process-group cleanup")
    program = (
        "import os, signal\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    os.setsid()\n"
        "    while True:\n"
        "        pass\n"
        "assert False, 'the parent gives up at once, leaving its busy child behind'\n"
    )
    _check(sandbox, program, {"failed"})


def test_busy_child_while_parent_hangs(sandbox):
    program = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    while True:\n"
        "        pass\n"
        "time.sleep(60)\n"
    )
    _check(sandbox, program, {"timeout"})


def test_network(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    program = (
        "import socket\n"
        "s = socket.socket()\n"
        f"s.connect(('127.0.0.1', {port}))\n"
        "s.sendall(b'escaped')\n"
        "s.close()\n"
        # Only inside a network namespace with nothing but loopback: no packet can leave it.
        "if [n for _, n in socket.if_nameindex()] == ['lo']:\n"
        "    t = socket.socket()\n"
        "    t.connect(('192.0.2.1', 80))\n"
        "assert False, 'reached the network'\n"
    )
    try:
        result = _check(sandbox, program, {"runtime_error", "failed"}, max_wall=LIMITS.timeout_s)
    finally:
        stop.set()
        thread.join()
        server.close()
    if sandbox.isolation.network:
        # unreachable (no loopback at all) or refused (a loopback of the sandbox's own): never ours
        assert result.reason == "runtime_error", result
        assert "Errno" in result.detail, result
        assert not accepted


def test_connect_elsewhere_fails_fast(sandbox):
    if not sandbox.isolation.network:
        pytest.skip("network not isolated here: no outside address may be tried from this machine")
    program = (
        "import socket\n"
        "assert [n for _, n in socket.if_nameindex()] == ['lo']\n"
        "socket.create_connection(('192.0.2.1', 80))\n"
    )
    result = _check(sandbox, program, {"runtime_error"}, max_wall=LIMITS.timeout_s)
    assert "Errno" in result.detail, result


def test_write_outside_workdir(sandbox):
    marker = sandbox.marker
    in_tmp = Path("/tmp") / marker
    in_repo = REPO / "tests" / marker
    program = (
        "import os\n"
        f"for path in ({str(in_tmp)!r}, {str(in_repo)!r}):\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('escaped')\n"
        "    except OSError:\n"
        "        pass\n"
        "open('inside.txt', 'w').write('fine')\n"  # the private working folder is writable
        "assert False\n"
    )
    try:
        _check(sandbox, program, {"failed"})
        if sandbox.isolation.filesystem:
            assert not in_tmp.exists() and not in_repo.exists()
        elif sandbox.isolation.private_uid:
            # Without a mount namespace a private uid still cannot write root's folders; world-writable
            # ones like /tmp are NOT contained (documented in sandbox.py).
            assert not in_repo.exists()
    finally:
        for path in (in_tmp, in_repo):
            if path.exists():
                path.unlink()


def test_kill_parent(sandbox):
    program = (
        "import os, signal, time\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "time.sleep(0.5)\n"
        "assert False\n"
    )
    _check(sandbox, program, {"runtime_error", "failed"})


def test_print_100mb(sandbox):
    r = _check(sandbox, "import sys\nsys.stdout.write('x' * 100_000_000)\n", {"output_limit"})
    assert r.wall_s < LIMITS.timeout_s + 3


def test_exit_before_asserts_is_not_a_pass(sandbox):
    program = "def add(a, b):\n    return a - b\n\nimport os\nos._exit(0)\nassert add(2, 3) == 5\n"
    _check(sandbox, program, {"failed"})
    program = "def add(a, b):\n    return a - b\n\nimport sys\nsys.exit(0)\nassert add(2, 3) == 5\n"
    _check(sandbox, program, {"failed"})


def test_deep_recursion(sandbox):
    # Python 3.11 keeps pure-Python frames off the C stack: unbounded recursion grows the heap until
    # RLIMIT_AS (MemoryError), the wall clock, or a C-level stack overflow (SIGSEGV) stops it.
    program = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n"
    _check(sandbox, program, {"runtime_error", "memory", "timeout"})
    _check(sandbox, "def f(n):\n    return f(n + 1)\nf(0)\n", {"runtime_error"})


def test_stdin_forever(sandbox):
    _check(sandbox, "import sys\nwhile True:\n    sys.stdin.read()\n", {"timeout"})
    result = sandbox.run(stdio_job("import sys\nwhile True:\n    sys.stdin.read()\n", [("1 2\n", "3\n")]))
    assert result.reason == "timeout"


def test_hostile_batch_keeps_every_result(sandbox):
    """A parallel batch mixing hostile and good programs: every good one still passes, in order."""
    bad = [script_job("while True:\n    pass\n"), script_job("import os\nos._exit(0)\n"),
           script_job("import sys\nsys.stdout.write('x' * 10_000_000)\n"),
           script_job("x = bytearray(10**12)\n"), script_job("def f(:\n")]
    jobs = []
    for b in bad:
        jobs += [GOOD, b]
    results = sandbox.run_many(jobs)
    assert [r.passed for r in results] == [True, False] * len(bad)
    assert [r.reason for r in results[1::2]] == ["timeout", "failed", "output_limit", "memory",
                                                 "syntax_error"]
    _assert_no_strays(sandbox, sandbox.marker)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="timeout_s"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="auto"):
        detect_isolation("chroot")
    with pytest.raises(ValueError, match="workers"):
        Sandbox(workers=0)


def test_uid_slots_never_hand_out_a_live_uid_twice():
    from lm_eval_noise.execution.sandbox import _UidSlots

    slots = _UidSlots()
    uids = [slots.acquire() for _ in range(256)]
    assert len(set(uids)) == 256
    with pytest.raises(RuntimeError, match="more than 256 sandbox servers"):
        slots.acquire()
    slots.release(uids[100])
    assert slots.acquire() == uids[100]
