//! Lets test and bench binaries find the prebuilt libduckdb.so where they were linked against it
//! (an rpath to DUCKDB_LIB_DIR), so `cargo test` needs no LD_LIBRARY_PATH. In Lambda the library
//! comes from the DuckDB layer, in /opt/lib, which is on the loader's default path.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        if !std::path::Path::new(&dir).join("libduckdb.so").exists() {
            println!(
                "cargo:warning=no libduckdb.so in DUCKDB_LIB_DIR={dir}: run `make setup` (scripts/fetch-duckdb.sh)"
            );
        }
        if host == target {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
