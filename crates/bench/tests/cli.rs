//! The bench's command line as the docs show it: every scenario parses, a wrong one and a
//! remote server do not start a run. (The docs' own bench commands are parsed by the API
//! suite's docs test, with this package's binary.)

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .unwrap_or_else(|e| panic!("running bench: {e}"))
}

#[test]
fn every_scenario_parses() {
    for scenario in [
        "flash-sale",
        "hot-seats",
        "seat-map",
        "fan-out",
        "queue",
        "two-instances",
        "abuse",
        "faults",
    ] {
        let out = bench(&[scenario, "--url", "http://127.0.0.1:1", "--help"]);
        assert!(
            out.status.success(),
            "{scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unknown_scenario_is_refused() {
    let out = bench(&[
        "no-such-scenario",
        "--url",
        "http://127.0.0.1:1",
        "--database-url",
        "postgres://127.0.0.1/x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-scenario"));
}

#[test]
fn a_remote_server_is_refused_before_anything_runs() {
    let out = bench(&[
        "flash-sale",
        "--url",
        "http://192.0.2.1:8080",
        "--database-url",
        "postgres://127.0.0.1/x",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
}
