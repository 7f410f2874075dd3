//! The `leads` table as DuckDB sees it: the snapshot cache and the locked-down engine together.

use crate::AggregatorError;
use crate::config::LakeQueryConfig;
use crate::engine::Engine;
use crate::snapshot::SnapshotCache;
use tributary_lake::schema::LEADS;

pub struct LakeReader {
    leads: SnapshotCache,
    engine: Engine,
}

impl LakeReader {
    /// DuckDB may read only the cache directory, and the lake itself when it is on local disk.
    pub fn open(config: &LakeQueryConfig) -> Result<Self, AggregatorError> {
        let cache_error = |e| AggregatorError::Cache { path: config.cache_dir.display().to_string(), source: e };
        let spill = config.cache_dir.join("duckdb-spill");
        std::fs::create_dir_all(&spill).map_err(cache_error)?;
        let mut readable = vec![config.cache_dir.clone()];
        readable.extend(config.lake.local_root());
        let engine = Engine::open(config.limits, &readable, &spill)?;
        Ok(Self { leads: SnapshotCache::new(config.lake.clone(), &LEADS, &config.cache_dir), engine })
    }

    /// The engine as it is (for questions that need no table, such as a zone name check).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, its views on the latest version of the `leads` table.
    pub async fn latest(&mut self) -> Result<&Engine, AggregatorError> {
        let snapshot = self.leads.current().await?;
        self.engine.show_leads(&snapshot)?;
        Ok(&self.engine)
    }
}
