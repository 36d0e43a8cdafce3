use thiserror::Error;

/// Errors of the vocabulary crate: invalid geometry or shapes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Spacing must be finite and strictly positive on every axis.
    #[error("invalid spacing {spacing_mm:?} mm: every axis must be finite and > 0")]
    InvalidSpacing { spacing_mm: [f64; 3] },
    /// Origin must be finite.
    #[error("invalid origin {origin_mm:?} mm: not finite")]
    InvalidOrigin { origin_mm: [f64; 3] },
    /// Direction cosines must form an orthonormal basis.
    #[error("invalid direction cosines {direction:?}: not an orthonormal basis")]
    InvalidDirection { direction: [[f64; 3]; 3] },
    /// A dimension is zero or the total exceeds [`crate::MAX_VOXELS`].
    #[error("invalid dimensions {dims:?}: {reason}")]
    InvalidDims { dims: [usize; 3], reason: String },
    /// Two volumes that must share a grid do not.
    #[error("grid mismatch: {0}")]
    GridMismatch(String),
}
