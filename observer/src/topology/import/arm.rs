//! ARM templates as the portal's "Export template" and `az group export`
//! write them (and Bicep after `az bicep build`): `resources` as an array,
//! or as an object of symbolic names (`languageVersion` 2.0), child
//! resources nested under `resources` with names relative to their parent.
//! The names, types and properties of modelled resource types are
//! evaluated with [`super::expr`]; an expression outside the supported set
//! is an error there. Other types are evaluated as far as they can be
//! (for the summary and for `publicNetworkAccess`), never failing the
//! import. `condition: false` skips a resource; `copy` loops are refused
//! (exports never write them).

use std::sync::Arc;

use super::{
    ImportError, Inputs,
    expr::Scope,
    json::{Doc, Node, Value, index, member},
    resource::{Resource, types},
};

/// Whether `root` looks like a deployment template.
pub(crate) fn is_template(root: &Node) -> bool {
    root.get("$schema")
        .and_then(Node::as_str)
        .is_some_and(|s| s.contains("deploymentTemplate"))
        || (root.get("resources").is_some() && root.get("contentVersion").is_some())
}

/// Reads every resource of the template `doc` into `inputs`.
pub(crate) fn read(doc: &Arc<Doc>, inputs: &mut Inputs) -> Result<(), ImportError> {
    let scope = Scope::new(doc);
    let Some(resources) = doc.root.get("resources") else {
        return Ok(());
    };
    let entries: Vec<(String, &Node)> = match &resources.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (index("$.resources", i), n))
            .collect(),
        Value::Object(members) => members
            .iter()
            .map(|(k, n)| (member("$.resources", k), n))
            .collect(),
        _ => {
            return Err(ImportError::shape(
                doc.origin(resources, "$.resources"),
                "`resources` is neither an array nor an object",
                "an ARM template lists its resources in `resources`",
            ));
        }
    };
    for (path, node) in entries {
        resource(doc, &scope, node, &path, None, inputs)?;
    }
    Ok(())
}

/// One resource and its nested children; `parent` is (type, name).
fn resource(
    doc: &Arc<Doc>,
    scope: &Scope<'_>,
    node: &Node,
    path: &str,
    parent: Option<(&str, &str)>,
    inputs: &mut Inputs,
) -> Result<(), ImportError> {
    if !node.is_object() {
        return Err(ImportError::shape(
            doc.origin(node, path),
            "a resource is not a JSON object",
            "each entry of `resources` is an object with type, name and properties",
        ));
    }
    let field = |key: &str| -> Result<String, ImportError> {
        let Some(n) = node.get(key) else {
            return Err(ImportError::shape(
                doc.origin(node, path),
                format!("the resource has no `{key}`"),
                "every ARM resource has a type and a name",
            ));
        };
        let value = scope.eval_deep(n, &member(path, key))?;
        value.as_str().map(str::to_string).ok_or_else(|| {
            ImportError::shape(
                doc.origin(n, &member(path, key)),
                format!("`{key}` is not a string"),
                "type and name are strings",
            )
        })
    };
    let own_kind = field("type")?;
    let own_name = field("name")?;
    // A nested child writes its type and name relative to its parent.
    let (kind, name) = match parent {
        Some((pk, pn)) if !own_kind.contains('/') || !own_kind.contains('.') => {
            let name = if own_name.contains('/') {
                own_name.clone()
            } else {
                format!("{pn}/{own_name}")
            };
            (format!("{pk}/{own_kind}"), name)
        }
        _ => (own_kind, own_name),
    };
    let origin = doc.origin(node, path);
    if let Some(condition) = node.get("condition") {
        let value = scope.eval_deep(condition, &member(path, "condition"))?;
        if value.as_bool() == Some(false) {
            inputs.note(format!(
                "{kind} {name} ({origin}): skipped, its condition is false"
            ));
            return Ok(());
        }
    }
    if node.get("copy").is_some() {
        return Err(ImportError::shape(
            doc.origin(node, &member(path, "copy")),
            format!("{kind} {name}: `copy` loops are not supported"),
            "export the deployed resources (portal \"Export template\" or `az group export`), which lists each one",
        ));
    }
    let modelled = types::MODELLED
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&kind));
    // Children are read on their own below, with the parent's type and name.
    let mut own = node.clone();
    if let Value::Object(members) = &mut own.value {
        members.retain(|(k, _)| k != "resources");
    }
    // Modelled resources must evaluate fully; others only as far as they
    // can (their properties may use functions this import does not know).
    let evaluated = if modelled {
        scope.eval_deep(&own, path)?
    } else {
        scope.eval_deep(&own, path).unwrap_or(own)
    };
    inputs.push(Resource {
        kind: kind.clone(),
        name: name.clone(),
        node: evaluated,
        origin,
        doc: doc.clone(),
    });
    if let Some(raw_children) = node.get("resources") {
        for (i, child) in raw_children.as_array().iter().enumerate() {
            resource(
                doc,
                scope,
                child,
                &index(&member(path, "resources"), i),
                Some((&kind, &name)),
                inputs,
            )?;
        }
    }
    Ok(())
}
