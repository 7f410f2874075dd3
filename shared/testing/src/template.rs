//! `template.yaml` read as data: the single source of the names, keys, TTL attributes, topics,
//! queues, subscriptions and function environments that tests and the local stack provision.
//!
//! Short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, …) are turned into their long JSON form on
//! load, so the rest of the code deals with one shape.

use super::HarnessError;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Template {
    pub document: Value,
}

/// The workspace root (the directory holding `template.yaml`): the nearest one above the working
/// directory (cargo runs a test in its package's directory, `make` runs from the root), else the
/// one this crate was compiled in. Found at run time because a target directory shared between
/// checkouts can hold a build made in another checkout, whose compile-time path names that one.
pub fn workspace_root() -> PathBuf {
    let is_root = |dir: &Path| dir.join("template.yaml").is_file() && dir.join("Cargo.toml").is_file();
    if let Ok(current) = std::env::current_dir()
        && let Some(root) = current.ancestors().find(|dir| is_root(dir))
    {
        return root.to_path_buf();
    }
    // This crate is shared/testing: the workspace is two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default()
}

/// The Python that runs the project's scripts: the `.venv`'s (`scripts/setup.sh`), else `python3`
/// from `PATH`.
pub fn project_python() -> PathBuf {
    let venv_python = workspace_root().join(".venv/bin/python");
    if venv_python.exists() { venv_python } else { PathBuf::from("python3") }
}

/// A file or directory of the captured API responses kept beside the repository
/// (`../shared/fixtures/<relative>`, or under `TRIBUTARY_FIXTURES` when set). `None`, said on
/// stderr (what `cargo test` shows for a failing test and with `--nocapture`), when absent: the
/// tests that read them are skipped on a machine without them, and say so.
pub fn external_fixture(relative: &str) -> Option<PathBuf> {
    // A relative TRIBUTARY_FIXTURES is read from the workspace root, not the test's package folder.
    let base = std::env::var_os("TRIBUTARY_FIXTURES")
        .map(|dir| workspace_root().join(dir))
        .unwrap_or_else(|| workspace_root().join("../shared/fixtures"));
    let path = base.join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: external fixture {} not found (set TRIBUTARY_FIXTURES to its folder)", path.display());
        None
    }
}

fn yaml_to_json(value: serde_yaml_ng::Value) -> Result<Value, HarnessError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).map_err(|e| HarnessError::new(format!("number {n}: {e}")))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    other => return Err(HarnessError::new(format!("non-string key {other:?}"))),
                };
                map.insert(key, yaml_to_json(value)?);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            match name {
                "Ref" | "Condition" => json!({ name: inner }),
                // `!GetAtt Resource.Attribute` is the string form of `Fn::GetAtt: [Resource, Attribute]`.
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (resource, attribute) = s
                            .split_once('.')
                            .ok_or_else(|| HarnessError::new(format!("!GetAtt {s}: expected Resource.Attribute")))?;
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    })
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, HarnessError> {
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| HarnessError::new(format!("template.yaml: {e}")))?;
        Ok(Self { document: yaml_to_json(yaml)? })
    }

    pub fn load(path: &Path) -> Result<Self, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|e| HarnessError::new(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// The project's `template.yaml`.
    pub fn workspace() -> Result<Self, HarnessError> {
        Self::load(&workspace_root().join("template.yaml"))
    }

    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.document["Resources"].as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v))
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.document["Resources"].get(logical_id)
    }

    pub fn resources_of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.resources().filter(move |(_, r)| r["Type"] == resource_type)
    }

    pub fn parameter_default(&self, name: &str) -> Option<String> {
        match &self.document["Parameters"][name]["Default"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn parameter_names(&self) -> Vec<String> {
        self.document["Parameters"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The function's environment as declared: `Globals.Function.Environment.Variables` overlaid
    /// with the function's own, still unresolved.
    pub fn function_environment(&self, logical_id: &str) -> Result<Map<String, Value>, HarnessError> {
        let function = self
            .resource(logical_id)
            .filter(|r| r["Type"] == "AWS::Serverless::Function")
            .ok_or_else(|| HarnessError::new(format!("no AWS::Serverless::Function {logical_id} in template.yaml")))?;
        let mut variables =
            self.document["Globals"]["Function"]["Environment"]["Variables"].as_object().cloned().unwrap_or_default();
        if let Some(own) = function["Properties"]["Environment"]["Variables"].as_object() {
            variables.extend(own.clone());
        }
        Ok(variables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_intrinsics_become_long_form() {
        let template = Template::parse(
            "Resources:\n  F:\n    Type: X\n    Properties:\n      A: !Ref T\n      B: !GetAtt Q.Arn\n      C: !Sub 'arn:${AWS::Region}'\n      D: !Join [',', [a, b]]\n",
        )
        .unwrap();
        let properties = &template.resource("F").unwrap()["Properties"];
        assert_eq!(properties["A"], json!({"Ref": "T"}));
        assert_eq!(properties["B"], json!({"Fn::GetAtt": ["Q", "Arn"]}));
        assert_eq!(properties["C"], json!({"Fn::Sub": "arn:${AWS::Region}"}));
        assert_eq!(properties["D"], json!({"Fn::Join": [",", ["a", "b"]]}));
    }
}
