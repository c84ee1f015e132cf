//! The `digits` command (the main job's command line) reports bad input as an error message,
//! never a panic.

use std::path::PathBuf;
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "influence-digits-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the `digits` binary with `args`.
fn example(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_digits"))
        .args(args)
        .output()
        .expect("the digits command runs")
}

#[test]
fn the_digits_command_reports_bad_input_without_a_panic() {
    let out = out_dir("cli");
    std::fs::create_dir_all(&out).unwrap();
    let missing = out.join("missing.csv");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--backend".into(), "tpu".into()], "unknown backend"),
        (
            vec!["--data".into(), missing.display().to_string()],
            "missing.csv",
        ),
        (vec!["--layer".into(), "fc9".into()], "layer \"fc9\""),
        (vec!["--method".into(), "simpson".into()], "--method"),
    ];
    for (args, expected) in cases {
        let mut full = args.clone();
        full.extend(["--out".into(), out.display().to_string()]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let o = example(&full);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("error:") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
