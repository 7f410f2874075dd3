//! The layers of docs/architecture.md, read from `cargo metadata`: the build enforces them, this
//! test keeps anyone from undoing that in a `Cargo.toml`.

use serde_json::Value;
use std::collections::BTreeMap;
use tributary_testing::workspace_root;

/// Each workspace package and its dependencies: (name, kind) where kind is `normal`, `dev` or `build`.
fn packages() -> BTreeMap<String, (String, Vec<(String, String)>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = workspace_root().canonicalize().unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let manifest = std::path::Path::new(package["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().strip_prefix(&root).unwrap().to_string_lossy().to_string();
            let dependencies = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (d["name"].as_str().unwrap().to_string(), kind)
                })
                .collect();
            (package["name"].as_str().unwrap().to_string(), (dir, dependencies))
        })
        .collect()
}

#[test]
fn no_function_depends_on_another_and_the_domain_on_no_adapter() {
    let packages = packages();
    let functions: Vec<&String> =
        packages.iter().filter(|(_, (dir, _))| dir.starts_with("functions/")).map(|(n, _)| n).collect();
    assert!(functions.len() >= 7, "functions found: {functions:?}");
    let mut broken = Vec::new();
    for (name, (dir, dependencies)) in &packages {
        for (dependency, kind) in dependencies {
            let on_function = functions.contains(&dependency);
            // Cross-function tests live in tests/ only, as dev-dependencies of the tests crate.
            if on_function && !(dir == "tests" && kind == "dev") {
                broken.push(format!("{name} ({dir}) depends on the function {dependency} ({kind})"));
            }
            if dir.starts_with("functions/") && dependency == "tributary-testing" && kind != "dev" {
                broken.push(format!("{name}: tributary-testing outside dev-dependencies"));
            }
        }
    }
    let forbidden_in_domain = |d: &str| {
        d.starts_with("aws-sdk-")
            || d.starts_with("aws-config")
            || d.starts_with("aws_lambda")
            || d.starts_with("lambda_")
            || d.starts_with("tributary-")
            || ["deltalake", "duckdb", "reqwest", "hyper", "url"].contains(&d)
    };
    let (_, domain) = &packages["tributary-domain"];
    for (dependency, kind) in domain {
        if kind != "dev" && forbidden_in_domain(dependency) {
            broken.push(format!("tributary-domain depends on {dependency}"));
        }
    }
    for adapter in ["tributary-aws", "tributary-lake"] {
        for (dependency, kind) in &packages[adapter].1 {
            if kind != "dev" && dependency.starts_with("tributary-") && dependency != "tributary-domain" {
                broken.push(format!("{adapter} depends on {dependency}: the adapters depend on the domain only"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}
