//! The golden suite: every Captum reference case on every compiled backend.
//!
//! A `harness = false` test so that its summary lines show in plain `cargo test` output:
//! `golden: N passed, M failed (BACKEND)`, then each failing case with its largest error.
//! Also runs every case under `$INFLUENCE_EXTRA_GOLDEN` (a directory of case files in the
//! same formats) when that variable is set, only the cases whose name contains
//! `$INFLUENCE_GOLDEN_FILTER` when that one is, and only the backend named by
//! `$INFLUENCE_GOLDEN_BACKEND` when that one is. Exits non-zero when any case fails.

use std::path::Path;
use std::process::ExitCode;

use influence_testkit::golden::{Case, load_dir};

fn cases() -> Result<Vec<Case>, String> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let mut cases = load_dir(&fixtures)?;
    if let Some(extra) = std::env::var_os("INFLUENCE_EXTRA_GOLDEN") {
        let extra = load_dir(Path::new(&extra))?;
        println!(
            "golden: {} extra case(s) from INFLUENCE_EXTRA_GOLDEN={}",
            extra.len(),
            Path::new(&std::env::var_os("INFLUENCE_EXTRA_GOLDEN").unwrap()).display()
        );
        cases.extend(extra);
    }
    // INFLUENCE_GOLDEN_FILTER=substring runs only the cases whose name contains it.
    if let Ok(filter) = std::env::var("INFLUENCE_GOLDEN_FILTER") {
        cases.retain(|c| c.name().contains(&filter));
        println!(
            "golden: {} case(s) match INFLUENCE_GOLDEN_FILTER={filter}",
            cases.len()
        );
    }
    Ok(cases)
}

/// Whether `$INFLUENCE_GOLDEN_BACKEND` (unset: every backend) asks for `backend`.
#[allow(dead_code)]
fn wanted(backend: &str) -> bool {
    std::env::var("INFLUENCE_GOLDEN_BACKEND").map_or(true, |b| b == backend)
}

fn main() -> ExitCode {
    let cases = match cases() {
        Ok(c) => c,
        Err(e) => {
            println!("golden: cannot load cases: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    #[cfg(feature = "ndarray")]
    if wanted("ndarray") {
        use burn_influence::ndarray;
        failed += influence_testkit::golden::run_all::<ndarray::Backend>(
            &cases,
            &ndarray::device(),
            ndarray::NAME,
        )
        .iter()
        .filter(|o| !o.passed())
        .count();
    }
    #[cfg(feature = "flex")]
    if wanted("flex") {
        use burn_influence::flex;
        failed += influence_testkit::golden::run_all::<flex::Backend>(
            &cases,
            &flex::device(),
            flex::NAME,
        )
        .iter()
        .filter(|o| !o.passed())
        .count();
    }
    #[cfg(feature = "wgpu")]
    if wanted("wgpu") {
        use burn_influence::wgpu;
        failed += influence_testkit::golden::run_all::<wgpu::Backend>(
            &cases,
            &wgpu::device(),
            wgpu::NAME,
        )
        .iter()
        .filter(|o| !o.passed())
        .count();
    }
    #[cfg(feature = "cuda")]
    if wanted("cuda") {
        use burn_influence::cuda;
        if std::path::Path::new("/dev/nvidia0").exists() {
            failed += influence_testkit::golden::run_all::<cuda::Backend>(
                &cases,
                &cuda::device(),
                cuda::NAME,
            )
            .iter()
            .filter(|o| !o.passed())
            .count();
        } else {
            println!(
                "golden: skipped (cuda): no NVIDIA GPU on this machine (/dev/nvidia0 missing)"
            );
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
