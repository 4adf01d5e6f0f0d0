//! `mca_marker!("BEGIN name")` / `mca_marker!("END name")`: `# LLVM-MCA-BEGIN/END` assembler
//! comments around an inner loop, so `scripts/mca-*.sh` can cut exactly that loop out of the
//! generated assembly for llvm-mca. Expands to nothing unless the `mca-markers` feature is on.

/// Emits `# LLVM-MCA-<what>` as an assembler comment (with the `mca-markers` feature only).
#[allow(unused_macros)]
macro_rules! mca_marker {
    ($what:literal) => {
        #[cfg(feature = "mca-markers")]
        // SAFETY: an assembler comment: no instruction, no register or memory effect.
        unsafe {
            core::arch::asm!(
                concat!("# LLVM-MCA-", $what),
                options(nomem, nostack, preserves_flags)
            )
        }
    };
}
