//! Turns `lead-fields.txt`, the one list of the lead fields, into the constants `lead.rs`
//! includes, so that Rust and the Python generators read the same list.

use std::fmt::Write as _;
use std::path::PathBuf;

const KINDS: [&str; 6] = ["id", "text", "email", "phone", "date", "statut"];

fn main() -> Result<(), String> {
    let source = "lead-fields.txt";
    println!("cargo::rerun-if-changed={source}");
    let text = std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))?;
    let mut fields = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, kind, presence] = words[..] else {
            return Err(format!("{source}:{number}: expected `name kind presence`, found {line:?}"));
        };
        if !["required", "optional"].contains(&presence) {
            return Err(format!("{source}:{number}: {presence:?} is neither required nor optional"));
        }
        if !KINDS.contains(&kind) {
            return Err(format!("{source}:{number}: unknown kind {kind:?} (one of {KINDS:?})"));
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') || fields.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("{source}:{number}: {name:?} is not a new snake_case name"));
        }
        fields.push((name, kind, presence));
    }
    let names: Vec<&str> = fields.iter().map(|(name, _, _)| *name).collect();
    let dates: Vec<&str> = fields.iter().filter(|(_, kind, _)| *kind == "date").map(|(name, _, _)| *name).collect();
    let required: Vec<&str> =
        fields.iter().filter(|(_, _, presence)| *presence == "required").map(|(name, _, _)| *name).collect();
    let mut out = String::new();
    let list = |items: &[&str]| items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let _ =
        writeln!(out, "/// The lead fields of the product contract, in its order (`shared/domain/lead-fields.txt`).");
    let _ = writeln!(out, "pub const LEAD_FIELDS: [&str; {}] = [{}];", names.len(), list(&names));
    let _ = writeln!(out, "/// The lead fields of kind `date`, in [`LEAD_FIELDS`] order.");
    let _ = writeln!(out, "pub const LEAD_DATE_FIELDS: [&str; {}] = [{}];", dates.len(), list(&dates));
    let _ = writeln!(out, "/// The lead fields every lead has, in [`LEAD_FIELDS`] order.");
    let _ = writeln!(out, "pub const LEAD_REQUIRED_FIELDS: [&str; {}] = [{}];", required.len(), list(&required));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    std::fs::write(out_dir.join("lead_fields.rs"), out).map_err(|e| format!("lead_fields.rs: {e}"))
}
