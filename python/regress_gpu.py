"""The GPU as the worker sees it: whether torch can use it, its identity,
and its clocks, temperature, power and throttling while a case is timed.

Imports no torch at module level: the GPU sampler's tests run without it.
"""

import shutil
import subprocess


def cuda_status():
    """(usable, why not): torch.cuda.is_available(), and when it is False
    the warnings it raised on the way (a driver too old for this wheel's
    CUDA says so only there), for regress to quote."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    if usable:
        return True, None
    said = [" ".join(str(w.message).split()) for w in caught]
    return False, "; ".join(said) or "torch.cuda.is_available() is False"


def gpu_uuid():
    """The UUID of the GPU measured on (cuda:0 of the visible ones), which
    names it in nvidia-smi's list; None when torch cannot say."""
    import torch

    try:
        uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
    except Exception:  # noqa: BLE001 - the record does without it
        return None
    return str(uuid) if uuid is not None else None


def gpu_state(device):
    """Clocks, temperature and power of the GPU in use, from nvidia-smi."""
    if device != "cuda" or shutil.which("nvidia-smi") is None:
        return None
    target = nvml_target()
    fields = ["clocks.sm", "clocks.mem", "temperature.gpu", "power.draw"]
    for reasons in ("clocks_event_reasons.active", "clocks_throttle_reasons.active"):
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--id={target}", f"--query-gpu={','.join(fields + [reasons])}",
                 "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode == 0 and out.stdout.strip():
            values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
            names = ["sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w", "clock_event_reasons"]
            state = {}
            for name, value in zip(names, values):
                try:
                    state[name] = float(value) if name != "clock_event_reasons" else value
                except ValueError:
                    state[name] = value
            return state
    return None


# Clock-event reasons (NVML's nvmlClocksEventReason* bits) that mean the GPU
# slowed itself down. Idle (0x1), application clocks (0x2), sync boost
# (0x10) and display clocks (0x100) are not throttling.
THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
# How often the GPU is read while the case is timed: often enough to see a
# few-second throttle, rare enough to cost no measurable CPU time.
GPU_SAMPLE_PERIOD_S = 0.05
# How long the sampler may wait for its first reading before timing starts
# (nvidia-smi needs a few hundred milliseconds to start on a large host).
FIRST_GPU_READING_WAIT_S = 2.0


def nvml_target():
    """The GPU in use as nvidia-smi and NVML name it: its PCI bus id (the
    one name that does not depend on CUDA_VISIBLE_DEVICES or on the order
    CUDA lists GPUs in), else its UUID, else its index."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        return f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
    uuid = getattr(props, "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else str(torch.cuda.current_device())


def parse_reasons(value):
    """A clock-event reason mask from NVML (an int) or nvidia-smi (`0x…`)."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 16)
    except ValueError:
        return None


def summarise_gpu_samples(samples, source):
    """What the GPU did while the case was timed, from readings of
    (sm_clock_mhz, mem_clock_mhz, temperature_c, power_w, reasons mask);
    None when there were none. `throttled` is the share of readings with
    a throttling reason set (THROTTLE_REASONS)."""
    if not samples:
        return None

    def column(i):
        return sorted(v[i] for v in samples if isinstance(v[i], (int, float)))

    def median(values):
        return values[len(values) // 2] if values else None

    sm, mem, temp, power = column(0), column(1), column(2), column(3)
    seen, throttled = 0, 0
    for v in samples:
        mask = v[4]
        if mask is None:
            continue
        hot = mask & sum(THROTTLE_REASONS)
        seen |= hot
        throttled += bool(hot)
    return {
        "source": source,
        "readings": len(samples),
        "sm_clock_mhz_min": sm[0] if sm else None,
        "sm_clock_mhz_median": median(sm),
        "mem_clock_mhz_median": median(mem),
        "temperature_c_max": temp[-1] if temp else None,
        "power_w_median": median(power),
        "power_w_max": power[-1] if power else None,
        "throttle_reasons": [name for bit, name in sorted(THROTTLE_REASONS.items()) if seen & bit],
        "throttled_share": throttled / len(samples),
    }


class GpuSampler:
    """Reads clocks, temperature, power and clock-event reasons of the GPU
    in the background while a case is timed: through NVML (nvidia-ml-py's
    `pynvml`) when it imports, else from `nvidia-smi -lms`, which prints a
    line per period until it is stopped. Either way the timed loop itself
    does nothing more; `stop()` returns `summarise_gpu_samples`."""

    def __init__(self, target):
        self.target = target
        self.samples = []
        self.source = None
        self._stop = None
        self._thread = None
        self._proc = None

    def start(self):
        import threading

        self._stop = threading.Event()
        self._first = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            if self.target.startswith("GPU-"):
                handle = pynvml.nvmlDeviceGetHandleByUUID(self.target)
            elif ":" in self.target:
                handle = pynvml.nvmlDeviceGetHandleByPciBusId(self.target)
            else:
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(self.target))
            self.source = "nvml"
            self._thread = threading.Thread(target=self._poll_nvml, args=(pynvml, handle), daemon=True)
        except Exception:  # noqa: BLE001 - no NVML: nvidia-smi instead
            if shutil.which("nvidia-smi") is None:
                return self
            fields = "clocks.sm,clocks.mem,temperature.gpu,power.draw,clocks_event_reasons.active"
            if nvidia_smi_reasons_field() == "clocks_throttle_reasons.active":
                fields = fields.replace("clocks_event_reasons.active", "clocks_throttle_reasons.active")
            try:
                self._proc = subprocess.Popen(
                    ["nvidia-smi", f"--id={self.target}", f"--query-gpu={fields}",
                     "--format=csv,noheader,nounits", "-lms", str(int(GPU_SAMPLE_PERIOD_S * 1000))],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )
            except OSError:
                return self
            self.source = "nvidia-smi"
            self._thread = threading.Thread(target=self._read_smi, daemon=True)
        self._thread.start()
        # nvidia-smi takes a moment to start: wait for its first reading, so
        # that a short timed loop is not over before the GPU was read once.
        self._first.wait(FIRST_GPU_READING_WAIT_S)
        return self

    def _poll_nvml(self, pynvml, handle):
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons")
        while not self._stop.is_set():
            try:
                self.samples.append((
                    pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                    pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
                    pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                    pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                    reasons(handle),
                ))
                self._first.set()
            except Exception:  # noqa: BLE001 - a reading that fails is left out
                pass
            self._stop.wait(GPU_SAMPLE_PERIOD_S)

    def _read_smi(self):
        for line in self._proc.stdout:
            values = [v.strip() for v in line.split(",")]
            if len(values) != 5:
                continue

            def number(v):
                try:
                    return float(v)
                except ValueError:
                    return None

            self.samples.append((*map(number, values[:4]), parse_reasons(values[4])))
            self._first.set()

    def stop(self):
        if self._stop is not None:
            self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return summarise_gpu_samples(list(self.samples), self.source)


_REASONS_FIELD = []


def nvidia_smi_reasons_field():
    """`clocks_event_reasons.active` (driver R535 and newer), else the older
    name `clocks_throttle_reasons.active`; asked once per process."""
    if not _REASONS_FIELD:
        field = "clocks_event_reasons.active"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode != 0:
                field = "clocks_throttle_reasons.active"
        except (OSError, subprocess.TimeoutExpired):
            pass
        _REASONS_FIELD.append(field)
    return _REASONS_FIELD[0]
