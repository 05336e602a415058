//! Every default a pipeline gets for a key it leaves out, with the reason
//! for its value. Validation fills pipelines from here, the README's
//! defaults paragraph describes these, and the python worker receives the
//! resolved values in each request instead of keeping a copy.

use std::time::Duration;

use super::{BackendKind, CastMode, DeviceChoice, Fp8Recipe, L2Policy, Phase, Precision};

/// Backend: the torch.compile path is what users come for.
pub const BACKEND: BackendKind = BackendKind::Python;
/// Device: the GPU when there is one, so a pipeline runs unchanged on a
/// laptop and on a GPU runner.
pub const DEVICE: DeviceChoice = DeviceChoice::Auto;
/// Independent repeats per case: three processes give the run-to-run
/// variance two degrees of freedom per side, the fewest a t-test between
/// processes can use.
pub const PROCESSES: u32 = 3;
/// Phases: inference is what most write-ups time first.
pub const PHASES: [Phase; 1] = [Phase::Forward];

/// Warm-up iterations: enough for cuDNN/cuBLAS heuristics and allocator
/// caches to settle (the python worker also waits for a stable graph count).
pub const WARMUP_ITERS: u64 = 10;
/// Warm-up iterations of a command: each one is a whole process start.
pub const COMMAND_WARMUP_ITERS: u64 = 1;
/// Warm-up time: long enough for GPU clocks to ramp from idle.
pub const WARMUP_TIME: Duration = Duration::from_millis(100);
/// Measured iterations at least: quartiles and a trimmed mean need a few dozen.
pub const MEASURE_ITERS: u64 = 30;
/// Measured runs of a command at least: each pays a process start.
pub const COMMAND_MEASURE_ITERS: u64 = 10;
/// Measuring time at least: spans several scheduler and clock-governor
/// periods, so one disturbance cannot dominate a process.
pub const MEASURE_MIN_TIME: Duration = Duration::from_secs(1);
/// Measuring time at most per process: bounds a noisy case's cost.
pub const MEASURE_MAX_TIME: Duration = Duration::from_secs(10);
/// Relative IQR below which sampling stops before `max_time`: 2 % resolves
/// the default 3 % threshold without spending the whole budget on quiet cases.
pub const TARGET_REL_IQR: f64 = 0.02;
/// Time one worker process may take, compile and all: max-autotune of a
/// large model takes minutes.
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// L2 state: warm, as end-to-end steps run in training and serving.
pub const L2: L2Policy = L2Policy::Warm;
/// Reduced precision as a dtype cast, as the seeds' write-ups do.
pub const CAST: CastMode = CastMode::Dtype;
/// fp8 through `torch._scaled_mm`, which needs no extra package.
pub const FP8: Fp8Recipe = Fp8Recipe::ScaledMm;
/// torch.compile backend.
pub const COMPILE_BACKEND: &str = "inductor";

/// Practical threshold: changes below 3 % are not worth a red check on
/// shared GPU runners, whose run-to-run noise is of that order.
pub const THRESHOLD: f64 = 0.03;
/// Significance level; strict because a CI gate runs many tests.
pub const ALPHA: f64 = 0.01;

/// Warm-up and measured iterations for a backend: a command pays a whole
/// process start per iteration, so it gets fewer.
pub fn iterations(backend: BackendKind) -> (u64, u64) {
    match backend {
        BackendKind::Command => (COMMAND_WARMUP_ITERS, COMMAND_MEASURE_ITERS),
        _ => (WARMUP_ITERS, MEASURE_ITERS),
    }
}

/// Tolerances of the accuracy gate for one precision of the measured output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// `allclose` relative tolerance.
    pub rtol: f64,
    /// `allclose` absolute tolerance.
    pub atol: f64,
    /// When `allclose` fails: largest RMSE of the difference relative to
    /// the reference's RMS.
    pub rmse: f64,
}

/// The accuracy gate's tolerances for a precision. `rtol`/`atol` are
/// torch.testing's defaults for the dtype (fp8 is compared in the dtype it
/// computes in, with e4m3's 3-bit mantissa); the RMSE bounds sit a little
/// above the dtype's unit roundoff times the error growth of a few layers
/// of reductions.
pub fn tolerance(precision: Precision) -> Tolerance {
    let (rtol, atol, rmse) = match precision {
        Precision::Fp32 => (1.3e-6, 1e-5, 1e-4),
        Precision::Fp16 => (1e-3, 1e-5, 5e-3),
        Precision::Bf16 => (1.6e-2, 1e-5, 3e-2),
        Precision::Fp8 => (1.25e-1, 1e-3, 1.5e-1),
    };
    Tolerance { rtol, atol, rmse }
}
