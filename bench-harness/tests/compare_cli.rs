//! `sepconv-bench compare` end to end: a real (tiny) results.json compared with itself passes; a
//! synthetic copy with one row 30% slower fails; the report command writes its four files.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sepconv::Isa;
use sepconv_bench::results::Results;
use sepconv_bench::suite::{run, Plan, SuiteKind};

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sepconv-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_results() -> Results {
    let mut p = Plan::new(SuiteKind::Ci, 1, Some(vec![Isa::Portable]));
    p.filter = Some("r224_dw1".to_string());
    p.budget = Duration::from_millis(5);
    p.probe = Duration::from_millis(10);
    let r = run(&p, Path::new("."));
    assert_eq!(r.rows.len(), 4, "dw10..dw13: {:?}", r.rows);
    r
}

/// The `sepconv-bench` binary as a command; under user-mode emulation the emulator goes in front
/// (scripts/test-aarch64.sh sets `SEPCONV_TEST_RUNNER=qemu-aarch64`).
fn bench_cmd() -> Command {
    let exe = env!("CARGO_BIN_EXE_sepconv-bench");
    match std::env::var("SEPCONV_TEST_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(exe);
            c
        }
        _ => Command::new(exe),
    }
}

fn compare(new: &Path, base: &Path, extra: &[&str]) -> (bool, String) {
    let out = bench_cmd()
        .arg("compare")
        .arg(new)
        .arg(base)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn identical_passes_and_slower_fails() {
    let dir = tmp_dir("compare");
    let base = tiny_results();
    let base_path = dir.join("base.json");
    std::fs::write(&base_path, serde_json::to_string_pretty(&base).unwrap()).unwrap();

    let (ok, out) = compare(&base_path, &base_path, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("4 rows compared, 0 regressed"), "{out}");

    // One row 30% slower (same peak): efficiency drops 30% > 15%.
    let mut slow = base.clone();
    let row = &mut slow.rows[1];
    row.min_s /= 0.7;
    row.best_gflops *= 0.7;
    row.best_efficiency *= 0.7;
    let slow_path = dir.join("slow.json");
    std::fs::write(&slow_path, serde_json::to_string_pretty(&slow).unwrap()).unwrap();
    let (ok, out) = compare(&slow_path, &base_path, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("REGRESSED") && out.contains(&slow.rows[1].id),
        "{out}"
    );
    // ... but passes a 40% threshold.
    let (ok, out) = compare(&slow_path, &base_path, &["--threshold", "0.4"]);
    assert!(ok, "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn report_writes_four_files() {
    let dir = tmp_dir("report");
    let out = bench_cmd()
        .args([
            "report",
            "--ci",
            "--isa",
            "portable",
            "--budget-ms",
            "5",
            "--probe-ms",
            "10",
        ])
        .arg("r224_pw13")
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("layer.pointwise/portable/mbv1_a100_r224_pw13"),
        "{stdout}"
    );
    for f in [
        "roofline.md",
        "results.json",
        "roofline.svg",
        "cost_ratio.md",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(!text.is_empty(), "{f}");
    }
    let r = Results::load(&dir.join("results.json")).unwrap();
    assert_eq!(r.rows.len(), 1);
    assert!(std::fs::read_to_string(dir.join("roofline.svg"))
        .unwrap()
        .starts_with("<svg"));
    std::fs::remove_dir_all(&dir).ok();
}
