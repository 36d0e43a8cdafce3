use crate::geometry::check_dims;
use crate::{CoreError, Geometry};
use ndarray::{Array3, ArrayView3, ArrayViewMut3};

/// A voxel value type. `to_f64`/`from_f64` convert for interpolation and statistics; `from_f64`
/// rounds and saturates for integer types.
pub trait Voxel: Copy + Default + PartialEq + PartialOrd + Send + Sync + std::fmt::Debug + 'static {
    /// Widening conversion.
    fn to_f64(self) -> f64;
    /// Rounding, saturating conversion (NaN -> 0 for integers).
    fn from_f64(v: f64) -> Self;
}

/// Integer voxel types usable as masks and instance label maps (0 = background).
pub trait Label: Voxel + Eq + std::hash::Hash + Ord {
    /// The label as an index.
    fn as_usize(self) -> usize;
    /// Builds a label from an index (saturating).
    fn from_usize(v: usize) -> Self;
}

macro_rules! int_voxel {
    ($($t:ty),*) => {$(
        impl Voxel for $t {
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn from_f64(v: f64) -> Self { v.round() as $t } // `as` saturates and maps NaN to 0
        }
        impl Label for $t {
            #[inline]
            fn as_usize(self) -> usize { self as usize }
            #[inline]
            fn from_usize(v: usize) -> Self { v.min(<$t>::MAX as usize) as $t }
        }
    )*};
}
int_voxel!(u8, u16, u32, i16, i32);

macro_rules! float_voxel {
    ($($t:ty),*) => {$(
        impl Voxel for $t {
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn from_f64(v: f64) -> Self { v as $t }
        }
    )*};
}
float_voxel!(f32, f64);

/// Voxels plus the geometry that places them in patient space.
///
/// `data` has shape `[nk, nj, ni]` and is indexed `data[[k, j, i]]` (see the crate docs for the
/// axis and memory order); the constructor guarantees standard layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume<T> {
    data: Array3<T>,
    geometry: Geometry,
}

impl<T: Voxel> Volume<T> {
    /// Wraps an array `[nk, nj, ni]` and a geometry; validates both.
    pub fn new(data: Array3<T>, geometry: Geometry) -> Result<Self, CoreError> {
        geometry.validate()?;
        let s = data.shape();
        check_dims([s[2], s[1], s[0]])?;
        let data = if data.is_standard_layout() { data } else { data.as_standard_layout().into_owned() };
        Ok(Volume { data, geometry })
    }

    /// A volume of zeros with dims (ni, nj, nk). Panics only on invalid dims/geometry, which are
    /// programming errors here; readers use [`Volume::new`].
    pub fn zeros(dims: [usize; 3], geometry: Geometry) -> Self {
        Self::filled(dims, geometry, T::default())
    }

    /// A volume of one value with dims (ni, nj, nk).
    pub fn filled(dims: [usize; 3], geometry: Geometry, value: T) -> Self {
        check_dims(dims).expect("valid dims");
        geometry.validate().expect("valid geometry");
        Volume { data: Array3::from_elem([dims[2], dims[1], dims[0]], value), geometry }
    }

    /// Dims in index-axis order (ni, nj, nk).
    pub fn dims(&self) -> [usize; 3] {
        let s = self.data.shape();
        [s[2], s[1], s[0]]
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Never true: a volume has at least one voxel.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The voxels, `[nk, nj, ni]`.
    pub fn data(&self) -> ArrayView3<'_, T> {
        self.data.view()
    }

    /// Mutable voxels, `[nk, nj, ni]`.
    pub fn data_mut(&mut self) -> ArrayViewMut3<'_, T> {
        self.data.view_mut()
    }

    /// The voxels as one contiguous slice, `i` fastest.
    pub fn as_slice(&self) -> &[T] {
        self.data.as_slice().expect("standard layout")
    }

    /// Mutable contiguous voxels, `i` fastest.
    pub fn as_slice_mut(&mut self) -> &mut [T] {
        self.data.as_slice_mut().expect("standard layout")
    }

    /// Voxel at (i, j, k).
    #[inline]
    pub fn get(&self, i: usize, j: usize, k: usize) -> T {
        self.data[[k, j, i]]
    }

    /// Splits into array and geometry.
    pub fn into_parts(self) -> (Array3<T>, Geometry) {
        (self.data, self.geometry)
    }

    /// Same grid, new voxel type/values.
    pub fn map<U: Voxel>(&self, f: impl Fn(T) -> U + Sync + Send) -> Volume<U> {
        Volume { data: self.data.map(|&v| f(v)), geometry: self.geometry }
    }

    /// A new volume on the same grid with the given voxels (same shape required).
    pub fn with_data<U: Voxel>(&self, data: Array3<U>) -> Result<Volume<U>, CoreError> {
        if data.shape() != self.data.shape() {
            return Err(CoreError::GridMismatch(format!(
                "array shape {:?} differs from volume shape {:?}",
                data.shape(),
                self.data.shape()
            )));
        }
        Volume::new(data, self.geometry)
    }

    /// True when `other` has the same dims and (within 1e-3 mm) the same geometry.
    pub fn same_grid<U>(&self, other: &Volume<U>) -> bool
    where
        U: Voxel,
    {
        self.dims() == other.dims() && self.geometry.same_grid(&other.geometry, self.dims(), 1e-3)
    }

    /// Errors with a description unless `other` shares this volume's grid.
    pub fn check_same_grid<U: Voxel>(&self, other: &Volume<U>) -> Result<(), CoreError> {
        if self.same_grid(other) {
            Ok(())
        } else {
            Err(CoreError::GridMismatch(format!(
                "dims {:?} spacing {:?} origin {:?} vs dims {:?} spacing {:?} origin {:?}",
                self.dims(),
                self.geometry.spacing_mm,
                self.geometry.origin_mm,
                other.dims(),
                other.geometry.spacing_mm,
                other.geometry.origin_mm
            )))
        }
    }

    /// Minimum and maximum voxel value (as f64).
    pub fn min_max(&self) -> (f64, f64) {
        self.data.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            let v = v.to_f64();
            (lo.min(v), hi.max(v))
        })
    }
}
