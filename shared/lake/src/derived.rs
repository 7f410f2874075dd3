//! Files derived from a table's snapshot and kept beside it, such as the latest version of each
//! lead that the aggregator would otherwise compute from every version on a cold start.
//!
//! A derived file lives at `_derived/<kind>/v<version>.parquet` under the table's root, `version`
//! being the table version it was computed from (20 digits, so that names sort as numbers). The
//! leading `_` hides the folder from Delta: vacuum never deletes it and no reader takes it for
//! data. Each file is written whole in one `put` (S3's `PutObject`; on local disk a temporary file
//! renamed), so a writer that dies leaves either no file or a complete one, never a half; two
//! writers at the same version write files equally valid for it under the same name (the last
//! one stays), and at different versions each file describes its own snapshot. What a file covers is the writer's business (the
//! aggregator keeps the list of data files in the file itself): this module only names, lists,
//! reads, writes and prunes them.

use super::LakeError;
use super::table::LakeTable;
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload};
use deltalake::{DeltaTableError, Path};
use futures::TryStreamExt as _;

/// The folder of the derived files, under the table's root.
pub const DERIVED_DIR: &str = "_derived";

/// One derived file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedFile {
    /// Relative to the table root (`_derived/<kind>/v<version>.parquet`).
    pub path: String,
    /// The table version it was computed from.
    pub version: u64,
    pub size: u64,
}

/// The file name for `version`: `v` then 20 digits (`u64::MAX` has 20).
fn file_name(version: u64) -> String {
    format!("v{version:020}.parquet")
}

/// The version a derived file's name stands for; `None` for any other name (a stray file, a
/// temporary file of the local store), which is then never taken for a derived file.
fn version_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?.strip_suffix(".parquet")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl LakeTable {
    fn derived_dir(kind: &str) -> Path {
        Path::from(format!("{DERIVED_DIR}/{kind}"))
    }

    fn store_error(&self, source: deltalake::logstore::object_store::Error) -> LakeError {
        self.delta(DeltaTableError::ObjectStore { source })
    }

    /// The derived files of `kind`, oldest version first.
    pub async fn derived_files(&self, kind: &str) -> Result<Vec<DerivedFile>, LakeError> {
        let dir = Self::derived_dir(kind);
        let store = self.delta_table().object_store();
        let listed: Vec<_> = store.list(Some(&dir)).try_collect().await.map_err(|e| self.store_error(e))?;
        let mut files: Vec<DerivedFile> = listed
            .into_iter()
            .filter_map(|meta| {
                let version = version_of(meta.location.filename()?)?;
                // Only files directly in the folder: `prefix` also lists deeper paths.
                (meta.location.prefix_match(&dir)?.count() == 1).then_some(DerivedFile {
                    path: meta.location.to_string(),
                    version,
                    size: meta.size,
                })
            })
            .collect();
        files.sort_by_key(|file| file.version);
        Ok(files)
    }

    /// The newest derived file of `kind` computed from this version of the table or an earlier
    /// one (a file from a later version than the one loaded describes rows this snapshot lacks).
    pub async fn newest_derived(&self, kind: &str) -> Result<Option<DerivedFile>, LakeError> {
        let loaded = self.version();
        Ok(self.derived_files(kind).await?.into_iter().rev().find(|file| Some(file.version) <= loaded))
    }

    /// The bytes of a derived file.
    pub async fn read_derived(&self, file: &DerivedFile) -> Result<bytes::Bytes, LakeError> {
        self.read_path_bytes(&file.path).await
    }

    /// Writes the derived file of `kind` for table `version`, whole; returns its path.
    pub async fn put_derived(&self, kind: &str, version: u64, bytes: bytes::Bytes) -> Result<String, LakeError> {
        let path = Path::from(format!("{DERIVED_DIR}/{kind}/{}", file_name(version)));
        let store = self.delta_table().object_store();
        store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|e| self.store_error(e))?;
        Ok(path.to_string())
    }

    /// Deletes all but the `keep` newest derived files of `kind` computed from the loaded version
    /// or an earlier one; returns how many it deleted. Files of later versions are left alone: they
    /// may come from a writer that saw a newer snapshot (or from a table deleted and created again,
    /// whose files readers ignore until its versions pass theirs). A reader may be downloading a
    /// file being deleted: it falls back to the data files (never a wrong answer, only a slower
    /// one), which is why at least one older file stays.
    pub async fn prune_derived(&self, kind: &str, keep: usize) -> Result<usize, LakeError> {
        let loaded = self.version();
        let files: Vec<DerivedFile> =
            self.derived_files(kind).await?.into_iter().filter(|file| Some(file.version) <= loaded).collect();
        let store = self.delta_table().object_store();
        let old = files.len().saturating_sub(keep);
        for file in &files[..old] {
            match store.delete(&Path::from(file.path.as_str())).await {
                // Deleted meanwhile by another writer's prune: the outcome wanted.
                Ok(()) | Err(deltalake::logstore::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_error(e)),
            }
        }
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_versions_and_nothing_else_is_taken_for_one() {
        assert_eq!(file_name(42), "v00000000000000000042.parquet");
        assert_eq!(version_of(&file_name(42)), Some(42));
        assert_eq!(version_of(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        for stray in
            ["v42.parquet", "v0000000000000000004x.parquet", "v00000000000000000042.parquet.tmp", "x.parquet", ""]
        {
            assert_eq!(version_of(stray), None, "{stray}");
        }
    }
}
