//! PostgreSQL only: the store refreshes the planner's statistics itself (see
//! src/postgres/statistics.rs), with a statement valid for the migrated schema.

use passport_store::Store;

/// `pg_class.reltuples` of this schema's `index_reference`: -1 until first analyzed.
async fn reltuples(url: &str) -> f32 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = 'index_reference'",
            &[],
        )
        .await
        .expect("pg_class")
        .get(0)
}

#[tokio::test]
async fn analyze_refreshes_the_index_tables_statistics() {
    let Some(url) = passport_store::testing::fresh_pg_url() else {
        return;
    };
    let store = Store::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    let Store::Postgres(pg) = &store else {
        unreachable!("a postgres:// URL opens PostgreSQL")
    };
    assert_eq!(reltuples(&url).await, -1.0, "never analyzed yet");
    pg.analyze().await.expect("ANALYZE");
    assert_eq!(reltuples(&url).await, 0.0, "analyzed: known to be empty");
}
