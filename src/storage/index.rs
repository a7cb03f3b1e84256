//! Index rows are written with their version, in the same transaction: a write replaces every
//! row of the resource, one multi-row INSERT per table (in chunks that stay under the bind
//! limits), and a delete removes them.

use diesel::prelude::*;

use super::StorageResult;
use super::connection::{DbConnection, on_backend};
use super::schema::{
    search_composite, search_date, search_number, search_quantity, search_reference, search_string,
    search_token, search_uri,
};
use crate::search::IndexRows;

/// Rows per INSERT: 15 columns × 1000 stays under SQLite's 32,766 binds.
const CHUNK: usize = 1000;

/// Removes every index row of a resource.
pub(super) fn clear(conn: &mut DbConnection, t: &str, id: &str) -> StorageResult<()> {
    macro_rules! clear_table {
        ($table:ident) => {
            on_backend!(conn, c => diesel::delete(
                $table::table
                    .filter($table::resource_type.eq(t))
                    .filter($table::resource_id.eq(id)),
            )
            .execute(c))?
        };
    }
    clear_table!(search_string);
    clear_table!(search_token);
    clear_table!(search_date);
    clear_table!(search_number);
    clear_table!(search_quantity);
    clear_table!(search_reference);
    clear_table!(search_uri);
    clear_table!(search_composite);
    Ok(())
}

/// Writes the index rows of a resource (after [`clear`] when it had rows before).
pub(super) fn insert(
    conn: &mut DbConnection,
    t: &str,
    id: &str,
    rows: &IndexRows,
) -> StorageResult<()> {
    for chunk in rows.strings.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_string::resource_type.eq(t),
                    search_string::resource_id.eq(id),
                    search_string::code.eq(&r.code),
                    search_string::value_normalized.eq(&r.normalized),
                    search_string::value_exact.eq(&r.exact),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_string::table).values(&values).execute(c))?;
    }
    for chunk in rows.tokens.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_token::resource_type.eq(t),
                    search_token::resource_id.eq(id),
                    search_token::code.eq(&r.code),
                    search_token::system.eq(&r.system),
                    search_token::value.eq(&r.value),
                    search_token::display.eq(&r.display),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_token::table).values(&values).execute(c))?;
    }
    for chunk in rows.dates.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_date::resource_type.eq(t),
                    search_date::resource_id.eq(id),
                    search_date::code.eq(&r.code),
                    search_date::start_ms.eq(r.start),
                    search_date::end_ms.eq(r.end),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_date::table).values(&values).execute(c))?;
    }
    for chunk in rows.numbers.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_number::resource_type.eq(t),
                    search_number::resource_id.eq(id),
                    search_number::code.eq(&r.code),
                    search_number::low.eq(r.low),
                    search_number::high.eq(r.high),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_number::table).values(&values).execute(c))?;
    }
    for chunk in rows.quantities.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_quantity::resource_type.eq(t),
                    search_quantity::resource_id.eq(id),
                    search_quantity::code.eq(&r.code),
                    search_quantity::system.eq(&r.system),
                    search_quantity::unit_code.eq(&r.unit),
                    search_quantity::low.eq(r.low),
                    search_quantity::high.eq(r.high),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_quantity::table).values(&values).execute(c))?;
    }
    for chunk in rows.references.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_reference::resource_type.eq(t),
                    search_reference::resource_id.eq(id),
                    search_reference::code.eq(&r.code),
                    search_reference::target_type.eq(&r.target_type),
                    search_reference::target_id.eq(&r.target_id),
                    search_reference::target_url.eq(&r.target_url),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_reference::table).values(&values).execute(c))?;
    }
    for chunk in rows.uris.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    search_uri::resource_type.eq(t),
                    search_uri::resource_id.eq(id),
                    search_uri::code.eq(&r.code),
                    search_uri::value.eq(&r.value),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_uri::table).values(&values).execute(c))?;
    }
    for chunk in rows.composites.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                let [a, b, s] = &r.slots;
                (
                    (
                        search_composite::resource_type.eq(t),
                        search_composite::resource_id.eq(id),
                        search_composite::code.eq(&r.code),
                    ),
                    (
                        search_composite::s1_system.eq(&a.system),
                        search_composite::s1_value.eq(&a.value),
                        search_composite::s1_low.eq(a.low),
                        search_composite::s1_high.eq(a.high),
                    ),
                    (
                        search_composite::s2_system.eq(&b.system),
                        search_composite::s2_value.eq(&b.value),
                        search_composite::s2_low.eq(b.low),
                        search_composite::s2_high.eq(b.high),
                    ),
                    (
                        search_composite::s3_system.eq(&s.system),
                        search_composite::s3_value.eq(&s.value),
                        search_composite::s3_low.eq(s.low),
                        search_composite::s3_high.eq(s.high),
                    ),
                )
            })
            .collect();
        on_backend!(conn, c => diesel::insert_into(search_composite::table).values(&values).execute(c))?;
    }
    Ok(())
}
