//! The settlement file, streamed: rows are read a page at a time on a blocking thread and sent
//! to the response as they come, so a city of 60,000 merchants exports in bounded memory.

use actix_web::web::Bytes;
use futures_util::stream::Stream;
use tokio::sync::mpsc;

use crate::api::wire::SettlementLine;
use crate::store::settlements::{self, SettlementRow};
use crate::store::DbPool;

/// Rows read per query.
const PAGE_ROWS: i64 = 1_000;
/// Pages buffered between the reader and a slow client.
const PAGES_IN_FLIGHT_MAX: usize = 4;

/// The settlement file's first line (API.md).
pub const CSV_HEADER: &str = "business_date,merchant_id,merchant_name,business_number,bank_account,\
payments_count,payments_amount,refunds_count,refunds_amount,fee,net_payable\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Streams the settlement of a closed `business_date` (whose totals the caller has read).
pub fn settlement(
    pool: DbPool,
    business_date: String,
    totals: settlements::SettlementTotals,
    format: Format,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT_MAX);
    std::thread::spawn(move || {
        let settlements::SettlementTotals { total_net_payable, total_fee } = totals;
        let opening = match format {
            Format::Csv => CSV_HEADER.to_owned(),
            Format::Json => format!(
                "{{\"business_date\":\"{business_date}\",\"total_net_payable\":\"{total_net_payable}\",\
                 \"total_fee\":\"{total_fee}\",\"merchants\":["
            ),
        };
        if sender.blocking_send(Ok(Bytes::from(opening))).is_err() {
            return;
        }
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let page = pool.get().map_err(|error| error.to_string()).and_then(|mut connection| {
                settlements::settlement_rows(&mut connection, &business_date, after.as_deref(), PAGE_ROWS)
                    .map_err(|error| error.to_string())
            });
            let rows = match page {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(%error, "settlement export failed mid-stream");
                    let _ = sender.blocking_send(Err(std::io::Error::other(error)));
                    return;
                }
            };
            let mut chunk = String::new();
            for row in &rows {
                match format {
                    Format::Csv => csv_row(&mut chunk, &business_date, row),
                    Format::Json => {
                        if !first {
                            chunk.push(',');
                        }
                        match json_row(row) {
                            Ok(line) => chunk.push_str(&line.to_string()),
                            Err(error) => {
                                tracing::error!(%error, "settlement export failed mid-stream");
                                let _ = sender.blocking_send(Err(std::io::Error::other(error)));
                                return;
                            }
                        }
                    }
                }
                first = false;
            }
            let last_page = (rows.len() as i64) < PAGE_ROWS;
            after = rows.last().map(|row| row.merchant_id.clone());
            if !chunk.is_empty() && sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return; // the client went away
            }
            if last_page {
                break;
            }
        }
        if format == Format::Json {
            let _ = sender.blocking_send(Ok(Bytes::from_static(b"]}")));
        }
    });
    futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    )
}

fn csv_row(out: &mut String, business_date: &str, row: &SettlementRow) {
    let fields = [
        business_date.to_owned(),
        spreadsheet_safe(&row.merchant_id),
        spreadsheet_safe(&row.name),
        spreadsheet_safe(&row.business_number),
        spreadsheet_safe(&row.bank_account),
        row.payments_count.to_string(),
        row.payments_amount.to_string(),
        row.refunds_count.to_string(),
        row.refunds_amount.to_string(),
        row.fee.to_string(),
        row.net_payable.to_string(),
    ];
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(field));
    }
    out.push_str("\r\n");
}

/// A text cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return) with a `'` in front, so finance opening the file sees the text
/// (OWASP's CSV-injection rule). Only text cells: the amounts are numbers, and a negative
/// `net_payable` must stay a number.
fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// RFC 4180: quote a field holding a comma, quote, CR or LF, doubling inner quotes.
fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

/// A settlement line as JSON; a negative count is stored data gone wrong, reported, not clamped.
fn json_row(row: &SettlementRow) -> Result<serde_json::Value, String> {
    let count = |name: &str, count: i64| {
        u64::try_from(count).map_err(|_| format!("merchant {}: {name} is {count}", row.merchant_id))
    };
    Ok(crate::api::wire::to_json(&SettlementLine {
        merchant_id: row.merchant_id.clone(),
        merchant_name: row.name.clone(),
        business_number: row.business_number.clone(),
        bank_account: row.bank_account.clone(),
        payments_count: count("payments_count", row.payments_count)?,
        payments_amount: row.payments_amount.to_string(),
        refunds_count: count("refunds_count", row.refunds_count)?,
        refunds_amount: row.refunds_amount.to_string(),
        fee: row.fee.to_string(),
        carried_in: row.carried_in.to_string(),
        net_payable: row.net_payable.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_rfc_4180_requires() {
        assert_eq!(csv_field("Bakery"), "Bakery");
        assert_eq!(csv_field("Bakery, Inc"), "\"Bakery, Inc\"");
        assert_eq!(csv_field("The \"Best\" Bakery"), "\"The \"\"Best\"\" Bakery\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn text_cells_that_a_spreadsheet_would_run_are_neutralised() {
        for text in ["=HYPERLINK(\"http://x\",\"click\")", "+1", "-1+2", "@SUM(1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(text), format!("'{text}"), "{text:?}");
        }
        for text in ["Bakery", "123-45-67890", "a=b", " =x"] {
            assert_eq!(spreadsheet_safe(text), text, "{text:?}");
        }
    }
}
