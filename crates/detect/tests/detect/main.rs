//! The detection pipeline's tests, in one test binary (each module was its own; linking the
//! network once saves CI time).
mod postprocess;
mod same_mask;
mod train_validation;
