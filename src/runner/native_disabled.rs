//! The native backend when regress is built without the `native` feature:
//! every case is reported as skipped with the reason, never dropped.

use super::{Backend, Environment, Outcome, RunContext, RunnerError};
use crate::spec::{Case, Pipeline};

pub struct NativeBackend;

impl NativeBackend {
    pub fn new(_pipeline: &Pipeline, _ctx: RunContext) -> Self {
        NativeBackend
    }
}

impl Backend for NativeBackend {
    fn environment(&mut self) -> Result<Environment, RunnerError> {
        Ok(Environment::default())
    }

    fn run_process(&mut self, _case: &Case, _repeat: u32) -> Outcome {
        Outcome::Skipped("this regress was built without the `native` feature (libtorch)".into())
    }
}
