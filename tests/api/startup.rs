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

/// The server runs without transparent huge pages (`src/main.rs`, `no_huge_pages`): with
/// them its memory crept through a 20-minute soak and sat about 25 MB higher. The flag is
/// the process's own, and the kernel reports it per process (`THP_enabled`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_process_runs_without_transparent_huge_pages() {
    let thp = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_owned())
    };
    // A kernel without them, or a test run that turned them off itself, leaves nothing to
    // tell apart.
    if thp("self").as_deref() != Some("1") {
        eprintln!("skipped: this test process has no transparent huge pages to turn off");
        return;
    }
    let db = TestDb::new().await;
    let server = crate::common::ServerProcess::spawn(&db).await;
    let pid = server.child.id().expect("the server is running");
    assert_eq!(thp(&pid.to_string()).as_deref(), Some("0"));
}
