//! End-to-end tests of the `nodal` binary, in one test binary: each module was its own, and
//! linking the network once instead of four times saves minutes of every CI run.
mod cli_io;
mod cohort;
mod common;
mod demo_segment;
mod model_commands;
mod review;
mod segment_golden;
