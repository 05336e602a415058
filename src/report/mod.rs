//! Reports: view models built from a comparison or a record, rendered to
//! strings: markdown through minijinja templates, the terminal by its own
//! renderer, JSON from a versioned serde struct. Templates in `templates/`
//! are embedded; a directory given with `--templates` overrides them file
//! by file. Nothing here writes files.

mod fit;
#[cfg(test)]
pub(crate) mod fixtures;
mod format;
mod json;
mod markdown;
mod row;
mod terminal;
mod view;

use std::path::Path;

pub use fit::{render_within, Limit};
pub use format::{
    format_bytes, format_count, format_duration, format_p, format_pct, format_rate, format_value,
};
pub use json::{read_json, render_json, JsonReport, JsonReportError, JSON_SCHEMA_VERSION};
pub use markdown::{code_span, escape_text};
pub use row::{ExactView, RowData, RowDisplay, RowView, StatView};
pub use terminal::{render_compare_terminal, render_record_terminal};
pub use view::{
    CompareView, Counts, FailureView, GeoMeanView, Omitted, OverheadData, OverheadView,
    SectionView, SideView, SpeedupData, SpeedupDisplay, SpeedupView, ViewParts,
};

/// The embedded default templates: (name, source).
const DEFAULT_TEMPLATES: [(&str, &str); 1] = [(
    "compare.md.j2",
    include_str!("../../templates/compare.md.j2"),
)];

/// A template that could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read template {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
}

/// Output formats rendered through templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFormat {
    Markdown,
}

impl TemplateFormat {
    fn template(self) -> &'static str {
        match self {
            TemplateFormat::Markdown => "compare.md.j2",
        }
    }
}

/// The minijinja environment with the default templates, each replaced by a
/// file of the same name in `overrides` when there is one.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Loads the templates.
    pub fn new(overrides: Option<&Path>) -> Result<Templates, ReportError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        markdown::configure(&mut env);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        for (name, source) in DEFAULT_TEMPLATES {
            let text = match overrides.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| ReportError::Read { path, source })?,
                None => source.to_string(),
            };
            env.add_template_owned(name, text)
                .map_err(|source| ReportError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders a comparison in a template format.
    pub fn render(
        &self,
        format: TemplateFormat,
        view: &CompareView,
    ) -> Result<String, ReportError> {
        let name = format.template();
        let template = self
            .env
            .get_template(name)
            .map_err(|source| ReportError::Template {
                name: name.to_string(),
                source,
            })?;
        template
            .render(minijinja::context! { report => minijinja::value::Serde(view) })
            .map_err(|source| ReportError::Template {
                name: name.to_string(),
                source,
            })
    }
}
