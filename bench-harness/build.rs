//! Records the compiler version for results.json.

#![forbid(unsafe_code)]

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SEPCONV_BENCH_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
