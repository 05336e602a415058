"""The regress python worker: measures one case in a fresh process.

Protocol: regress writes one JSON request on stdin and reads JSON lines on
stdout. The real stdout is kept for the protocol and file descriptor 1 is
pointed at stderr, so prints from user code (or C libraries) can never
corrupt it. Every line is an object with a "type": "probe", "result",
"skipped", "accuracy_fail" or "error".

This file is the entry point and imports no torch: a request of another
protocol version is refused at once, and inductor's cache directory is set
before torch is imported. What a request does is in regress_case.py (the
methodology is described there), with its helpers in modules of their own:
regress_models (model and phase), regress_precision, regress_compile,
regress_accuracy, regress_timing (warm-up, the measuring loop, its clocks
and stop rule) and regress_gpu.
"""

import json
import math
import os
import shutil
import struct
import sys
import tempfile
import traceback

# The version of the messages exchanged with regress (src/runner/protocol.rs):
# both sides check it and refuse a peer of another version.
PROTOCOL_VERSION = 5

_proto = None

# Where regress's fork server listens, when it runs one: a run request is
# then measured in a child forked from the server, which imported torch
# once for the whole run (see fork_server).
FORK_SERVER_ENV = "REGRESS_FORK_SERVER"
# The exit status of a forked child that could not join its client's
# process group (which regress kills on a timeout): the client measures the
# case itself instead.
CHILD_NOT_PLACED = 86
# How this process came to measure its case, for the result's diagnostics.
_started = {"how": "interpreter"}


def finite(value):
    """JSON has no NaN or Infinity: non-finite numbers travel as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def send(obj):
    obj = dict(obj, protocol=PROTOCOL_VERSION)
    _proto.write(json.dumps(finite(obj)) + "\n")
    _proto.flush()


def fail(kind, message, diagnostics=None):
    send({"type": "error", "kind": kind, "message": message, "diagnostics": diagnostics or {}})
    sys.exit(3)


# The helpers this file held before they moved to modules of their own,
# still reachable from it for scripts written against it; imported (with
# torch) on first use, so that importing this file imports no torch.
_MOVED = {
    "Phase": "regress_models", "build_model": "regress_models", "outputs_of": "regress_models",
    "Skip": "regress_models", "place": "regress_precision", "to_fp8": "regress_precision",
    "compile_model": "regress_compile", "CompileWatch": "regress_compile",
    "check_accuracy": "regress_accuracy", "AccuracyFail": "regress_accuracy",
    "StopRule": "regress_timing", "rel_iqr": "regress_timing", "cache_flusher": "regress_timing",
    "GpuSampler": "regress_gpu",
}


def __getattr__(name):
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def run(req):
    """Measures the case of `req` in this process and sends the result."""
    import regress_case

    send(regress_case.run(req))


def handle(req):
    """Answers one request whose protocol version was checked."""
    cache_dir = None
    if req.get("cmd") == "run":
        # An empty inductor cache per process: the first call then measures a
        # cold compile, and nothing leaks from one case into the next.
        cache_dir = tempfile.mkdtemp(prefix="regress-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        os.environ["TRITON_CACHE_DIR"] = os.path.join(cache_dir, "triton")
    try:
        try:
            import torch
        except ImportError as exc:  # reported by regress with the fix
            fail("no_torch", f"{sys.executable} cannot import torch: {exc}")
        import regress_case
        from regress_accuracy import AccuracyFail
        from regress_models import Skip

        try:
            if req["cmd"] == "probe":
                send(regress_case.probe(req))
            elif req["cmd"] == "run":
                result = regress_case.run(req)
                result["diagnostics"]["process_start"] = dict(_started)
                send(result)
            else:
                fail("protocol", f"unknown command {req['cmd']!r}")
        except Skip as exc:
            send({"type": "skipped", "reason": str(exc)})
        except AccuracyFail as exc:
            diagnostics = regress_case.failed_case_diagnostics()
            diagnostics["accuracy"] = exc.report
            send({"type": "accuracy_fail", "message": str(exc), "accuracy": exc.report,
                  "diagnostics": diagnostics})
        except torch.cuda.OutOfMemoryError as exc:
            fail("oom", str(exc).splitlines()[0] if str(exc) else "CUDA out of memory",
                 regress_case.failed_case_diagnostics())
        except Exception as exc:  # the case fails; regress goes on with the next
            traceback.print_exc()
            fail("exception", f"{type(exc).__name__}: {exc}", regress_case.failed_case_diagnostics())
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


def main():
    global _proto
    _proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    line = sys.stdin.readline()
    if not line:
        fail("protocol", "no request on stdin")
    req = json.loads(line)
    # Checked before torch is imported, so a mismatch is reported at once.
    if req.get("protocol") != PROTOCOL_VERSION:
        fail(
            "protocol",
            f"regress sent protocol {req.get('protocol')}, this worker speaks {PROTOCOL_VERSION}: "
            "the worker and the binary come from different builds",
        )
    if req.get("cmd") == "serve":
        fork_server(req["socket"], req.get("preload") or [])
        return
    server = os.environ.get(FORK_SERVER_ENV)
    if server and req.get("cmd") == "run":
        through_fork_server(server, req)
    handle(req)


# ---------------------------------------------------------------- fork server
#
# Importing torch takes one to three seconds per process, and torch._dynamo
# and inductor as much again: most of a short case's wall time. regress
# starts one fork server per backend: a process that imports them once,
# touches no device (CUDA is initialised by each child for itself), and
# forks a child per case and repeat. regress still starts a process per
# repeat, `regress_worker.py` as always: it hands the server its protocol
# and stderr descriptors over a Unix socket, the child joins its process
# group (so a timeout or Ctrl-C kills it with the client), answers on those
# descriptors, and the client exits with the child's status. Each child is
# a fresh process as far as the case goes: its own memory, its own
# inductor cache, its own device context; only the imported modules are
# shared, copy-on-write.


def send_message(sock, obj, fds=()):
    """One length-prefixed JSON message, with descriptors attached."""
    import socket

    data = json.dumps(obj).encode()
    head = struct.pack("!Q", len(data))
    if fds:
        socket.send_fds(sock, [head + data], list(fds))
    else:
        sock.sendall(head + data)


def receive_message(sock, max_fds=0):
    """(message, descriptors) from send_message; (None, []) at EOF."""
    import socket

    buf, fds = b"", []
    while len(buf) < 8:
        if max_fds and not buf:
            # The descriptors travel with the message's first bytes.
            chunk, fds, _, _ = socket.recv_fds(sock, 1 << 16, max_fds)
        else:
            chunk = sock.recv(1 << 16)
        if not chunk:
            return None, fds
        buf += chunk
    (size,) = struct.unpack("!Q", buf[:8])
    buf = buf[8:]
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            return None, fds
        buf += chunk
    return json.loads(buf[:size]), fds


def through_fork_server(path, req):
    """Has the fork server measure `req` in a child and exits with the
    child's status. Returns only when the server cannot take it (the
    caller then measures the case in this process), never once a child
    may have answered."""
    import signal
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        send_message(sock, {"request": req, "env": dict(os.environ), "cwd": os.getcwd(), "pgid": os.getpgrp()},
                     fds=(_proto.fileno(), 2))
        forked, _ = receive_message(sock)
    except (OSError, ValueError) as exc:
        print(f"regress: the fork server ({path}) cannot take the case ({exc}); measuring in this process",
              file=sys.stderr)
        sock.close()
        _started["fork_server_unused"] = f"cannot reach it: {exc}"
        return
    if not forked or "pid" not in forked:
        why = (forked or {}).get("error", "it closed the connection")
        print(f"regress: the fork server could not fork ({why}); measuring in this process", file=sys.stderr)
        sock.close()
        _started["fork_server_unused"] = f"it could not fork: {why}"
        return
    try:
        ended, _ = receive_message(sock)
    except (OSError, ValueError):
        ended = None
    sock.close()
    if ended is None:
        fail("exception", f"the fork server ended while its child {forked['pid']} measured the case")
    if ended.get("status") == CHILD_NOT_PLACED:
        print("regress: the forked child could not join this process group; measuring in this process",
              file=sys.stderr)
        _started["fork_server_unused"] = "the child could not join this process group"
        return
    if "signal" in ended:
        # Die of the child's signal, so regress reports it as the child's.
        signal.signal(ended["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), ended["signal"])
        os._exit(128 + ended["signal"])
    _proto.flush()
    os._exit(ended.get("status", 3))


def fork_server(path, preload):
    """Serves run requests on the Unix socket `path` until regress closes
    this process's stdin (it says `{"type": "ready"}` once it listens);
    `preload` names what to import beforehand ("inductor": dynamo and
    inductor, for compiled cases)."""
    import gc
    import select
    import socket
    import threading

    # A CUDA driver initialised before a fork cannot be used in the child.
    # Should anything ask torch.cuda.is_available() while importing, it
    # asks NVML instead of initialising the driver (the children get the
    # clients' environment back, without this).
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    import torch
    import regress_case  # noqa: F401 - imported once, for every child

    if "inductor" in preload:
        import torch._dynamo  # noqa: F401
        import torch._inductor.compile_fx  # noqa: F401
    if torch.cuda.is_initialized():
        sys.exit("regress fork server: importing torch initialised CUDA, so forked children could not use it")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    # Nothing the children share is touched again: keep the collector from
    # writing to every shared page (copy-on-write) in each of them.
    gc.collect()
    gc.freeze()
    send({"type": "ready"})
    while True:
        readable, _, _ = select.select([server, sys.stdin], [], [])
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1 << 10):
            return  # regress is done, or gone
        if server not in readable:
            continue
        conn, _ = server.accept()
        with conn:
            try:
                msg, fds = receive_message(conn, max_fds=2)
            except (OSError, ValueError) as exc:
                print(f"regress fork server: a bad request ({exc})", file=sys.stderr)
                continue
            if msg is None or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                continue
            # A Python thread could hold a lock that would stay held in the
            # child forever. (Native pools started by imports, OpenBLAS's,
            # reset themselves in the child through pthread_atfork, as
            # they do for torch's DataLoader workers.)
            threads = threading.active_count()
            if threads != 1:
                send_message(conn, {"error": f"the server runs {threads} Python threads"})
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                forked_child(conn, msg, fds)
            for fd in fds:
                os.close(fd)
            try:
                send_message(conn, {"pid": pid})
            except OSError:
                pass  # the client is gone; its child goes with its group
            _, status = os.waitpid(pid, 0)
            ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {
                "status": os.WEXITSTATUS(status)}
            try:
                send_message(conn, ended)
            except OSError:
                pass


def reseed():
    """Seeds Python's and numpy's global generators from the OS, as a fresh
    interpreter does at start: forked children would otherwise all draw
    the server's numbers. (torch's default generator starts from a fixed
    seed in every process anyway.)"""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def forked_child(conn, msg, fds):
    """The child: joins the client's process group, takes its descriptors,
    environment and directory, answers the request and exits (never
    returns into the server's loop)."""
    global _proto
    import atexit

    code = 3
    try:
        conn.close()
        try:
            os.setpgid(0, msg["pgid"])
        except OSError as exc:
            os.write(fds[1], f"regress: the forked child cannot join group {msg['pgid']}: {exc}\n".encode())
            code = CHILD_NOT_PLACED
            return
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(fds[1], 1)
        os.dup2(fds[1], 2)
        os.close(fds[1])
        sys.stdout = sys.stderr
        _proto = os.fdopen(fds[0], "w", buffering=1)
        _started["how"] = "forked"
        os.environ.clear()
        os.environ.update(msg["env"])
        os.chdir(msg["cwd"])
        reseed()
        try:
            handle(msg["request"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 3)
    except BaseException:  # noqa: BLE001 - reported, and the child still exits
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            if _proto is not None:
                _proto.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main()
