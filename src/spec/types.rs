//! The closed vocabularies of a pipeline (models, backends, devices,
//! precisions, compile modes, ...), each spelled one way in pipelines and
//! records, and what each backend can do with them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::defaults;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order they are documented.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in pipelines and records.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the pipeline spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The valid spellings, for error messages.
            pub fn valid() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl StringEnum for $name {
            fn parse_str(text: &str) -> Option<Self> {
                $name::parse(text)
            }
            fn valid_list() -> String {
                $name::valid()
            }
        }
    };
}

/// What every `string_enum!` type offers, for code generic over them.
pub(crate) trait StringEnum: Sized {
    fn parse_str(text: &str) -> Option<Self>;
    fn valid_list() -> String;
}

string_enum! {
    /// Models of the built-in zoo.
    BuiltinModel {
        Mlp => "mlp",
        Attention => "attention",
        TransformerBlock => "transformer_block",
        TransformerLm => "transformer_lm",
        LinearComponents => "linear_components",
        Rope => "rope",
    }
}

string_enum! {
    /// How a case is executed.
    BackendKind { Python => "python", Native => "native", Command => "command", Mock => "mock" }
}

string_enum! {
    /// What a command pipeline measures: each run's wall time, or the
    /// metrics the command prints as JSON on its last line.
    CommandOutput { Time => "time", Json => "json" }
}

string_enum! {
    /// Where a case runs; `auto` picks CUDA, then MPS, then CPU.
    DeviceChoice { Auto => "auto", Cuda => "cuda", Cpu => "cpu", Mps => "mps" }
}

string_enum! {
    /// Numeric precision of weights and inputs.
    Precision { Fp32 => "fp32", Bf16 => "bf16", Fp16 => "fp16", Fp8 => "fp8" }
}

string_enum! {
    /// `eager` or a `torch.compile` mode.
    CompileMode {
        Eager => "eager",
        Default => "default",
        ReduceOverhead => "reduce-overhead",
        MaxAutotune => "max-autotune",
        MaxAutotuneNoCudagraphs => "max-autotune-no-cudagraphs",
    }
}

string_enum! {
    /// The part of a training or inference step that is timed.
    Phase { Forward => "forward", Backward => "backward", Step => "step" }
}

string_enum! {
    /// Cache state around each timed iteration: `warm` for end-to-end steps,
    /// `cold` (a buffer of twice the cache size is written before each
    /// iteration) for kernel micro-benchmarks.
    L2Policy { Warm => "warm", Cold => "cold" }
}

string_enum! {
    /// How a reduced precision is applied: weights and inputs cast to the
    /// dtype, or fp32 weights under `torch.autocast`.
    CastMode { Dtype => "dtype", Autocast => "autocast" }
}

string_enum! {
    /// How fp8 cases run: e4m3 linear layers through `torch._scaled_mm`
    /// (forward only), or torchao's float8 training.
    Fp8Recipe { ScaledMm => "scaled_mm", Torchao => "torchao" }
}

string_enum! {
    /// Inductor's caches at the first call: `cold` (an empty cache per
    /// process) or `warm` (compiled once, reset, and timed on the second compile).
    CompileCache { Cold => "cold", Warm => "warm" }
}

/// Which parts of the model `torch.compile` wraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompileScope {
    /// The whole model.
    Model,
    /// Each block of every `nn.ModuleList` (regional compilation).
    Blocks,
    /// Named submodules or functions, matched by dotted path or last name.
    Names(Vec<String>),
}

/// Options passed to `torch.compile` beside the mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompileOptions {
    pub fullgraph: bool,
    /// `None` leaves torch's automatic dynamic shapes on.
    pub dynamic: Option<bool>,
    pub backend: String,
    pub scope: CompileScope,
    pub cache: CompileCache,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            fullgraph: false,
            dynamic: None,
            backend: defaults::COMPILE_BACKEND.into(),
            scope: CompileScope::Model,
            cache: CompileCache::Cold,
        }
    }
}

/// The accuracy gate: `check: false` turns it off; tolerances override the
/// per-dtype defaults of the worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyConfig {
    pub check: bool,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    /// Largest RMSE of the difference relative to the reference's RMS.
    pub rmse: Option<f64>,
}

impl Default for AccuracyConfig {
    fn default() -> Self {
        AccuracyConfig {
            check: true,
            rtol: None,
            atol: None,
            rmse: None,
        }
    }
}

impl BuiltinModel {
    /// Parameters the model accepts, from `model.args` or a matrix axis.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            BuiltinModel::Mlp => &["batch", "seq_len", "dim", "hidden"],
            BuiltinModel::Attention => &["batch", "seq_len", "embed_dim", "heads", "causal"],
            BuiltinModel::TransformerBlock => {
                &["batch", "seq_len", "dim", "heads", "hidden", "causal"]
            }
            BuiltinModel::TransformerLm => &[
                "batch", "seq_len", "vocab", "dim", "heads", "hidden", "layers",
            ],
            BuiltinModel::LinearComponents => &["batch", "seq_len", "d_in", "d_out", "components"],
            BuiltinModel::Rope => &["batch", "seq_len", "heads", "head_dim"],
        }
    }
}

impl BackendKind {
    /// Compile modes this backend can execute.
    pub fn compile_modes(self) -> &'static [CompileMode] {
        match self {
            BackendKind::Python | BackendKind::Mock | BackendKind::Command => CompileMode::ALL,
            BackendKind::Native => &[CompileMode::Eager],
        }
    }

    /// Phases this backend can time.
    pub fn phases(self) -> &'static [Phase] {
        match self {
            BackendKind::Python | BackendKind::Mock => Phase::ALL,
            // A command is timed as a whole: one "phase", named forward.
            BackendKind::Native | BackendKind::Command => &[Phase::Forward],
        }
    }

    /// Built-in models this backend implements.
    pub fn builtins(self) -> &'static [BuiltinModel] {
        match self {
            BackendKind::Python | BackendKind::Mock => BuiltinModel::ALL,
            BackendKind::Native => &[BuiltinModel::Mlp],
            BackendKind::Command => &[],
        }
    }
}
