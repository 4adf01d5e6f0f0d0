//! `SEPCONV_ISA` forces an ISA and fails loudly on a bad value — checked in a child process, since
//! the choice is made once per process.

use std::process::Command;

use sepconv::{Isa, Kernels};

/// Child side: prints the ISA `Kernels::best()` resolved. Does nothing unless spawned below.
#[test]
fn env_child() {
    if std::env::var_os("SEPCONV_ENV_CHILD").is_none() {
        return;
    }
    println!("CHOSEN={}", Kernels::best().isa());
}

fn child(isa_env: &str) -> Option<(bool, String)> {
    let exe = std::env::current_exe().unwrap();
    // Under user-mode emulation the child needs the emulator in front of it
    // (scripts/test-aarch64.sh sets SEPCONV_TEST_RUNNER=qemu-aarch64).
    let mut cmd = match std::env::var("SEPCONV_TEST_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    let out = cmd
        .args(["env_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SEPCONV_ENV_CHILD", "1")
        .env("SEPCONV_ISA", isa_env)
        .output();
    match out {
        Ok(o) => Some((
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )),
        Err(e) => {
            // An emulated target may be unable to exec itself; that must not pass silently.
            if cfg!(target_arch = "x86_64") {
                panic!("cannot spawn the test binary: {e}");
            }
            eprintln!("SKIP: cannot spawn a child process here: {e}");
            None
        }
    }
}

#[test]
fn forced_portable_is_used() {
    if let Some((ok, text)) = child("portable") {
        assert!(ok, "{text}");
        assert!(text.contains("CHOSEN=portable"), "{text}");
    }
}

#[test]
fn every_available_isa_can_be_forced() {
    for isa in Isa::available() {
        if Kernels::for_isa(isa).is_none() {
            continue;
        }
        if let Some((ok, text)) = child(isa.name()) {
            assert!(ok, "{text}");
            assert!(text.contains(&format!("CHOSEN={isa}")), "{text}");
        }
    }
}

#[test]
fn junk_value_fails_loudly() {
    if let Some((ok, text)) = child("junk") {
        assert!(!ok, "SEPCONV_ISA=junk must fail: {text}");
        assert!(text.contains("names no ISA"), "{text}");
    }
}

#[test]
fn unavailable_isa_fails_loudly() {
    let Some(missing) = Isa::ALL
        .into_iter()
        .find(|i| Kernels::for_isa(*i).is_none())
    else {
        eprintln!("SKIP: every ISA is available here");
        return;
    };
    if let Some((ok, text)) = child(missing.name()) {
        assert!(!ok, "SEPCONV_ISA={missing} must fail on this CPU: {text}");
        assert!(text.contains("not available"), "{text}");
    }
}
