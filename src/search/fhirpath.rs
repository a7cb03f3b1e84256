//! A focused FHIRPath evaluator: the subset that the R4 search parameter expressions use. Paths
//! (with choice elements), `|`, `[n]`, `where`, `exists`, `empty`, `not`, `first`, `as`/`ofType`/
//! `is` (as operators and functions), `resolve() is T` on references, `extension(url)`, `=`, `!=`,
//! `and`, `or`, string, number and boolean literals. Nodes are typed from the R4 element
//! definitions, so a `value` choice knows it is a `Quantity` and an `identifier` an `Identifier`.

use std::borrow::Cow;

use serde_json::Value;

use crate::fhir::conformance::is_resource_type;
use crate::fhir::primitives::element_types;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `$this`.
    This,
    /// `%resource`: the resource being indexed.
    Root,
    /// A name read on the focus (the first step of a path).
    Name(String),
    /// `base.name`.
    Child(Box<Expr>, String),
    /// `base[n]`.
    Index(Box<Expr>, usize),
    /// `base.function(arguments)`; a function called without a base applies to the focus.
    Call(Box<Expr>, String, Vec<Expr>),
    /// `left | right`.
    Union(Box<Expr>, Box<Expr>),
    /// `base is Type`.
    Is(Box<Expr>, String),
    /// `base as Type`.
    As(Box<Expr>, String),
    /// `left = right` (or `!=` when the flag is set).
    Equals(Box<Expr>, Box<Expr>, bool),
    /// `left and right`.
    And(Box<Expr>, Box<Expr>),
    /// `left or right`.
    Or(Box<Expr>, Box<Expr>),
    /// A literal.
    Literal(Value),
}

/// A value met while evaluating, with its FHIR type name when known (`HumanName`, `string`,
/// `Observation.component`, or the type a reference resolves to).
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// The JSON value.
    pub value: Cow<'a, Value>,
    /// The type name; empty when unknown.
    pub ty: Cow<'a, str>,
}

impl<'a> Node<'a> {
    /// The resource itself, typed by its `resourceType`.
    pub fn resource(resource: &'a Value) -> Node<'a> {
        let ty = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Node {
            value: Cow::Borrowed(resource),
            ty: Cow::Borrowed(ty),
        }
    }

    fn owned(value: Value, ty: &'static str) -> Node<'a> {
        Node {
            value: Cow::Owned(value),
            ty: Cow::Borrowed(ty),
        }
    }
}

/// Parses an expression; the error names what was not understood.
pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or_expr()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(token) => Err(format!("unexpected {token:?} in '{text}'")),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Str(String),
    Num(f64),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '\'' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(format!("unterminated string in '{text}'"));
                }
                i += 1;
                tokens.push(Token::Str(s));
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Symbol("!="));
                i += 2;
            }
            '.' | '|' | '(' | ')' | '[' | ']' | ',' | '=' => {
                let symbol = match c {
                    '.' => ".",
                    '|' => "|",
                    '(' => "(",
                    ')' => ")",
                    '[' => "[",
                    ']' => "]",
                    ',' => ",",
                    _ => "=",
                };
                tokens.push(Token::Symbol(symbol));
                i += 1;
            }
            '0'..='9' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    // A dot followed by a letter is a path step, not a decimal point.
                    if chars[i] == '.' && !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                        break;
                    }
                    i += 1;
                }
                let number: String = chars[start..i].iter().collect();
                tokens.push(Token::Num(
                    number.parse().map_err(|_| format!("bad number {number}"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' || c == '`' || c == '%' => {
                let quoted = c == '`';
                let start = if quoted { i + 1 } else { i };
                i = start;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || chars[i] == '_'
                        || chars[i] == '$'
                        || (chars[i] == '%' && i == start)
                        || (quoted && chars[i] != '`'))
                {
                    i += 1;
                }
                tokens.push(Token::Name(chars[start..i].iter().collect()));
                if quoted {
                    i += 1;
                }
            }
            other => return Err(format!("unexpected '{other}' in '{text}'")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(format!("expected '{symbol}', found {:?}", self.peek()))
        }
    }

    fn or_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.equality()?;
        while self.eat_keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.equality()?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, String> {
        let left = self.union()?;
        if self.eat_symbol("=") {
            return Ok(Expr::Equals(Box::new(left), Box::new(self.union()?), false));
        }
        if self.eat_symbol("!=") {
            return Ok(Expr::Equals(Box::new(left), Box::new(self.union()?), true));
        }
        Ok(left)
    }

    fn union(&mut self) -> Result<Expr, String> {
        let mut left = self.type_expr()?;
        while self.eat_symbol("|") {
            left = Expr::Union(Box::new(left), Box::new(self.type_expr()?));
        }
        Ok(left)
    }

    fn type_expr(&mut self) -> Result<Expr, String> {
        let base = self.postfix()?;
        if self.eat_keyword("is") {
            return Ok(Expr::Is(Box::new(base), self.type_name()?));
        }
        if self.eat_keyword("as") {
            return Ok(Expr::As(Box::new(base), self.type_name()?));
        }
        Ok(base)
    }

    fn type_name(&mut self) -> Result<String, String> {
        let mut name = match self.tokens.get(self.at) {
            Some(Token::Name(n)) => n.clone(),
            other => return Err(format!("expected a type name, found {other:?}")),
        };
        self.at += 1;
        // Qualified names: FHIR.Patient, System.String.
        while self.eat_symbol(".") {
            match self.tokens.get(self.at) {
                Some(Token::Name(n)) => name = n.clone(),
                other => return Err(format!("expected a type name, found {other:?}")),
            }
            self.at += 1;
        }
        Ok(name)
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat_symbol(")") {
            return Ok(args);
        }
        loop {
            args.push(self.or_expr()?);
            if self.eat_symbol(")") {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut expr = self.primary()?;
        loop {
            if self.eat_symbol(".") {
                let name = match self.tokens.get(self.at) {
                    Some(Token::Name(n)) => n.clone(),
                    other => return Err(format!("expected a name after '.', found {other:?}")),
                };
                self.at += 1;
                expr = if self.eat_symbol("(") {
                    Expr::Call(Box::new(expr), name, self.arguments()?)
                } else {
                    Expr::Child(Box::new(expr), name)
                };
            } else if self.eat_symbol("[") {
                let index = match self.tokens.get(self.at) {
                    Some(Token::Num(n)) if *n >= 0.0 && n.fract() == 0.0 => *n as usize,
                    other => return Err(format!("expected an index, found {other:?}")),
                };
                self.at += 1;
                self.expect("]")?;
                expr = Expr::Index(Box::new(expr), index);
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("unexpected end of expression")?;
        self.at += 1;
        match token {
            Token::Symbol("(") => {
                let inner = self.or_expr()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Token::Num(n) => Ok(Expr::Literal(
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
            )),
            Token::Name(n) if n == "true" || n == "false" => {
                Ok(Expr::Literal(Value::Bool(n == "true")))
            }
            Token::Name(n) if n == "$this" => Ok(Expr::This),
            Token::Name(n) if n == "%resource" => Ok(Expr::Root),
            Token::Name(n) => {
                if self.eat_symbol("(") {
                    Ok(Expr::Call(Box::new(Expr::This), n, self.arguments()?))
                } else {
                    Ok(Expr::Name(n))
                }
            }
            Token::Symbol(s) => Err(format!("unexpected '{s}'")),
        }
    }
}

/// Evaluates `expr` with `focus` as its input collection, which is also `%resource`.
pub fn evaluate<'a>(expr: &Expr, focus: &[Node<'a>]) -> Vec<Node<'a>> {
    let root = focus.first().cloned();
    eval(expr, focus, root.as_ref())
}

/// Evaluates `expr` on `focus`, inside `root` (the resource, for `%resource`).
pub fn evaluate_in<'a>(expr: &Expr, focus: &[Node<'a>], root: &Node<'a>) -> Vec<Node<'a>> {
    eval(expr, focus, Some(root))
}

fn eval<'a>(expr: &Expr, focus: &[Node<'a>], root: Option<&Node<'a>>) -> Vec<Node<'a>> {
    let evaluate = |e: &Expr, f: &[Node<'a>]| eval(e, f, root);
    match expr {
        Expr::This => focus.to_vec(),
        Expr::Root => root.cloned().into_iter().collect(),
        Expr::Name(name) => focus.iter().flat_map(|n| name_step(n, name)).collect(),
        Expr::Child(base, name) => evaluate(base, focus)
            .iter()
            .flat_map(|n| children(n, name))
            .collect(),
        Expr::Index(base, index) => evaluate(base, focus)
            .into_iter()
            .nth(*index)
            .into_iter()
            .collect(),
        Expr::Union(left, right) => {
            let mut out = evaluate(left, focus);
            out.extend(evaluate(right, focus));
            out
        }
        Expr::Is(base, ty) => {
            let items = evaluate(base, focus);
            match items.as_slice() {
                [one] => vec![boolean(is_type(one, ty))],
                _ => Vec::new(),
            }
        }
        Expr::As(base, ty) => evaluate(base, focus)
            .into_iter()
            .filter(|n| is_type(n, ty))
            .collect(),
        Expr::Equals(left, right, negate) => {
            let (l, r) = (evaluate(left, focus), evaluate(right, focus));
            if l.is_empty() || r.is_empty() {
                return Vec::new();
            }
            let same = l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| equal(a, b));
            vec![boolean(same != *negate)]
        }
        Expr::And(left, right) => {
            match (
                truth(&evaluate(left, focus)),
                truth(&evaluate(right, focus)),
            ) {
                (Some(false), _) | (_, Some(false)) => vec![boolean(false)],
                (Some(true), Some(true)) => vec![boolean(true)],
                _ => Vec::new(),
            }
        }
        Expr::Or(left, right) => {
            match (
                truth(&evaluate(left, focus)),
                truth(&evaluate(right, focus)),
            ) {
                (Some(true), _) | (_, Some(true)) => vec![boolean(true)],
                (Some(false), Some(false)) => vec![boolean(false)],
                _ => Vec::new(),
            }
        }
        Expr::Literal(value) => vec![Node {
            value: Cow::Owned(value.clone()),
            ty: Cow::Borrowed(match value {
                Value::Bool(_) => "boolean",
                Value::Number(_) => "decimal",
                _ => "string",
            }),
        }],
        Expr::Call(base, name, args) => call(&evaluate(base, focus), name, args, root),
    }
}

fn boolean<'a>(b: bool) -> Node<'a> {
    Node::owned(Value::Bool(b), "boolean")
}

/// A singleton boolean's value; empty (or anything else) is `None`.
fn truth(items: &[Node<'_>]) -> Option<bool> {
    match items {
        [one] => match one.value.as_ref() {
            Value::Bool(b) => Some(*b),
            _ => Some(true),
        },
        _ => None,
    }
}

fn equal(a: &Node<'_>, b: &Node<'_>) -> bool {
    match (a.value.as_ref(), b.value.as_ref()) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (x, y) => x == y,
    }
}

fn call<'a>(
    focus: &[Node<'a>],
    name: &str,
    args: &[Expr],
    root: Option<&Node<'a>>,
) -> Vec<Node<'a>> {
    let evaluate = |e: &Expr, f: &[Node<'a>]| eval(e, f, root);
    match (name, args) {
        ("where", [criteria]) => focus
            .iter()
            .filter(|n| truth(&evaluate(criteria, std::slice::from_ref(n))) == Some(true))
            .cloned()
            .collect(),
        ("exists", []) => vec![boolean(!focus.is_empty())],
        ("exists", [_]) => vec![boolean(!call(focus, "where", args, root).is_empty())],
        ("empty", []) => vec![boolean(focus.is_empty())],
        ("not", []) => match truth(focus) {
            Some(b) => vec![boolean(!b)],
            None => Vec::new(),
        },
        ("first", []) => focus.first().cloned().into_iter().collect(),
        ("as" | "ofType", [Expr::Name(ty)]) => {
            focus.iter().filter(|n| is_type(n, ty)).cloned().collect()
        }
        ("is", [Expr::Name(ty)]) => match focus {
            [one] => vec![boolean(is_type(one, ty))],
            _ => Vec::new(),
        },
        ("resolve", []) => focus.iter().filter_map(resolve).collect(),
        ("extension", [Expr::Literal(Value::String(url))]) => focus
            .iter()
            .flat_map(|n| children(n, "extension"))
            .filter(|e| e.value.get("url").and_then(Value::as_str) == Some(url.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// `resolve()` without a database: a reference resolves to a typed placeholder, which is all
/// that `resolve() is Patient` needs. Contained and identifier-only references resolve to
/// nothing.
fn resolve<'a>(node: &Node<'a>) -> Option<Node<'a>> {
    let reference = node.value.get("reference").and_then(Value::as_str)?;
    let (t, _) = crate::search::reference_parts(reference)?;
    Some(Node {
        value: Cow::Owned(Value::Null),
        ty: Cow::Owned(t.to_owned()),
    })
}

const QUANTITY_TYPES: [&str; 7] = [
    "Quantity",
    "Age",
    "Count",
    "Distance",
    "Duration",
    "MoneyQuantity",
    "SimpleQuantity",
];

fn is_type(node: &Node<'_>, ty: &str) -> bool {
    let actual = node.ty.as_ref();
    actual == ty
        || actual.eq_ignore_ascii_case(ty)
        || (ty == "Quantity" && QUANTITY_TYPES.contains(&actual))
        || (ty == "Resource" || ty == "DomainResource") && is_resource_type(actual)
        || (ty == "uri" && matches!(actual, "url" | "canonical" | "oid" | "uuid"))
        || (ty == "string" && matches!(actual, "code" | "id" | "markdown"))
}

/// The first step of a path: a resource type name selects the resource when it is of that
/// type (and nothing otherwise); any other name is a child element.
fn name_step<'a>(node: &Node<'a>, name: &str) -> Vec<Node<'a>> {
    let starts_upper = name.starts_with(|c: char| c.is_ascii_uppercase());
    if starts_upper && (name == "Resource" || name == "DomainResource" || is_resource_type(name)) {
        return if is_type(node, name) {
            vec![node.clone()]
        } else {
            Vec::new()
        };
    }
    children(node, name)
}

/// The values of element `name` of `node`, typed. Choice elements (`value`) yield every
/// present `value[x]` with its type.
fn children<'a>(node: &Node<'a>, name: &str) -> Vec<Node<'a>> {
    let Cow::Borrowed(parent) = node.value else {
        // Only literals and resolved placeholders are owned; they have no children.
        return Vec::new();
    };
    let Some(object) = parent.as_object() else {
        return Vec::new();
    };
    let table = element_types(&node.ty);
    let mut out = Vec::new();
    let mut push = |value: &'a Value, ty: Cow<'a, str>| match value {
        Value::Array(items) => {
            for item in items {
                out.push(typed(item, ty.clone()));
            }
        }
        single => out.push(typed(single, ty)),
    };
    if let Some(value) = object.get(name) {
        let ty = table
            .and_then(|t| t.get(name))
            .map_or(Cow::Borrowed(""), |t| Cow::Borrowed(t.as_str()));
        push(value, ty);
        return out;
    }
    if table.is_some_and(|t| t.contains_key(name)) {
        // An element that is not a choice and is absent: no key can stand for it.
        return out;
    }
    // A choice element: `value` matches `valueQuantity`, `valueString`...
    for (key, value) in object {
        if let Some(suffix) = key.strip_prefix(name)
            && suffix.starts_with(|c: char| c.is_ascii_uppercase())
        {
            let ty = match table.and_then(|t| t.get(key.as_str())) {
                Some(t) => Cow::Borrowed(t.as_str()),
                None if table.is_some() => continue,
                None => Cow::Owned(lower_first(suffix)),
            };
            push(value, ty);
        }
    }
    out
}

/// A node for `value`; a resource (contained, or in a Bundle entry) takes its own type.
fn typed<'a>(value: &'a Value, ty: Cow<'a, str>) -> Node<'a> {
    let ty = if ty == "Resource" || ty.is_empty() {
        match value.get("resourceType").and_then(Value::as_str) {
            Some(t) => Cow::Borrowed(t),
            None => ty,
        }
    } else {
        ty
    };
    Node {
        value: Cow::Borrowed(value),
        ty,
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if !is_resource_type(text) && text != "Quantity" => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str, resource: &Value) -> Vec<Value> {
        let expr = parse(expression).unwrap();
        evaluate(&expr, &[Node::resource(resource)])
            .into_iter()
            .map(|n| n.value.into_owned())
            .collect()
    }

    fn types(expression: &str, resource: &Value) -> Vec<String> {
        let expr = parse(expression).unwrap();
        evaluate(&expr, &[Node::resource(resource)])
            .into_iter()
            .map(|n| n.ty.into_owned())
            .collect()
    }

    #[test]
    fn parses_every_r4_search_parameter_expression() {
        let bundle: Value =
            serde_json::from_str(include_str!("../../conformance/r4-search-parameters.json"))
                .unwrap();
        let mut parsed = 0;
        for entry in bundle["entry"].as_array().unwrap() {
            if let Some(expression) = entry["resource"]["expression"].as_str() {
                parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
                parsed += 1;
            }
        }
        assert!(parsed > 1300, "{parsed}");
    }

    #[test]
    fn paths_unions_and_other_types() {
        let patient = json!({"resourceType": "Patient", "name": [{"family": "Chalmers", "given": ["Peter", "James"]}, {"family": "Windsor"}]});
        assert_eq!(
            eval("Patient.name.family", &patient),
            [json!("Chalmers"), json!("Windsor")]
        );
        assert_eq!(
            eval("Patient.name.given | Patient.name.family", &patient).len(),
            4
        );
        assert!(eval("Practitioner.name | Person.name", &patient).is_empty());
        assert_eq!(types("Patient.name", &patient), ["HumanName", "HumanName"]);
        assert_eq!(
            eval(
                "Resource.id",
                &json!({"resourceType": "Patient", "id": "x"})
            ),
            [json!("x")]
        );
        assert_eq!(eval("Patient.name[1].family", &patient), [json!("Windsor")]);
    }

    #[test]
    fn choice_elements_and_as() {
        let obs = json!({"resourceType": "Observation", "valueQuantity": {"value": 5.4, "unit": "mg"},
            "component": [{"valueString": "x"}, {"valueQuantity": {"value": 1}}]});
        assert_eq!(types("Observation.value", &obs), ["Quantity"]);
        assert_eq!(eval("(Observation.value as Quantity)", &obs).len(), 1);
        assert!(eval("(Observation.value as CodeableConcept)", &obs).is_empty());
        assert_eq!(
            eval("Observation.component.value.as(Quantity)", &obs).len(),
            1
        );
        assert_eq!(
            eval(
                "(Observation.value as string) | Observation.component.value.ofType(string)",
                &obs
            ),
            [json!("x")]
        );
        let condition = json!({"resourceType": "Condition", "onsetAge": {"value": 3}});
        assert_eq!(
            types(
                "Condition.onset.as(Age) | Condition.onset.as(Range)",
                &condition
            ),
            ["Age"]
        );
    }

    #[test]
    fn where_resolve_and_booleans() {
        let obs = json!({"resourceType": "Observation", "subject": {"reference": "Patient/1"},
            "performer": [{"reference": "Practitioner/2"}, {"reference": "http://x.org/fhir/Patient/3"}]});
        assert_eq!(
            eval("Observation.subject.where(resolve() is Patient)", &obs).len(),
            1
        );
        assert_eq!(
            eval("Observation.performer.where(resolve() is Patient)", &obs),
            [json!({"reference": "http://x.org/fhir/Patient/3"})]
        );
        let patient = json!({"resourceType": "Patient", "telecom": [{"system": "email", "value": "a@b"}, {"system": "phone", "value": "1"}]});
        assert_eq!(
            eval("Patient.telecom.where(system='email')", &patient),
            [json!({"system": "email", "value": "a@b"})]
        );
        let deceased = "Patient.deceased.exists() and Patient.deceased != false";
        assert_eq!(eval(deceased, &patient), [json!(false)]);
        assert_eq!(
            eval(
                deceased,
                &json!({"resourceType": "Patient", "deceasedBoolean": true})
            ),
            [json!(true)]
        );
        assert_eq!(
            eval(
                deceased,
                &json!({"resourceType": "Patient", "deceasedDateTime": "2020"})
            ),
            [json!(true)]
        );
        assert_eq!(
            eval(
                deceased,
                &json!({"resourceType": "Patient", "deceasedBoolean": false})
            ),
            [json!(false)]
        );
    }

    #[test]
    fn extensions_and_contained_resources() {
        let sr = json!({"resourceType": "ServiceRequest", "extension": [{"url": "http://a", "valueCoding": {"code": "red"}}, {"url": "http://b", "valueString": "x"}],
            "contained": [{"resourceType": "Patient", "id": "p"}]});
        assert_eq!(
            eval("ServiceRequest.extension('http://a').value", &sr),
            [json!({"code": "red"})]
        );
        assert_eq!(
            types("ServiceRequest.extension('http://a').value", &sr),
            ["Coding"]
        );
        assert_eq!(types("ServiceRequest.contained", &sr), ["Patient"]);
    }
}
