//! The body of an export, made page by page as the client reads it: each page is one
//! keyset query (`PAGE` rows after the last id sent) on a connection taken from the pool
//! for that query only, turned into CSV and handed to the body. Nothing is fetched before
//! the body asks for it, so an export of any size holds one page in memory and never holds
//! a connection while a slow client reads. Pages are separate statements, not one
//! snapshot: a row committed during a download appears if its id is not yet passed.

use bytes::Bytes;
use futures_util::Stream;

use super::{ExportKind, csv, store};
use crate::db::Pool;

/// Rows per page (one query, one chunk of the body).
pub const PAGE: i64 = 500;

struct Cursor {
    pool: Pool,
    schedule_id: i64,
    kind: ExportKind,
    /// The last id written (reservation for sales, seat for attendees).
    after: i64,
    header_sent: bool,
    done: bool,
}

/// The export as a stream of CSV chunks: the header (after a UTF-8 byte order mark, which
/// makes spreadsheets read non-Latin names right) with the first page, then a page per chunk.
/// A database error ends the stream with an error, which aborts the response: a client
/// never takes a cut file for a whole one.
pub fn csv_stream(
    pool: Pool,
    schedule_id: i64,
    kind: ExportKind,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let cursor = Cursor {
        pool,
        schedule_id,
        kind,
        after: 0,
        header_sent: false,
        done: false,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let mut buf = String::new();
        if !c.header_sent {
            buf.push('\u{feff}');
            csv::header(c.kind.columns(), &mut buf);
            c.header_sent = true;
        }
        match page(&mut c, &mut buf).await {
            Ok(rows) => {
                if rows < PAGE {
                    c.done = true;
                }
                if buf.is_empty() {
                    return None;
                }
                metrics::counter!("export_rows_total").increment(rows as u64);
                Some((Ok(Bytes::from(buf)), c))
            }
            Err(e) => {
                tracing::error!(error = %e, schedule.id = c.schedule_id, "export page failed; the download is cut");
                c.done = true;
                Some((Err(std::io::Error::other("export failed")), c))
            }
        }
    })
}

/// Writes the next page of rows into `buf`; how many there were.
async fn page(c: &mut Cursor, buf: &mut String) -> crate::error::AppResult<i64> {
    let mut conn = c.pool.get().await?;
    let mut n = 0;
    match c.kind {
        ExportKind::Sales => {
            for r in store::sale_lines(&mut conn, c.schedule_id, c.after, PAGE).await? {
                let mut l = csv::Line::default();
                l.number(r.id)
                    .text(&r.status.as_db().to_uppercase())
                    .text(&r.buyer_name)
                    .text(&r.buyer_email)
                    .number(i64::from(r.seat_count))
                    .text(&r.seats)
                    .text(&r.grades)
                    .number(r.total_price)
                    .number(r.refunded)
                    .time(Some(r.created_at))
                    .time(r.paid_at)
                    .time(r.cancelled_at)
                    .text(if r.complimentary { "true" } else { "false" });
                l.end(buf);
                c.after = r.id;
                n += 1;
            }
        }
        ExportKind::Attendees => {
            for r in store::attendee_lines(&mut conn, c.schedule_id, c.after, PAGE).await? {
                let mut l = csv::Line::default();
                match r.ticket_id {
                    Some(t) => l.number(t),
                    None => l.text(""),
                };
                l.text(&r.section)
                    .text(&r.row_label)
                    .number(i64::from(r.number))
                    .text(&r.grade)
                    .number(r.price)
                    .text(&r.holder_name)
                    .text(&r.holder_email)
                    .number(r.reservation_id)
                    .text(&r.ticket_status.as_deref().unwrap_or("").to_uppercase())
                    .time(r.checked_in_at)
                    .text(r.gate.as_deref().unwrap_or(""));
                l.end(buf);
                c.after = r.seat_id;
                n += 1;
            }
        }
    }
    Ok(n)
}
