//! The console in a real browser (`--check`): a failure is injected (the CRM down for one new
//! customer's push), then headless Chromium drives every page of the console through the demo's
//! HTTP API (`tests/console/check_console.py`, Playwright over Debian's `chromium`), re-drives the
//! failure from the Failures page, and writes a screenshot of each page to `.local/console/`.

use super::repair::QUEUE;
use super::*;

/// The name of the demo's API key (`events/local-secrets.json`).
const DEMO_KEY_NAME: &str = "demo";
/// The customer the console's search looks for (one of the demo's Notion leads turned customer).
const CUSTOMER_EMAIL: &str = "camille.martin@example.com";

impl Demo {
    /// Drives the console; answers the check's line, or what went wrong.
    pub async fn check_console(&self) -> Result<String, String> {
        let Some(gateway) = &self.gateway else { return Err("console: the HTTP API is not running".into()) };
        let http = reqwest::Client::new();
        self.crm_outage(&http, true).await?;
        let injected = self.new_customers(&http, "console", 1).await;
        self.crm_outage(&http, false).await?;
        injected?;
        let waiting = self.failed_pushes(&http).await?.len();
        if waiting == 0 {
            return Err("console: the injected push did not fail".into());
        }
        self.clock
            .say(format!("console: {waiting} failed push(es) in {QUEUE}; Chromium drives {}/console", gateway.url()));
        let out = state_dir().join("console");
        let python = workspace_root().join(".venv/bin/python");
        let output = tokio::process::Command::new(&python)
            .arg(workspace_root().join("tests/console/check_console.py"))
            .args(["--base", &gateway.url(), "--queue", QUEUE])
            // The key in the environment: a command line is readable by every local user.
            .env("TRIBUTARY_API_KEY", &self.api_key)
            .args(["--email", CUSTOMER_EMAIL, "--month", REPORT_MONTH])
            .arg("--out")
            .arg(&out)
            // Stopped with the demo when the demo is stopped midway.
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("console: running {}: {e} (make setup installs Playwright)", python.display()))?;
        let seen: Value = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| {
                format!("console: the browser check said nothing readable: {}", String::from_utf8_lossy(&output.stderr))
            })?;
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        let left = self.failed_pushes(&http).await?.len();
        // The page's re-drive is recorded with the name of the key that asked.
        let redrives = self.api_call(&http, "GET", "/api/v1/runs?kind=redrive", None).await?;
        let asked_by = redrives["runs"][0]["requested_by"].clone();
        let mut problems: Vec<String> =
            seen["problems"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_string)).collect();
        if left != 0 {
            problems.push(format!("{left} failed push(es) left after the page's re-drive"));
        }
        if asked_by != json!(DEMO_KEY_NAME) {
            problems.push(format!("the re-drive run names {asked_by} as the key that asked, not {DEMO_KEY_NAME}"));
        }
        if !output.status.success() && problems.is_empty() {
            problems.push(format!("the browser check failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        if problems.is_empty() {
            Ok(format!(
                "console check passed: 4 pages in Chromium without console errors, {} chart points for {} weeks, \
                 {} audit entries of {CUSTOMER_EMAIL}, {} failure(s) re-driven from the page; screenshots in {}",
                seen["leads_points"],
                seen["leads_buckets"],
                seen["audit_entries"],
                seen["failures_listed"],
                out.display()
            ))
        } else {
            Err(format!("console check failed:\n  {}", problems.join("\n  ")))
        }
    }
}
