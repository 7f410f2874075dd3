//! The `leads` table as DuckDB sees it: the snapshot cache and the locked-down engine together.

use crate::AggregatorError;
use crate::config::LakeQueryConfig;
use crate::engine::Engine;
use crate::snapshot::{LocalSnapshot, SnapshotCache};
use std::collections::HashSet;
use std::path::PathBuf;
use tributary_lake::schema::LEADS;

pub struct LakeReader {
    leads: SnapshotCache,
    engine: Engine,
    /// Where the kept latest dates are written before they go to the lake (DuckDB may write there).
    cache_dir: PathBuf,
}

/// What [`LakeReader::keep_latest_dates`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptOutcome {
    /// The `leads` table does not exist yet.
    NoTable,
    /// The newest kept latest dates already cover every file of this version.
    UpToDate { version: u64 },
    /// The latest dates of `version` were kept (`leads` leads, `bytes` of Parquet).
    Written { version: u64, path: String, leads: u64, bytes: usize },
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
        Ok(Self {
            leads: SnapshotCache::new(config.lake.clone(), &LEADS, &config.cache_dir),
            engine,
            cache_dir: config.cache_dir.clone(),
        })
    }

    /// The engine as it is (for questions that need no table, such as a zone name check).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine with every version of the latest `leads` snapshot (the `lead_versions` and
    /// `latest_leads` views: the report and the alerts) and its `latest_dates`. Every data file is
    /// fetched.
    pub async fn latest(&mut self) -> Result<&Engine, AggregatorError> {
        let snapshot = self.leads.current().await?;
        self.leads.fetch(&snapshot.files).await?;
        self.engine.show_versions(&snapshot)?;
        self.bring_latest_dates_to(snapshot).await?;
        Ok(&self.engine)
    }

    /// The engine with the `latest_dates` of the latest `leads` snapshot (what the counts read).
    pub async fn latest_dates(&mut self) -> Result<&Engine, AggregatorError> {
        let snapshot = self.leads.current().await?;
        self.bring_latest_dates_to(snapshot).await?;
        Ok(&self.engine)
    }

    /// Brings `latest_dates` up to `snapshot`, fetching only the data files that takes: those added
    /// since the engine's own state when the snapshot only added files to it; otherwise (a cold
    /// start, or after a compaction) those added since the kept latest dates when they apply (one
    /// listing, maybe one download: looked for here unless the snapshot comes with them); every
    /// file when there is neither.
    async fn bring_latest_dates_to(&mut self, mut snapshot: LocalSnapshot) -> Result<(), AggregatorError> {
        let mut needed = self.engine.shown().and_then(|shown| snapshot.files_added_since(&shown.lake_paths));
        if needed.is_none() {
            if snapshot.latest_dates.is_none() {
                snapshot.latest_dates = self.leads.kept_latest_dates().await;
            }
            needed = snapshot.latest_dates.as_ref().and_then(|kept| snapshot.files_added_since(&kept.covers));
        }
        self.leads.fetch(needed.as_deref().unwrap_or(&snapshot.files)).await?;
        if let Err(error) = self.engine.show_latest_dates(&snapshot) {
            if needed.is_none() {
                return Err(error);
            }
            // The kept file passed its checks but could not be loaded, and grouping every version
            // needs files not fetched yet: fetch them, and start from every version.
            tracing::warn!(%error, "the latest dates could not be brought up to date from part of the files; fetching them all");
            let snapshot = LocalSnapshot { latest_dates: None, ..snapshot };
            self.leads.fetch(&snapshot.files).await?;
            self.engine.show_latest_dates(&snapshot)?;
        }
        Ok(())
    }

    /// Keeps the latest dates of the current snapshot beside the `leads` table, so that a cold
    /// reader starts from them ([`crate::snapshot::KeptLatestDates`]); nothing is written when the
    /// newest kept ones already cover every data file. They are computed the way every request
    /// computes them (from the kept ones and the files added since, or from every version).
    pub async fn keep_latest_dates(&mut self) -> Result<KeptOutcome, AggregatorError> {
        let mut snapshot = self.leads.current().await?;
        let Some(version) = snapshot.version else { return Ok(KeptOutcome::NoTable) };
        // Whether there is anything to do, before any DuckDB work.
        snapshot.latest_dates = self.leads.kept_latest_dates().await;
        let current: HashSet<&str> = snapshot.lake_paths.iter().map(String::as_str).collect();
        if let Some(kept) = &snapshot.latest_dates
            && kept.covers.iter().map(String::as_str).collect::<HashSet<_>>() == current
        {
            return Ok(KeptOutcome::UpToDate { version: kept.version });
        }
        let covers = snapshot.lake_paths.clone();
        self.bring_latest_dates_to(snapshot).await?;
        let target = self.cache_dir.join(format!("latest-dates-{version}-{}.parquet", std::process::id()));
        let cache_error = |e| AggregatorError::Cache { path: target.display().to_string(), source: e };
        let written = self.engine.export_latest_dates(&target, &covers).and_then(|leads| {
            let bytes = std::fs::read(&target).map_err(cache_error)?;
            Ok((leads, bytes))
        });
        // The local copy is not needed once read (or when the export failed half-way).
        let _ = std::fs::remove_file(&target);
        let (leads, bytes) = written?;
        let size = bytes.len();
        let path = self.leads.keep_latest_dates(version, bytes::Bytes::from(bytes)).await?;
        Ok(KeptOutcome::Written { version, path, leads, bytes: size })
    }
}
