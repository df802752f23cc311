//! Hook templating: `{{backup.name}}`, `{{backup.namespace}}`, `{{pod.name}}`,
//! `{{pod.namespace}}`, `{{container}}` and `{{phase}}` inside argv elements and a hook's stdin
//! text, substituted without a shell. A variable stands in for part of one element and never
//! splits it, so a value cannot add argv elements, whatever characters it holds. The values are
//! Kubernetes names (lowercase letters, digits, `-` and `.`) and the phase, so in stdin they
//! cannot end a quoted SQL string either.
//!
//! Grammar: `{{`, optional spaces, a name of lowercase words joined by dots (`[a-z][a-z0-9_]*`
//! segments), optional spaces, `}}`. A well-formed name that is not one of the six variables is
//! a validation error, never an empty string. Text in braces that is not a well-formed name
//! (`{{.State.Running}}`, `{{ json . }}`, a `{{` never closed) is left as it is, so Go
//! templates and JSON passed to tools such as `docker inspect` keep working.

use std::fmt;

use super::Phase;

/// The variables a hook command may use.
pub const VARIABLES: &[&str] = &[
    "backup.name",
    "backup.namespace",
    "pod.name",
    "pod.namespace",
    "container",
    "phase",
];

/// The values the variables stand for when a hook runs.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    /// The Backup's name.
    pub backup_name: &'a str,
    /// The Backup's namespace (Velero's namespace).
    pub backup_namespace: &'a str,
    /// The pod's name.
    pub pod_name: &'a str,
    /// The pod's namespace.
    pub pod_namespace: &'a str,
    /// The container the hook runs in.
    pub container: &'a str,
    /// `pre` or `post`.
    pub phase: Phase,
}

impl TemplateContext<'_> {
    fn value(&self, name: &str) -> Option<&str> {
        Some(match name {
            "backup.name" => self.backup_name,
            "backup.namespace" => self.backup_namespace,
            "pod.name" => self.pod_name,
            "pod.namespace" => self.pod_namespace,
            "container" => self.container,
            "phase" => self.phase.as_str(),
            _ => return None,
        })
    }
}

/// Where in a hook a variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An argv element (0-based).
    Command(usize),
    /// The stdin text.
    Stdin,
}

impl Place {
    /// What the place is part of: `command` or `stdin`.
    pub fn part(self) -> &'static str {
        match self {
            Place::Command(_) => "command",
            Place::Stdin => "stdin",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Command(element) => write!(f, "command element {element}"),
            Place::Stdin => f.write_str("stdin"),
        }
    }
}

/// A variable a hook uses that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    /// The name between the braces.
    pub name: String,
    /// Where it is.
    pub place: Place,
}

impl fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown template variable {{{{{}}}}} in {}; known: {}",
            self.name,
            self.place,
            VARIABLES
                .iter()
                .map(|v| format!("{{{{{v}}}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The first unknown variable of `argv`, if any.
pub fn check(argv: &[String]) -> Result<(), UnknownVariable> {
    argv.iter()
        .enumerate()
        .try_for_each(|(element, arg)| check_text(arg, Place::Command(element)))
}

/// The first unknown variable of a hook's stdin text, if any.
pub fn check_stdin(text: &str) -> Result<(), UnknownVariable> {
    check_text(text, Place::Stdin)
}

fn check_text(text: &str, place: Place) -> Result<(), UnknownVariable> {
    match pieces(text).find_map(|piece| match piece {
        Piece::Variable(name) if !VARIABLES.contains(&name) => Some(name),
        _ => None,
    }) {
        Some(name) => Err(UnknownVariable {
            name: name.to_owned(),
            place,
        }),
        None => Ok(()),
    }
}

/// Whether any element of `argv` uses a variable.
pub fn uses_variables(argv: &[String]) -> bool {
    argv.iter().any(|arg| text_uses_variables(arg))
}

/// Whether `text` (an argv element, a stdin text) uses a variable.
pub fn text_uses_variables(text: &str) -> bool {
    pieces(text).any(|p| matches!(p, Piece::Variable(_)))
}

/// `argv` with every variable replaced by its value; the same number of elements.
/// Run [`check`] first: an unknown variable is an error here too.
pub fn render(
    argv: &[String],
    context: &TemplateContext<'_>,
) -> Result<Vec<String>, UnknownVariable> {
    argv.iter()
        .enumerate()
        .map(|(element, arg)| render_text(arg, context, Place::Command(element)))
        .collect()
}

/// A hook's stdin text with every variable replaced by its value.
pub fn render_stdin(text: &str, context: &TemplateContext<'_>) -> Result<String, UnknownVariable> {
    render_text(text, context, Place::Stdin)
}

fn render_text(
    text: &str,
    context: &TemplateContext<'_>,
    place: Place,
) -> Result<String, UnknownVariable> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable(name) => match context.value(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(UnknownVariable {
                        name: name.to_owned(),
                        place,
                    })
                }
            },
        }
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// Splits `arg` into literal text and variables.
fn pieces(arg: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = arg;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut search_from = 0;
        while let Some(offset) = rest[search_from..].find("{{") {
            let open = search_from + offset;
            if let Some((name, len)) = variable_at(&rest[open..]) {
                if open > 0 {
                    let text = &rest[..open];
                    rest = &rest[open..];
                    return Some(Piece::Text(text));
                }
                rest = &rest[len..];
                return Some(Piece::Variable(name));
            }
            search_from = open + 1;
        }
        let text = rest;
        rest = "";
        Some(Piece::Text(text))
    })
}

/// The variable name and the length of `{{ name }}` if `text` starts with one.
fn variable_at(text: &str) -> Option<(&str, usize)> {
    let inner = text.strip_prefix("{{")?;
    let close = inner.find("}}")?;
    let name = inner[..close].trim_matches(' ');
    well_formed(name).then_some((name, 2 + close + 2))
}

fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn context() -> TemplateContext<'static> {
        TemplateContext {
            backup_name: "nightly-20261125",
            backup_namespace: "velero",
            pod_name: "db-0",
            pod_namespace: "shop",
            container: "postgres",
            phase: Phase::Pre,
        }
    }

    #[test]
    fn every_variable_is_substituted() {
        let rendered = render(
            &argv(&[
                "/dump",
                "--label={{backup.namespace}}/{{backup.name}}",
                "{{pod.namespace}}.{{pod.name}}",
                "{{container}}",
                "{{phase}}",
            ]),
            &context(),
        )
        .unwrap();
        assert_eq!(
            rendered,
            argv(&[
                "/dump",
                "--label=velero/nightly-20261125",
                "shop.db-0",
                "postgres",
                "pre"
            ])
        );
    }

    #[test]
    fn spaces_inside_the_braces_are_allowed() {
        let rendered = render(&argv(&["{{ pod.name }}", "{{pod.name  }}"]), &context()).unwrap();
        assert_eq!(rendered, argv(&["db-0", "db-0"]));
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it_and_its_element() {
        let error = check(&argv(&["/dump", "--to={{backup.nmae}}"])).unwrap_err();
        assert_eq!(
            error,
            UnknownVariable {
                name: "backup.nmae".to_owned(),
                place: Place::Command(1)
            }
        );
        assert!(error.to_string().starts_with(
            "unknown template variable {{backup.nmae}} in command element 1; known: {{backup.name}}"
        ));
        assert!(render(&argv(&["{{backup.nmae}}"]), &context()).is_err());
    }

    #[test]
    fn text_that_is_not_a_variable_is_left_alone() {
        let literal = argv(&[
            "{{.State.Running}}",
            "{{ json . }}",
            "{{",
            "}}",
            "{{}}",
            "{{Pod.Name}}",
            "{\"a\":{\"b\":1}}",
            "{{pod.name",
        ]);
        assert_eq!(check(&literal), Ok(()));
        assert!(!uses_variables(&literal));
        assert_eq!(render(&literal, &context()).unwrap(), literal);
    }

    #[test]
    fn a_literal_opening_before_a_variable_is_kept() {
        let rendered = render(&argv(&["{{{{pod.name}}}}"]), &context()).unwrap();
        assert_eq!(rendered, argv(&["{{db-0}}"]));
    }

    #[test]
    fn stdin_text_is_rendered_whole_and_its_unknown_variables_named() {
        let sql = "SELECT pg_backup_start('{{backup.name}}', true); -- {{ pod.name }} {\"k\": 1}";
        assert!(text_uses_variables(sql));
        assert_eq!(
            render_stdin(sql, &context()).unwrap(),
            "SELECT pg_backup_start('nightly-20261125', true); -- db-0 {\"k\": 1}"
        );
        assert!(!text_uses_variables("UNLOCK TABLES; {{.Go}}"));
        assert_eq!(check_stdin("UNLOCK TABLES; {{.Go}}"), Ok(()));
        let error = check_stdin("SELECT '{{backup.nmae}}';").unwrap_err();
        assert_eq!(error.place, Place::Stdin);
        assert!(error
            .to_string()
            .starts_with("unknown template variable {{backup.nmae}} in stdin; known: "));
        assert!(render_stdin("{{backup.nmae}}", &context()).is_err());
    }

    #[test]
    fn values_never_split_or_add_elements() {
        let hostile = TemplateContext {
            backup_name: "a b; rm -rf / \n\"$(id)\"",
            ..context()
        };
        let rendered = render(&argv(&["/bin/echo", "{{backup.name}}"]), &hostile).unwrap();
        assert_eq!(rendered.len(), 2);
        assert_eq!(rendered[1], "a b; rm -rf / \n\"$(id)\"");
    }

    #[test]
    fn values_are_not_rescanned_for_variables() {
        let tricky = TemplateContext {
            backup_name: "{{pod.name}}",
            ..context()
        };
        let rendered = render(&argv(&["{{backup.name}}"]), &tricky).unwrap();
        assert_eq!(rendered, argv(&["{{pod.name}}"]));
    }

    #[test]
    fn commands_without_variables_render_unchanged() {
        let plain = argv(&["/sbin/fsfreeze", "--freeze", "/data"]);
        assert!(!uses_variables(&plain));
        assert_eq!(render(&plain, &context()).unwrap(), plain);
    }
}
