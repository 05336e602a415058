//! Command-line arguments (clap derive types only).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Catch performance regressions in PyTorch workloads before they merge.
#[derive(Debug, Parser)]
#[command(name = "regress", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files; errors name the file, line, column and key.
    Validate {
        /// Pipeline files (workflows/*.yaml).
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// List the cases a pipeline expands to, with their ids.
    List(ListArgs),
    /// Run pipelines and store the results under the checked-out commit.
    Run(RunCommand),
    /// Compare the stored results of two commits and report per case.
    Compare(CompareArgs),
    /// Run pipelines at two revisions on this machine, interleaved, and compare.
    Ab(AbArgs),
    /// Share the results kept in git (`--store git`): push, pull, import,
    /// or list what a commit has.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Post to GitHub outside `compare --github`.
    #[command(subcommand)]
    Github(GithubCommand),
}

#[derive(Debug, Subcommand)]
pub enum GithubCommand {
    /// Post a saved JSON report (`compare --format json`) as the sticky
    /// comment and the `regress` check of a pull request: the job that a
    /// fork's pull request triggers with `workflow_run`, whose token may
    /// write.
    Comment(GithubCommentArgs),
}

#[derive(Debug, Args)]
pub struct GithubCommentArgs {
    /// The JSON report to post.
    #[arg(long)]
    pub report: PathBuf,
    /// The pull request; by default the one of the job's event.
    #[arg(long)]
    pub pr: Option<u64>,
    #[command(flatten)]
    pub post: PostArgs,
    /// Exit with status 1 on these findings of the report, as `compare
    /// --fail-on` (the check's conclusion follows the same gate)
    /// [default: any].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FINDINGS")]
    pub fail_on: Vec<FailOnArg>,
    /// Directory whose templates replace the built-in ones of the same name.
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

/// How regress posts to GitHub; shared by `compare --github` and `github
/// comment`.
#[derive(Debug, Args)]
pub struct PostArgs {
    /// The environment variable holding the token.
    #[arg(long, value_name = "NAME", default_value = "GITHUB_TOKEN")]
    pub token_env: String,
    /// When to post the sticky comment: `always`, `on-change` (a case
    /// regressed, improved, failed or was fixed), `on-regression` (the
    /// gate failed) or `never`. An existing comment is always kept up to
    /// date.
    #[arg(long, value_enum, default_value_t = CommentArg::Always)]
    pub comment: CommentArg,
    /// What makes comments distinct: one comment per key and pull request
    /// [default: the pipeline names, comma-separated].
    #[arg(long, value_name = "KEY")]
    pub comment_key: Option<String>,
    /// The login the token posts as, when `GET /user` cannot tell (a
    /// GitHub App's token) [default: asked, else github-actions[bot]].
    #[arg(long, value_name = "LOGIN")]
    pub comment_author: Option<String>,
    /// Do not set the `regress` check (or commit status).
    #[arg(long)]
    pub no_check: bool,
}

/// When the sticky comment is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommentArg {
    Always,
    OnChange,
    OnRegression,
    Never,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Pipeline files.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Only cases whose label contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What to run and where to store it; shared by `run` and `ab`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline files to run, in order (paths in the repository, for `ab`).
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Only cases whose label or pipeline name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Independent repeats of every case (fresh processes), instead of
    /// each pipeline's `runner.processes`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub processes: Option<u32>,
    /// Probe the interpreter, torch and device anew (and make inductor's
    /// vector-ISA checks again) instead of reusing the answer an earlier
    /// run cached, then keep the new one; also $REGRESS_REFRESH_PROBE=1.
    /// The cache is in $REGRESS_CACHE_DIR, else $XDG_CACHE_HOME/regress
    /// or ~/.cache/regress.
    #[arg(long)]
    pub refresh_probe: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where records are kept; shared by `run`, `compare` and `ab`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// `dir` (`.regress` at the repository root, the default), `git` (a
    /// ref of the repository, shared with `regress store push`), or a
    /// directory (write one named `git` or `dir` as `./git`). Without the
    /// flag, $REGRESS_STORE.
    #[arg(long, value_name = "git|dir|DIR")]
    pub store: Option<String>,
    #[command(flatten)]
    pub store_ref: StoreRefArg,
}

/// The ref of the git store.
#[derive(Debug, Args)]
pub struct StoreRefArg {
    /// The ref the git store keeps results in. Without the flag,
    /// $REGRESS_STORE_REF [default: refs/regress/results].
    #[arg(long, value_name = "REF")]
    pub store_ref: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Send this clone's results to a remote: fetch, merge by union of
    /// paths, push without force; retry while other pushes land first.
    /// Exit status 3 when the remote cannot be reached or refuses.
    Push(StorePushArgs),
    /// Fetch a remote's results and merge them into this clone's.
    Pull(StorePullArgs),
    /// Show what is stored for a commit: pipelines, machines, runs, shards.
    Ls(StoreLsArgs),
    /// Copy the records of directory stores (`run --store DIR`, as shard
    /// jobs upload them) into the git store of this clone; no network.
    Import(StoreImportArgs),
}

#[derive(Debug, Args)]
pub struct StoreImportArgs {
    /// Directory stores to import.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub store_ref: StoreRefArg,
}

#[derive(Debug, Args)]
pub struct StorePushArgs {
    /// The remote to push to.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// How long to keep retrying while other pushes land first (500ms,
    /// 30s, 3m…) [default: 3m].
    #[arg(long)]
    pub timeout: Option<String>,
    #[command(flatten)]
    pub store_ref: StoreRefArg,
}

#[derive(Debug, Args)]
pub struct StorePullArgs {
    /// The remote to fetch from.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    #[command(flatten)]
    pub store_ref: StoreRefArg,
}

#[derive(Debug, Args)]
pub struct StoreLsArgs {
    /// The commit whose results to show: branch, tag, sha or expression.
    #[arg(default_value = "HEAD")]
    pub rev: String,
    #[command(flatten)]
    pub store_ref: StoreRefArg,
}

/// `regress run`: what to run, and which share of it.
#[derive(Debug, Args)]
pub struct RunCommand {
    #[command(flatten)]
    pub run: RunArgs,
    /// Run only shard I of N (e.g. 3/16), a deterministic share of the
    /// cases; eager and compiled cases of one point stay together. Each
    /// shard's record names its shard, and `compare` merges them.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::spec::Shard>,
    /// Exit with status 0 although cases failed, for exploring. Without it
    /// a run in which a case crashed, timed out, ran out of memory or
    /// failed its accuracy check exits with status 1. Every case runs and
    /// is stored either way.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A coloured table.
    Terminal,
    /// Markdown, as posted in a PR comment or job summary.
    Markdown,
    /// Every number, versioned, for other tools.
    Json,
}

/// How a report is written; shared by `compare` and `ab`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Terminal)]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Directory whose templates replace the built-in ones of the same name.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Exit with status 1 on these findings, comma-separated: `regression`
    /// (a case got slower, bigger or gained graph breaks, or is suspect: far
    /// worse than the threshold but not yet significant),
    /// `confirmed-regression` (significant regressions only; suspect cases
    /// pass), `failure` (a case that ran at base crashes, times out, runs out
    /// of memory or fails its accuracy check at head), or `any` (regression
    /// and failure).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FINDINGS")]
    pub fail_on: Vec<FailOnArg>,
    /// The same as `--fail-on any`: exit with status 1 when a case regressed
    /// (or is suspect) or failed at head.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Compare results from machines whose fingerprints differ (the report says so).
    #[arg(long)]
    pub allow_fingerprint_mismatch: bool,
    /// Use runs made with uncommitted changes too; by default they are left
    /// out (they measured code no commit holds) and the report says so.
    #[arg(long)]
    pub allow_dirty: bool,
}

/// A finding that `--fail-on` turns into exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    /// A case regressed, or is suspect (far worse than the threshold but
    /// not yet significant).
    Regression,
    /// A case regressed significantly; suspect cases do not fail the job.
    ConfirmedRegression,
    /// A case fails at head that did not fail at base.
    Failure,
    /// Either.
    Any,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base revision: branch, tag, sha or expression such as HEAD~1. By
    /// default its merge-base with head is used.
    #[arg(required_unless_present = "records")]
    pub base: Option<String>,
    /// Head revision.
    #[arg(default_value = "HEAD")]
    pub head: String,
    /// Use the base revision itself, not its merge-base with head.
    #[arg(long)]
    pub exact: bool,
    /// How many first-parent commits to walk back from the base for one with results.
    #[arg(long, default_value_t = 50)]
    pub max_walk: usize,
    /// Compare two record files instead of two commits (no git needed).
    #[arg(long, num_args = 2, value_names = ["BASE_JSON", "HEAD_JSON"], conflicts_with_all = ["base", "exact"])]
    pub records: Option<Vec<PathBuf>>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this pipeline (by name).
    #[arg(long)]
    pub pipeline: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Inside GitHub Actions: append the report to the job summary,
    /// annotate regressed and failed cases, upsert the sticky PR comment
    /// and set the `regress` check on the PR's head commit. The gate then
    /// defaults to `--fail-on any`.
    #[arg(long)]
    pub github: bool,
    /// With --github: also annotate inconclusive and noisy cases as warnings.
    #[arg(long, requires = "github")]
    pub annotate_warnings: bool,
    #[command(flatten)]
    pub post: PostArgs,
}

#[derive(Debug, Args)]
pub struct AbArgs {
    /// Base revision.
    pub base: String,
    /// Head revision.
    pub head: String,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    /// After the pipelines' processes, keep adding interleaved pairs of
    /// processes (one base, one head) to the cases not yet decided, until
    /// each is regressed, improved or unchanged, or the budget is spent.
    /// Verdicts come from intervals valid at every look, so looking after
    /// every pair raises no false alarms beyond each pipeline's alpha.
    #[arg(long)]
    pub until_conclusive: bool,
    /// With --until-conclusive: the wall time the whole measurement may
    /// take; no pair starts that would be expected to end after it. The
    /// pipelines' own processes always run.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration_arg, requires = "until_conclusive")]
    pub budget: Duration,
    /// With --until-conclusive: at most this many pairs per case.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..), requires = "until_conclusive")]
    pub max_pairs: u32,
}

/// A duration as pipelines write it (`90s`, `10m`).
fn duration_arg(text: &str) -> Result<Duration, String> {
    crate::spec::parse_duration(text)
        .ok_or_else(|| format!("expected {}", crate::spec::DURATION_HINT))
}
