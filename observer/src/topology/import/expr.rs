//! The ARM template expression subset that "Export template", `az group
//! export` and `az bicep build` write: a string `"[...]"` is an expression,
//! `"[[..."` is the literal `"[..."`. Supported:
//!
//! - `parameters('name')` (the parameter's `defaultValue`, itself evaluated),
//!   `variables('name')`;
//! - `resourceId([subscriptionId], [resourceGroupName], type, name, ...)`;
//! - `concat(...)` of strings or of arrays, `format('{0}/{1}', ...)`;
//! - `subscription()` and `resourceGroup()` with property access
//!   (`resourceGroup().location`, `subscription().subscriptionId`) and
//!   `[index]` access;
//! - string literals with `''` for a quote, integers, nested calls.
//!
//! Anything else (`reference()`, `listKeys()`, `copyIndex()`, ...) is an
//! error naming the file, the JSON path and the expression: an import never
//! guesses what a template would compute. The deployment scope is unknown
//! to an export, so `subscription()` and `resourceGroup()` answer with
//! [`Scope`]'s placeholders; resource ids are compared without them.

use std::{cell::RefCell, collections::HashMap};

use super::{
    ImportError,
    json::{Doc, Node, Value, index, member},
};

/// The placeholder subscription of an export's deployment scope.
pub(crate) const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
/// The placeholder resource group of an export's deployment scope.
pub(crate) const RESOURCE_GROUP: &str = "exported-resource-group";

/// Parameters and variables of one template, evaluated on demand.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    doc: &'a Doc,
    /// Lower-cased name -> (declaration, its JSON path).
    parameters: HashMap<String, (&'a Node, String)>,
    variables: HashMap<String, (&'a Node, String)>,
    /// Names being evaluated (a cycle is an error, not a stack overflow).
    active: RefCell<Vec<String>>,
}

impl<'a> Scope<'a> {
    pub(super) fn new(doc: &'a Doc) -> Self {
        let mut scope = Self {
            doc,
            parameters: HashMap::new(),
            variables: HashMap::new(),
            active: RefCell::new(Vec::new()),
        };
        for (key, into) in [("parameters", true), ("variables", false)] {
            if let Some(Node {
                value: Value::Object(members),
                ..
            }) = doc.root.get(key)
            {
                for (name, node) in members {
                    let path = member(&member("$", key), name);
                    let map = if into {
                        &mut scope.parameters
                    } else {
                        &mut scope.variables
                    };
                    map.insert(name.to_ascii_lowercase(), (node, path));
                }
            }
        }
        scope
    }

    /// `node` with every expression string in it evaluated.
    pub(super) fn eval_deep(&self, node: &Node, path: &str) -> Result<Node, ImportError> {
        Ok(match &node.value {
            Value::String(s) => self.eval_string(s, node.at, path)?,
            Value::Array(items) => Node::new(
                Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| self.eval_deep(n, &index(path, i)))
                        .collect::<Result<_, _>>()?,
                ),
                node.at,
            ),
            Value::Object(members) => Node::new(
                Value::Object(
                    members
                        .iter()
                        .map(|(k, n)| Ok((k.clone(), self.eval_deep(n, &member(path, k))?)))
                        .collect::<Result<_, ImportError>>()?,
                ),
                node.at,
            ),
            _ => node.clone(),
        })
    }

    /// One string value: an expression, an escaped literal or a literal.
    pub(super) fn eval_string(
        &self,
        text: &str,
        at: usize,
        path: &str,
    ) -> Result<Node, ImportError> {
        if let Some(rest) = text.strip_prefix("[[") {
            return Ok(Node::new(Value::String(format!("[{rest}")), at));
        }
        let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
            return Ok(Node::new(Value::String(text.to_string()), at));
        };
        let fail = |message: String| ImportError::Expression {
            origin: self.doc.origin(&Node::new(Value::Null, at), path),
            expression: text.to_string(),
            message,
        };
        let expr = Parser::new(inner).parse().map_err(fail)?;
        let value = self.eval(&expr, at).map_err(|e| match e {
            Failure::Message(m) => fail(m),
            Failure::Import(e) => e,
        })?;
        Ok(value)
    }

    fn eval(&self, expr: &Expr, at: usize) -> Result<Node, Failure> {
        let string = |s: String| Node::new(Value::String(s), at);
        match expr {
            Expr::Str(s) => Ok(string(s.clone())),
            Expr::Int(n) => Ok(Node::new(Value::Number(n.to_string()), at)),
            Expr::Member(base, name) => {
                let base = self.eval(base, at)?;
                let found = match &base.value {
                    Value::Object(members) => members
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone()),
                    _ => None,
                };
                found.ok_or_else(|| Failure::Message(format!("`{base}` has no property `{name}`")))
            }
            Expr::Index(base, key) => {
                let base = self.eval(base, at)?;
                let key = self.eval(key, at)?;
                match (&base.value, &key.value) {
                    (Value::Array(items), _) => key
                        .as_i64()
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| items.get(i).cloned())
                        .ok_or_else(|| {
                            Failure::Message(format!("index {key} is outside `{base}`"))
                        }),
                    (Value::Object(members), Value::String(k)) => members
                        .iter()
                        .find(|(m, _)| m.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| Failure::Message(format!("`{base}` has no property `{k}`"))),
                    _ => Err(Failure::Message(format!(
                        "cannot index `{base}` with {key}"
                    ))),
                }
            }
            Expr::Call(name, args) => {
                let values = args
                    .iter()
                    .map(|a| self.eval(a, at))
                    .collect::<Result<Vec<_>, _>>()?;
                self.call(name, &values, at)
            }
        }
    }

    fn call(&self, name: &str, args: &[Node], at: usize) -> Result<Node, Failure> {
        let string = |s: String| Node::new(Value::String(s), at);
        let text = |n: &Node| -> Result<String, Failure> {
            match &n.value {
                Value::String(s) => Ok(s.clone()),
                Value::Number(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(Failure::Message(format!(
                    "{name}() takes strings, got `{n}`"
                ))),
            }
        };
        let arity = |range: std::ops::RangeInclusive<usize>| {
            if range.contains(&args.len()) {
                Ok(())
            } else {
                Err(Failure::Message(format!(
                    "{name}() takes {} argument(s), got {}",
                    if range.start() == range.end() {
                        range.start().to_string()
                    } else {
                        format!("{} to {}", range.start(), range.end())
                    },
                    args.len()
                )))
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "parameters" => {
                arity(1..=1)?;
                self.named(&text(&args[0])?, true)
            }
            "variables" => {
                arity(1..=1)?;
                self.named(&text(&args[0])?, false)
            }
            "concat" => {
                if args.iter().all(|a| matches!(a.value, Value::Array(_))) && !args.is_empty() {
                    let items = args.iter().flat_map(|a| a.as_array().to_vec()).collect();
                    return Ok(Node::new(Value::Array(items), at));
                }
                Ok(string(
                    args.iter()
                        .map(text)
                        .collect::<Result<Vec<_>, _>>()?
                        .concat(),
                ))
            }
            "format" => {
                arity(1..=usize::MAX)?;
                let values = args[1..].iter().map(text).collect::<Result<Vec<_>, _>>()?;
                format(&text(&args[0])?, &values)
                    .map(string)
                    .map_err(Failure::Message)
            }
            "resourceid" => {
                let parts = args.iter().map(text).collect::<Result<Vec<_>, _>>()?;
                resource_id(&parts).map(string).map_err(Failure::Message)
            }
            "subscription" => {
                arity(0..=0)?;
                Ok(object(
                    &[
                        ("id", format!("/subscriptions/{SUBSCRIPTION}")),
                        ("subscriptionId", SUBSCRIPTION.into()),
                        ("tenantId", SUBSCRIPTION.into()),
                        ("displayName", "exported-subscription".into()),
                    ],
                    at,
                ))
            }
            "resourcegroup" => {
                arity(0..=0)?;
                Ok(object(
                    &[
                        (
                            "id",
                            format!(
                                "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
                            ),
                        ),
                        ("name", RESOURCE_GROUP.into()),
                        ("type", "Microsoft.Resources/resourceGroups".into()),
                        // Unknown to an export; the cloud comes from resources' own locations.
                        ("location", String::new()),
                    ],
                    at,
                ))
            }
            other => Err(Failure::Message(format!(
                "`{other}()` is outside the supported expressions (parameters, variables, resourceId, concat, format, subscription, resourceGroup); replace it with its value in the template"
            ))),
        }
    }

    /// A parameter's `defaultValue` or a variable's value, evaluated.
    fn named(&self, name: &str, parameter: bool) -> Result<Node, Failure> {
        let (kind, map) = if parameter {
            ("parameter", &self.parameters)
        } else {
            ("variable", &self.variables)
        };
        let key = name.to_ascii_lowercase();
        let Some((decl, path)) = map.get(&key) else {
            return Err(Failure::Message(format!(
                "the template declares no {kind} `{name}`"
            )));
        };
        let (value, path) = if parameter {
            let Some(default) = decl.get("defaultValue") else {
                return Err(Failure::Message(format!(
                    "parameter `{name}` has no defaultValue (the portal's export gives every parameter one; add it)"
                )));
            };
            (default, member(path, "defaultValue"))
        } else {
            (*decl, path.clone())
        };
        let marker = format!("{kind} {key}");
        if self.active.borrow().contains(&marker) {
            return Err(Failure::Message(format!(
                "{kind} `{name}` refers to itself"
            )));
        }
        self.active.borrow_mut().push(marker);
        let result = self.eval_deep(value, &path).map_err(Failure::Import);
        self.active.borrow_mut().pop();
        result
    }
}

/// An evaluation failure: a message for the expression at hand, or an
/// error already located elsewhere (inside a parameter's default).
enum Failure {
    Message(String),
    Import(ImportError),
}

fn object(members: &[(&str, String)], at: usize) -> Node {
    Node::new(
        Value::Object(
            members
                .iter()
                .map(|(k, v)| ((*k).to_string(), Node::new(Value::String(v.clone()), at)))
                .collect(),
        ),
        at,
    )
}

/// .NET composite formatting as ARM's `format()` does it: `{0}`, `{1}`,
/// `{{` and `}}`; format specifiers (`{0:N2}`) are not supported.
pub(crate) fn format(pattern: &str, args: &[String]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut inside = String::new();
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                    inside.push(d);
                }
                let i: usize = inside.trim().parse().map_err(|_| {
                    format!("format(): `{{{inside}}}` is not a placeholder like {{0}} (format specifiers are not supported)")
                })?;
                out.push_str(args.get(i).ok_or_else(|| {
                    format!("format(): `{{{i}}}` has no argument ({} given)", args.len())
                })?);
            }
            '}' => {
                return Err(format!(
                    "format(): a lone `}}` in `{pattern}` (write `}}}}`)"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `resourceId([subscriptionId], [resourceGroupName], type, names...)`.
pub(crate) fn resource_id(parts: &[String]) -> Result<String, String> {
    let Some(at) = parts.iter().position(|p| p.contains('/')) else {
        return Err(
            "resourceId() needs a resource type such as 'Microsoft.Network/virtualNetworks'".into(),
        );
    };
    let (scope, rest) = parts.split_at(at);
    let (subscription, group) = match scope {
        [] => (SUBSCRIPTION, RESOURCE_GROUP),
        [group] => (SUBSCRIPTION, group.as_str()),
        [subscription, group] => (subscription.as_str(), group.as_str()),
        _ => {
            return Err(format!(
                "resourceId(): {} arguments before the type `{}` (at most a subscription id and a resource group)",
                scope.len(),
                parts[at]
            ));
        }
    };
    let mut types = rest[0].split('/');
    let namespace = types.next().unwrap_or_default();
    let types: Vec<&str> = types.collect();
    let names = &rest[1..];
    if types.is_empty() || names.len() != types.len() {
        return Err(format!(
            "resourceId(): type `{}` takes {} name(s), got {}",
            rest[0],
            types.len(),
            names.len()
        ));
    }
    let mut id =
        format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}");
    for (t, n) in types.iter().zip(names) {
        id.push('/');
        id.push_str(t);
        id.push('/');
        id.push_str(n);
    }
    Ok(id)
}

// ---- parser ----------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Expr {
    Str(String),
    Int(i64),
    Call(String, Vec<Expr>),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

struct Parser<'s> {
    text: &'s str,
    pos: usize,
}

impl<'s> Parser<'s> {
    fn new(text: &'s str) -> Self {
        Self { text, pos: 0 }
    }

    fn parse(mut self) -> Result<Expr, String> {
        let expr = self.expr()?;
        self.space();
        if self.pos != self.text.len() {
            return Err(format!(
                "unexpected `{}` after the expression",
                &self.text[self.pos..]
            ));
        }
        Ok(expr)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut expr = self.primary()?;
        loop {
            if self.eat('.') {
                let name = self.ident()?;
                expr = Expr::Member(Box::new(expr), name);
            } else if self.eat('[') {
                let key = self.expr()?;
                if !self.eat(']') {
                    return Err("a `[` index is not closed with `]`".into());
                }
                expr = Expr::Index(Box::new(expr), Box::new(key));
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.space();
        match self.peek() {
            Some('\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.int(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.ident()?;
                if !self.eat('(') {
                    return Err(format!(
                        "`{name}` is not a function call (write {name}(...))"
                    ));
                }
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(')') {
                            break;
                        }
                        if !self.eat(',') {
                            return Err(format!("{name}(): expected `,` or `)`"));
                        }
                    }
                }
                Ok(Expr::Call(name, args))
            }
            Some(c) => Err(format!("unexpected `{c}`")),
            None => Err("the expression ends too early".into()),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        self.space();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err("expected a name".into());
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn int(&mut self) -> Result<Expr, String> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.text[start..self.pos]
            .parse()
            .map(Expr::Int)
            .map_err(|_| format!("`{}` is not a number", &self.text[start..self.pos]))
    }

    /// `'it''s'` is `it's`.
    fn string(&mut self) -> Result<Expr, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("a string literal is not closed with `'`".into()),
                Some('\'') => {
                    self.pos += 1;
                    if self.peek() == Some('\'') {
                        self.pos += 1;
                        out.push('\'');
                    } else {
                        return Ok(Expr::Str(out));
                    }
                }
                Some(c) => {
                    self.pos += c.len_utf8();
                    out.push(c);
                }
            }
        }
    }
}
