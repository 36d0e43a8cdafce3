//! The vocabulary of nodal.
//!
//! * [`Geometry`] — where voxels sit in patient space: spacing, origin and direction cosines, all in
//!   millimetres in the DICOM patient frame **LPS** (+x = patient Left, +y = Posterior, +z = Superior).
//! * [`Volume<T>`] — voxels plus their [`Geometry`]. CT images (`Volume<i16>`/`Volume<f32>`),
//!   probability maps (`Volume<f32>`), binary masks (`Volume<u8>`, 0/1) and instance label maps
//!   (`Volume<u16>`/`Volume<u32>`) all share this one type, so geometry can never be dropped on the way.
//! * [`vocab`] — the clinical vocabulary every output shares: [`Side`], [`RecistCategory`],
//!   [`NodeRadsSize`], [`SadGroup`] and the evaluation protocol's constants.
//! * [`fs`] — the one atomic file writer; [`output`] — output folders written as one unit, locked; [`time`] — UTC timestamps; [`edt`] — the exact
//!   Euclidean distance transform.
//! * [`resample`] — trilinear (intensities) and nearest-neighbour (labels) resampling onto any target
//!   grid, and [`Volume::reorient_canonical`] — an exact axis permutation/flip to LPS storage.
//!
//! # Axis order and memory order
//!
//! Index axes are called `i`, `j`, `k`, as in NIfTI and DICOM: `i` runs along a row (columns of a
//! DICOM image), `j` down the rows, `k` across slices. Everything that is *per axis* in this crate
//! (`spacing_mm`, `dims()`, direction columns, continuous indices) is ordered **(i, j, k)**.
//!
//! The voxel array is an `ndarray::Array3` of shape `[nk, nj, ni]`, indexed `data[[k, j, i]]`, in
//! standard (C, row-major) layout, so `i` varies fastest in memory — exactly the order in which NIfTI
//! and DICOM store voxels on disk, and the order `SimpleITK.GetArrayFromImage` and nibabel's
//! `np.asarray(img.dataobj).T` give in Python.
//!
//! ```
//! use nodal_core::{Geometry, Volume};
//! let geom = Geometry::axis_aligned([0.5, 0.5, 1.0], [-10.0, -20.0, 30.0]);
//! let vol = Volume::<i16>::zeros([4, 3, 2], geom); // ni=4, nj=3, nk=2
//! assert_eq!(vol.data().shape(), &[2, 3, 4]);
//! let p = vol.geometry().index_to_world([1.0, 2.0, 1.0]);
//! assert_eq!(p, [-9.5, -19.0, 31.0]);
//! ```

pub mod edt;
mod error;
pub mod fs;
mod geometry;
pub mod morph;
mod orient;
pub mod output;
pub mod resample;
pub mod time;
pub mod vocab;
mod volume;

pub use error::CoreError;
pub use geometry::{Geometry, Mat3, Vec3};
pub use orient::{axis_codes, AxisCode};
pub use resample::Interpolation;
pub use vocab::{NodeRadsSize, RecistCategory, SadGroup, Side};
pub use volume::{Label, Volume, Voxel};

/// The largest volume nodal will allocate, in voxels (2^31: e.g. 1024 x 1024 x 2048).
///
/// Readers check declared sizes against this *before* allocating, so a corrupt or hostile header
/// becomes an error instead of an out-of-memory abort.
pub const MAX_VOXELS: usize = 1 << 31;
