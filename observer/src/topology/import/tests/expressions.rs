//! Every supported ARM expression, and the ones refused.

use super::*;
use crate::topology::import::{
    expr::{RESOURCE_GROUP, SUBSCRIPTION, Scope},
    json::Doc,
};

const TEMPLATE: &str = r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "vnetName": { "type": "String", "defaultValue": "ase-vnet" },
    "location": { "type": "String", "defaultValue": "[resourceGroup().location]" },
    "prefixes": { "type": "Array", "defaultValue": ["10.0.0.0/16", "10.1.0.0/16"] },
    "noDefault": { "type": "String" },
    "loop": { "type": "String", "defaultValue": "[parameters('Loop')]" }
  },
  "variables": {
    "subnetName": "[concat(parameters('vnetName'), '/ase')]",
    "settings": { "name": "ase", "ports": [454, 455] },
    "more": ["192.168.0.0/16"]
  },
  "resources": []
}"#;

fn eval(expression: &str) -> Result<String, ImportError> {
    let doc = Doc::parse(Path::new("template.json"), TEMPLATE.to_string()).unwrap();
    let scope = Scope::new(&doc);
    scope
        .eval_string(expression, 0, "$.resources[0].name")
        .map(|n| match n.as_str() {
            Some(s) => s.to_string(),
            None => n.to_string(),
        })
}

fn ok(expression: &str) -> String {
    eval(expression).unwrap_or_else(|e| panic!("{expression}: {e}"))
}

#[test]
fn parameters_and_variables_evaluate_with_their_defaults() {
    assert_eq!(ok("[parameters('vnetName')]"), "ase-vnet");
    // Names are case-insensitive, as in ARM.
    assert_eq!(ok("[parameters('VNETNAME')]"), "ase-vnet");
    // A default that is itself an expression.
    assert_eq!(ok("[parameters('location')]"), "");
    assert_eq!(ok("[variables('subnetName')]"), "ase-vnet/ase");
    assert_eq!(ok("[variables('settings').name]"), "ase");
    assert_eq!(ok("[variables('settings').ports[1]]"), "455");
    assert_eq!(ok("[parameters('prefixes')[0]]"), "10.0.0.0/16");
    assert_eq!(ok("[variables('settings')['name']]"), "ase");
}

#[test]
fn resource_ids_with_and_without_scope() {
    let prefix = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers");
    assert_eq!(
        ok("[resourceId('Microsoft.Network/virtualNetworks', parameters('vnetName'))]"),
        format!("{prefix}/Microsoft.Network/virtualNetworks/ase-vnet")
    );
    assert_eq!(
        ok(
            "[resourceId('Microsoft.Network/virtualNetworks/subnets', parameters('vnetName'), 'ase')]"
        ),
        format!("{prefix}/Microsoft.Network/virtualNetworks/ase-vnet/subnets/ase")
    );
    assert_eq!(
        ok(
            "[resourceId('hub-rg', 'Microsoft.Network/privateDnsZones', 'privatelink.vaultcore.azure.net')]"
        ),
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/hub-rg/providers/Microsoft.Network/privateDnsZones/privatelink.vaultcore.azure.net"
        )
    );
    assert_eq!(
        ok("[resourceId('1111', 'hub-rg', 'Microsoft.Network/virtualNetworks', 'hub')]"),
        "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/virtualNetworks/hub"
    );
    let e =
        eval("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'only-one')]").unwrap_err();
    assert!(e.to_string().contains("takes 2 name(s), got 1"), "{e}");
}

#[test]
fn concat_format_and_scope_functions() {
    assert_eq!(
        ok("[concat(parameters('vnetName'), '/', 'ase')]"),
        "ase-vnet/ase"
    );
    assert_eq!(
        ok("[concat(parameters('prefixes'), variables('more'))]"),
        r#"["10.0.0.0/16","10.1.0.0/16","192.168.0.0/16"]"#
    );
    assert_eq!(
        ok("[format('{0}/{1}', parameters('vnetName'), 'ase')]"),
        "ase-vnet/ase"
    );
    assert_eq!(ok("[format('{{literal}} {0}', 'x')]"), "{literal} x");
    assert_eq!(ok("[subscription().subscriptionId]"), SUBSCRIPTION);
    assert_eq!(
        ok("[subscription().id]"),
        format!("/subscriptions/{SUBSCRIPTION}")
    );
    assert_eq!(ok("[resourceGroup().name]"), RESOURCE_GROUP);
    assert_eq!(ok("[resourceGroup().location]"), "");
    // Nested calls, whitespace.
    assert_eq!(
        ok("[ concat( format('{0}-{1}', 'a', concat('b', 'c')), '-', resourceGroup().name ) ]"),
        format!("a-bc-{RESOURCE_GROUP}")
    );
}

#[test]
fn literals_escapes_and_plain_strings() {
    assert_eq!(ok("[concat('it''s', ' here')]"), "it's here");
    assert_eq!(ok("[[not an expression]"), "[not an expression]");
    assert_eq!(ok("plain text"), "plain text");
    assert_eq!(ok("[concat('a', 1)]"), "a1");
}

#[test]
fn what_is_outside_the_subset_is_named_with_its_place() {
    for (expression, says) in [
        (
            "[reference('pip').ipAddress]",
            "`reference()` is outside the supported expressions",
        ),
        (
            "[listKeys('kv', '2023-01-01')]",
            "`listkeys()` is outside the supported expressions",
        ),
        (
            "[parameters('noDefault')]",
            "parameter `noDefault` has no defaultValue",
        ),
        ("[parameters('missing')]", "declares no parameter `missing`"),
        ("[parameters('loop')]", "parameter `Loop` refers to itself"),
        ("[concat('open)]", "not closed"),
        ("[variables('settings').colour]", "has no property `colour`"),
        (
            "[format('{0:N2}', 'x')]",
            "format specifiers are not supported",
        ),
    ] {
        let e = eval(expression).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(says), "{expression}: {text}");
        match e {
            ImportError::Expression {
                origin,
                expression: shown,
                ..
            } => {
                assert_eq!(origin.file_name(), "template.json");
                // A parameter's own default fails at its own place.
                if !expression.contains("loop") {
                    assert_eq!(shown, expression);
                    assert_eq!(origin.json_path, "$.resources[0].name");
                }
            }
            other => panic!("{expression}: {other:?}"),
        }
    }
}

#[test]
fn an_unsupported_expression_in_a_template_names_file_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    std::fs::write(
        &path,
        r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "resources": [
    {
      "type": "Microsoft.Network/virtualNetworks",
      "apiVersion": "2023-09-01",
      "name": "vnet",
      "properties": {
        "addressSpace": { "addressPrefixes": ["[reference('ipam').prefix]"] }
      }
    }
  ]
}"#,
    )
    .unwrap();
    let e = import(&[path], &dir.path().join("out.toml"), &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "export.json:10:47 $.resources[0].properties.addressSpace.addressPrefixes[0]: expression `[reference('ipam').prefix]`: `reference()` is outside the supported expressions (parameters, variables, resourceId, concat, format, subscription, resourceGroup); replace it with its value in the template"
    );
}
