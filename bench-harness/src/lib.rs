//! # sepconv-bench
//!
//! The benchmark suite of sepconv: MobileNet layer tables as data ([`workloads`]), machine
//! ceilings measured in the same run ([`machine`], on top of `sepconv::probe`), runnable cases
//! ([`cases`], [`mobilenet`]), the report ([`suite`], [`roofline`], [`chart`], [`cost_ratio`],
//! [`report`]) and the CI regression check ([`compare`]).
//!
//! The main command (see `reports/README.md`):
//!
//! ```text
//! cargo run --release -p sepconv-bench -- report          # default suite, a few minutes
//! cargo run --release -p sepconv-bench -- report --full   # everything
//! cargo bench -p sepconv-bench                            # criterion, per op x ISA x layer
//! ```

#![forbid(unsafe_code)]

pub mod cases;
pub mod chart;
pub mod compare;
pub mod cost_ratio;
pub mod machine;
pub mod measure;
pub mod mobilenet;
pub mod report;
pub mod results;
pub mod roofline;
pub mod suite;
pub mod workloads;
