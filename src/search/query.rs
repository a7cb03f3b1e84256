//! Parsing a FHIR search (R4 search §3.1.1): parameters with modifiers, prefixes, chains and
//! `_has`, into a [`SearchQuery`] that `storage` runs as SQL. Malformed values are errors;
//! unknown parameters are warnings, or errors when the client asked for strict handling.

use super::normalize;
use super::registry::{ParamType, Registry};
pub use super::values::split_unescaped;
use super::values::{
    parse_composite, parse_date, parse_number, parse_quantity, parse_reference, parse_token,
};
use crate::fhir::conformance::{is_resource_type, resource_types};
use crate::fhir::primitives::control_character;
use crate::fhir::view::Summary;

/// Largest page.
pub const MAX_COUNT: usize = 1000;
/// Page size when `_count` is not given.
pub const DEFAULT_COUNT: usize = 50;
/// Most `_sort` keys.
pub const MAX_SORT_KEYS: usize = 3;
/// The parameter that carries a paging cursor in `next`/`previous` links.
pub const CURSOR: &str = "_cursor";

/// The index table a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    String,
    Token,
    Date,
    Number,
    Quantity,
    Reference,
    Uri,
    Composite,
}

impl Table {
    fn of(kind: ParamType) -> Option<Table> {
        Some(match kind {
            ParamType::String => Table::String,
            ParamType::Token => Table::Token,
            ParamType::Date => Table::Date,
            ParamType::Number => Table::Number,
            ParamType::Quantity => Table::Quantity,
            ParamType::Reference => Table::Reference,
            ParamType::Uri => Table::Uri,
            ParamType::Composite => Table::Composite,
            ParamType::Special => return None,
        })
    }
}

/// A comparison prefix (R4 search §3.1.1.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// How a string value matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    /// The default: starts with, ignoring case and accents.
    Prefix,
    /// `:exact`.
    Exact,
    /// `:contains`.
    Contains,
}

/// How a uri value matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    Equal,
    /// `:below`: the value starts with the search value.
    Below,
    /// `:above`: the search value starts with the value.
    Above,
}

/// The system part of a token search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// One alternative of a parameter (values separated by commas are ORed).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatch {
    String {
        mode: StringMode,
        text: String,
    },
    Token {
        system: SystemMatch,
        code: Option<String>,
    },
    /// `:text`: the display or text starts with this (normalized) text.
    TokenText(String),
    Reference {
        target_type: Option<String>,
        id: Option<String>,
        url: Option<String>,
    },
    /// A date range `[start, end)` compared with `prefix`.
    Date {
        prefix: Prefix,
        start: i64,
        end: i64,
    },
    /// A number with its implicit precision range `[low, high)`.
    Number {
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
    },
    Quantity {
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
        system: Option<String>,
        unit: Option<String>,
    },
    Uri {
        mode: UriMode,
        value: String,
    },
    /// One match per component.
    Composite(Vec<ValueMatch>),
}

/// A condition on resources of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `_id`.
    Ids(Vec<String>),
    /// `_lastUpdated` (alternatives ORed).
    LastUpdated(Vec<ValueMatch>),
    /// Index rows of `code` in `table` match one of the alternatives; `negate` (`:not`)
    /// selects the resources with no such row.
    Match {
        table: Table,
        code: String,
        alternatives: Vec<ValueMatch>,
        negate: bool,
    },
    /// `:missing`.
    Missing {
        table: Table,
        code: String,
        missing: bool,
    },
    /// A chained parameter: the reference `code` points at a resource of one of the target
    /// types that meets that type's condition.
    Chain {
        code: String,
        targets: Vec<(String, Condition)>,
    },
    /// `_has`: some `source_type` resource refers to this one through `code` and meets
    /// `inner`.
    Has {
        source_type: String,
        code: String,
        inner: Box<Condition>,
    },
    /// Any of these.
    Or(Vec<Condition>),
}

/// A clause of the query: a condition per resource type searched (all must hold, clause by
/// clause).
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// `(type, condition)`; a type not listed cannot match the clause.
    pub per_type: Vec<(String, Condition)>,
}

/// What a `_sort` key sorts by.
#[derive(Debug, Clone, PartialEq)]
pub enum SortBy {
    Id,
    LastUpdated,
    Param { table: Table, code: String },
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub by: SortBy,
    pub descending: bool,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Not asked: given when the whole result fits in one page.
    Default,
    None,
    Estimate,
    Accurate,
}

/// `_include` or `_revinclude`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The resource type holding the reference.
    pub source_type: String,
    /// The reference parameter; `None` for `*`.
    pub code: Option<String>,
    /// Only targets of this type.
    pub target_type: Option<String>,
    /// `:iterate` (or R3's `:recurse`).
    pub iterate: bool,
    /// For `*` (no `code`): the reference parameters it stands for, `(source type, code)`,
    /// every one of the source type's (of every type for `*` alone). A reverse include probes
    /// each one's lookup: there is no index of references by their target alone.
    pub wildcard: Vec<(String, String)>,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The resource types searched.
    pub types: Vec<String>,
    pub clauses: Vec<Clause>,
    pub sort: Vec<SortKey>,
    pub count: usize,
    pub total: Total,
    pub summary: Option<Summary>,
    pub elements: Option<Vec<String>>,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
    /// A paging cursor from a `next` or `previous` link.
    pub cursor: Option<String>,
    /// Parameters that were ignored, with why (reported in the Bundle).
    pub warnings: Vec<String>,
}

/// Why a search cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The diagnostic.
    pub message: String,
    /// True for "not supported" rather than "invalid".
    pub not_supported: bool,
}

impl QueryError {
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
            not_supported: false,
        }
    }

    pub(super) fn unsupported(message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
            not_supported: true,
        }
    }
}

type Result<T> = std::result::Result<T, QueryError>;

/// Parameters that only shape the response.
const FORMAT_PARAMS: [&str; 2] = ["_format", "_pretty"];
/// Known parameters this server does not implement.
const UNSUPPORTED: [&str; 7] = [
    "_text",
    "_content",
    "_list",
    "_query",
    "_filter",
    "_contained",
    "_containedType",
];

/// Parameters in one search at most: each is a condition ANDed into the SQL, which SQLite
/// nests one level per condition and refuses past 1,000 levels (2,000 names were a 500).
const MAX_PARAMS: usize = 100;
/// Values (comma-separated) in a whole search at most: each is bound into the SQL, and SQLite
/// takes at most 32,766 bound values in a statement.
const MAX_SEARCH_VALUES: usize = 1000;

/// Refuses a search with more parameters or values than it can be asked with.
fn check_size(params: &[(String, String)]) -> Result<()> {
    if params.len() > MAX_PARAMS {
        return Err(QueryError::invalid(format!(
            "the search has {} parameters; it takes at most {MAX_PARAMS}",
            params.len()
        )));
    }
    let total: usize = params
        .iter()
        .map(|(_, value)| split_unescaped(value, ',').len())
        .sum();
    if total > MAX_SEARCH_VALUES {
        return Err(QueryError::invalid(format!(
            "the search has {total} values in all; it takes at most {MAX_SEARCH_VALUES}"
        )));
    }
    Ok(())
}

/// Parses a search over `types` (one type, or several for a system-level search). `strict`
/// is `Prefer: handling=strict`: unknown parameters are then errors.
pub fn parse(
    registry: &Registry,
    types: Vec<String>,
    params: &[(String, String)],
    base: &str,
    strict: bool,
) -> Result<SearchQuery> {
    let mut query = SearchQuery {
        types,
        clauses: Vec::new(),
        sort: Vec::new(),
        count: DEFAULT_COUNT,
        total: Total::Default,
        summary: None,
        elements: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        cursor: None,
        warnings: Vec::new(),
    };
    let ignore = |query: &mut SearchQuery, message: String| {
        if strict {
            Err(QueryError::invalid(message))
        } else {
            query.warnings.push(message);
            Ok(())
        }
    };
    check_size(params)?;
    for (name, value) in params {
        // Malformed in every mode: no FHIR value holds one, and a name or value that did would
        // reach the database and the OperationOutcome (which XML cannot carry).
        if let Some(c) = control_character(name).or_else(|| control_character(value)) {
            return Err(QueryError::invalid(format!(
                "the search parameter {} holds the control character U+{:04X}, which no FHIR value holds",
                name.escape_debug(),
                u32::from(c)
            )));
        }
        let name = name.as_str();
        match name {
            "_count" => {
                query.count = value
                    .parse::<usize>()
                    .map_err(|_| {
                        QueryError::invalid(format!("_count '{value}' is not a whole number"))
                    })?
                    .min(MAX_COUNT);
            }
            "_sort" => query.sort = parse_sort(registry, &query.types, value)?,
            "_total" => {
                query.total = match value.as_str() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => {
                        return Err(QueryError::invalid(format!(
                            "_total '{value}' is not one of none, estimate, accurate"
                        )));
                    }
                }
            }
            "_summary" => {
                query.summary = Some(Summary::parse(value).ok_or_else(|| {
                    QueryError::invalid(format!(
                        "_summary '{value}' is not one of true, text, data, count, false"
                    ))
                })?)
            }
            "_elements" => {
                query.elements = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            CURSOR => query.cursor = Some(value.clone()),
            "_type" => {} // read by the system-level handler
            n if FORMAT_PARAMS.contains(&n) => {}
            n if n == "_include" || n.starts_with("_include:") => {
                query.includes.push(parse_include(registry, n, value)?)
            }
            n if n == "_revinclude" || n.starts_with("_revinclude:") => {
                query.revincludes.push(parse_include(registry, n, value)?)
            }
            n if UNSUPPORTED.contains(&n.split(':').next().unwrap_or(n)) => ignore(
                &mut query,
                format!("the parameter {n} is not supported and was ignored"),
            )?,
            _ => {
                let mut per_type = Vec::new();
                let mut unknown = None;
                for t in &query.types {
                    match parse_param(registry, t, name, value, base, 0) {
                        Ok(condition) => per_type.push((t.clone(), condition)),
                        Err(Unknown::Param(message)) => unknown = Some(message),
                        Err(Unknown::Error(e)) => return Err(e),
                    }
                }
                if per_type.is_empty() {
                    let message = unknown.unwrap_or_else(|| format!("unknown parameter {name}"));
                    ignore(&mut query, format!("{message}; it was ignored"))?;
                } else {
                    query.clauses.push(Clause { per_type });
                }
            }
        }
    }
    super::implied::rewrite(registry, &mut query);
    Ok(query)
}

/// Why a parameter did not parse: not known for the type (lenient handling may ignore it), or
/// a real error.
enum Unknown {
    Param(String),
    Error(QueryError),
}

impl From<QueryError> for Unknown {
    fn from(e: QueryError) -> Self {
        Unknown::Error(e)
    }
}

/// Chains deeper than this are refused.
const MAX_CHAIN_DEPTH: usize = 4;

fn parse_param(
    registry: &Registry,
    t: &str,
    name: &str,
    value: &str,
    base: &str,
    depth: usize,
) -> std::result::Result<Condition, Unknown> {
    if depth > MAX_CHAIN_DEPTH {
        return Err(QueryError::invalid(format!(
            "chains and _has are limited to {MAX_CHAIN_DEPTH} levels"
        ))
        .into());
    }
    if let Some(rest) = name.strip_prefix("_has:") {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(code), Some(inner)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(QueryError::invalid(format!(
                "'{name}' is not _has:Type:reference:parameter"
            ))
            .into());
        };
        if !is_resource_type(source) {
            return Err(
                QueryError::invalid(format!("_has: '{source}' is not a resource type")).into(),
            );
        }
        match registry.get(source, code) {
            Some(p) if p.kind == ParamType::Reference => {}
            _ => {
                return Err(QueryError::invalid(format!(
                    "_has: '{code}' is not a reference parameter of {source}"
                ))
                .into());
            }
        }
        let inner = parse_param(registry, source, inner, value, base, depth + 1)?;
        return Ok(Condition::Has {
            source_type: source.to_owned(),
            code: code.to_owned(),
            inner: Box::new(inner),
        });
    }
    if let Some((head, rest)) = name.split_once('.') {
        return parse_chain(registry, t, head, rest, value, base, depth);
    }
    let (code, modifier) = match name.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (name, None),
    };
    if code == "_id" {
        if modifier.is_some() {
            return Err(QueryError::unsupported(format!(
                "_id does not take the modifier :{}",
                modifier.unwrap_or_default()
            ))
            .into());
        }
        let ids: Vec<String> = split_unescaped(value, ',')
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            return Err(QueryError::invalid("_id needs a value").into());
        }
        return Ok(Condition::Ids(ids));
    }
    if code == "_lastUpdated" {
        if let Some(m) = modifier {
            return Err(QueryError::unsupported(format!(
                "_lastUpdated does not take the modifier :{m}"
            ))
            .into());
        }
        let alternatives = split_unescaped(value, ',')
            .iter()
            .map(|v| parse_date(code, v))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Condition::LastUpdated(alternatives));
    }
    let Some(param) = registry.get(t, code) else {
        return Err(Unknown::Param(format!("unknown parameter {code} for {t}")));
    };
    let Some(table) = Table::of(param.kind) else {
        return Err(
            QueryError::unsupported(format!("the parameter {code} is not supported")).into(),
        );
    };
    if param.expression.is_none() {
        return Err(
            QueryError::unsupported(format!("the parameter {code} is not supported")).into(),
        );
    }
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(QueryError::invalid(format!(
                    "{name} must be true or false, not '{value}'"
                ))
                .into());
            }
        };
        return Ok(Condition::Missing {
            table,
            code: param.stored_code().to_owned(),
            missing,
        });
    }
    let values = split_unescaped(value, ',');
    if values.iter().any(String::is_empty) {
        return Err(QueryError::invalid(format!("{name} has an empty value")).into());
    }
    let mut negate = false;
    let mut table = table;
    let mut code_in_table = param.stored_code().to_owned();
    let alternatives: Vec<ValueMatch> = match (param.kind, modifier) {
        (ParamType::String, None | Some("exact") | Some("contains")) => {
            let mode = match modifier {
                Some("exact") => StringMode::Exact,
                Some("contains") => StringMode::Contains,
                _ => StringMode::Prefix,
            };
            values
                .into_iter()
                .map(|v| ValueMatch::String {
                    mode,
                    text: if mode == StringMode::Exact {
                        v
                    } else {
                        normalize(&v)
                    },
                })
                .collect()
        }
        (ParamType::Token, None | Some("not")) => {
            negate = modifier == Some("not");
            values.iter().map(|v| parse_token(v)).collect()
        }
        (ParamType::Token, Some("text")) => values
            .iter()
            .map(|v| ValueMatch::TokenText(normalize(v)))
            .collect(),
        (ParamType::Token, Some("of-type")) => {
            code_in_table = format!("{code}:of-type");
            values
                .iter()
                .map(|v| {
                    let parts = split_unescaped(v, '|');
                    match parts.as_slice() {
                        [system, type_code, value]
                            if !type_code.is_empty() && !value.is_empty() =>
                        {
                            Ok(ValueMatch::Token {
                                system: if system.is_empty() {
                                    SystemMatch::Any
                                } else {
                                    SystemMatch::Is(system.clone())
                                },
                                code: Some(format!("{type_code}|{value}")),
                            })
                        }
                        _ => Err(QueryError::invalid(format!(
                            "{name} '{v}' is not system|type-code|value"
                        ))),
                    }
                })
                .collect::<Result<_>>()?
        }
        (ParamType::Reference, Some("identifier")) => {
            code_in_table = format!("{code}:identifier");
            table = Table::Token;
            values.iter().map(|v| parse_token(v)).collect()
        }
        (ParamType::Reference, m) if m.is_none() || m.is_some_and(is_resource_type) => values
            .iter()
            .map(|v| parse_reference(param, m, v, base))
            .collect::<Result<_>>()?,
        (ParamType::Date, None) => values
            .iter()
            .map(|v| parse_date(code, v))
            .collect::<Result<_>>()?,
        (ParamType::Number, None) => values
            .iter()
            .map(|v| parse_number(code, v))
            .collect::<Result<_>>()?,
        (ParamType::Quantity, None) => values
            .iter()
            .map(|v| parse_quantity(code, v))
            .collect::<Result<_>>()?,
        (ParamType::Uri, None | Some("below") | Some("above")) => {
            let mode = match modifier {
                Some("below") => UriMode::Below,
                Some("above") => UriMode::Above,
                _ => UriMode::Equal,
            };
            values
                .into_iter()
                .map(|value| ValueMatch::Uri { mode, value })
                .collect()
        }
        (ParamType::Composite, None) => values
            .iter()
            .map(|v| parse_composite(param, code, v, base))
            .collect::<Result<_>>()?,
        (_, Some(m)) => {
            return Err(QueryError::unsupported(format!(
                "the modifier :{m} is not supported on {code} (a {} parameter)",
                param.kind.code()
            ))
            .into());
        }
        (_, None) => {
            return Err(
                QueryError::unsupported(format!("the parameter {code} is not supported")).into(),
            );
        }
    };
    Ok(Condition::Match {
        table,
        code: code_in_table,
        alternatives,
        negate,
    })
}

fn parse_chain(
    registry: &Registry,
    t: &str,
    head: &str,
    rest: &str,
    value: &str,
    base: &str,
    depth: usize,
) -> std::result::Result<Condition, Unknown> {
    let (code, type_modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    let Some(param) = registry.get(t, code) else {
        return Err(Unknown::Param(format!("unknown parameter {code} for {t}")));
    };
    if param.kind != ParamType::Reference {
        return Err(QueryError::invalid(format!(
            "{code} is not a reference parameter and cannot be chained"
        ))
        .into());
    }
    let candidates: Vec<String> = match type_modifier {
        Some(m) if is_resource_type(m) => vec![m.to_owned()],
        Some(m) => {
            return Err(
                QueryError::invalid(format!("'{m}' in {head} is not a resource type")).into(),
            );
        }
        None if param.targets.is_empty() => {
            return Err(QueryError::invalid(format!(
                "{code} names no target types; give one as {code}:Type"
            ))
            .into());
        }
        None => param.targets.clone(),
    };
    let mut targets = Vec::new();
    let mut last_error = None;
    for target in candidates {
        match parse_param(registry, &target, rest, value, base, depth + 1) {
            Ok(condition) => targets.push((target, condition)),
            Err(Unknown::Param(message)) => last_error = Some(message),
            Err(Unknown::Error(e)) => return Err(e.into()),
        }
    }
    if targets.is_empty() {
        return Err(QueryError::invalid(format!(
            "the chain {head}.{rest} does not apply to any target of {code}: {}",
            last_error.unwrap_or_default()
        ))
        .into());
    }
    Ok(Condition::Chain {
        code: code.to_owned(),
        targets,
    })
}

fn parse_sort(registry: &Registry, types: &[String], value: &str) -> Result<Vec<SortKey>> {
    let mut keys = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (descending, code) = match item.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, item),
        };
        let by = match code {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            _ => {
                let param = types
                    .iter()
                    .find_map(|t| registry.get(t, code))
                    .ok_or_else(|| {
                        QueryError::invalid(format!("_sort: unknown parameter {code}"))
                    })?;
                let table = match Table::of(param.kind) {
                    Some(Table::Composite) | None => {
                        return Err(QueryError::unsupported(format!(
                            "_sort: cannot sort by {code}"
                        )));
                    }
                    Some(t) => t,
                };
                SortBy::Param {
                    table,
                    code: param.stored_code().to_owned(),
                }
            }
        };
        keys.push(SortKey { by, descending });
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(QueryError::unsupported(format!(
            "_sort takes at most {MAX_SORT_KEYS} keys"
        )));
    }
    Ok(keys)
}

fn parse_include(registry: &Registry, name: &str, value: &str) -> Result<Include> {
    let modifier = name.split_once(':').map(|(_, m)| m);
    let iterate = match modifier {
        None => false,
        Some("iterate" | "recurse") => true,
        Some(m) => {
            return Err(QueryError::invalid(format!(
                "{name}: unknown modifier :{m}"
            )));
        }
    };
    let parts: Vec<&str> = value.split(':').collect();
    let (source, code, target) = match parts.as_slice() {
        ["*"] => ("*", None, None),
        [s, "*"] => (*s, None, None),
        [s, c] => (*s, Some(*c), None),
        [s, c, t] => (*s, Some(*c), Some(*t)),
        _ => {
            return Err(QueryError::invalid(format!(
                "{name} '{value}' is not SourceType:parameter[:TargetType]"
            )));
        }
    };
    if source != "*" && !is_resource_type(source) {
        return Err(QueryError::invalid(format!(
            "{name}: '{source}' is not a resource type"
        )));
    }
    if let Some(c) = code {
        match registry.get(source, c) {
            Some(p) if p.kind == ParamType::Reference => {}
            _ => {
                return Err(QueryError::invalid(format!(
                    "{name}: '{c}' is not a reference parameter of {source}"
                )));
            }
        }
    }
    if let Some(t) = target
        && !is_resource_type(t)
    {
        return Err(QueryError::invalid(format!(
            "{name}: '{t}' is not a resource type"
        )));
    }
    let wildcard = if code.is_some() {
        Vec::new()
    } else {
        let sources: Vec<&str> = if source == "*" {
            resource_types().collect()
        } else {
            vec![source]
        };
        let mut params: Vec<(String, String)> = sources
            .into_iter()
            .flat_map(|s| {
                registry
                    .params(s)
                    .filter(|p| p.kind == ParamType::Reference)
                    .map(move |p| (s.to_owned(), p.code.clone()))
            })
            .collect();
        params.sort_unstable();
        params
    };
    Ok(Include {
        source_type: source.to_owned(),
        code: code.map(str::to_owned),
        target_type: target.map(str::to_owned),
        iterate,
        wildcard,
    })
}

/// A condition every resource meets (no resource has index rows of a code that no parameter
/// has), for clauses that confine some types and not others.
pub fn everything() -> Condition {
    Condition::Missing {
        table: Table::Reference,
        code: "__hearth_no_such_parameter".to_owned(),
        missing: true,
    }
}

/// The conditions that put a resource of `resource_type` in the compartment of `owner_type`
/// `owner_id` (the official CompartmentDefinitions); `None` when the type is not in it.
pub fn compartment_condition(
    resource_type: &str,
    owner_type: &str,
    owner_id: &str,
) -> Option<Condition> {
    let params = super::compartment_params(owner_type, resource_type)?;
    let mut alternatives: Vec<Condition> = params
        .iter()
        .map(|code| {
            if code == "{def}" {
                Condition::Ids(vec![owner_id.to_owned()])
            } else {
                Condition::Match {
                    table: Table::Reference,
                    code: code.clone(),
                    alternatives: vec![ValueMatch::Reference {
                        target_type: Some(owner_type.to_owned()),
                        id: Some(owner_id.to_owned()),
                        url: None,
                    }],
                    negate: false,
                }
            }
        })
        .collect();
    // The owner is in its own compartment.
    if resource_type == owner_type {
        alternatives.push(Condition::Ids(vec![owner_id.to_owned()]));
    }
    Some(Condition::Or(alternatives))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::values::parse_decimal;

    fn q(t: &str, query: &str) -> Result<SearchQuery> {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        parse(
            &Registry::r4(),
            vec![t.to_owned()],
            &params,
            "http://h/fhir",
            false,
        )
    }

    fn only(query: &SearchQuery) -> &Condition {
        &query.clauses[0].per_type[0].1
    }

    #[test]
    fn strings_tokens_and_modifiers() {
        let s = q("Patient", "name=Zoë,Peter&family:exact=Müller").unwrap();
        assert_eq!(s.clauses.len(), 2, "repeated parameters are ANDed");
        assert_eq!(
            only(&s),
            &Condition::Match {
                table: Table::String,
                code: "name".into(),
                negate: false,
                alternatives: vec![
                    ValueMatch::String {
                        mode: StringMode::Prefix,
                        text: "zoe".into()
                    },
                    ValueMatch::String {
                        mode: StringMode::Prefix,
                        text: "peter".into()
                    }
                ]
            }
        );
        let t = q(
            "Observation",
            "code=http://loinc.org|8480-6,|x,y&status:not=final",
        )
        .unwrap();
        let Condition::Match { alternatives, .. } = only(&t) else {
            panic!()
        };
        assert_eq!(
            alternatives[0],
            ValueMatch::Token {
                system: SystemMatch::Is("http://loinc.org".into()),
                code: Some("8480-6".into())
            }
        );
        assert_eq!(
            alternatives[1],
            ValueMatch::Token {
                system: SystemMatch::None,
                code: Some("x".into())
            }
        );
        assert_eq!(
            alternatives[2],
            ValueMatch::Token {
                system: SystemMatch::Any,
                code: Some("y".into())
            }
        );
        assert!(matches!(
            &t.clauses[1].per_type[0].1,
            Condition::Match { negate: true, .. }
        ));
        assert!(q("Patient", "gender:below=x").unwrap_err().not_supported);
        assert!(q("Patient", "name:missing=maybe").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(split_unescaped(r"a\,b,c", ','), ["a,b", "c"]);
        assert_eq!(split_unescaped(r"a\|b|c", '|'), ["a|b", "c"]);
    }

    #[test]
    fn dates_numbers_and_quantities() {
        let d = q("Patient", "birthdate=ge1970-03").unwrap();
        let Condition::Match { alternatives, .. } = only(&d) else {
            panic!()
        };
        let ValueMatch::Date { prefix, start, end } = alternatives[0] else {
            panic!()
        };
        assert_eq!(prefix, Prefix::Ge);
        assert_eq!(end - start, 31 * 86_400_000);
        assert!(q("Patient", "birthdate=March").is_err());
        assert_eq!(parse_decimal("100"), Some((100.0, 99.5, 100.5)));
        assert_eq!(parse_decimal("1e2"), Some((100.0, 50.0, 150.0)));
        let (_, low, high) = parse_decimal("1.50").unwrap();
        assert!((low - 1.495).abs() < 1e-9 && (high - 1.505).abs() < 1e-9);
        let v = q(
            "Observation",
            "value-quantity=gt5.4|http://unitsofmeasure.org|mg",
        )
        .unwrap();
        let Condition::Match { alternatives, .. } = only(&v) else {
            panic!()
        };
        assert!(
            matches!(&alternatives[0], ValueMatch::Quantity { prefix: Prefix::Gt, unit: Some(u), .. } if u == "mg")
        );
        assert!(q("Observation", "value-quantity=gt5.4|x").is_err());
    }

    #[test]
    fn references_chains_and_has() {
        let r = q(
            "Observation",
            "subject=Patient/1&patient=2&subject:Patient=3",
        )
        .unwrap();
        let Condition::Match { alternatives, .. } = &r.clauses[1].per_type[0].1 else {
            panic!()
        };
        // Observation.patient may point at a Patient or a Group: a bare id names either.
        assert_eq!(
            alternatives[0],
            ValueMatch::Reference {
                target_type: None,
                id: Some("2".into()),
                url: None
            }
        );
        let c = q(
            "Encounter",
            "patient.name=peter&subject:Patient.organization.name=acme",
        )
        .unwrap();
        let Condition::Chain { code, targets } = only(&c) else {
            panic!()
        };
        assert_eq!(
            (code.as_str(), targets[0].0.as_str()),
            ("patient", "Patient")
        );
        assert!(
            matches!(&c.clauses[1].per_type[0].1, Condition::Chain { targets, .. } if matches!(&targets[0].1, Condition::Chain { .. }))
        );
        let h = q("Patient", "_has:Observation:patient:code=1234").unwrap();
        assert!(
            matches!(only(&h), Condition::Has { source_type, code, .. } if source_type == "Observation" && code == "patient")
        );
        assert!(q("Patient", "_has:Observation:code:code=1").is_err());
        assert!(q("Encounter", "status.name=x").is_err());
    }

    #[test]
    fn unknown_parameters_lenient_or_strict() {
        let s = q("Patient", "foo=bar&_text=x").unwrap();
        assert!(s.clauses.is_empty());
        assert_eq!(s.warnings.len(), 2);
        let params = vec![("foo".to_owned(), "bar".to_owned())];
        assert!(parse(&Registry::r4(), vec!["Patient".into()], &params, "", true).is_err());
    }

    #[test]
    fn result_parameters() {
        let s = q("Observation", "_sort=-date,_id&_count=5000&_total=accurate&_include=Observation:patient&_revinclude:iterate=Provenance:target").unwrap();
        assert_eq!(s.sort.len(), 2);
        assert!(s.sort[0].descending);
        assert_eq!(s.count, MAX_COUNT);
        assert_eq!(s.total, Total::Accurate);
        assert_eq!(s.includes[0].code.as_deref(), Some("patient"));
        assert!(s.revincludes[0].iterate);
        assert!(q("Observation", "_include=Observation:status").is_err());
        assert!(q("Observation", "_count=-1").is_err());
    }

    /// `*` names no parameter, so it is spelled out as every reference parameter it stands
    /// for: a reverse include probes each one's lookup.
    #[test]
    fn a_wildcard_include_lists_the_reference_parameters_it_stands_for() {
        let of_type = q("Patient", "_revinclude=Observation:*").unwrap();
        let wildcard = &of_type.revincludes[0].wildcard;
        for code in ["subject", "patient", "performer", "encounter"] {
            assert!(
                wildcard.contains(&("Observation".into(), code.into())),
                "{code}: {wildcard:?}"
            );
        }
        assert!(wildcard.iter().all(|(t, _)| t == "Observation"));
        assert!(!wildcard.iter().any(|(_, c)| c == "code"), "{wildcard:?}");

        let every = q("Patient", "_revinclude=*").unwrap();
        let wildcard = &every.revincludes[0].wildcard;
        for pair in [
            ("Encounter", "subject"),
            ("Provenance", "agent"),
            ("Patient", "link"),
        ] {
            assert!(
                wildcard.contains(&(pair.0.into(), pair.1.into())),
                "{pair:?}"
            );
        }
        let named = q("Patient", "_revinclude=Observation:subject").unwrap();
        assert!(named.revincludes[0].wildcard.is_empty());
    }
}
