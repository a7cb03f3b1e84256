//! SQL text built at run time with bound values, for the queries diesel's DSL cannot express
//! (search) or would not cache (multi-row index inserts): placeholders in each backend's style,
//! values always bound.

use std::fmt::Write as _;

use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
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
    /// A binary column's value.
    #[serde(rename = "b")]
    Bytes(Vec<u8>),
}

/// SQL text with its binds. The text shows each placeholder in the backend's style (for logs);
/// `marks` remembers where they are, so that diesel writes the real ones when it runs the query.
#[derive(Clone)]
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) binds: Vec<Bind>,
    /// Byte ranges of the placeholders in `text`.
    marks: Vec<(usize, usize)>,
    postgres: bool,
    aliases: usize,
}

impl Sql {
    pub(super) fn new(postgres: bool) -> Sql {
        Sql {
            text: String::with_capacity(512),
            binds: Vec::new(),
            marks: Vec::new(),
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
        let start = self.text.len();
        if self.postgres {
            let _ = write!(self.text, "${}", self.binds.len());
        } else {
            self.text.push('?');
        }
        self.marks.push((start, self.text.len()));
        self
    }

    /// Appends another statement (its text and binds).
    pub(super) fn append(&mut self, other: Sql) -> &mut Self {
        let offset = self.text.len();
        self.text.push_str(&other.text);
        self.marks
            .extend(other.marks.iter().map(|(s, e)| (s + offset, e + offset)));
        self.binds.extend(other.binds);
        self
    }

    /// Names the owner index `(resource_type, resource_id, code, …)` of index table `table`
    /// for the alias just written, on SQLite: a probe of one resource's index rows must read
    /// that resource's rows, and without fresh planner statistics (a new or fast-growing
    /// database) SQLite may prefer an index with more equality columns and read every row of
    /// the code for each probe. On SQLite that index is the table's primary key (the tables are
    /// `WITHOUT ROWID`), which SQLite names `sqlite_autoindex_{table}_1`. PostgreSQL plans these
    /// probes well without a hint.
    pub(super) fn owner_index(&mut self, table: &str) -> &mut Self {
        if !self.postgres {
            let _ = write!(self.text, " INDEXED BY sqlite_autoindex_{table}_1");
        }
        self
    }

    /// On SQLite, ` INDEXED BY {index}`: for a lookup whose own index always serves it, where
    /// statistics sampled from a thousand rows can make SQLite prefer walking the table's
    /// primary key in id order (it did for `search_composite_lookup`).
    pub(super) fn indexed_by(&mut self, index: &str) -> &mut Self {
        if !self.postgres {
            let _ = write!(self.text, " INDEXED BY {index}");
        }
        self
    }

    /// On PostgreSQL, ` OFFSET 0` at the end of a subquery: it is then planned on its own, as
    /// the set of rows it selects, and not merged into the query around it.
    pub(super) fn fence(&mut self) -> &mut Self {
        if self.postgres {
            self.text.push_str(" OFFSET 0");
        }
        self
    }

    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.bind(Bind::Text(value.to_owned()))
    }

    /// Binds each value, separated by commas (the inside of an `IN (…)`).
    pub(super) fn text_list<S: AsRef<str>>(&mut self, values: &[S]) -> &mut Self {
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(value.as_ref());
        }
        self
    }

    pub(super) fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("a{}", self.aliases)
    }
}

/// A borrowed [`Sql`] as a diesel query.
pub(super) struct Run<'a>(pub(super) &'a Sql);

impl diesel::query_builder::QueryId for Run<'_> {
    type QueryId = ();
    // No static id: the statement cache keys on the SQL text and bind types instead, so each
    // query shape is prepared once per connection. (diesel's own `sql_query` is never cached.)
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Run<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for Run<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Double>
        + diesel::sql_types::HasSqlType<Binary>,
    Option<String>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    Option<f64>: diesel::serialize::ToSql<Nullable<Double>, DB>,
    String: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    f64: diesel::serialize::ToSql<Double, DB>,
    Vec<u8>: diesel::serialize::ToSql<Binary, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        let mut at = 0;
        for (bind, (start, end)) in self.0.binds.iter().zip(&self.0.marks) {
            out.push_sql(&self.0.text[at..*start]);
            at = *end;
            match bind {
                Bind::Text(v) => out.push_bind_param::<Text, _>(v)?,
                Bind::Int(v) => out.push_bind_param::<BigInt, _>(v)?,
                Bind::Float(v) => out.push_bind_param::<Double, _>(v)?,
                Bind::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::OptFloat(v) => out.push_bind_param::<Nullable<Double>, _>(v)?,
                Bind::Bytes(v) => out.push_bind_param::<Binary, _>(v)?,
            }
        }
        out.push_sql(&self.0.text[at..]);
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for Run<'_> {}

/// Runs `sql` and loads rows of `T`.
macro_rules! load {
    ($conn:expr, $sql:expr, $row:ty) => {{
        let sql: &$crate::storage::sql::Sql = $sql;
        $crate::storage::connection::on_backend!($conn, c => diesel::RunQueryDsl::load::<$row>($crate::storage::sql::Run(sql), c))
    }};
}
pub(super) use load;

/// Runs a statement built with [`Sql`].
macro_rules! execute {
    ($conn:expr, $sql:expr) => {{
        let sql: &$crate::storage::sql::Sql = $sql;
        $crate::storage::connection::on_backend!($conn, c => diesel::RunQueryDsl::execute($crate::storage::sql::Run(sql), c))
    }};
}
pub(super) use execute;
