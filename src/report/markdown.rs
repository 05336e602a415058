//! Markdown that outside text cannot break. Case labels come from users'
//! YAML, branch names and commit subjects from anyone who can open a pull
//! request; in a PR comment such text must not end a table row, start a
//! heading, ping people (`@org/team`), inject HTML or close the hidden
//! marker. Markdown templates (`*.md.j2`) therefore escape every value by
//! default; the `code` filter renders a value as a code span instead, and
//! values marked safe (the templates' own markup) pass through.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, Output, State};

/// The name of the custom auto-escape mode of markdown templates.
const MARKDOWN: &str = "markdown";

/// Templates whose names end so are markdown and escape by default.
const MARKDOWN_SUFFIX: &str = ".md.j2";

/// A zero-width space: after `@` it keeps GitHub from reading a mention
/// while the text looks the same (the entity survives markdown).
const NO_MENTION: &str = "@&#8203;";

/// Text for a markdown paragraph or table cell, shown as written.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '\r' | '\n' | '\t' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str(NO_MENTION),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' | '|' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Text as an inline code span, shown as written: nothing inside a code
/// span is markup, mentions or HTML. In a table a `|` would still end the
/// cell, so it is escaped there (and a backslash before it doubled, so the
/// escape cannot be undone); line breaks become spaces.
pub fn code_span(text: &str, in_table: bool) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut body = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\r' | '\n' | '\t' => body.push(' '),
            '|' if in_table => {
                if body.ends_with('\\') {
                    body.push('\\');
                }
                body.push_str("\\|");
            }
            _ => body.push(c),
        }
    }
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick, or with spaces at both
    // ends, loses one space each side: pad so what remains is the text.
    let pad = body.starts_with('`')
        || body.ends_with('`')
        || (body.starts_with(' ') && body.ends_with(' ') && !body.trim().is_empty());
    if pad {
        format!("{fence} {body} {fence}")
    } else {
        format!("{fence}{body}{fence}")
    }
}

/// The `code` filter: `{{ label | code }}` in a table cell,
/// `{{ label | code(false) }}` elsewhere.
fn code_filter(value: &Value, in_table: Option<bool>) -> Value {
    let text = match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    };
    Value::from_safe_string(code_span(&text, in_table.unwrap_or(true)))
}

/// Writes a value: escaped as markdown text in markdown templates unless
/// marked safe; as minijinja would elsewhere.
fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if matches!(state.auto_escape(), AutoEscape::Custom(name) if name == MARKDOWN) {
        if value.is_safe() {
            return out
                .write_str(value.as_str().unwrap_or_default())
                .map_err(Error::from);
        }
        if value.is_none() || value.is_undefined() {
            return Ok(());
        }
        let text = match value.as_str() {
            Some(s) => escape_text(s),
            None => escape_text(&value.to_string()),
        };
        return out.write_str(&text).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// Sets up an environment so markdown templates escape by default and
/// have the `code` filter.
pub(super) fn configure(env: &mut Environment) {
    env.set_auto_escape_callback(|name| {
        if name.ends_with(MARKDOWN_SUFFIX) {
            AutoEscape::Custom(MARKDOWN.into())
        } else {
            minijinja::default_auto_escape_callback(name)
        }
    });
    env.set_formatter(formatter);
    env.add_filter("code", code_filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_a_table_ping_or_inject_html() {
        let hostile = "a|b <img src=x onerror=alert(1)> @org/team <!-- regress -->\n# h";
        let out = escape_text(hostile);
        assert!(!out.contains('<'), "{out}");
        assert!(!out.contains('\n'), "{out}");
        assert!(!out.contains("@org"), "{out}");
        assert!(!out.contains("-->"), "{out}");
        // Every pipe is escaped.
        assert_eq!(out.matches('|').count(), out.matches("\\|").count());
        assert_eq!(escape_text("mlp[b=1]_x"), "mlp\\[b=1\\]\\_x");
    }

    #[test]
    fn code_spans_use_a_longer_fence_than_the_text_holds() {
        assert_eq!(code_span("plain", true), "`plain`");
        assert_eq!(code_span("a`b", false), "``a`b``");
        assert_eq!(code_span("`x", false), "`` `x ``");
        assert_eq!(code_span("a|b", true), "`a\\|b`");
        assert_eq!(code_span("a|b", false), "`a|b`");
        // A backslash before a pipe cannot turn the pipe's escape into a
        // literal backslash that ends the cell.
        assert_eq!(code_span("a\\|b", true), "`a\\\\\\|b`");
        assert_eq!(code_span("two\nlines", true), "`two lines`");
    }

    #[test]
    fn markdown_templates_escape_unless_safe_or_code() {
        let mut env = Environment::new();
        configure(&mut env);
        env.add_template("t.md.j2", "{{ x }} {{ x | code }} {{ m }}")
            .unwrap();
        env.add_template("t.txt", "{{ x }}").unwrap();
        let ctx =
            minijinja::context! { x => "a|<b>", m => Value::from_safe_string("<!-- m -->".into()) };
        let md = env.get_template("t.md.j2").unwrap().render(&ctx).unwrap();
        assert_eq!(md, "a\\|&lt;b&gt; `a\\|<b>` <!-- m -->");
        let txt = env.get_template("t.txt").unwrap().render(&ctx).unwrap();
        assert_eq!(txt, "a|<b>");
    }
}
