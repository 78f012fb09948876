//! `az ... -o json` output (and REST bodies): one resource object, a list
//! (`az ... list`), or `{"value": [...]}`. `az` flattens `properties` into
//! the object and names children by their short name; the id carries the
//! full path, so identity comes from the id (`resource::key_of_id`).
//! The effective route table and the effective NSG list (`az network nic
//! show-effective-route-table` / `list-effective-nsg`) are recognised by
//! their shape and read by [`super::effective`].

use std::sync::Arc;

use super::{
    ImportError, Inputs,
    json::{Doc, Node, Value, index},
    resource::{Resource, types},
};

/// What a non-template JSON file holds.
pub(crate) fn read(doc: &Arc<Doc>, inputs: &mut Inputs) -> Result<(), ImportError> {
    let root = &doc.root;
    if root.get("values").is_some() && root.get("changeNumber").is_some() {
        return Err(ImportError::shape(
            doc.origin(root, "$"),
            "this is a service-tags file",
            "pass Microsoft's service-tags JSON with --service-tags FILE",
        ));
    }
    let (items, base): (Vec<&Node>, String) = match &root.value {
        Value::Array(items) => (items.iter().collect(), "$".into()),
        Value::Object(_) => match root.get("value") {
            Some(list) if matches!(list.value, Value::Array(_)) => {
                (list.as_array().iter().collect(), "$.value".into())
            }
            _ => (vec![root], String::new()),
        },
        _ => {
            return Err(not_azure(doc, root, "$"));
        }
    };
    if let Some(kind) = effective_kind(&items) {
        inputs.push(Resource {
            kind: kind.into(),
            name: doc.path.display().to_string(),
            node: root.clone(),
            origin: doc.origin(root, "$"),
            doc: doc.clone(),
        });
        return Ok(());
    }
    for (i, item) in items.iter().enumerate() {
        let path = if base.is_empty() {
            "$".to_string()
        } else {
            index(&base, i)
        };
        let (Some(kind), Some(name)) = (item.str("type"), item.get("name").and_then(Node::as_str))
        else {
            return Err(not_azure(doc, item, &path));
        };
        // az names children by their short name; the id has the full one.
        let name = item
            .get("id")
            .and_then(Node::as_str)
            .and_then(|id| full_name(id, kind))
            .unwrap_or_else(|| name.to_string());
        inputs.push(Resource {
            kind: kind.to_string(),
            name,
            node: (*item).clone(),
            origin: doc.origin(item, &path),
            doc: doc.clone(),
        });
    }
    Ok(())
}

/// The effective route table or NSG list, by the shape of its entries.
fn effective_kind(items: &[&Node]) -> Option<&'static str> {
    let first = items.first()?;
    if first.get("effectiveSecurityRules").is_some() || first.get("association").is_some() {
        Some(types::EFFECTIVE_NSGS)
    } else if first.get("nextHopType").is_some()
        && first.get("source").is_some()
        && first.get("type").is_none()
    {
        Some(types::EFFECTIVE_ROUTES)
    } else {
        None
    }
}

/// `vnet/subnet` from an id and a type with one child level.
fn full_name(id: &str, kind: &str) -> Option<String> {
    let key = id.rsplit_once("/providers/")?.1;
    let mut parts = key.split('/').skip(1);
    let depth = kind.split('/').count() - 1;
    let mut names = Vec::new();
    for _ in 0..depth {
        parts.next()?;
        names.push(parts.next()?);
    }
    Some(names.join("/"))
}

fn not_azure(doc: &Arc<Doc>, node: &Node, path: &str) -> ImportError {
    ImportError::shape(
        doc.origin(node, path),
        "not an ARM template, an Azure resource (object with `type` and `name`), a list of them, an effective route table or an effective NSG list",
        "pass the output of `az ... -o json`, `az group export` or the portal's \"Export template\" (see README: Reproduce a customer's network)",
    )
}
