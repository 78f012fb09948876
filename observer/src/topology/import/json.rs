//! One input file as a JSON tree that remembers where every value was
//! written: ARM templates may hold comments (`//`, `/* */`), so the text is
//! read with `jsonc-parser`, whose AST carries byte ranges, and turned into
//! [`Node`]s with their offsets. A [`Doc`] turns an offset into
//! `line:column`; callers build JSON paths (`$.resources[3].properties`) as
//! they walk, so every problem and every imported item can name the file,
//! the path and the position it came from.

use std::{fmt, path::Path, sync::Arc};

use jsonc_parser::{ParseOptions, ast};

use super::ImportError;

/// A JSON value with the byte offset where it starts in its file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub at: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// The number's text, as written (ARM numbers are priorities, counts).
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in file order.
    Object(Vec<(String, Node)>),
}

impl Node {
    pub(crate) fn new(value: Value, at: usize) -> Self {
        Self { value, at }
    }

    /// Member `key` of an object (exact name, as Azure spells it).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Member `key` under `properties` (ARM and REST), else at the top
    /// (`az` flattens `properties` into the object).
    pub(crate) fn prop(&self, key: &str) -> Option<&Node> {
        self.get("properties")
            .and_then(|p| p.get(key))
            .filter(|n| n.value != Value::Null)
            .or_else(|| self.get(key).filter(|n| n.value != Value::Null))
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> &[Node] {
        match &self.value {
            Value::Array(items) => items,
            _ => &[],
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A number, or a string holding one (`"priority": "100"` happens).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Number(n) => n.parse().ok(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// String member `key` (see [`Node::prop`]).
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.prop(key).and_then(Node::as_str)
    }

    /// The `id` of member `key` (`"networkSecurityGroup": {"id": ...}`).
    pub(crate) fn id_of(&self, key: &str) -> Option<&str> {
        self.prop(key).and_then(|n| n.str("id"))
    }

    /// String items of array member `key`.
    pub(crate) fn strings(&self, key: &str) -> Vec<&str> {
        self.prop(key)
            .map(|n| n.as_array().iter().filter_map(Node::as_str).collect())
            .unwrap_or_default()
    }

    pub(crate) fn is_object(&self) -> bool {
        matches!(self.value, Value::Object(_))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => f.write_str(n),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    item.fmt(f)?;
                }
                f.write_str("]")
            }
            Value::Object(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", serde_json::Value::String(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// One input file: its path, its text and its tree.
#[derive(Debug)]
pub(crate) struct Doc {
    pub path: Arc<Path>,
    pub text: String,
    pub root: Node,
}

impl Doc {
    /// Reads and parses `path`; bad JSON is an error at its line:column.
    pub(crate) fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, text)
    }

    pub(crate) fn parse(path: &Path, text: String) -> Result<Self, ImportError> {
        // Comments are allowed (ARM templates may hold them); everything
        // else is strict JSON, as Azure writes it.
        let options = ParseOptions {
            allow_comments: true,
            allow_loose_object_property_names: false,
            allow_trailing_commas: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            allow_bare_decimal_point_numbers: false,
            allow_non_finite_numbers: false,
            allow_extended_string_escapes: false,
        };
        let parsed = jsonc_parser::parse_to_ast(&text, &Default::default(), &options);
        let root = match parsed {
            Ok(result) => result.value.as_ref().map(node),
            Err(error) => {
                let (line, column) = super::super::line_column(&text, error.range().start);
                return Err(ImportError::Json {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: error.kind().to_string(),
                });
            }
        };
        let root = root.ok_or_else(|| ImportError::Json {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: "the file holds no JSON value".into(),
        })?;
        Ok(Self {
            path: path.into(),
            text,
            root,
        })
    }

    /// Where `node` sits in this file.
    pub(crate) fn origin(&self, node: &Node, json_path: &str) -> Origin {
        let (line, column) = super::super::line_column(&self.text, node.at);
        Origin {
            file: self.path.clone(),
            json_path: json_path.to_string(),
            line,
            column,
        }
    }
}

/// Where an imported item was written: file, JSON path, line and column.
/// Kept with every resource so a later writer (SARIF) can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    /// `$.resources[3]`, `$.value[0].effectiveSecurityRules[2]`, ...
    pub json_path: String,
    pub line: usize,
    pub column: usize,
}

impl Origin {
    /// The file name only, for comments that stay short.
    pub fn file_name(&self) -> String {
        self.file.file_name().map_or_else(
            || self.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{} {}",
            self.file_name(),
            self.line,
            self.column,
            self.json_path
        )
    }
}

fn node(value: &ast::Value<'_>) -> Node {
    match value {
        ast::Value::StringLit(s) => Node::new(Value::String(s.value.to_string()), s.range.start),
        ast::Value::NumberLit(n) => Node::new(Value::Number(n.value.to_string()), n.range.start),
        ast::Value::BooleanLit(b) => Node::new(Value::Bool(b.value), b.range.start),
        ast::Value::NullKeyword(n) => Node::new(Value::Null, n.range.start),
        ast::Value::Array(a) => Node::new(
            Value::Array(a.elements.iter().map(node).collect()),
            a.range.start,
        ),
        ast::Value::Object(o) => Node::new(
            Value::Object(
                o.properties
                    .iter()
                    .map(|p| (p.name.as_str().to_string(), node(&p.value)))
                    .collect(),
            ),
            o.range.start,
        ),
    }
}

/// `$.a.b[2]`: appends a member name (bracketed when it is not a plain word).
pub(crate) fn member(path: &str, key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::Value::String(key.to_string()))
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
