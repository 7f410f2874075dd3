//! The report and the alerts as real workbooks: a bold, frozen header row, dates as typed date
//! cells (Excel sorts and filters them as dates), rates as percentages.

use crate::alerts::Alert;
use crate::report::MonthlyReport;
use jiff::civil::Date;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

pub const XLSX_CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

struct Formats {
    header: Format,
    date: Format,
    percent: Format,
    days: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold(),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            percent: Format::new().set_num_format("0.0%"),
            days: Format::new().set_num_format("0.0"),
        }
    }
}

/// Excel's limit for the text of one cell, in characters; rust_xlsxwriter refuses longer strings.
pub const MAX_CELL_CHARS: usize = 32_767;

/// Text longer than a cell holds is cut, and says so at its end: a workbook is always produced, and
/// nobody mistakes the cut text for the whole value.
pub fn cell_text(text: &str) -> std::borrow::Cow<'_, str> {
    let length = text.chars().count();
    if length <= MAX_CELL_CHARS {
        return std::borrow::Cow::Borrowed(text);
    }
    let marker = format!(" […cut: {length} characters]");
    let kept: String = text.chars().take(MAX_CELL_CHARS - marker.chars().count()).collect();
    std::borrow::Cow::Owned(kept + &marker)
}

/// A sheet with its header row written, frozen and filterable over `rows` data rows.
fn sheet<'a>(
    workbook: &'a mut Workbook,
    name: &str,
    headers: &[&str],
    rows: usize,
    formats: &Formats,
) -> Result<&'a mut Worksheet, XlsxError> {
    let worksheet = workbook.add_worksheet().set_name(name)?;
    for (col, header) in headers.iter().enumerate() {
        worksheet.write_string_with_format(0, col as u16, *header, &formats.header)?;
        worksheet.set_column_width(col as u16, (header.len() as f64 + 4.0).max(12.0))?;
    }
    worksheet.set_freeze_panes(1, 0)?;
    worksheet.autofilter(0, 0, rows as u32, headers.len().saturating_sub(1) as u16)?;
    Ok(worksheet)
}

fn write_date(
    worksheet: &mut Worksheet,
    row: u32,
    col: u16,
    day: Option<Date>,
    formats: &Formats,
) -> Result<(), XlsxError> {
    if let Some(day) = day {
        let cell = ExcelDateTime::from_ymd(day.year() as u16, day.month() as u8, day.day() as u8)?;
        worksheet.write_datetime_with_format(row, col, &cell, &formats.date)?;
    }
    Ok(())
}

fn write_optional_number(
    worksheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Option<f64>,
    format: &Format,
) -> Result<(), XlsxError> {
    if let Some(value) = value {
        worksheet.write_number_with_format(row, col, value, format)?;
    }
    Ok(())
}

/// Sheets `Dates`, `Statut`, `Funnel`, `Delays`, holding the report's numbers.
pub fn report_workbook(report: &MonthlyReport, first_day: Date) -> Result<Vec<u8>, XlsxError> {
    let formats = Formats::new();
    let mut workbook = Workbook::new();

    let dates = sheet(&mut workbook, "Dates", &["month", "column", "count"], report.dates.len(), &formats)?;
    for (i, entry) in report.dates.iter().enumerate() {
        let row = i as u32 + 1;
        write_date(dates, row, 0, Some(first_day), &formats)?;
        dates.write_string(row, 1, entry.column)?;
        dates.write_number(row, 2, entry.count as f64)?;
    }

    let statut = sheet(&mut workbook, "Statut", &["statut", "leads"], report.by_statut.len(), &formats)?;
    for (i, entry) in report.by_statut.iter().enumerate() {
        let row = i as u32 + 1;
        statut.write_string(row, 0, cell_text(entry.statut.as_deref().unwrap_or("(none)")))?;
        statut.write_number(row, 1, entry.leads as f64)?;
    }

    let headers = ["step", "leads", "rate_from_previous", "rate_from_contact"];
    let funnel = sheet(&mut workbook, "Funnel", &headers, report.funnel.len(), &formats)?;
    for (i, step) in report.funnel.iter().enumerate() {
        let row = i as u32 + 1;
        funnel.write_string(row, 0, step.step)?;
        funnel.write_number(row, 1, step.leads as f64)?;
        write_optional_number(funnel, row, 2, step.rate_from_previous, &formats.percent)?;
        write_optional_number(funnel, row, 3, step.rate_from_contact, &formats.percent)?;
    }

    let delays =
        sheet(&mut workbook, "Delays", &["from", "to", "leads", "median_days"], report.delays.len(), &formats)?;
    for (i, delay) in report.delays.iter().enumerate() {
        let row = i as u32 + 1;
        delays.write_string(row, 0, delay.from)?;
        delays.write_string(row, 1, delay.to)?;
        delays.write_number(row, 2, delay.leads as f64)?;
        write_optional_number(delays, row, 3, delay.median_days, &formats.days)?;
    }
    workbook.save_to_buffer()
}

pub const ALERT_HEADERS: [&str; 10] = [
    "lead_id",
    "nom",
    "statut",
    "rule",
    "detail",
    "date_prise_contact",
    "date_reponse_prospect",
    "date_appel_propose",
    "date_appel_booke",
    "date_relance",
];

/// One sheet `Alerts`, one row per alert.
pub fn alerts_workbook(alerts: &[Alert]) -> Result<Vec<u8>, XlsxError> {
    let formats = Formats::new();
    let mut workbook = Workbook::new();
    let worksheet = sheet(&mut workbook, "Alerts", &ALERT_HEADERS, alerts.len(), &formats)?;
    for (i, alert) in alerts.iter().enumerate() {
        let row = i as u32 + 1;
        worksheet.write_string(row, 0, cell_text(&alert.lead_id))?;
        worksheet.write_string(row, 1, cell_text(&alert.nom))?;
        worksheet.write_string(row, 2, cell_text(alert.statut.as_deref().unwrap_or("")))?;
        worksheet.write_string(row, 3, cell_text(&alert.rule))?;
        worksheet.write_string(row, 4, cell_text(&alert.detail))?;
        let days = &alert.dates;
        for (offset, day) in [
            days.date_prise_contact,
            days.date_reponse_prospect,
            days.date_appel_propose,
            days.date_appel_booke,
            days.date_relance,
        ]
        .into_iter()
        .enumerate()
        {
            write_date(worksheet, row, 5 + offset as u16, day, &formats)?;
        }
    }
    worksheet.set_column_width(4, 60)?;
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_beyond_a_cell_is_cut_with_a_visible_marker() {
        assert_eq!(cell_text("Ada"), "Ada");
        let exact = "é".repeat(MAX_CELL_CHARS);
        assert_eq!(cell_text(&exact).chars().count(), MAX_CELL_CHARS);
        let long = "é".repeat(40_000);
        let cut = cell_text(&long);
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS);
        assert!(cut.ends_with(" […cut: 40000 characters]"), "{}", &cut[cut.len() - 40..]);
    }
}
