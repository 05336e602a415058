//! Link-time setup for `regress-native`, the native backend's worker and
//! the only binary that links libtorch (`regress` itself does not load it).
//!
//! libtorch lives inside the Python environment's `torch/lib`. Embedding that
//! directory as an rpath lets the worker start without `LD_LIBRARY_PATH`, and
//! `--no-as-needed` keeps `libtorch_cuda.so` in the dynamic section even though
//! no symbol of it is referenced directly: without it CUDA is silently absent
//! at run time on a GPU runner.

use std::env;
use std::path::Path;

/// The binary that links libtorch.
const WORKER: &str = "regress-native";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=python");
    if env::var_os("CARGO_FEATURE_NATIVE").is_none() {
        return;
    }
    let Ok(lib_dir) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is unset: the binary will need LD_LIBRARY_PATH to find libtorch");
        return;
    };
    let arg = |flag: &str| println!("cargo:rustc-link-arg-bin={WORKER}={flag}");
    arg(&format!("-Wl,-rpath,{lib_dir}"));
    arg("-Wl,--no-as-needed");
    for lib in ["torch_cuda", "torch_cpu", "torch", "c10"] {
        if Path::new(&lib_dir).join(format!("lib{lib}.so")).exists() {
            arg(&format!("-l{lib}"));
        }
    }
    arg("-Wl,--as-needed");
    // torch/version.py sits beside torch/lib; record the version the binary
    // was linked against so records can name it without a Python probe.
    let version_py = Path::new(&lib_dir).join("../version.py");
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=REGRESS_LIBTORCH_VERSION={version}");
}
