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
import sys
import tempfile
import traceback

# The version of the messages exchanged with regress (src/runner/protocol.rs):
# both sides check it and refuse a peer of another version.
PROTOCOL_VERSION = 5

_proto = None


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
                send(regress_case.run(req))
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
    handle(req)


if __name__ == "__main__":
    main()
