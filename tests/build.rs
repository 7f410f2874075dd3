//! The integration tests link the aggregator, hence the prebuilt libduckdb of DUCKDB_LIB_DIR
//! (.cargo/config.toml): a build script's rpath reaches only its own package's binaries, so this
//! package sets its own, as functions/aggregator/build.rs does for the aggregator's.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}
