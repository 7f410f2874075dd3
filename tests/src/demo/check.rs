//! `--check`: the summary against `tests/demo/expected.json`, then the smoke test of `events/`.

use super::*;

impl Demo {
    /// Compares the run with `tests/demo/expected.json`; every difference is listed.
    pub fn check(&self, run: &Run, summary: &Summary) -> Result<String, String> {
        let expected = &self.expected;
        let mut problems = Vec::new();
        let mut expect = |what: &str, ok: bool, detail: String| {
            if !ok {
                problems.push(format!("{what}: {detail}"));
            }
        };
        let statuses: Vec<u16> = run.deliveries.iter().map(|(_, (status, _))| *status).collect();
        expect("delivery answers", statuses == [202, 202, 200, 202, 202, 202, 401, 202], format!("{statuses:?}"));
        expect(
            "weekly counts",
            summary.by_week == expected["count_by_week"],
            format!("got {} expected {}", summary.by_week, expected["count_by_week"]),
        );
        expect(
            "monthly counts",
            summary.by_month == expected["count_by_month"],
            format!("got {} expected {}", summary.by_month, expected["count_by_month"]),
        );
        let alerts: Vec<Value> = summary.alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| json!({"rule": a["rule"], "lead_id": a["lead_id"]}))
            .collect();
        let mut want: Vec<Value> = expected["alerts"].as_array().cloned().unwrap_or_default();
        let mut got = alerts.clone();
        let key = |v: &Value| format!("{}|{}", v["rule"], v["lead_id"]);
        want.sort_by_key(key);
        got.sort_by_key(key);
        expect("alerts", got == want, format!("{} alerts, expected {}", got.len(), want.len()));
        let visits: u64 =
            expected["visits_by_site"].as_object().into_iter().flatten().filter_map(|(_, v)| v.as_u64()).sum();
        let table_rows = |name: &str| {
            summary.status["tables"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["table"] == name)
                .and_then(|t| t["rows"].as_u64())
                .unwrap_or(0)
        };
        expect(
            "visits in the lake",
            table_rows("matomo_visits") == visits,
            format!("{} of {visits}", table_rows("matomo_visits")),
        );
        let pulled_visits = run.pulled.get("matomo").map(|t| t.1).unwrap_or(0);
        expect("visits pulled", pulled_visits == visits, format!("{pulled_visits} of {visits}"));
        let notion = expected["notion_pages"].as_u64().unwrap_or(0);
        let pulled_leads = run.pulled.get("notion").map(|t| t.1).unwrap_or(0);
        expect("Notion leads pulled", pulled_leads == notion, format!("{pulled_leads} of {notion}"));
        let leads = expected["leads"].as_u64().unwrap_or(0);
        expect(
            "lead versions in the lake",
            table_rows("leads") == leads,
            format!("{} of {leads}", table_rows("leads")),
        );
        let fields = &summary.customer["fields"];
        let visit_count = fields["web.visit_count"]["value"].as_u64();
        expect(
            "the star customer's visits",
            visit_count == expected["star_visits"].as_u64(),
            format!("{visit_count:?}, expected {}", expected["star_visits"]),
        );
        for field in ["billing.stripe_customer", "billing.last_payment", "identity.telephone", "lead.statut"] {
            expect("the star customer's record", !fields[field].is_null(), format!("no {field}"));
        }
        let attributes = ["attributes.make.company", "attributes.acme.plan"];
        for field in attributes {
            expect("the star customer's attributes", !fields[field].is_null(), format!("no {field}"));
        }
        let pushes = summary.crm["pushes"].as_array().map(Vec::len).unwrap_or(0);
        expect("CRM pushes", pushes > 0, "none".into());
        for (function, (_, _, failures)) in &summary.stats {
            expect("failed invocations", *failures == 0, format!("{function}: {failures}"));
        }
        if problems.is_empty() {
            Ok(format!(
                "demo check passed: {} deliveries, {visits} visits and {notion} Notion leads pulled, {leads} leads \
                 in the lake, counts and {} alerts as expected, {pushes} CRM pushes",
                run.deliveries.len(),
                got.len()
            ))
        } else {
            Err(format!("demo check failed:\n  {}", problems.join("\n  ")))
        }
    }

    /// The smoke test of every sample in `events/`: each is sent to its function (the signed ones
    /// signed now) in the order of `events/answers.json`, and each answer must hold the fields
    /// that file gives (HTTP samples: the status code).
    pub async fn smoke(&self) -> Result<String, String> {
        let started = Instant::now();
        let dir = fresh_samples()?;
        let root = workspace_root();
        let answers = read_json(root.join("events/answers.json"))?;
        let answers = answers.as_array().ok_or("events/answers.json is not a list")?;
        let mut problems = Vec::new();
        for answer in answers {
            let (Some(sample), Some(function)) = (answer["sample"].as_str(), answer["function"].as_str()) else {
                return Err(format!("events/answers.json: bad entry {answer}"));
            };
            let event = read_json(dir.join(sample))?;
            let invocation = self.client(function)?.invoke(&event).await?;
            if invocation.failed() || !contains(&invocation.body, &answer["expect"]) {
                let mut got = invocation.body.to_string();
                got.truncate(300);
                problems.push(format!(
                    "{sample} → {function}: expected {}, got {} {got}",
                    answer["expect"], invocation.status
                ));
            }
        }
        // What the webhook samples published reaches the processor and the lake before the stop.
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        if problems.is_empty() {
            Ok(format!(
                "smoke test passed: the {} samples of events/ answered as events/answers.json says ({:.1} s)",
                answers.len(),
                started.elapsed().as_secs_f64()
            ))
        } else {
            Err(format!("smoke test failed:\n  {}", problems.join("\n  ")))
        }
    }
}

/// The samples of `events/` signed at the current time (`.local/events/`), as senders would send them now.
pub fn fresh_samples() -> Result<PathBuf, String> {
    let dir = state_dir().join("events");
    let status = Command::new("python3")
        .arg(workspace_root().join("scripts/generate-sample-events.py"))
        .args(["--now", "--out"])
        .arg(&dir)
        .status()
        .map_err(|e| format!("scripts/generate-sample-events.py: {e}"))?;
    if !status.success() {
        return Err(format!("scripts/generate-sample-events.py --now failed ({status})"));
    }
    Ok(dir)
}

/// Whether `answer` holds `expected`: every field of an expected object (recursively), else equal.
pub(super) fn contains(answer: &Value, expected: &Value) -> bool {
    match expected {
        Value::Object(fields) => fields.iter().all(|(key, value)| contains(&answer[key], value)),
        other => answer == other,
    }
}
