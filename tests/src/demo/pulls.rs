//! The scheduled pulls (Matomo, Notion), run as their schedules would.

use super::*;

impl Demo {
    /// Runs a pull until it has nothing more to do, as its schedule would over several runs.
    pub(super) async fn pull(&self, schedule: &str, job: &str, run: &mut Run) -> Result<(), String> {
        for _ in 0..20 {
            let report = self.dispatcher()?.trigger("PullerFunction", schedule).await?;
            for sync in report["runs"].as_array().into_iter().flatten() {
                self.clock.say(format!(
                    "pull {job} {}: {} pages, {} records, {} rejected, {} → {} ({})",
                    sync["scope"].as_str().unwrap_or("?"),
                    sync["pages"],
                    sync["records"],
                    sync["rejected"],
                    sync["watermark_before"].as_str().unwrap_or("start"),
                    sync["watermark_after"].as_str().unwrap_or("-"),
                    sync["outcome"]["status"].as_str().unwrap_or("?"),
                ));
                let totals = run.pulled.entry(job.to_string()).or_default();
                totals.0 += sync["pages"].as_u64().unwrap_or(0);
                totals.1 += sync["records"].as_u64().unwrap_or(0);
            }
            if report["more_to_do"] != true {
                return Ok(());
            }
        }
        Err(format!("the {job} pull still had more to do after 20 runs"))
    }
}
