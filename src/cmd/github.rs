//! `compare --github` and `regress github comment`: render the report to
//! the sizes GitHub takes and hand it to `github/`. A failure to post is
//! reported (on stderr and as an annotation) and never changes what the
//! comparison's gate says.

use std::path::Path;

use anyhow::Context;

use crate::cli::{CommentArg, GithubCommand, GithubCommentArgs, PostArgs};
use crate::compare::{FailOn, Gate};
use crate::exit::Exit;
use crate::github::{
    self, ActionsContext, Api, CheckOutcome, CheckReport, CommentMode, CommentOutcome, Conclusion,
    RetryPolicy, COMMENT_LIMIT, STEP_SUMMARY_LIMIT, SUMMARY_LIMIT,
};
use crate::report::{read_json, render_within, CompareView, Limit, TemplateFormat, Templates};
use crate::spec::Pipeline;

pub fn github(command: &GithubCommand) -> anyhow::Result<Exit> {
    match command {
        GithubCommand::Comment(args) => comment(args),
    }
}

/// The job's context from the process environment.
pub(super) fn context(post: &PostArgs) -> anyhow::Result<ActionsContext> {
    Ok(ActionsContext::from_env(
        &|name| std::env::var(name).ok(),
        &post.token_env,
    )?)
}

/// What `--github` publishes, besides the comment and check.
pub(super) struct Publish<'a> {
    pub view: &'a CompareView,
    pub gate: Gate,
    pub templates: &'a Templates,
    pub post: &'a PostArgs,
    pub annotate_warnings: bool,
    /// Where the whole report is when the job summary has to be shortened.
    pub full_output: Option<&'a Path>,
    /// The repository's work tree, where pipeline files are found.
    pub workdir: &'a Path,
}

/// `compare --github`: job summary, annotations, then comment and check.
/// Returns whether everything asked for was posted.
pub(super) fn publish(ctx: &ActionsContext, p: &Publish) -> bool {
    let mut ok = true;
    if let Some(path) = &ctx.step_summary {
        let budget = STEP_SUMMARY_LIMIT.saturating_sub(github::summary_size(path) as usize);
        let whole = match p.full_output {
            Some(out) => format!("`{}` (written by this job)", out.display()),
            None => "this job's log".to_string(),
        };
        let result = render_within(
            p.templates,
            TemplateFormat::Markdown,
            p.view,
            Limit::Bytes(budget),
            &whole,
        )
        .map_err(anyhow::Error::from)
        .and_then(|text| Ok(github::append_summary(path, &text)?));
        ok &= reported(result, "append the report to the job summary");
    }
    let place = |pipeline: &str| place_of(p.view, p.workdir, pipeline);
    for line in github::annotations(p.view, &place, p.annotate_warnings) {
        println!("{line}");
    }
    let sha = match &ctx.pull {
        Some(pull) if pull.from_fork => {
            anstream::eprintln!(
                "pull request #{} comes from a fork: its token cannot comment or set checks; the workflow_run job posts the JSON report (`regress github comment`)",
                pull.number
            );
            return ok;
        }
        Some(pull) => pull.head_sha.clone(),
        None => match &ctx.sha {
            Some(sha) => sha.clone(),
            None => return ok,
        },
    };
    let api = match api_for(ctx) {
        Ok(api) => api,
        Err(e) => return reported(Err(e), "post to GitHub") && ok,
    };
    let target = Target {
        pr: ctx.pull.as_ref().map(|pr| pr.number),
        sha: Some(&sha),
        whole: "the job summary of this workflow run",
    };
    post(&api, ctx, p.view, p.gate, p.templates, p.post, &target) && ok
}

/// A client for the job's API with the job's token.
fn api_for(ctx: &ActionsContext) -> anyhow::Result<Api> {
    let Some(token) = ctx.token.clone() else {
        anyhow::bail!(
            "${} is empty: give the step `env: {}: ${{{{ github.token }}}}` (or --token-env NAME)",
            ctx.token_env,
            ctx.token_env
        );
    };
    Ok(Api::new(&ctx.api_url, token, RetryPolicy::default())?)
}

/// Where a report goes: a pull request's comment, a commit's check.
struct Target<'a> {
    pr: Option<u64>,
    sha: Option<&'a str>,
    /// Where the whole report is, when the posted one is shortened.
    whole: &'a str,
}

/// Prints what could not be done; true when it was done.
fn reported(result: anyhow::Result<()>, what: &str) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            // One line, as an annotation, so the run's page shows it.
            let text = format!("{e:#}").replace('\n', " ");
            println!("::error title=regress could not {what}::{text}");
            anstream::eprintln!("error: could not {what}: {text}");
            false
        }
    }
}

/// The pipeline's file and the line of its `name:`, when the file is in
/// the work tree.
fn place_of(view: &CompareView, workdir: &Path, pipeline: &str) -> Option<github::Place> {
    let source = view.sources.get(pipeline)?;
    let text = std::fs::read_to_string(workdir.join(source)).ok()?;
    Some((source.clone(), Pipeline::name_line(&text, pipeline)))
}

/// Whether a comment mode posts a new comment for this view and gate.
fn creates(mode: CommentMode, view: &CompareView, gate: Gate) -> bool {
    let c = &view.counts;
    match mode {
        CommentMode::Always => true,
        CommentMode::OnChange => {
            c.regressed + c.suspect + c.improved + c.failed + c.fixed + c.missing > 0
        }
        CommentMode::OnRegression => gate != Gate::Pass,
        CommentMode::Never => false,
    }
}

fn mode_of(arg: CommentArg) -> CommentMode {
    match arg {
        CommentArg::Always => CommentMode::Always,
        CommentArg::OnChange => CommentMode::OnChange,
        CommentArg::OnRegression => CommentMode::OnRegression,
        CommentArg::Never => CommentMode::Never,
    }
}

/// The check's conclusion: failure by the gate; neutral when no case
/// could be judged; success otherwise.
fn conclusion(view: &CompareView, gate: Gate) -> Conclusion {
    let c = &view.counts;
    if gate != Gate::Pass {
        Conclusion::Failure
    } else if c.regressed + c.suspect + c.improved + c.unchanged + c.inconclusive == 0 {
        Conclusion::Neutral
    } else {
        Conclusion::Success
    }
}

/// Upserts the comment on the target's pull request and sets the check
/// on its commit, each when given. Returns whether all of it was done.
fn post(
    api: &Api,
    ctx: &ActionsContext,
    view: &CompareView,
    gate: Gate,
    templates: &Templates,
    args: &PostArgs,
    target: &Target,
) -> bool {
    let whole = match &ctx.run_url {
        Some(url) => format!("[{}]({url})", target.whole),
        None => target.whole.to_string(),
    };
    let key = args
        .comment_key
        .clone()
        .unwrap_or_else(|| view.pipelines.join(","));
    // One rendering serves both the comment (after its marker line) and
    // the check's summary: within the smaller of their two limits.
    let marker_len = github::marker(&key).chars().count() + 1;
    let limit = (COMMENT_LIMIT - marker_len).min(SUMMARY_LIMIT);
    let rendered = render_within(
        templates,
        TemplateFormat::Markdown,
        view,
        Limit::Chars(limit),
        &whole,
    );
    let text = || rendered.as_deref().map_err(|e| anyhow::anyhow!("{e}"));
    let mut ok = true;
    let mode = mode_of(args.comment);
    if let (Some(pr), true) = (target.pr, mode != CommentMode::Never) {
        let result = (|| -> anyhow::Result<()> {
            let text = text()?;
            let author = match &args.comment_author {
                Some(a) => a.clone(),
                None => github::identity(api)?,
            };
            let body = github::comment_body(&key, text);
            let create = creates(mode, view, gate);
            let outcome = github::upsert(api, &ctx.repo, pr, &key, &author, &body, create)?;
            anstream::eprintln!("{}", describe_comment(pr, &outcome));
            Ok(())
        })();
        ok &= reported(result, &format!("post the comment on pull request #{pr}"));
    }
    if let (Some(sha), false) = (target.sha, args.no_check) {
        let result = (|| -> anyhow::Result<()> {
            let summary = text()?;
            let title = match view.counts.total {
                0 => "nothing to compare".to_string(),
                _ => view.counts.phrase(),
            };
            let outcome = github::publish_check(
                api,
                &ctx.repo,
                &CheckReport {
                    sha,
                    conclusion: conclusion(view, gate),
                    title: &title,
                    summary,
                    details_url: ctx.run_url.as_deref(),
                },
            )?;
            match outcome {
                CheckOutcome::Check { url, .. } => {
                    anstream::eprintln!("set the check `{}` on {sha}: {url}", github::CHECK_NAME)
                }
                CheckOutcome::Status => anstream::eprintln!(
                    "checks are not permitted to this token; set the commit status `{}` on {sha}",
                    github::CHECK_NAME
                ),
            }
            Ok(())
        })();
        ok &= reported(result, &format!("set the check on {sha}"));
    }
    ok
}

fn describe_comment(pr: u64, outcome: &CommentOutcome) -> String {
    match outcome {
        CommentOutcome::Created { url, .. } => format!("commented on pull request #{pr}: {url}"),
        CommentOutcome::Updated { url, .. } => {
            format!("updated the comment on pull request #{pr}: {url}")
        }
        CommentOutcome::Unchanged { url, .. } => {
            format!("the comment on pull request #{pr} is up to date: {url}")
        }
        CommentOutcome::Skipped(why) => format!("no comment on pull request #{pr}: {why}"),
    }
}

/// `regress github comment`: posts a saved JSON report. Exit 0 when posted,
/// 3 when GitHub did not take it.
fn comment(args: &GithubCommentArgs) -> anyhow::Result<Exit> {
    let ctx = context(&args.post)?;
    let text = std::fs::read_to_string(&args.report)
        .with_context(|| format!("cannot read the report {}", args.report.display()))?;
    let view = read_json(&text).with_context(|| format!("{}", args.report.display()))?;
    let on = if args.fail_on.is_empty() {
        FailOn::ANY
    } else {
        super::fail_on_of(&args.fail_on, false)
    };
    let gate = view.gate(on);
    let pr = match args.pr.or(ctx.pull.as_ref().map(|p| p.number)) {
        Some(pr) => pr,
        None => anyhow::bail!(
            "no pull request: this event has none; pass --pr N (the number the pull request's run saved)"
        ),
    };
    let templates = Templates::new(args.templates.as_deref())?;
    let api = api_for(&ctx)?;
    // The check belongs on the pull request's head; a report measured at
    // another commit (the PR moved on, or the artifact lies) gets no check.
    let sha = match pull_head(&api, &ctx, pr) {
        Ok(head) if head == view.head.sha => Some(head),
        Ok(head) => {
            anstream::eprintln!(
                "warning: the report measured {} but pull request #{pr}'s head is now {}; no check is set",
                view.head.short,
                &head[..head.len().min(7)]
            );
            None
        }
        Err(e) => {
            reported(Err(e), &format!("read pull request #{pr}"));
            return Ok(Exit::Remote);
        }
    };
    let target = Target {
        pr: Some(pr),
        sha: sha.as_deref(),
        whole: "the job summary of the pull request's workflow run",
    };
    let posted = post(&api, &ctx, &view, gate, &templates, &args.post, &target);
    Ok(if posted { Exit::Success } else { Exit::Remote })
}

/// The head commit of pull request `pr`, from the API.
fn pull_head(api: &Api, ctx: &ActionsContext, pr: u64) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Pull {
        head: Head,
    }
    #[derive(serde::Deserialize)]
    struct Head {
        sha: String,
    }
    let what = format!("read pull request #{pr}");
    let reply = api.send(
        http::Method::GET,
        &format!("{}/pulls/{pr}", ctx.repo.path()),
        None::<&()>,
        &what,
    )?;
    Ok(reply.json::<Pull>(&what)?.head.sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{row, view};

    #[test]
    fn comment_modes_decide_what_creates_a_comment() {
        let quiet = view(vec![row(0, "unchanged"), row(1, "inconclusive")]);
        let changed = view(vec![row(0, "unchanged"), row(1, "improved")]);
        let regressed = view(vec![row(0, "regressed")]);
        let cases = [
            (CommentMode::Always, &quiet, Gate::Pass, true),
            (CommentMode::OnChange, &quiet, Gate::Pass, false),
            (CommentMode::OnChange, &changed, Gate::Pass, true),
            (CommentMode::OnRegression, &changed, Gate::Pass, false),
            (CommentMode::OnRegression, &regressed, Gate::Regressed, true),
            (CommentMode::Never, &regressed, Gate::Regressed, false),
        ];
        for (mode, v, gate, want) in cases {
            assert_eq!(creates(mode, v, gate), want, "{mode:?} {gate:?}");
        }
    }

    #[test]
    fn the_check_is_neutral_when_nothing_was_judged() {
        assert_eq!(
            conclusion(&view(vec![row(0, "regressed")]), Gate::Regressed),
            Conclusion::Failure
        );
        assert_eq!(
            conclusion(&view(vec![row(0, "unchanged")]), Gate::Pass),
            Conclusion::Success
        );
        assert_eq!(
            conclusion(&view(vec![row(0, "new"), row(1, "skipped")]), Gate::Pass),
            Conclusion::Neutral
        );
        assert_eq!(conclusion(&view(vec![]), Gate::Pass), Conclusion::Neutral);
    }
}
