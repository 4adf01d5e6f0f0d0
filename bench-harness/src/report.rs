//! Writing a report directory: `roofline.md`, `results.json`, `roofline.svg`, `cost_ratio.md`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use crate::results::Results;

/// The workspace root this tool was built in (for `reports/` and `git`), or the current
/// directory when that is gone (an installed binary).
pub fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("Cargo.toml").exists() {
        built.canonicalize().unwrap_or(built)
    } else {
        PathBuf::from(".")
    }
}

/// `reports/<date>_<cpu>` under the workspace root.
pub fn default_dir(r: &Results) -> PathBuf {
    workspace_root()
        .join("reports")
        .join(format!("{}_{}", r.date, r.machine.slug()))
}

/// Writes the four files into `dir` (created if needed); returns their paths.
pub fn write(r: &Results, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    let svg = crate::chart::roofline_svg(r)?;
    let files = [
        ("roofline.md", crate::roofline::roofline_md(r)),
        ("results.json", json + "\n"),
        ("roofline.svg", svg),
        ("cost_ratio.md", crate::cost_ratio::cost_ratio_md(r)),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}
