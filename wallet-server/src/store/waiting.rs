//! The citizen waiting room's line, shared by every server on the database.

use diesel::prelude::*;

use super::schema::waiting_tickets;
use super::{is_unique_violation, DbConn, StoreResult};

/// One ticket of the line: its text, whose it is, when it was last polled.
#[derive(Queryable, Selectable)]
#[diesel(table_name = waiting_tickets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct TicketRow {
    /// Its place in the line: the table's sequence number.
    pub seq: i64,
    pub ticket: String,
    pub login: String,
    pub polled_ms: i64,
}

fn ticket_of(connection: &mut DbConn, login: &str) -> StoreResult<Option<TicketRow>> {
    Ok(waiting_tickets::table
        .filter(waiting_tickets::login.eq(login))
        .select(TicketRow::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// A ticket by its text, if it is in the line.
pub fn find_ticket(connection: &mut DbConn, ticket: &str) -> StoreResult<Option<TicketRow>> {
    Ok(waiting_tickets::table
        .filter(waiting_tickets::ticket.eq(ticket))
        .select(TicketRow::as_select())
        .load(connection)?
        .into_iter()
        .next())
}

/// The ticket of `login`: the one it holds, or `new_ticket` at the end of the line.
pub fn take_ticket(connection: &mut DbConn, login: &str, new_ticket: &str, now_ms: i64) -> StoreResult<TicketRow> {
    if let Some(held) = ticket_of(connection, login)? {
        return Ok(held);
    }
    let inserted = super::bookkeeping_transaction(connection, |connection| {
        diesel::insert_into(waiting_tickets::table)
            .values((
                waiting_tickets::ticket.eq(new_ticket),
                waiting_tickets::login.eq(login),
                waiting_tickets::polled_ms.eq(now_ms),
            ))
            .execute(connection)
    });
    match inserted {
        Ok(_) => {}
        // Another server gave this login a ticket at the same moment: that one stands.
        Err(error) if is_unique_violation(&error) => {}
        Err(error) => return Err(error.into()),
    }
    ticket_of(connection, login)?.ok_or_else(|| super::StoreError::Corrupt("a waiting ticket vanished".into()))
}

pub fn remove_ticket(connection: &mut DbConn, ticket: &str) -> StoreResult<()> {
    diesel::delete(waiting_tickets::table.filter(waiting_tickets::ticket.eq(ticket))).execute(connection)?;
    Ok(())
}

/// Records polls seen by this server, drops tickets unpolled since `cutoff_ms`, and returns the
/// whole line in order: one sync of a server's mirror, in one transaction.
pub fn sync(connection: &mut DbConn, polls: &[(String, i64)], cutoff_ms: i64) -> StoreResult<Vec<TicketRow>> {
    super::bookkeeping_transaction(connection, |connection| {
        for (ticket, polled_ms) in polls {
            diesel::update(
                waiting_tickets::table
                    .filter(waiting_tickets::ticket.eq(ticket))
                    .filter(waiting_tickets::polled_ms.lt(*polled_ms)),
            )
            .set(waiting_tickets::polled_ms.eq(*polled_ms))
            .execute(connection)?;
        }
        diesel::delete(waiting_tickets::table.filter(waiting_tickets::polled_ms.lt(cutoff_ms))).execute(connection)?;
        Ok(waiting_tickets::table.order(waiting_tickets::seq).select(TicketRow::as_select()).load(connection)?)
    })
}
