//! Generated artefacts do not drift: schema.graphql from the code, crates/store/src/schema.rs from the
//! migrations, and migrations that go down and up again.

use std::collections::BTreeMap;

use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;

use crate::common::TestDb;

#[test]
fn schema_graphql_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let from_code = boxoffice::graphql::sdl();
    assert!(
        on_disk == from_code,
        "schema.graphql is out of date: run `cargo run -- export-schema --out schema.graphql`"
    );
}

/// Columns declared in crates/store/src/schema.rs: table -> [(column, diesel type)].
fn declared() -> BTreeMap<String, Vec<(String, String)>> {
    let src = include_str!("../../crates/store/src/schema.rs");
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in src.lines().map(str::trim) {
        if let Some(name) = line.strip_suffix('{').and_then(|l| l.split_whitespace().next())
            && line.contains('(')
            && !line.starts_with("pub ")
        {
            current = Some(name.to_owned());
            tables.insert(name.to_owned(), Vec::new());
        } else if let (Some(t), Some((col, ty))) = (&current, line.split_once("->")) {
            let ty = ty.trim().trim_end_matches(',').to_owned();
            tables.get_mut(t).unwrap().push((col.trim().to_owned(), ty));
        } else if line == "}" {
            current = None;
        }
    }
    tables
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    udt_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    is_nullable: String,
}

fn diesel_type(udt: &str) -> &str {
    match udt {
        "int8" => "Int8",
        "int4" => "Int4",
        "int2" => "Int2",
        "text" => "Text",
        "bool" => "Bool",
        "timestamptz" => "Timestamptz",
        "uuid" => "Uuid",
        "bytea" => "Bytea",
        "jsonb" => "Jsonb",
        "_int8" => "Array<Int8>",
        "_text" => "Array<Text>",
        "tsvector" => "Tsvector",
        other => other,
    }
}

#[tokio::test]
async fn src_schema_rs_matches_the_migrations() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let cols: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name <> '__diesel_schema_migrations' ORDER BY table_name, ordinal_position",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut actual: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in cols {
        let ty = diesel_type(&c.udt_name).to_owned();
        let ty = if c.is_nullable == "YES" {
            format!("Nullable<{ty}>")
        } else {
            ty
        };
        actual.entry(c.table_name).or_default().push((c.column_name, ty));
    }
    assert_eq!(
        declared(),
        actual,
        "crates/store/src/schema.rs differs from what migrations/ create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_down_and_up_again() {
    let db = TestDb::new().await;
    let conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut harness = AsyncMigrationHarness::new(conn);
    harness.revert_all_migrations(boxoffice::db::MIGRATIONS).unwrap();
    let mut conn = harness.into_inner();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let left: N = diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(left.n, 0, "down.sql leaves nothing behind");
    drop(conn);
    assert!(boxoffice::db::run_migrations(&db.url).await.unwrap() > 0);
}
