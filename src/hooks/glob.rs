//! Glob patterns as Velero matches namespace and resource names (gobwas/glob without
//! separators): `*` any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!abc]`
//! character classes, `{a,b}` alternatives, `\` escapes the next character.
//!
//! Owns pattern compilation and matching only.

use std::fmt;

/// Most `{…}` expansions a pattern may produce (`{a,b}{c,d}` expands to 4).
const MAX_EXPANSIONS: usize = 256;

/// A compiled glob pattern, keeping its source text for messages.
///
/// Alternatives are expanded at compile time into plain sequences, which are matched with
/// the linear-backtracking wildcard algorithm (no exponential blow-up on many `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: String,
    expansions: Vec<Vec<Atom>>,
}

/// A token of an expanded pattern: everything but alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Literal(char),
    AnyRun,
    AnyOne,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Atom {
    /// Whether this single-character atom matches `c` (never true for `AnyRun`).
    fn matches_char(&self, c: char) -> bool {
        match self {
            Atom::Literal(l) => *l == c,
            Atom::AnyOne => true,
            Atom::AnyRun => false,
            Atom::Class { negated, ranges } => {
                ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negated
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyRun,
    AnyOne,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternatives(Vec<Vec<Token>>),
}

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// `[` without its `]`.
    #[error("glob pattern {pattern:?} has an unclosed '['")]
    UnclosedClass {
        /// The pattern as written.
        pattern: String,
    },
    /// `[]` or `[!]`.
    #[error("glob pattern {pattern:?} has an empty character class")]
    EmptyClass {
        /// The pattern as written.
        pattern: String,
    },
    /// `{` without its `}`.
    #[error("glob pattern {pattern:?} has an unclosed '{{'")]
    UnclosedAlternatives {
        /// The pattern as written.
        pattern: String,
    },
    /// A trailing `\`.
    #[error("glob pattern {pattern:?} ends with an unfinished escape '\\'")]
    DanglingEscape {
        /// The pattern as written.
        pattern: String,
    },
    /// `{…}` groups that multiply into too many alternatives.
    #[error("glob pattern {pattern:?} expands to more than 256 alternatives")]
    TooManyAlternatives {
        /// The pattern as written.
        pattern: String,
    },
}

impl Glob {
    /// Compiles `pattern`.
    pub(crate) fn new(pattern: &str) -> Result<Self, GlobError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut parser = Parser {
            pattern,
            chars: &chars,
            pos: 0,
        };
        let tokens = parser.sequence(false)?;
        let expansions = expand(&tokens).ok_or_else(|| GlobError::TooManyAlternatives {
            pattern: pattern.to_owned(),
        })?;
        Ok(Glob {
            pattern: pattern.to_owned(),
            expansions,
        })
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.expansions
            .iter()
            .any(|atoms| match_atoms(atoms, &text))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

struct Parser<'a> {
    pattern: &'a str,
    chars: &'a [char],
    pos: usize,
}

impl Parser<'_> {
    /// Parses until the end, or (inside `{…}`) until an unescaped `,` or `}`.
    fn sequence(&mut self, in_alternatives: bool) -> Result<Vec<Token>, GlobError> {
        let mut tokens = Vec::new();
        while let Some(&c) = self.chars.get(self.pos) {
            if in_alternatives && (c == ',' || c == '}') {
                break;
            }
            self.pos += 1;
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '\\' => Token::Literal(self.escaped()?),
                '[' => self.class()?,
                '{' => self.alternatives()?,
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        Ok(tokens)
    }

    fn escaped(&mut self) -> Result<char, GlobError> {
        let c = self
            .chars
            .get(self.pos)
            .copied()
            .ok_or_else(|| GlobError::DanglingEscape {
                pattern: self.pattern.to_owned(),
            })?;
        self.pos += 1;
        Ok(c)
    }

    fn class(&mut self) -> Result<Token, GlobError> {
        let unclosed = || GlobError::UnclosedClass {
            pattern: self.pattern.to_owned(),
        };
        let negated = self.chars.get(self.pos) == Some(&'!');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            let c = *self.chars.get(self.pos).ok_or_else(unclosed)?;
            self.pos += 1;
            if c == ']' {
                break;
            }
            let low = if c == '\\' { self.escaped()? } else { c };
            let is_range = self.chars.get(self.pos) == Some(&'-')
                && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']');
            if is_range {
                let high = self.chars[self.pos + 1];
                self.pos += 2;
                ranges.push((low, high));
            } else {
                ranges.push((low, low));
            }
        }
        if ranges.is_empty() {
            return Err(GlobError::EmptyClass {
                pattern: self.pattern.to_owned(),
            });
        }
        Ok(Token::Class { negated, ranges })
    }

    fn alternatives(&mut self) -> Result<Token, GlobError> {
        let mut alternatives = Vec::new();
        loop {
            alternatives.push(self.sequence(true)?);
            match self.chars.get(self.pos) {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(Token::Alternatives(alternatives));
                }
                _ => {
                    return Err(GlobError::UnclosedAlternatives {
                        pattern: self.pattern.to_owned(),
                    })
                }
            }
        }
    }
}

/// Expands alternatives into plain atom sequences; `None` past [`MAX_EXPANSIONS`].
fn expand(tokens: &[Token]) -> Option<Vec<Vec<Atom>>> {
    let mut results: Vec<Vec<Atom>> = vec![Vec::new()];
    for token in tokens {
        let atom = match token {
            Token::Literal(c) => Atom::Literal(*c),
            Token::AnyRun => Atom::AnyRun,
            Token::AnyOne => Atom::AnyOne,
            Token::Class { negated, ranges } => Atom::Class {
                negated: *negated,
                ranges: ranges.clone(),
            },
            Token::Alternatives(alternatives) => {
                let mut tails = Vec::new();
                for alternative in alternatives {
                    tails.extend(expand(alternative)?);
                }
                if results.len().saturating_mul(tails.len()) > MAX_EXPANSIONS {
                    return None;
                }
                results = results
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |tail| {
                            let mut joined = head.clone();
                            joined.extend_from_slice(tail);
                            joined
                        })
                    })
                    .collect();
                continue;
            }
        };
        for result in &mut results {
            result.push(atom.clone());
        }
    }
    Some(results)
}

/// Wildcard matching with a single backtrack point (the last `*`): O(len(atoms) × len(text)).
fn match_atoms(atoms: &[Atom], text: &[char]) -> bool {
    let (mut a, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match atoms.get(a) {
            Some(Atom::AnyRun) => {
                last_star = Some((a, t));
                a += 1;
            }
            Some(atom) if atom.matches_char(text[t]) => {
                a += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star, star_text)) => {
                    a = star + 1;
                    t = star_text + 1;
                    last_star = Some((star, star_text + 1));
                }
                None => return false,
            },
        }
    }
    atoms[a..].iter().all(|atom| *atom == Atom::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> Glob {
        Glob::new(pattern).unwrap()
    }

    #[test]
    fn literal_pattern_matches_only_itself() {
        assert!(glob("prod").matches("prod"));
        assert!(!glob("prod").matches("production"));
        assert!(!glob("prod").matches("pro"));
    }

    #[test]
    fn star_matches_any_run_including_empty() {
        assert!(glob("prod-*").matches("prod-"));
        assert!(glob("prod-*").matches("prod-db"));
        assert!(glob("*").matches(""));
        assert!(glob("*-db").matches("team-a-db"));
        assert!(!glob("prod-*").matches("staging-db"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(glob("team-?").matches("team-a"));
        assert!(!glob("team-?").matches("team-"));
        assert!(!glob("team-?").matches("team-ab"));
    }

    #[test]
    fn character_class_matches_listed_and_ranged_characters() {
        assert!(glob("ns-[ab]").matches("ns-a"));
        assert!(!glob("ns-[ab]").matches("ns-c"));
        assert!(glob("ns-[0-9]").matches("ns-7"));
        assert!(!glob("ns-[0-9]").matches("ns-x"));
    }

    #[test]
    fn negated_character_class_excludes_listed_characters() {
        assert!(glob("ns-[!ab]").matches("ns-c"));
        assert!(!glob("ns-[!ab]").matches("ns-a"));
    }

    #[test]
    fn alternatives_match_any_branch() {
        let g = glob("{prod,stage}-db");
        assert!(g.matches("prod-db"));
        assert!(g.matches("stage-db"));
        assert!(!g.matches("dev-db"));
    }

    #[test]
    fn nested_and_repeated_alternatives_match() {
        let g = glob("{a,b{c,d}}-{x,y}");
        for ok in ["a-x", "bc-y", "bd-x"] {
            assert!(g.matches(ok), "{ok}");
        }
        assert!(!g.matches("b-x"));
    }

    #[test]
    fn many_stars_match_in_linear_time() {
        let g = glob("*a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!g.matches(&"a".repeat(63)));
        assert!(g.matches(&format!("{}b", "a".repeat(62))));
    }

    #[test]
    fn alternative_explosion_is_rejected() {
        assert_eq!(
            Glob::new("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}"),
            Err(GlobError::TooManyAlternatives {
                pattern: "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}".to_owned()
            })
        );
    }

    #[test]
    fn escaped_star_is_literal() {
        assert!(glob(r"a\*").matches("a*"));
        assert!(!glob(r"a\*").matches("ab"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert_eq!(
            Glob::new("ns-[ab"),
            Err(GlobError::UnclosedClass {
                pattern: "ns-[ab".to_owned()
            })
        );
        assert_eq!(
            Glob::new("ns-[]"),
            Err(GlobError::EmptyClass {
                pattern: "ns-[]".to_owned()
            })
        );
        assert_eq!(
            Glob::new("{a,b"),
            Err(GlobError::UnclosedAlternatives {
                pattern: "{a,b".to_owned()
            })
        );
        assert_eq!(
            Glob::new("a\\"),
            Err(GlobError::DanglingEscape {
                pattern: "a\\".to_owned()
            })
        );
    }
}

/// A Backup's `includedNamespaces`/`excludedNamespaces` pair, as Velero applies it to items:
/// empty includes (or `*`) mean every namespace, excludes win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFilter {
    included: Vec<Glob>,
    excluded: Vec<Glob>,
}

impl NamespaceFilter {
    /// Compiles both lists; a pattern that does not compile is an error naming it.
    pub fn new(included: &[String], excluded: &[String]) -> Result<Self, GlobError> {
        let compile = |patterns: &[String]| -> Result<Vec<Glob>, GlobError> {
            patterns.iter().map(|p| Glob::new(p)).collect()
        };
        Ok(NamespaceFilter {
            included: compile(included)?,
            excluded: compile(excluded)?,
        })
    }

    /// Whether items of `namespace` are in the backup.
    pub fn includes(&self, namespace: &str) -> bool {
        let included =
            self.included.is_empty() || self.included.iter().any(|g| g.matches(namespace));
        included && !self.excluded.iter().any(|g| g.matches(namespace))
    }
}

#[cfg(test)]
mod namespace_filter_tests {
    use super::*;

    fn filter(included: &[&str], excluded: &[&str]) -> NamespaceFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        NamespaceFilter::new(&own(included), &own(excluded)).unwrap()
    }

    #[test]
    fn empty_includes_mean_every_namespace() {
        assert!(filter(&[], &[]).includes("shop"));
        assert!(filter(&["*"], &[]).includes("shop"));
    }

    #[test]
    fn includes_are_globs_and_excludes_win() {
        let f = filter(&["shop-*", "db"], &["shop-test"]);
        assert!(f.includes("shop-prod"));
        assert!(f.includes("db"));
        assert!(!f.includes("shop-test"));
        assert!(!f.includes("kube-system"));
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        assert!(NamespaceFilter::new(&["[".to_string()], &[]).is_err());
    }
}
