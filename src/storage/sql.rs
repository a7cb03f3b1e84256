//! SQL text built at run time with bound values, for the queries diesel's DSL cannot express
//! (search) or would not cache (multi-row index inserts): placeholders in each backend's style,
//! values always bound.

use std::fmt::Write as _;

use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use serde::{Deserialize, Serialize};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Bind {
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "f")]
    Float(f64),
    /// A nullable text column's value.
    #[serde(rename = "ot")]
    OptText(Option<String>),
    /// A nullable double column's value.
    #[serde(rename = "of")]
    OptFloat(Option<f64>),
}

/// SQL text with its binds, written for one backend's placeholder style.
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) binds: Vec<Bind>,
    postgres: bool,
    aliases: usize,
}

impl Sql {
    pub(super) fn new(postgres: bool) -> Sql {
        Sql {
            text: String::with_capacity(512),
            binds: Vec::new(),
            postgres,
            aliases: 0,
        }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(super) fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        if self.postgres {
            let _ = write!(self.text, "${}", self.binds.len());
        } else {
            self.text.push('?');
        }
        self
    }

    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.bind(Bind::Text(value.to_owned()))
    }

    pub(super) fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("a{}", self.aliases)
    }
}

pub(super) fn bind_all<'a, DB>(
    mut query: BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>,
    binds: &[Bind],
) -> BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Double>,
    Option<String>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    Option<f64>: diesel::serialize::ToSql<Nullable<Double>, DB>,
    String: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    f64: diesel::serialize::ToSql<Double, DB>,
{
    for bind in binds {
        query = match bind.clone() {
            Bind::Text(s) => query.bind::<Text, _>(s),
            Bind::Int(i) => query.bind::<BigInt, _>(i),
            Bind::Float(f) => query.bind::<Double, _>(f),
            Bind::OptText(s) => query.bind::<Nullable<Text>, _>(s),
            Bind::OptFloat(f) => query.bind::<Nullable<Double>, _>(f),
        };
    }
    query
}

/// Runs `sql` and loads rows of `T`.
macro_rules! load {
    ($conn:expr, $sql:expr, $row:ty) => {{
        let sql: &$crate::storage::sql::Sql = $sql;
        $crate::storage::connection::on_backend!($conn, c => $crate::storage::sql::bind_all(diesel::sql_query(sql.text.clone()).into_boxed(), &sql.binds)
            .load::<$row>(c))
    }};
}
pub(super) use load;

/// Runs a statement built with [`Sql`].
macro_rules! execute {
    ($conn:expr, $sql:expr) => {{
        let sql: &$crate::storage::sql::Sql = $sql;
        $crate::storage::connection::on_backend!($conn, c => $crate::storage::sql::bind_all(diesel::sql_query(sql.text.clone()).into_boxed(), &sql.binds)
            .execute(c))
    }};
}
pub(super) use execute;
