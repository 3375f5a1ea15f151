//! Start-up: a fresh machine gets its database created and migrated.

use crate::common::{TestApp, TestDb, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_creates_and_migrates_a_missing_database() {
    let db = TestDb::unborn();
    let config = test_config(&db, &[]);
    let state = boxoffice::app::prepare(config.clone()).await.unwrap();
    // Starting again on the existing database is a no-op.
    assert_eq!(boxoffice::db::run_migrations(&db.url).await.unwrap(), 0);
    let app = TestApp::serve(db, state).await;
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let s = app.sign_up("first@example.com").await;
    assert!(s.id > 0);
}

#[test]
fn production_refuses_to_start_with_the_default_secret() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .arg("serve")
        .env("BOXOFFICE_ENV", "prod")
        .env_remove("JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}
