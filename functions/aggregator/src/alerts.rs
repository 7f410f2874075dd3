//! "Stuck" leads: rules over the latest version of each lead, evaluated on a given day (UTC).
//! Closed leads (`gagne`, `perdu`) are never stuck, but their dates must still be coherent.
//! The README's "Alert rules" section documents the same rules and their defaults.

use crate::AggregatorError;
use crate::engine::Engine;
use crate::sql;
use jiff::civil::Date;
use serde::Serialize;

/// The configurable thresholds, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// Contacted, and no answer after this many days (`ALERT_NO_ANSWER_DAYS`, default 7).
    pub no_answer_days: u32,
    /// A call proposed and still not booked after this many days (`ALERT_UNBOOKED_CALL_DAYS`, 5).
    pub unbooked_call_days: u32,
    /// A booked call this many days in the past with no follow-up (`date_relance` on or after
    /// the call) (`ALERT_NO_FOLLOW_UP_DAYS`, 2).
    pub no_follow_up_days: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self { no_answer_days: 7, unbooked_call_days: 5, no_follow_up_days: 2 }
    }
}

/// The date each `statut` implies: a lead in that state without it is inconsistent.
pub const REQUIRED_DATE_BY_STATUT: [(&str, &str); 5] = [
    ("contacte", "date_prise_contact"),
    ("reponse_recue", "date_reponse_prospect"),
    ("appel_propose", "date_appel_propose"),
    ("appel_booke", "date_appel_booke"),
    ("relance", "date_relance"),
];

/// The rules, in the order alerts are listed.
pub const RULES: [&str; 5] = [
    "booked_call_without_follow_up",
    "inverted_dates",
    "missing_date_for_statut",
    "no_answer_after_contact",
    "proposed_call_not_booked",
];

/// The lead's five days (UTC), as the alert shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeadDays {
    pub date_prise_contact: Option<Date>,
    pub date_reponse_prospect: Option<Date>,
    pub date_appel_propose: Option<Date>,
    pub date_appel_booke: Option<Date>,
    pub date_relance: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub lead_id: String,
    pub nom: String,
    pub statut: Option<String>,
    pub rule: String,
    /// What is wrong, in words.
    pub detail: String,
    pub dates: LeadDays,
}

/// Every alert on `today`, by rule then lead id.
pub fn alerts(engine: &Engine, rules: AlertRules, today: Date) -> Result<Vec<Alert>, AggregatorError> {
    let mut statement = engine.connection().prepare_cached(&sql::alerts(&REQUIRED_DATE_BY_STATUT))?;
    let rows = statement.query_map(
        duckdb::params![today.to_string(), rules.no_answer_days, rules.unbooked_call_days, rules.no_follow_up_days],
        |row| {
            let day = |i: usize| -> duckdb::Result<Option<Date>> {
                Ok(row.get::<_, Option<String>>(i)?.and_then(|text| text.parse().ok()))
            };
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                LeadDays {
                    date_prise_contact: day(4)?,
                    date_reponse_prospect: day(5)?,
                    date_appel_propose: day(6)?,
                    date_appel_booke: day(7)?,
                    date_relance: day(8)?,
                },
            ))
        },
    )?;
    let mut alerts = Vec::new();
    for row in rows {
        let (rule, lead_id, nom, statut, dates) = row?;
        let detail = describe(&rule, statut.as_deref(), &dates, rules, today);
        alerts.push(Alert { lead_id, nom, statut, rule, detail, dates });
    }
    Ok(alerts)
}

fn days_between(from: Option<Date>, to: Date) -> i64 {
    from.and_then(|from| from.until(to).ok()).map(|span| i64::from(span.get_days())).unwrap_or(0)
}

fn shown(day: Option<Date>) -> String {
    day.map(|d| d.to_string()).unwrap_or_else(|| "?".into())
}

/// The alert's sentence.
fn describe(rule: &str, statut: Option<&str>, dates: &LeadDays, rules: AlertRules, today: Date) -> String {
    match rule {
        "no_answer_after_contact" => format!(
            "contacted on {}, no answer after {} days (threshold {})",
            shown(dates.date_prise_contact),
            days_between(dates.date_prise_contact, today),
            rules.no_answer_days
        ),
        "proposed_call_not_booked" => format!(
            "call proposed on {}, not booked after {} days (threshold {})",
            shown(dates.date_appel_propose),
            days_between(dates.date_appel_propose, today),
            rules.unbooked_call_days
        ),
        "booked_call_without_follow_up" => format!(
            "call booked for {}, no follow-up since (threshold {} days)",
            shown(dates.date_appel_booke),
            rules.no_follow_up_days
        ),
        "missing_date_for_statut" => {
            let statut = statut.unwrap_or_default();
            let column = REQUIRED_DATE_BY_STATUT.iter().find(|(s, _)| *s == statut).map(|(_, c)| *c).unwrap_or("?");
            format!("statut {statut} but no {column}")
        }
        "inverted_dates" => {
            let contact = dates.date_prise_contact;
            let mut problems = Vec::new();
            for (name, day) in [
                ("date_reponse_prospect", dates.date_reponse_prospect),
                ("date_appel_propose", dates.date_appel_propose),
                ("date_appel_booke", dates.date_appel_booke),
                ("date_relance", dates.date_relance),
            ] {
                if let (Some(day), Some(contact)) = (day, contact)
                    && day < contact
                {
                    problems.push(format!("{name} {day} before date_prise_contact {contact}"));
                }
            }
            if let (Some(booked), Some(proposed)) = (dates.date_appel_booke, dates.date_appel_propose)
                && booked < proposed
            {
                problems.push(format!("date_appel_booke {booked} before date_appel_propose {proposed}"));
            }
            problems.join("; ")
        }
        other => other.to_string(),
    }
}
