"""Hostile programs in the code sandbox: each is scored as a failure with a reason, the evaluator is
unharmed, and no process of the sample survives it.

Runs in every namespace mode that works on this machine (bwrap, unshare) and in the no-namespace
fallback ("none"), asserting for each only what that mode guarantees (`Isolation` says which).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from lm_eval_noise.sandbox import Limits, Sandbox, detect_isolation, script_job, stdio_job

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
    else:
        # A mode without a network namespace does not contain this (documented); seeing the bytes
        # arrive shows the program really ran its attack, so the verdict above is about it.
        assert result.reason == "failed" and accepted == [b"escaped"], (result, accepted)


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
            # ones like /tmp are NOT contained (documented in sandbox/runner.py).
            assert not in_repo.exists()
        else:
            # Mode "none" contains no write (documented): the escaped file shows the program ran.
            assert in_tmp.read_text() == "escaped"
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
    from lm_eval_noise.sandbox.runner import _UidSlots

    slots = _UidSlots()
    uids = [slots.acquire() for _ in range(256)]
    assert len(set(uids)) == 256
    with pytest.raises(RuntimeError, match="more than 256 sandbox servers"):
        slots.acquire()
    slots.release(uids[100])
    assert slots.acquire() == uids[100]


# ----------------------------------------------------------------------------------------- attacks on verdicts
# Each attack is a completion a model could write; each must be scored not-passed. They are submitted
# through the same job builders the HumanEval and APPS scorers use.
from lm_eval_noise.code_tasks.apps import apps_job  # noqa: E402
from lm_eval_noise.code_tasks.humaneval import humaneval_job  # noqa: E402

ADD = {"task_id": "t/add", "entry_point": "add",
       "prompt": "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n",
       "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}
ADD_STDIO = {"problem_id": "t/add-stdio", "input_output": json.dumps(
    {"inputs": ["2 3\n", "10 20\n"], "outputs": ["5\n", "30\n"]})}
ADD_CALL = {"problem_id": "t/add-call", "input_output": json.dumps(
    {"fn_name": "add", "inputs": [[2, 3], [10, 20]], "outputs": [5, 30]})}

# Every way the old child could claim a verdict: status lines, frames, exit codes, on every descriptor.
FORGE = (
    "import os\n"
    "for fd in range(1, 32):\n"
    "    for msg in (b'E passed\\n', b'R 0 e905000000\\n', b'\\x00\\x00\\x00\\x01D', b'\\x00\\x00\\x00\\x01K',\n"
    "                b'\\x00\\x00\\x00\\x02RT', b'passed\\n'):\n"
    "        try:\n"
    "            os.write(fd, msg)\n"
    "        except OSError:\n"
    "            pass\n"
)


def _attack_jobs(body: str, call_body: str | None = None) -> list[dict]:
    """The same attack as a HumanEval completion, an APPS stdin program and an APPS call-based answer."""
    call_body = call_body if call_body is not None else body
    indented = "".join("    " + line + "\n" for line in body.splitlines())
    call_indented = "".join("    " + line + "\n" for line in call_body.splitlines())
    return [humaneval_job(ADD, indented),
            apps_job(ADD_STDIO, body + "\nprint('wrong')\n"),
            apps_job(ADD_CALL, "def add(a, b):\n" + call_indented)]


def _assert_none_pass(sb: Sandbox, jobs: list[dict]) -> list:
    results = [sb.run(job) for job in jobs]
    assert not any(r.passed for r in results), results
    assert all(r.reason != "sandbox_error" for r in results), results
    return results


@pytest.mark.parametrize("ending", ["os._exit(0)", "os._exit(1)", "return None", "raise SystemExit(0)"])
def test_forged_verdicts_on_every_fd(sandbox, ending):
    body = FORGE + ("import os\n" + ending if ending != "return None" else "return None")
    stdio_body = FORGE + ("import os\n" + ending if ending.startswith("os") else "")
    jobs = _attack_jobs(body, body)
    jobs[1] = apps_job(ADD_STDIO, stdio_body + "\nprint('wrong')\n")
    _assert_none_pass(sandbox, jobs)


HUNT = (
    "import gc, sys, os\n"
    "found = []\n"
    "def visit(obj):\n"
    "    if isinstance(obj, dict):\n"
    "        for k in ('token', 'output', 'outputs', 'tests', 'check', 'test', 'job'):\n"
    "            if k in obj:\n"
    "                found.append(obj[k])\n"
    "for obj in gc.get_objects():\n"
    "    visit(obj)\n"
    "f = sys._getframe()\n"
    "while f is not None:\n"
    "    visit(f.f_locals)\n"
    "    f = f.f_back\n"
    "for mod in list(sys.modules.values()):\n"
    "    visit(getattr(mod, '__dict__', {}))\n"
    "h = sys.modules.get('_harness')\n"
    "if h is not None:\n"
    "    for name in dir(h):\n"
    "        if callable(getattr(h, name)) and not isinstance(getattr(h, name), type):\n"
    "            try:\n"
    "                setattr(h, name, lambda *a, **k: 'passed')\n"
    "            except Exception:\n"
    "                pass\n"
    "for tok in found:\n"
    "    if isinstance(tok, str):\n"
    "        for fd in (1, 3, 4):\n"
    "            try:\n"
    "                os.write(fd, (tok + '\\n').encode())\n"
    "            except OSError:\n"
    "                pass\n"
)


def test_token_hunting_and_patched_harness(sandbox):
    """Memory, frames and modules searched for the run's token or tests; harness functions patched."""
    _assert_none_pass(sandbox, _attack_jobs(HUNT + "return None", HUNT + "return None"))


class _Secret:
    """An expected answer no program can know: a fresh random string per test."""

    def __init__(self):
        self.value = "SECRET-" + uuid.uuid4().hex


STEAL = (
    "import gc, sys, os\n"
    "prefix = 'SEC' + 'RET-'\n"  # split, so that the program's own constants never match
    "def loot():\n"
    "    for obj in gc.get_objects():\n"
    "        for s in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()):\n"
    "            if isinstance(s, str) and len(s) == 39 and s.startswith(prefix):\n"
    "                return s\n"
    "            if isinstance(s, str) and prefix in s and 'def check' in s:\n"
    "                i = s.index(prefix)\n"
    "                return s[i:i + 39]\n"
    "    try:  # raw memory: the heap and anonymous mappings (freed objects of earlier samples included)\n"
    "        import re\n"
    "        pat = re.compile(rb'SEC' rb'RET-[0-9a-f]{32}')\n"
    "        with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb') as mem:\n"
    "            for line in maps:\n"
    "                parts = line.split()\n"
    "                if 'r' not in parts[1] or (len(parts) > 5 and not parts[5].startswith('[heap')):\n"
    "                    continue\n"
    "                lo, hi = (int(x, 16) for x in parts[0].split('-'))\n"
    "                if hi - lo > 1 << 28:\n"
    "                    continue\n"
    "                try:\n"
    "                    mem.seek(lo)\n"
    "                    m = pat.search(mem.read(hi - lo))\n"
    "                except (OSError, ValueError, OverflowError):\n"
    "                    continue\n"
    "                if m:\n"
    "                    return m.group().decode()\n"
    "    except OSError:\n"
    "        pass\n"
    "    return 'nothing found'\n"
)


def test_hidden_outputs_never_reach_the_program(sandbox):
    """APPS expected outputs, call-based answers and HumanEval check code are not in the program's
    memory (not even freed, after a correct sample of the same problem ran on the same worker), so
    printing, returning or raising what it finds gets nothing."""
    secret = _Secret().value
    stdio = {"problem_id": "t/s", "input_output": json.dumps({"inputs": ["x\n"], "outputs": [secret + "\n"]})}
    call = {"problem_id": "t/c", "input_output": json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [secret]})}
    check = {"task_id": "t/h", "entry_point": "f", "prompt": "def f(x):\n    \"\"\"?\"\"\"\n",
             "test": f"def check(candidate):\n    assert candidate(1) == {secret!r}\n"}
    honest = [apps_job(stdio, f"print({secret!r})\n"), apps_job(call, f"def f(x):\n    return {secret!r}\n"),
              humaneval_job(check, f"    return {secret!r}\n")]
    assert all(r.passed for r in sandbox.run_many(honest))  # the honest answers pass ...
    thieves = [apps_job(stdio, STEAL + "print(loot())\n"),
               apps_job(call, STEAL + "def f(x):\n    return loot()\n"),
               humaneval_job(check, "    return loot()\n" + "".join("    " + l + "\n" for l in STEAL.splitlines())
                             .replace("    def loot", "def loot")),
               apps_job(call, STEAL + "def f(x):\n    raise ValueError(loot())\n"),
               apps_job(stdio, STEAL + "raise ValueError(loot())\n")]
    thieves[2] = humaneval_job(check, "    return loot()\n\n" + STEAL)
    for result in [sandbox.run(job) for job in thieves]:  # ... and the thieves find nothing
        assert not result.passed, result
        assert secret not in repr(result), result


@pytest.mark.parametrize("kind", ["object", "int", "str", "list"])
def test_always_equal_objects_cannot_cross(sandbox, kind):
    cls = {"object": "object", "int": "int", "str": "str", "list": "list"}[kind]
    body = (f"class Liar({cls}):\n"
            "    def __eq__(self, other):\n        return True\n"
            "    def __ne__(self, other):\n        return False\n"
            "    __hash__ = object.__hash__\n"
            "return Liar()")
    jobs = _attack_jobs(body, body)
    _assert_none_pass(sandbox, [jobs[0], jobs[2]])


def test_oversized_answers_are_wrong_answers_not_sandbox_errors(sandbox):
    """Return values the judge cannot print or that are huge are just wrong answers."""
    for body in ("return 10 ** 20000", "return [[[]]] * 200000", "return 'x' * 3_000_000"):
        _assert_none_pass(sandbox, [_attack_jobs(body)[0], _attack_jobs(body)[2]])


def _needs_fs(sb):
    if not sb.isolation.filesystem:
        pytest.skip(f"mode {sb.isolation.mode} does not isolate the filesystem (documented)")


def _reads(sb: Sandbox, path: str, expected: str) -> bool:
    """Whether a program can print the contents of `path` (an APPS-style stdin job expecting them)."""
    program = f"print(open({path!r}).read(), end='')\n"
    return sb.run(stdio_job(program, [("", expected)])).passed


def test_no_host_files(sandbox):
    """A canary in the evaluator's home and in the host /tmp, and /etc/shadow, are out of reach."""
    _needs_fs(sandbox)
    secret = _Secret().value
    home_canary = Path.home() / f".lmen-canary-{uuid.uuid4().hex[:8]}"
    tmp_canary = Path("/tmp") / f"lmen-canary-{uuid.uuid4().hex[:8]}"
    try:
        for path, mode in ((home_canary, 0o600), (tmp_canary, 0o644)):
            path.write_text(secret)
            path.chmod(mode)
        assert not _reads(sandbox, str(home_canary), secret)
        assert not _reads(sandbox, str(tmp_canary), secret)
        if os.path.exists("/etc/shadow") and os.access("/etc/shadow", os.R_OK):
            shadow = open("/etc/shadow").read()
            assert not _reads(sandbox, "/etc/shadow", shadow)
        listing = ("import os\nprint(sorted(os.listdir('/')), sorted(os.listdir('/tmp')), "
                   "os.path.exists(os.path.expanduser('~root/.bashrc')))\n")
        result = sandbox.run(stdio_job(listing, [("", "")]))
        assert "lmen-canary" not in result.extra.get("stdout", ""), result
    finally:
        for path in (home_canary, tmp_canary):
            path.unlink(missing_ok=True)


def test_no_capabilities_inside(sandbox):
    """The program holds no capability at all (effective, permitted, inheritable, ambient, bounding)."""
    if os.geteuid() != 0:
        pytest.skip("only root starts with capabilities to drop")
    program = ("caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')]\n"
               "print(' '.join(caps))\n")
    zeros = " ".join(["0000000000000000"] * 5)
    result = sandbox.run(stdio_job(program, [("", zeros + "\n")]))
    assert result.passed, result


OPEN_BY_HANDLE = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "class Handle(ctypes.Structure):\n"
    "    _fields_ = [('bytes', ctypes.c_uint), ('type', ctypes.c_int), ('f', ctypes.c_ubyte * 128)]\n"
    "h = Handle(128, 0)\n"
    "mount_id = ctypes.c_int()\n"
    "open('probe', 'w').close()\n"  # on the writable (tmpfs) working folder, which supports handles
    "rc = libc.name_to_handle_at(-100, b'probe', ctypes.byref(h), ctypes.byref(mount_id), 0)\n"
    "assert rc == 0, ctypes.get_errno()\n"
    "fd = libc.open_by_handle_at(os.open('.', os.O_RDONLY), ctypes.byref(h), os.O_RDONLY)\n"
    "print('opened' if fd >= 0 else 'refused')\n"
)


def test_open_by_handle_at_is_refused(sandbox):
    if os.geteuid() != 0:
        pytest.skip("without root there is no CAP_DAC_READ_SEARCH to lose")
    result = sandbox.run(stdio_job(OPEN_BY_HANDLE, [("", "opened\n")]))
    assert not result.passed and result.extra.get("stdout") == "refused\n", result


def test_unix_sockets_outside_are_unreachable(sandbox, tmp_path):
    if not sandbox.isolation.network or not sandbox.isolation.filesystem:
        pytest.skip(f"mode {sandbox.isolation.mode} does not isolate UNIX sockets (documented)")
    path = f"/tmp/lmen-sock-{uuid.uuid4().hex[:8]}"
    abstract = f"\0lmen-sock-{uuid.uuid4().hex[:8]}"
    servers = []
    for address in (path, abstract):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(address)
        s.listen(5)
        s.settimeout(0.1)
        servers.append(s)
    if os.path.exists(path):
        os.chmod(path, 0o777)
    program = (
        "import socket\n"
        f"for address in ({path!r}, {abstract!r}):\n"
        "    try:\n"
        "        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "        c.connect(address)\n"
        "        c.sendall(b'escaped')\n"
        "        print('connected')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    try:
        result = sandbox.run(stdio_job(program, [("", "connected\n")]))
        assert not result.passed, result
        for s in servers:
            with pytest.raises(OSError):
                s.accept()
    finally:
        for s in servers:
            s.close()
        if os.path.exists(path):
            os.unlink(path)


def test_deep_directories_do_not_spoil_later_samples(sandbox):
    """1,500 nested folders (in the working folder and in /tmp), then canonical solutions on the same
    worker: every one passes and nothing is reported as the sandbox's failure."""
    from lm_eval_noise.code_tasks.humaneval import humaneval_problems

    second = "'/tmp'" if sandbox.isolation.filesystem else "base + '/sub'"  # not the host's /tmp
    poison = ("import os\nbase = os.getcwd()\nos.mkdir('sub')\n"
              f"for top in (base, {second}):\n"
              "    os.chdir(top)\n    os.mkdir('x')\n    os.chdir('x')\n"
              "    for _ in range(1500):\n        os.mkdir('d')\n        os.chdir('d')\n"
              "    open('f', 'w').write('x')\n    os.chmod('.', 0)\n")
    sb = Sandbox(LIMITS, workers=1, isolation=sandbox.isolation, label=sandbox.marker)
    try:
        first = sb.run(script_job(poison + "assert False\n"))
        assert first.reason == "failed", first
        problems = humaneval_problems()[:20]
        results = [sb.run(humaneval_job(p, p["canonical_solution"])) for p in problems]
        assert [r.reason for r in results] == ["passed"] * 20
        assert sb.sandbox_errors == 0
    finally:
        sb.close()


SHM = (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "KEY, SIZE = 0x4C4D454E, 1 << 20\n"
)


def test_sysv_shm_is_not_shared_between_samples(sandbox):
    if not (sandbox.isolation.ipc_namespace or os.geteuid() == 0):
        pytest.skip("no fresh IPC namespace per test in this mode (documented)")
    writer = SHM + ("shm = libc.shmget(KEY, SIZE, 0o1666)\n"  # IPC_CREAT | 0666
                    "addr = libc.shmat(shm, None, 0)\n"
                    "ctypes.memmove(addr, b'left behind', 11)\n"
                    "libc.shmdt(ctypes.c_void_p(addr))\n")
    reader = SHM + ("shm = libc.shmget(KEY, 0, 0o666)\n"
                    "if shm >= 0:\n"
                    "    addr = libc.shmat(shm, None, 0)\n"
                    "    print(ctypes.string_at(addr, 11).decode())\n")
    assert sandbox.run(script_job(writer)).passed
    result = sandbox.run(stdio_job(reader, [("", "left behind\n")]))
    assert not result.passed, result


# ----------------------------------------------------------------------------------------- building blocks
def test_plain_data_round_trip_and_refusals():
    from lm_eval_noise.sandbox.plain_data import NotPlainData, decode, encode

    values = [None, True, False, 0, -1, 2**100, -(2**70), 1.5, float("inf"), 1 + 2j, "", "héllo\udcff",
              b"\x00\xff", [1, [2, (3,)]], (), {"a": [1], 2: None, (1, 2): "t"}, {1, 2}, frozenset({"x"})]
    for value in values:
        back = decode(encode(value))
        assert back == value and type(back) is type(value), value
    nan = decode(encode(float("nan")))
    assert nan != nan

    class Liar(int):
        def __eq__(self, other):
            return True

    assert type(decode(encode(Liar(3)))) is int and decode(encode(Liar(3))) != 4
    for bad in (object(), [lambda: 1], {1: print}):
        with pytest.raises(NotPlainData):
            encode(bad)
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(NotPlainData):
        encode(deep)
    for junk in (b"", b"X", b"i\xff\xff\xff\xff", b"l\x05\x00\x00\x00N", b"S\x01\x00\x00\x00l\x00\x00\x00\x00",
                 b"NN", b"l\x01\x00\x00\x00" * 300 + b"N"):
        with pytest.raises(ValueError):
            decode(junk)


def test_remove_tree_is_iterative_and_stays_on_its_filesystem(tmp_path):
    from lm_eval_noise.sandbox._harness import remove_tree

    top = tmp_path / "work"
    top.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    os.symlink(outside, top / "link")  # removed as a link, never followed
    fd = os.open(top, os.O_RDONLY)
    try:  # deeper than any recursion limit and far longer than PATH_MAX
        for _ in range(3000):
            os.mkdir("d" * 40, dir_fd=fd)
            new = os.open("d" * 40, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        with open(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd), "w") as f:
            f.write("x")
        os.fchmod(fd, 0)  # an unreadable folder at the bottom
    finally:
        os.close(fd)
    remove_tree(str(top))
    assert not top.exists()
    assert (outside / "keep").read_text() == "x"


def test_a_worker_whose_cleanup_failed_is_replaced(sandbox):
    """The server reports a failed cleanup with the sample's closing report; the next sample then runs
    on a fresh server, and the failure is not any sample's verdict."""
    sb = Sandbox(LIMITS, workers=1, isolation=sandbox.isolation, label=sandbox.marker)
    try:
        assert sb.run(GOOD).passed
        (server,) = sb._idle
        server.settle()  # the real closing report: clean
        server._closing = {"done": True, "clean": False, "detail": "cleanup failed: simulated"}
        assert sb.run(GOOD).passed
        assert sb.servers_replaced == 1 and sb._idle[0] is not server
        assert server.proc.poll() is not None  # the old one was ended
    finally:
        sb.close()
