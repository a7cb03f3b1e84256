//! Composite parameters implied by two plain ones. `Observation?code=X&value-quantity=gtY`
//! asks for Observations with the code X whose value is above Y. Each condition alone can
//! match most Observations (a common code; a low threshold over every code), so the database
//! finds the pairs one condition at a time, and when no value of that code passes the
//! threshold it walks every Observation of the code before it stops (`benches/README.md`).
//! The official composite `code-value-quantity` pairs the same two elements in one index row,
//! and its lookup index `(type, code, s1_value, s2_high, …)` finds the pairs of a code above a
//! threshold as one range. So such a search is rewritten to the composite ([`rewrite`]), which
//! matches the same resources.
//!
//! The composite must hold exactly when both parts do. An [`Implication`] says why it does for
//! its three parameters, and it applies only while all three have the expressions it names (a
//! SearchParameter written through the API can replace any of them).

use std::sync::LazyLock;

use super::fhirpath::{self, Expr};
use super::query::{Clause, Condition, SearchQuery, Table, ValueMatch};
use super::registry::{Registry, for_type};

/// A composite parameter over a resource itself, and the two plain parameters of the same type
/// that read the same elements as its components.
struct Implication {
    resource_type: &'static str,
    composite: &'static str,
    /// The composite's expression, then its components' (relative to the resource).
    expression: &'static str,
    components: [&'static str; 2],
    /// The plain parameters, each with the expression it must have (reduced to the type) and
    /// the values it may pair.
    parts: [Part; 2],
}

/// A plain parameter an [`Implication`] pairs: its code, its expression, and which of its
/// values pair (a token with a code; a quantity or a date with any prefix).
type Part = (&'static str, &'static str, fn(&ValueMatch) -> bool);

/// A coding without a code has a token row (`code=system|` finds it) but no composite row (its
/// slot needs a value), so only tokens with a code are paired.
const CODE: Part = ("code", "Observation.code", |v| {
    matches!(v, ValueMatch::Token { code: Some(_), .. })
});

/// Why each holds:
/// - `code` (`clinical-code`, reduced to `Observation.code`) is the first component, `code`,
///   read from the same Observation; extraction writes a composite row for every coding.
/// - `Observation.value[x]` holds one value, so a composite row pairs every coding with it: a
///   code's rows are never cut short by the limit on combinations (`extract::composite`).
/// - `value-quantity` also reads `value as SampledData`, which has no `value` of its own and so
///   gives no quantity row (`extract::quantities`); its rows are those of `value.as(Quantity)`.
/// - `value-date` reads `value as dateTime | value as Period`; the component's `DateTime` is the
///   same type (FHIRPath type names match either case).
///
/// Not here: `code-value-string` (`value-string` also reads a CodeableConcept's text) and
/// `code-value-concept` (both parts hold several codings, so their pairs can exceed the limit
/// on combinations); the composites over components or over `Observation | component`, whose
/// pairs are made within one element.
const IMPLICATIONS: [Implication; 2] = [
    Implication {
        resource_type: "Observation",
        composite: "code-value-quantity",
        expression: "Observation",
        components: ["code", "value.as(Quantity)"],
        parts: [
            CODE,
            (
                "value-quantity",
                "(Observation.value as Quantity) | (Observation.value as SampledData)",
                |v| matches!(v, ValueMatch::Quantity { .. }),
            ),
        ],
    },
    Implication {
        resource_type: "Observation",
        composite: "code-value-date",
        expression: "Observation",
        components: ["code", "value.as(DateTime) | value.as(Period)"],
        parts: [
            CODE,
            (
                "value-date",
                "(Observation.value as dateTime) | (Observation.value as Period)",
                |v| matches!(v, ValueMatch::Date { .. }),
            ),
        ],
    },
];

/// Most alternatives an implied clause may have (one per pair of its parts' alternatives).
const MAX_PAIRS: usize = 16;

/// Most composite clauses one implication makes in a search.
const MAX_IMPLIED: usize = 4;

/// The expressions an [`Implication`] names, parsed: the composite's and its parts' reduced to
/// the type, and the components' as written. Parsed once, not for every search.
struct Parsed {
    composite: Option<Expr>,
    components: Vec<Option<Expr>>,
    parts: Vec<Option<Expr>>,
}

static PARSED: LazyLock<Vec<Parsed>> = LazyLock::new(|| {
    IMPLICATIONS
        .iter()
        .map(|i| {
            let reduced = |text: &str| {
                fhirpath::parse(text)
                    .ok()
                    .and_then(|e| for_type(&e, i.resource_type))
            };
            Parsed {
                composite: reduced(i.expression),
                components: i
                    .components
                    .iter()
                    .map(|c| fhirpath::parse(c).ok())
                    .collect(),
                parts: i.parts.iter().map(|(_, text, _)| reduced(text)).collect(),
            }
        })
        .collect()
});

/// Whether `registry` still defines the three parameters of the `n`th implication as it names
/// them.
fn holds(registry: &Registry, n: usize) -> bool {
    let (implication, parsed) = (&IMPLICATIONS[n], &PARSED[n]);
    let t = implication.resource_type;
    let same = |code: &str, expected: &Option<Expr>| {
        registry.get(t, code).is_some_and(|p| {
            p.stored_as.is_none() && p.expression.is_some() && &p.expression == expected
        })
    };
    let components_same = registry.get(t, implication.composite).is_some_and(|p| {
        p.components.len() == parsed.components.len()
            && p.components
                .iter()
                .zip(&parsed.components)
                .all(|(c, e)| e.as_ref() == Some(&c.expression))
    });
    components_same
        && same(implication.composite, &parsed.composite)
        && implication
            .parts
            .iter()
            .zip(&parsed.parts)
            .all(|((code, _, _), expected)| same(code, expected))
}

/// The alternatives of a clause that is a plain match of `code` on `t` whose every alternative
/// is of the kind `expected` accepts ([`Part`]). Modifiers that change the kind (`:text`, `:not`,
/// `:missing`) do not qualify.
fn plain<'q>(
    clause: &'q Clause,
    t: &str,
    code: &str,
    expected: fn(&ValueMatch) -> bool,
) -> Option<&'q [ValueMatch]> {
    match clause.per_type.as_slice() {
        [
            (
                ct,
                Condition::Match {
                    code: c,
                    alternatives,
                    negate: false,
                    ..
                },
            ),
        ] if ct == t
            && c == code
            && !alternatives.is_empty()
            && alternatives.iter().all(expected) =>
        {
            Some(alternatives)
        }
        _ => None,
    }
}

/// Rewrites a search of one type by the composites its plain clauses imply: for each pair of a
/// first-part clause and a second-part clause, the composite matching any pair of their
/// alternatives (`code=A,B&value-quantity=gtY` implies `code-value-quantity=A$gtY,B$gtY`).
/// When every pair could be made, the composites replace the parts: they match the same
/// resources, and one condition is planned better than three that say the same thing (a
/// database multiplies their selectivities as if they were independent, and PostgreSQL then
/// reads every Observation to sort a page it expects to be nearly empty). When a pair has too
/// many alternatives, the parts stay and the composites that could be made are added beside
/// them, for the planner to count.
pub fn rewrite(registry: &Registry, query: &mut SearchQuery) {
    let [t] = query.types.as_slice() else {
        return;
    };
    let t = t.clone();
    for (n, implication) in IMPLICATIONS.iter().enumerate() {
        if implication.resource_type != t {
            continue;
        }
        let [first, second] = implication.parts;
        let of = |(code, _, kind): Part| {
            query
                .clauses
                .iter()
                .enumerate()
                .filter_map(|(i, c)| plain(c, &t, code, kind).map(|a| (i, a)))
                .collect::<Vec<_>>()
        };
        let (firsts, seconds) = (of(first), of(second));
        if firsts.is_empty() || seconds.is_empty() || !holds(registry, n) {
            continue;
        }
        let mut implied = Vec::new();
        let mut complete = true;
        for (_, a) in &firsts {
            for (_, b) in &seconds {
                if a.len() * b.len() > MAX_PAIRS || implied.len() == MAX_IMPLIED {
                    complete = false;
                    continue;
                }
                implied.push(Clause {
                    per_type: vec![(
                        t.clone(),
                        Condition::Match {
                            table: Table::Composite,
                            code: implication.composite.to_owned(),
                            alternatives: pairs(a, b),
                            negate: false,
                        },
                    )],
                });
            }
        }
        if complete {
            let parts: Vec<usize> = firsts.iter().chain(&seconds).map(|(i, _)| *i).collect();
            let mut i = 0;
            query.clauses.retain(|_| {
                i += 1;
                !parts.contains(&(i - 1))
            });
        }
        query.clauses.extend(implied);
    }
}

/// The composite's alternatives for the parts' alternatives: every pair.
fn pairs(a: &[ValueMatch], b: &[ValueMatch]) -> Vec<ValueMatch> {
    a.iter()
        .flat_map(|x| {
            b.iter()
                .map(|y| ValueMatch::Composite(vec![x.clone(), y.clone()]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::{Prefix, SystemMatch, parse};
    use serde_json::json;

    fn q(registry: &Registry, query: &str) -> SearchQuery {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        parse(
            registry,
            vec!["Observation".into()],
            &params,
            "http://h/fhir",
            true,
        )
        .unwrap()
    }

    /// The composite clauses of a search, by code and number of alternatives, and the codes of
    /// its other clauses.
    fn split(query: &SearchQuery) -> (Vec<(String, usize)>, Vec<String>) {
        let (mut composites, mut others) = (Vec::new(), Vec::new());
        for clause in &query.clauses {
            match &clause.per_type[0].1 {
                Condition::Match {
                    table: Table::Composite,
                    code,
                    alternatives,
                    ..
                } => composites.push((code.clone(), alternatives.len())),
                Condition::Match { code, .. } | Condition::Missing { code, .. } => {
                    others.push(code.clone())
                }
                _ => others.push(String::new()),
            }
        }
        (composites, others)
    }

    fn composites(query: &SearchQuery) -> Vec<(String, usize)> {
        split(query).0
    }

    fn others(query: &SearchQuery) -> Vec<String> {
        split(query).1
    }

    #[test]
    fn every_implication_holds_for_the_official_parameters() {
        let registry = Registry::r4();
        for (n, implication) in IMPLICATIONS.iter().enumerate() {
            assert!(holds(&registry, n), "{}", implication.composite);
        }
    }

    #[test]
    fn a_code_and_a_value_become_their_composite() {
        let r = Registry::r4();
        let one = q(&r, "code=http://loinc.org|8480-6&value-quantity=gt120");
        assert_eq!(one.clauses.len(), 1, "the composite replaces its parts");
        let Condition::Match { alternatives, .. } = &one.clauses[0].per_type[0].1 else {
            panic!()
        };
        let [ValueMatch::Composite(parts)] = alternatives.as_slice() else {
            panic!()
        };
        assert_eq!(
            parts[0],
            ValueMatch::Token {
                system: SystemMatch::Is("http://loinc.org".into()),
                code: Some("8480-6".into())
            }
        );
        assert!(matches!(
            parts[1],
            ValueMatch::Quantity {
                prefix: Prefix::Gt,
                value: 120.0,
                ..
            }
        ));
        assert_eq!(
            composites(&q(&r, "code=a,b&value-quantity=gt1,lt0")),
            [("code-value-quantity".to_owned(), 4)]
        );
        assert_eq!(
            composites(&q(&r, "code=a&value-quantity=gt1&value-quantity=lt9")),
            [
                ("code-value-quantity".to_owned(), 1),
                ("code-value-quantity".to_owned(), 1)
            ]
        );
        assert_eq!(
            composites(&q(&r, "code=a&value-date=ge2020")),
            [("code-value-date".to_owned(), 1)]
        );
        // Other clauses stay beside it.
        let with_status = q(&r, "status=final&code=a&value-quantity=gt1&_sort=-date");
        assert_eq!(others(&with_status), ["status"]);
        assert_eq!(composites(&with_status).len(), 1);
        // One `code` pairs with the first implication only; value-date then stays plain.
        let both = q(&r, "code=a&value-quantity=gt1&value-date=ge2020");
        assert_eq!(others(&both), ["value-date"]);
        assert_eq!(composites(&both), [("code-value-quantity".to_owned(), 1)]);
    }

    #[test]
    fn too_many_pairs_keep_the_parts() {
        let r = Registry::r4();
        // 4 × 4 pairs is the most one composite clause holds: 5 × 4 is not paired.
        assert_eq!(
            composites(&q(&r, "code=a,b,c,d&value-quantity=1,2,3,4")),
            [("code-value-quantity".to_owned(), 16)]
        );
        let over = q(&r, "code=a,b,c,d,e&value-quantity=1,2,3,4");
        assert_eq!(others(&over), ["code", "value-quantity"]);
        assert_eq!(composites(&over), []);
        // Of two value clauses only one pairs: both parts stay, the pair is added beside them.
        let mixed = q(&r, "code=a,b,c,d,e&value-quantity=1,2,3,4&code=x");
        assert_eq!(others(&mixed), ["code", "value-quantity", "code"]);
        assert_eq!(composites(&mixed), [("code-value-quantity".to_owned(), 4)]);
    }

    #[test]
    fn modifiers_and_other_types_imply_nothing() {
        let r = Registry::r4();
        for query in [
            "code=a",
            "value-quantity=gt1",
            "code:not=a&value-quantity=gt1",
            "code:text=sys&value-quantity=gt1",
            "code=http://loinc.org|&value-quantity=gt1",
            "code=a&value-quantity:missing=false",
            "code=a&value-string=x",
        ] {
            let parsed = q(&r, query);
            assert_eq!(composites(&parsed), [], "{query}");
            assert_eq!(parsed.clauses.len(), query.split('&').count(), "{query}");
        }
        let params = [
            ("code".to_owned(), "a".to_owned()),
            ("value-quantity".to_owned(), "1".to_owned()),
        ];
        let system = parse(
            &r,
            vec!["Observation".into(), "Condition".into()],
            &params,
            "",
            false,
        )
        .unwrap();
        assert_eq!(system.clauses.len(), 2, "a search of several types");
    }

    #[test]
    fn a_replaced_part_implies_nothing() {
        let mut r = Registry::r4();
        r.add(&json!({
            "resourceType": "SearchParameter",
            "url": "http://acme.org/SearchParameter/value-quantity",
            "code": "value-quantity",
            "base": ["Observation"],
            "type": "quantity",
            "expression": "Observation.component.value.as(Quantity)"
        }))
        .unwrap();
        assert_eq!(composites(&q(&r, "code=a&value-quantity=gt1")), []);
        assert_eq!(q(&r, "code=a&value-quantity=gt1").clauses.len(), 2);
        assert_eq!(
            composites(&q(&r, "code=a&value-date=ge2020")),
            [("code-value-date".to_owned(), 1)]
        );
    }
}
