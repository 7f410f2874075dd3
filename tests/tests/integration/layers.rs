//! The layers of docs/architecture.md, read from `cargo metadata`: the build enforces them, this
//! test keeps anyone from undoing that in a `Cargo.toml`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tributary_testing::workspace_root;

/// What the rule needs of the workspace: each package of ours (its folder and its direct
/// dependencies with their kinds), and every crate the domain compiles in, transitively.
#[derive(Default)]
struct Graph {
    /// name → (folder relative to the workspace root, [(dependency, kind)])
    ours: BTreeMap<String, (String, Vec<(String, String)>)>,
    /// Every package the domain's library is built from (normal dependencies, transitively).
    domain_closure: BTreeSet<String>,
}

/// Crates the domain must never be built from, by name prefix: the AWS SDK and its runtime, the
/// Lambda runtime, Delta and Arrow, DuckDB, HTTP clients and servers, and our own other crates.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "aws-",
    "aws_",
    "lambda_",
    "deltalake",
    "arrow",
    "parquet",
    "object_store",
    "duckdb",
    "reqwest",
    "hyper",
    "ureq",
    "url",
    "tributary-",
];

fn violations(graph: &Graph) -> Vec<String> {
    let functions: BTreeSet<&String> =
        graph.ours.iter().filter(|(_, (dir, _))| dir.starts_with("functions/")).map(|(name, _)| name).collect();
    let mut broken = Vec::new();
    for (name, (dir, dependencies)) in &graph.ours {
        for (dependency, kind) in dependencies {
            // Cross-function tests live in tests/ only, as dev-dependencies of the tests crate.
            if functions.contains(dependency) && !(dir == "tests" && kind == "dev") {
                broken.push(format!("{name} ({dir}) depends on the function {dependency} ({kind})"));
            }
            let test_support = dependency == "tributary-testing" || dependency == "tributary-tests";
            if dir.starts_with("functions/") && test_support && kind != "dev" {
                broken.push(format!("{name}: {dependency} outside its dev-dependencies"));
            }
            let adapter = ["tributary-aws", "tributary-lake"].contains(&name.as_str());
            if adapter && kind != "dev" && dependency.starts_with("tributary-") && dependency != "tributary-domain" {
                broken.push(format!("{name} depends on {dependency}: an adapter depends on the domain only"));
            }
        }
    }
    for package in &graph.domain_closure {
        if package != "tributary-domain" && FORBIDDEN_IN_DOMAIN.iter().any(|prefix| package.starts_with(prefix)) {
            broken.push(format!("tributary-domain is built with {package}"));
        }
    }
    broken
}

fn workspace_graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This machine's platform only: the packages of other platforms are never downloaded here.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().unwrap();
    let rustc = String::from_utf8_lossy(&rustc.stdout).to_string();
    let host = rustc.lines().find_map(|line| line.strip_prefix("host: ")).unwrap().trim().to_string();
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked", "--filter-platform", &host])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = workspace_root().canonicalize().unwrap();
    let members: BTreeSet<&str> =
        metadata["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let mut graph = Graph::default();
    let mut names = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let id = package["id"].as_str().unwrap();
        let name = package["name"].as_str().unwrap().to_string();
        names.insert(id.to_string(), name.clone());
        if !members.contains(id) {
            continue;
        }
        let manifest = std::path::Path::new(package["manifest_path"].as_str().unwrap());
        let dir = manifest.parent().unwrap().strip_prefix(&root).unwrap().to_string_lossy().to_string();
        let dependencies = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), d["kind"].as_str().unwrap_or("normal").to_string()))
            .collect();
        graph.ours.insert(name, (dir, dependencies));
    }
    // The resolved graph: follow normal dependencies (those with a kind-less entry) from the domain.
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let domain = names.iter().find(|(_, name)| *name == "tributary-domain").map(|(id, _)| id.clone()).unwrap();
    let mut stack = vec![domain];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        graph.domain_closure.insert(names[&id].clone());
        for dep in nodes[id.as_str()]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap().to_string());
            }
        }
    }
    graph
}

#[test]
fn no_function_depends_on_another_and_the_domain_on_no_adapter() {
    let graph = workspace_graph();
    let functions = graph.ours.values().filter(|(dir, _)| dir.starts_with("functions/")).count();
    assert!(functions >= 7, "functions found: {functions}");
    assert!(graph.domain_closure.contains("serde"), "the domain's closure was not read");
    let broken = violations(&graph);
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rule_names_every_kind_of_break() {
    let package = |dir: &str, deps: &[(&str, &str)]| {
        (dir.to_string(), deps.iter().map(|(d, k)| (d.to_string(), k.to_string())).collect::<Vec<_>>())
    };
    let mut graph = Graph::default();
    graph.ours.insert("api".into(), package("functions/api", &[("tributary-domain", "normal")]));
    graph.ours.insert(
        "aggregator".into(),
        package("functions/aggregator", &[("api", "dev"), ("tributary-testing", "normal")]),
    );
    graph.ours.insert("tributary-tests".into(), package("tests", &[("api", "dev"), ("aggregator", "normal")]));
    graph.ours.insert("tributary-lake".into(), package("shared/lake", &[("tributary-aws", "normal")]));
    graph.domain_closure = ["tributary-domain", "serde", "aws-smithy-types", "reqwest"].map(String::from).into();
    let broken = violations(&graph);
    let expected = [
        "aggregator (functions/aggregator) depends on the function api (dev)",
        "aggregator: tributary-testing outside its dev-dependencies",
        "tributary-tests (tests) depends on the function aggregator (normal)",
        "tributary-lake depends on tributary-aws: an adapter depends on the domain only",
        "tributary-domain is built with aws-smithy-types",
        "tributary-domain is built with reqwest",
    ];
    assert_eq!(broken.len(), expected.len(), "{broken:#?}");
    for line in expected {
        assert!(broken.iter().any(|b| b == line), "missing {line:?} in {broken:#?}");
    }
}
