//! Label selectors (the full string syntax and `metav1.LabelSelector` objects) and field
//! selectors, parsed once and matched against objects.

use std::fmt;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

fn requirement_error(message: impl fmt::Display) -> SelectorError {
    SelectorError(format!("unable to parse requirement: {message}"))
}

/// A label requirement's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value` (and `key==value`).
    Equals,
    /// `key!=value`: also matches objects without the label.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`: also matches objects without the label.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is an integer less than the value.
    LessThan,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and deduplicated; one for `=`, `!=`, `>` and `<`; none for (does not) exist.
    values: Vec<String>,
}

impl Requirement {
    /// A validated requirement, worded like Kubernetes' errors when invalid.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        validate_label_key(key)?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(requirement_error(format!(
                    "key {key:?}: for 'in', 'notin' operators, values set can't be empty"
                )))
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return Err(requirement_error(format!(
                    "key {key:?}: exact-match compatibility requires one single value"
                )))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(requirement_error(format!(
                    "key {key:?}: values set must be empty for exists and does not exist"
                )))
            }
            Operator::GreaterThan | Operator::LessThan
                if values.len() != 1 || values[0].parse::<i64>().is_err() =>
            {
                return Err(requirement_error(format!(
                    "key {key:?}: for 'Gt', 'Lt' operators, exactly one integer value is required"
                )))
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for value in &values {
                validate_label_value(value)?;
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn operator(&self) -> Operator {
        self.operator
    }
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the labels (a JSON object; anything else has no labels) satisfy this.
    pub fn matches(&self, labels: &Value) -> bool {
        let label = labels.get(&self.key).and_then(Value::as_str);
        let has = |value: &str| self.values.iter().any(|v| v == value);
        let compare = |label: Option<&str>, want: std::cmp::Ordering| {
            let bound = self.values.first().and_then(|v| v.parse::<i64>().ok());
            match (label.and_then(|l| l.parse::<i64>().ok()), bound) {
                (Some(label), Some(bound)) => label.cmp(&bound) == want,
                _ => false,
            }
        };
        match self.operator {
            Operator::Equals | Operator::In => label.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !label.is_some_and(has),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan => compare(label, std::cmp::Ordering::Greater),
            Operator::LessThan => compare(label, std::cmp::Ordering::Less),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
        }
    }
}

/// A parsed label selector: every requirement must hold. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key (stable), as Kubernetes keeps them.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k` (and `==`).
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut lexer = Lexer::new(s);
        let mut requirements = Vec::new();
        if lexer.peek() == Token::End {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(parse_requirement(&mut lexer)?);
            match lexer.next() {
                Token::Comma => {}
                Token::End => break,
                other => {
                    return Err(requirement_error(format!(
                        "found '{other}', expected: ',' or 'end of string'"
                    )))
                }
            }
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// From a `metav1.LabelSelector` JSON object (`matchLabels`, `matchExpressions`).
    pub fn from_object(selector: &Value) -> Result<LabelSelector, SelectorError> {
        let selector = match selector {
            Value::Null => return Ok(LabelSelector::default()),
            Value::Object(map) => map,
            other => {
                return Err(SelectorError(format!(
                    "a label selector must be an object, not {other}"
                )))
            }
        };
        let mut requirements = Vec::new();
        match selector.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Value::String(value) = value else {
                        return Err(SelectorError(format!(
                            "matchLabels[{key:?}]: the value must be a string, not {value}"
                        )));
                    };
                    requirements.push(Requirement::new(
                        key,
                        Operator::Equals,
                        vec![value.clone()],
                    )?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "matchLabels must be an object, not {other}"
                )))
            }
        }
        match selector.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for (i, expression) in expressions.iter().enumerate() {
                    requirements.push(expression_requirement(i, expression)?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!(
                    "matchExpressions must be a list, not {other}"
                )))
            }
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// A selector of exactly these requirements (sorted by key).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Whether the labels (a JSON object of strings, or `Null` for none) match.
    pub fn matches(&self, labels: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (as in a Scale's `status.selector`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

fn expression_requirement(i: usize, expression: &Value) -> Result<Requirement, SelectorError> {
    let at = format!("matchExpressions[{i}]");
    let Value::Object(expression) = expression else {
        return Err(SelectorError(format!("{at} must be an object")));
    };
    let key = match expression.get("key") {
        Some(Value::String(key)) => key,
        _ => return Err(SelectorError(format!("{at}.key: a string is required"))),
    };
    let operator = match expression.get("operator") {
        Some(Value::String(op)) => match op.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(SelectorError(format!(
                    "{at}.operator: {other:?} is not a valid label selector operator"
                )))
            }
        },
        _ => {
            return Err(SelectorError(format!(
                "{at}.operator: a string is required"
            )))
        }
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SelectorError(format!("{at}.values: {v} is not a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(SelectorError(format!(
                "{at}.values must be a list, not {other}"
            )))
        }
    };
    Requirement::new(key, operator, values).map_err(|e| SelectorError(format!("{at}: {}", e.0)))
}

// --- the label selector string syntax ---------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Equals,
    DoubleEquals,
    NotEquals,
    Not,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Token::Word(word) => word,
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Not => "!",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::End => "",
        })
    }
}

struct Lexer<'a> {
    input: &'a str,
    at: usize,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '<' | '>')
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer { input, at: 0 }
    }

    /// The next token and the position after it.
    fn scan(&self) -> (Token<'a>, usize) {
        let rest = &self.input[self.at..];
        let trimmed = rest.trim_start();
        let start = self.at + (rest.len() - trimmed.len());
        let mut chars = trimmed.chars();
        let Some(c) = chars.next() else {
            return (Token::End, start);
        };
        let second = chars.next();
        let (token, len) = match (c, second) {
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Not, 1),
            ('>', _) => (Token::Greater, 1),
            ('<', _) => (Token::Less, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            _ => {
                let len = trimmed
                    .find(|c: char| c.is_whitespace() || is_special(c))
                    .unwrap_or(trimmed.len());
                (Token::Word(&trimmed[..len]), len)
            }
        };
        (token, start + len)
    }

    fn peek(&self) -> Token<'a> {
        self.scan().0
    }

    fn next(&mut self) -> Token<'a> {
        let (token, at) = self.scan();
        self.at = at;
        token
    }
}

fn parse_requirement(lexer: &mut Lexer<'_>) -> Result<Requirement, SelectorError> {
    let (key, negated) = match lexer.next() {
        Token::Word(key) => (key, false),
        Token::Not => match lexer.next() {
            Token::Word(key) => (key, true),
            other => {
                return Err(requirement_error(format!(
                    "found '{other}', expected: identifier after '!'"
                )))
            }
        },
        other => {
            return Err(requirement_error(format!(
                "found '{other}', expected: !, identifier, or 'end of string'"
            )))
        }
    };
    if negated {
        return Requirement::new(key, Operator::DoesNotExist, Vec::new());
    }
    let operator = match lexer.peek() {
        Token::Comma | Token::End => return Requirement::new(key, Operator::Exists, Vec::new()),
        Token::Equals | Token::DoubleEquals => Operator::Equals,
        Token::NotEquals => Operator::NotEquals,
        Token::Greater => Operator::GreaterThan,
        Token::Less => Operator::LessThan,
        Token::Word("in") => Operator::In,
        Token::Word("notin") => Operator::NotIn,
        other => {
            return Err(requirement_error(format!(
                "found '{other}', expected: in, notin, =, ==, !=, gt, lt, ',' or 'end of string'"
            )))
        }
    };
    lexer.next();
    let values = match operator {
        Operator::In | Operator::NotIn => parse_value_set(lexer)?,
        _ => match lexer.peek() {
            Token::Word(value) => {
                lexer.next();
                vec![value.to_string()]
            }
            // `a=` selects an empty value.
            Token::Comma | Token::End => vec![String::new()],
            other => {
                return Err(requirement_error(format!(
                    "found '{other}', expected: identifier"
                )))
            }
        },
    };
    Requirement::new(key, operator, values)
}

/// `(a,b,c)`; an empty element (`(a,)`) is the empty value.
fn parse_value_set(lexer: &mut Lexer<'_>) -> Result<Vec<String>, SelectorError> {
    match lexer.next() {
        Token::Open => {}
        other => return Err(requirement_error(format!("found '{other}', expected: '('"))),
    }
    let mut values = Vec::new();
    let mut expect_value = true;
    loop {
        match lexer.next() {
            Token::Word(value) if expect_value => {
                values.push(value.to_string());
                expect_value = false;
            }
            Token::Comma => {
                if expect_value {
                    values.push(String::new());
                }
                expect_value = true;
            }
            Token::Close => {
                if expect_value && !values.is_empty() {
                    values.push(String::new());
                }
                return Ok(values);
            }
            other if expect_value => {
                return Err(requirement_error(format!(
                    "found '{other}', expected: ',', ')' or identifier"
                )))
            }
            other => {
                return Err(requirement_error(format!(
                    "found '{other}', expected: ',' or ')'"
                )))
            }
        }
    }
}

// --- label keys and values --------------------------------------------------------------------

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// A qualified name's name part, or a label value: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An RFC 1123 subdomain: dot-separated labels of lowercase alphanumerics and '-'.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

fn validate_label_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |why: String| requirement_error(format!("invalid label key {key:?}: {why}"));
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid("prefix part must be non-empty".into()));
        }
        if !is_dns_subdomain(prefix) {
            return Err(invalid(
                "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
                    .into(),
            ));
        }
    }
    if name.is_empty() {
        return Err(invalid("name part must be non-empty".into()));
    }
    if name.len() > 63 {
        return Err(invalid(
            "name part must be no more than 63 characters".into(),
        ));
    }
    if !is_name_part(name) {
        return Err(invalid(format!("name part {NAME_RULE}")));
    }
    Ok(())
}

fn validate_label_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(requirement_error(format!(
            "invalid label value {value:?}: must be no more than 63 characters"
        )));
    }
    if !is_name_part(value) {
        return Err(requirement_error(format!(
            "invalid label value {value:?}: a valid label {NAME_RULE}"
        )));
    }
    Ok(())
}

// --- field selectors --------------------------------------------------------------------------

/// How a selectable field's value is rendered for comparison when it is absent or typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldType {
    /// Absent compares as the empty string.
    Text,
    /// `true`/`false`; absent is `false`.
    Bool,
    /// The decimal form; absent is `0`.
    Integer,
}

/// The JSON path and type of a field selectable on `kind`, `None` if it is not supported.
fn selectable_field(kind: &str, field: &str) -> Option<(&'static [&'static str], FieldType)> {
    use FieldType::{Bool, Integer, Text};
    let found: (&'static [&'static str], FieldType) = match (kind, field) {
        (_, "metadata.name") => (&["metadata", "name"], Text),
        (_, "metadata.namespace") => (&["metadata", "namespace"], Text),
        ("Pod", "spec.nodeName") => (&["spec", "nodeName"], Text),
        ("Pod", "spec.restartPolicy") => (&["spec", "restartPolicy"], Text),
        ("Pod", "spec.schedulerName") => (&["spec", "schedulerName"], Text),
        ("Pod", "spec.serviceAccountName") => (&["spec", "serviceAccountName"], Text),
        ("Pod", "spec.hostNetwork") => (&["spec", "hostNetwork"], Bool),
        ("Pod", "status.phase") => (&["status", "phase"], Text),
        ("Pod", "status.podIP") => (&["status", "podIP"], Text),
        ("Pod", "status.nominatedNodeName") => (&["status", "nominatedNodeName"], Text),
        ("Event", "involvedObject.kind") => (&["involvedObject", "kind"], Text),
        ("Event", "involvedObject.namespace") => (&["involvedObject", "namespace"], Text),
        ("Event", "involvedObject.name") => (&["involvedObject", "name"], Text),
        ("Event", "involvedObject.uid") => (&["involvedObject", "uid"], Text),
        ("Event", "involvedObject.apiVersion") => (&["involvedObject", "apiVersion"], Text),
        ("Event", "involvedObject.resourceVersion") => {
            (&["involvedObject", "resourceVersion"], Text)
        }
        ("Event", "involvedObject.fieldPath") => (&["involvedObject", "fieldPath"], Text),
        ("Event", "reason") => (&["reason"], Text),
        ("Event", "reportingComponent") => (&["reportingComponent"], Text),
        ("Event", "source") => (&["source", "component"], Text),
        ("Event", "type") => (&["type"], Text),
        ("Namespace", "status.phase") => (&["status", "phase"], Text),
        ("Node", "spec.unschedulable") => (&["spec", "unschedulable"], Bool),
        ("ReplicaSet", "status.replicas") => (&["status", "replicas"], Integer),
        ("Service", "spec.clusterIP") => (&["spec", "clusterIP"], Text),
        ("Service", "spec.type") => (&["spec", "type"], Text),
        _ => return None,
    };
    Some(found)
}

/// One `field=value` or `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    path: &'static [&'static str],
    ty: FieldType,
    equal: bool,
    value: String,
}

/// A selectable field's value in `object`, rendered as a selector compares it.
fn rendered(object: &Value, path: &[&str], ty: FieldType) -> String {
    let value = path.iter().try_fold(object, |v, k| v.get(k));
    match (value, ty) {
        (Some(Value::String(s)), _) => s.clone(),
        (Some(Value::Bool(b)), _) => b.to_string(),
        (Some(Value::Number(n)), _) => n.to_string(),
        (None | Some(Value::Null), FieldType::Bool) => "false".into(),
        (None | Some(Value::Null), FieldType::Integer) => "0".into(),
        (None | Some(Value::Null), FieldType::Text) => String::new(),
        (Some(other), _) => other.to_string(),
    }
}

/// The value `field` has in `object` of `kind`, as a field selector compares it (an absent
/// text field is empty); `None` if `kind` has no such selectable field. Indexes keyed by a
/// field use this, so they always agree with the selectors they serve.
pub fn field_value(kind: &str, field: &str, object: &Value) -> Option<String> {
    let (path, ty) = selectable_field(kind, field)?;
    Some(rendered(object, path, ty))
}

impl FieldTerm {
    fn actual(&self, object: &Value) -> String {
        rendered(object, self.path, self.ty)
    }

    fn matches(&self, object: &Value) -> bool {
        (self.actual(object) == self.value) == self.equal
    }
}

/// A parsed field selector: `metadata.name=x,spec.nodeName!=y`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses a field selector for objects of `kind` (e.g. `Pod`). Every kind supports
    /// `metadata.name` and `metadata.namespace`; a field the kind does not support is an error
    /// worded like Kubernetes': `field label not supported: <field>`.
    pub fn parse(kind: &str, s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped(s, ',') {
            let term = raw.trim();
            if term.is_empty() {
                continue;
            }
            let Some((field, equal, value)) = split_field_term(term) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            let value = unescape_field_value(value.trim())?;
            let Some((path, ty)) = selectable_field(kind, field) else {
                return Err(SelectorError(format!("field label not supported: {field}")));
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                path,
                ty,
                equal,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| term.matches(object))
    }

    /// The string values `=` terms on text fields require, non-empty ones: an object
    /// matches only if each appears in it as a JSON string, so a watcher can skip an object
    /// whose encoding lacks one without decoding it.
    pub fn required_values(&self) -> impl Iterator<Item = &str> {
        self.terms
            .iter()
            .filter(|t| t.equal && !t.value.is_empty() && t.ty == FieldType::Text)
            .map(|t| t.value.as_str())
    }

    /// The value an `=` term requires of `field`, if there is one (empty included): an
    /// indexed watch hands such a watcher only the objects that have or had that value.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }

    /// The value required for `metadata.name` by an `=` term, if any (lets a list be a get).
    pub fn required_name(&self) -> Option<&str> {
        self.required_value("metadata.name")
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form: terms as given, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if term.equal { "=" } else { "!=" };
            let value = term
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            write!(f, "{}{op}{value}", term.field)?;
        }
        Ok(())
    }
}

/// Splits at `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `(field, is_equality, raw value)` at the first unescaped `!=`, `==` or `=`.
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        match c {
            '\\' => escaped = true,
            '!' if rest.starts_with("!=") => return Some((&term[..i], false, &term[i + 2..])),
            '=' if rest.starts_with("==") => return Some((&term[..i], true, &term[i + 2..])),
            '=' => return Some((&term[..i], true, &term[i + 1..])),
            _ => {}
        }
    }
    None
}

fn unescape_field_value(value: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if matches!(c, ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector value {value:?}: unescaped {c:?}"
                )));
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(c @ ('\\' | ',' | '=')) => out.push(c),
            _ => {
                return Err(SelectorError(format!(
                    "invalid field selector value {value:?}: invalid escape sequence"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_values_are_the_equal_text_terms() {
        let f = FieldSelector::parse(
            "Pod",
            "spec.nodeName=n1,metadata.namespace!=x,status.phase=",
        )
        .unwrap();
        assert_eq!(f.required_values().collect::<Vec<_>>(), ["n1"]);
        let n = FieldSelector::parse("Node", "spec.unschedulable=true").unwrap();
        assert_eq!(
            n.required_values().count(),
            0,
            "a bool is not a JSON string"
        );
    }
    use serde_json::json;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_operator() {
        let s = sel("a=b, c==d,e!=f,g in (h, i),j notin (k),l,!m,n>5,o<10");
        assert_eq!(s.requirements().len(), 9);
        assert_eq!(
            s.to_string(),
            "a=b,c=d,e!=f,g in (h,i),j notin (k),l,!m,n>5,o<10"
        );
        let ops: Vec<Operator> = s.requirements().iter().map(Requirement::operator).collect();
        assert_eq!(
            ops,
            [
                Operator::Equals,
                Operator::Equals,
                Operator::NotEquals,
                Operator::In,
                Operator::NotIn,
                Operator::Exists,
                Operator::DoesNotExist,
                Operator::GreaterThan,
                Operator::LessThan
            ]
        );
    }

    #[test]
    fn canonical_form_sorts_keys_and_values() {
        assert_eq!(
            sel("tier in (b,a,b),app=web").to_string(),
            "app=web,tier in (a,b)"
        );
        assert_eq!(sel("  x  ,  !y ").to_string(), "x,!y");
        assert_eq!(sel("a=").to_string(), "a=");
        assert_eq!(sel("k in (a,)").to_string(), "k in (,a)");
        assert_eq!(sel("").to_string(), "");
        assert_eq!(
            sel("app.kubernetes.io/name=web").to_string(),
            "app.kubernetes.io/name=web"
        );
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", "   "] {
            let s = sel(s);
            assert!(s.is_empty());
            assert!(s.matches(&Value::Null));
            assert!(s.matches(&json!({"a": "b"})));
        }
        assert!(!sel("a").is_empty());
    }

    #[test]
    fn matching() {
        let labels = json!({"app": "web", "tier": "front", "n": "7", "empty": ""});
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "tier in (front,back)",
            "tier notin (back)",
            "missing notin (x)",
            "app",
            "!missing",
            "empty=",
            "empty",
            "n>5",
            "n<8",
            "app=web,tier=front",
        ];
        for s in yes {
            assert!(sel(s).matches(&labels), "{s} should match");
        }
        let no = [
            "app=db",
            "app!=web",
            "missing=x",
            "missing in (x)",
            "tier in (back)",
            "tier notin (front)",
            "missing",
            "!app",
            "app=",
            "n>7",
            "n<7",
            "app>1",
            "missing<1",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(!sel(s).matches(&labels), "{s} should not match");
        }
        assert!(sel("a!=b").matches(&Value::Null));
        assert!(sel("!a").matches(&Value::Null));
        assert!(!sel("a").matches(&Value::Null));
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("a b", "found 'b', expected: in, notin"),
            (",a", "found ',', expected: !, identifier"),
            ("a,", "found '', expected: !, identifier"),
            ("!", "found '', expected: identifier after '!'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("a in b", "found 'b', expected: '('"),
            ("a in (b", "found '', expected: ',' or ')'"),
            ("a in (b c)", "found 'c', expected: ',' or ')'"),
            ("a in ()", "values set can't be empty"),
            ("a notin ()", "values set can't be empty"),
            ("a=(b)", "found '(', expected: identifier"),
            ("a>b", "integer"),
            ("a<", "integer"),
            (
                "Foo/bar=x",
                "prefix part must be a lowercase RFC 1123 subdomain",
            ),
            ("/bar=x", "prefix part must be non-empty"),
            ("a.io/=x", "name part must be non-empty"),
            ("-a=x", "name part must consist of alphanumeric characters"),
            ("a=-x", "invalid label value \"-x\""),
            ("a=x/y", "invalid label value \"x/y\""),
            ("a in (b,-c)", "invalid label value \"-c\""),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).unwrap_err();
            assert!(
                err.0.starts_with("unable to parse requirement: ") && err.0.contains(want),
                "{input}: {err}"
            );
        }
        let long = "a".repeat(64);
        assert!(LabelSelector::parse(&format!("{long}=x")).is_err());
        assert!(LabelSelector::parse(&format!("x={long}")).is_err());
        assert!(LabelSelector::parse(&format!("x={}", "a".repeat(63))).is_ok());
    }

    #[test]
    fn from_object() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"}})).unwrap();
        assert_eq!(s.to_string(), "app=web");
        assert!(s.matches(&json!({"app": "web", "x": "y"})));

        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "team", "operator": "Exists", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "!canary,env in (dev,prod),team,tier=front,zone notin (b)"
        );
        assert!(s.matches(&json!({"tier": "front", "env": "dev", "team": "x"})));
        assert!(!s.matches(&json!({"tier": "front", "env": "dev", "team": "x", "canary": "1"})));
        assert!(!s.matches(&json!({"tier": "front", "env": "dev", "team": "x", "zone": "b"})));

        for empty in [
            json!(null),
            json!({}),
            json!({"matchLabels": {}, "matchExpressions": []}),
        ] {
            let s = LabelSelector::from_object(&empty).unwrap();
            assert!(s.is_empty());
            assert!(s.matches(&json!({"any": "thing"})));
        }
    }

    #[test]
    fn from_object_errors() {
        let cases = [
            (json!("app=web"), "must be an object"),
            (json!({"matchLabels": {"app": 1}}), "must be a string"),
            (
                json!({"matchLabels": {"Bad/key": "x"}}),
                "invalid label key",
            ),
            (json!({"matchLabels": []}), "matchLabels must be an object"),
            (json!({"matchExpressions": {}}), "must be a list"),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                "\"Gt\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values set must be empty",
            ),
            (
                json!({"matchExpressions": [{"operator": "Exists"}]}),
                "matchExpressions[0].key",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "is not a string",
            ),
        ];
        for (object, want) in cases {
            let err = LabelSelector::from_object(&object).unwrap_err();
            assert!(err.0.contains(want), "{object}: {err}");
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default", "hostNetwork": false},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        })
    }

    fn fsel(kind: &str, s: &str) -> FieldSelector {
        FieldSelector::parse(kind, s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn field_selector_pods() {
        let yes = [
            "",
            "metadata.name=web-1",
            "metadata.name==web-1",
            "metadata.namespace=default",
            "spec.nodeName=n1,status.phase=Running",
            "spec.nodeName!=n2",
            "status.phase!=Succeeded,status.phase!=Failed",
            "spec.restartPolicy=Always",
            "spec.schedulerName=default-scheduler",
            "spec.serviceAccountName=default",
            "status.podIP=10.0.0.5",
            "spec.hostNetwork=false",
            "status.nominatedNodeName=",
            " metadata.name = web-1 , ",
        ];
        for s in yes {
            assert!(fsel("Pod", s).matches(&pod()), "{s} should match");
        }
        let no = [
            "metadata.name=web-2",
            "spec.nodeName=",
            "spec.nodeName!=n1",
            "status.phase=Pending",
        ];
        for s in no {
            assert!(!fsel("Pod", s).matches(&pod()), "{s} should not match");
        }
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(fsel("Pod", "spec.nodeName=").matches(&unscheduled));
        assert!(!fsel("Pod", "spec.nodeName!=").matches(&unscheduled));
    }

    #[test]
    fn field_selector_other_kinds() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u1",
                               "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{c}"},
            "reason": "Scheduled", "reportingComponent": "navarch-scheduler",
            "source": {"component": "default-scheduler"}, "type": "Normal"
        });
        assert!(fsel(
            "Event",
            "involvedObject.kind=Pod,involvedObject.namespace=default,involvedObject.name=web-1,\
             involvedObject.uid=u1,involvedObject.apiVersion=v1,involvedObject.resourceVersion=42,\
             involvedObject.fieldPath=spec.containers{c},reason=Scheduled,\
             reportingComponent=navarch-scheduler,source=default-scheduler,type=Normal"
        )
        .matches(&event));
        assert!(!fsel("Event", "type=Warning").matches(&event));

        let node = json!({"metadata": {"name": "n1"}, "spec": {}});
        assert!(fsel("Node", "spec.unschedulable=false").matches(&node));
        assert!(!fsel("Node", "spec.unschedulable=true").matches(&node));
        let cordoned = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert!(fsel("Node", "spec.unschedulable=true").matches(&cordoned));
        assert!(fsel("Node", "metadata.namespace=").matches(&node));

        let rs = json!({"metadata": {"name": "rs"}, "status": {"replicas": 3}});
        assert!(fsel("ReplicaSet", "status.replicas=3").matches(&rs));
        assert!(fsel("ReplicaSet", "status.replicas!=0").matches(&rs));
        assert!(fsel("ReplicaSet", "status.replicas=0").matches(&json!({"status": {}})));

        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert!(fsel("Namespace", "status.phase=Active").matches(&ns));

        let svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP"}});
        assert!(fsel("Service", "spec.clusterIP=10.96.0.1,spec.type=ClusterIP").matches(&svc));

        for kind in ["Lease", "Deployment", "Endpoints"] {
            assert!(fsel(kind, "metadata.name=x,metadata.namespace=y")
                .matches(&json!({"metadata": {"name": "x", "namespace": "y"}})));
            assert!(FieldSelector::parse(kind, "spec.replicas=1").is_err());
        }
    }

    #[test]
    fn field_selector_errors() {
        let cases = [
            ("Pod", "spec.foo=1", "field label not supported: spec.foo"),
            (
                "Node",
                "spec.nodeName=x",
                "field label not supported: spec.nodeName",
            ),
            ("Pod", "reason=x", "field label not supported: reason"),
            (
                "Service",
                "status.phase=x",
                "field label not supported: status.phase",
            ),
            ("Pod", "=x", "field label not supported: "),
            (
                "Pod",
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            ("Pod", "metadata.name=a=b", "unescaped '='"),
            ("Pod", "metadata.name=a\\x", "invalid escape sequence"),
        ];
        for (kind, input, want) in cases {
            let err = FieldSelector::parse(kind, input).unwrap_err();
            assert!(err.0.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn field_selector_escapes_and_required_name() {
        let s = fsel("Event", "reason=a\\,b\\=c\\\\d,metadata.name!=x");
        assert!(s.matches(&json!({"reason": "a,b=c\\d", "metadata": {"name": "y"}})));
        assert_eq!(s.to_string(), "reason=a\\,b\\=c\\\\d,metadata.name!=x");
        assert_eq!(s.required_name(), None);

        let s = fsel("Pod", "metadata.name!=a,metadata.name=web-1");
        assert_eq!(s.required_name(), Some("web-1"));
        assert_eq!(
            fsel("Pod", "metadata.name==web-1").required_name(),
            Some("web-1")
        );
        assert!(fsel("Pod", "").is_empty());
        assert_eq!(fsel("Pod", "").required_name(), None);
    }
}
