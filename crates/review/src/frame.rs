//! The display frame: a case's grid seen as if reoriented to LPS (x to the patient's left, y
//! posterior, z superior), by axis order and flips only, so every display voxel is one stored voxel.
//! The page and every edit speak display indices; the stored volumes keep their own orientation
//! and are addressed through [`DisplayFrame::flat`]. Slices are cut in the radiological convention
//! (patient's right on the left of the screen, anterior and superior up).
use crate::ReviewError;
use nodal_core::{axis_codes, AxisCode, Geometry};
use serde::{Deserialize, Serialize};

/// A slice plane of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Constant z: columns x, rows y (anterior up).
    Axial,
    /// Constant y: columns x, rows z (superior up).
    Coronal,
    /// Constant x: columns y (anterior left), rows z (superior up).
    Sagittal,
}

impl View {
    /// Parses `axial`, `coronal` or `sagittal`.
    pub fn parse(s: &str) -> Option<View> {
        match s {
            "axial" => Some(View::Axial),
            "coronal" => Some(View::Coronal),
            "sagittal" => Some(View::Sagittal),
            _ => None,
        }
    }

    /// The display axis the plane holds constant.
    pub fn normal_axis(self) -> usize {
        match self {
            View::Axial => 2,
            View::Coronal => 1,
            View::Sagittal => 0,
        }
    }
}

/// A display index `[x, y, z]`.
pub type Index3 = [usize; 3];

/// How display indices map to the stored grid.
#[derive(Clone, Debug, PartialEq)]
pub struct DisplayFrame {
    /// Display dims `[nx, ny, nz]`.
    dims: [usize; 3],
    /// Display spacing, mm.
    spacing_mm: [f64; 3],
    /// Flat stored index of display voxel (0, 0, 0).
    base: i64,
    /// Change of the flat stored index per display step along x, y, z.
    step: [i64; 3],
    /// Stored dims (i, j, k), the stored axis of each display axis, and whether it runs backwards.
    stored_dims: [usize; 3],
    axis: [usize; 3],
    flip: [bool; 3],
}

impl DisplayFrame {
    /// The frame of a stored grid of `dims` (i, j, k) and geometry `g`.
    pub fn new(dims: [usize; 3], g: &Geometry) -> DisplayFrame {
        // Flat stored index = i + ni * (j + nj * k) (`Volume` storage, i fastest).
        let stride = [1i64, dims[0] as i64, (dims[0] * dims[1]) as i64];
        let mut out = DisplayFrame {
            dims: [0; 3],
            spacing_mm: [0.0; 3],
            base: 0,
            step: [0; 3],
            stored_dims: dims,
            axis: [0; 3],
            flip: [false; 3],
        };
        for (a, code) in axis_codes(g).into_iter().enumerate() {
            let (c, positive) = match code {
                AxisCode::L => (0, true),
                AxisCode::R => (0, false),
                AxisCode::P => (1, true),
                AxisCode::A => (1, false),
                AxisCode::S => (2, true),
                AxisCode::I => (2, false),
            };
            out.dims[c] = dims[a];
            out.spacing_mm[c] = g.spacing_mm[a];
            out.axis[c] = a;
            out.flip[c] = !positive;
            if positive {
                out.step[c] = stride[a];
            } else {
                // Display 0 is the stored axis' last voxel.
                out.step[c] = -stride[a];
                out.base += stride[a] * (dims[a] as i64 - 1);
            }
        }
        out
    }

    /// Display dims `[nx, ny, nz]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Display spacing `[sx, sy, sz]`, mm.
    pub fn spacing_mm(&self) -> [f64; 3] {
        self.spacing_mm
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for an empty grid.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `d` lies in the volume.
    pub fn contains(&self, d: [i64; 3]) -> bool {
        (0..3).all(|c| d[c] >= 0 && (d[c] as usize) < self.dims[c])
    }

    /// Flat stored index of display voxel `d` (which must lie in the volume).
    pub fn flat(&self, d: Index3) -> usize {
        (self.base + (0..3).map(|c| self.step[c] * d[c] as i64).sum::<i64>()) as usize
    }

    /// Display index of a flat stored index.
    pub fn display_of_flat(&self, flat: usize) -> Index3 {
        let [ni, nj, _] = self.stored_dims;
        let stored = [flat % ni, (flat / ni) % nj, flat / (ni * nj)];
        std::array::from_fn(|c| {
            let v = stored[self.axis[c]];
            if self.flip[c] {
                self.stored_dims[self.axis[c]] - 1 - v
            } else {
                v
            }
        })
    }

    /// Checks a display index from a request.
    pub fn check(&self, d: [i64; 3], what: &str) -> Result<Index3, ReviewError> {
        if self.contains(d) {
            Ok([d[0] as usize, d[1] as usize, d[2] as usize])
        } else {
            Err(ReviewError::BadEdit(format!(
                "{what} {d:?} lies outside the volume (display dims {:?})",
                self.dims
            )))
        }
    }

    /// Width and height of a slice of `view`.
    pub fn slice_size(&self, view: View) -> (usize, usize) {
        let [nx, ny, nz] = self.dims;
        match view {
            View::Axial => (nx, ny),
            View::Coronal => (nx, nz),
            View::Sagittal => (ny, nz),
        }
    }

    /// The display index of pixel (`col`, `row`) of slice `index` of `view`.
    pub fn pixel_to_display(&self, view: View, index: usize, col: usize, row: usize) -> Index3 {
        let nz = self.dims[2];
        match view {
            View::Axial => [col, row, index],
            View::Coronal => [col, index, nz - 1 - row],
            View::Sagittal => [index, col, nz - 1 - row],
        }
    }

    /// Flat stored indices of the pixels of slice `index` of `view`, rows top to bottom.
    pub fn slice_indices(&self, view: View, index: usize) -> Result<Vec<usize>, ReviewError> {
        let n = self.dims[view.normal_axis()];
        if index >= n {
            return Err(ReviewError::BadEdit(format!("slice {index} of the {view:?} view: it has {n}")));
        }
        let (w, h) = self.slice_size(view);
        let mut out = Vec::with_capacity(w * h);
        for row in 0..h {
            let start = self.flat(self.pixel_to_display(view, index, 0, row)) as i64;
            let col_step = match view {
                View::Axial | View::Coronal => self.step[0],
                View::Sagittal => self.step[1],
            };
            out.extend((0..w as i64).map(|c| (start + c * col_step) as usize));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::Volume;
    use proptest::prelude::*;

    fn geometry(flip: [bool; 3], perm: [usize; 3]) -> Geometry {
        // Index axis a points along world axis perm[a], negated when flip[a].
        let mut direction = [[0.0; 3]; 3];
        for a in 0..3 {
            direction[a][perm[a]] = if flip[a] { -1.0 } else { 1.0 };
        }
        Geometry { spacing_mm: [0.7, 0.9, 2.5], origin_mm: [3.0, -5.0, 11.0], direction }
    }

    proptest! {
        /// The display voxel of a stored voxel is the one reorient_canonical puts there.
        #[test]
        fn display_indices_are_the_canonical_reorientation(
            ni in 1usize..6, nj in 1usize..6, nk in 1usize..6,
            flip in any::<[bool; 3]>(), p in 0usize..6,
        ) {
            let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]][p];
            let g = geometry(flip, perm);
            let data = ndarray::Array3::from_shape_fn([nk, nj, ni], |(k, j, i)| (i + 10 * j + 100 * k) as i16);
            let vol = Volume::new(data, g).unwrap();
            let canon = vol.reorient_canonical();
            let frame = DisplayFrame::new(vol.dims(), vol.geometry());
            prop_assert_eq!(frame.dims(), canon.dims());
            prop_assert_eq!(frame.spacing_mm(), canon.geometry().spacing_mm);
            let [nx, ny, nz] = frame.dims();
            for z in 0..nz { for y in 0..ny { for x in 0..nx {
                let f = frame.flat([x, y, z]);
                prop_assert_eq!(vol.as_slice()[f], canon.get(x, y, z));
                prop_assert_eq!(frame.display_of_flat(f), [x, y, z]);
            }}}
            for view in [View::Axial, View::Coronal, View::Sagittal] {
                let n = frame.dims()[view.normal_axis()];
                for index in [0, n - 1] {
                    let (w, h) = frame.slice_size(view);
                    let flat = frame.slice_indices(view, index).unwrap();
                    prop_assert_eq!(flat.len(), w * h);
                    for row in 0..h { for col in 0..w {
                        let d = frame.pixel_to_display(view, index, col, row);
                        prop_assert_eq!(flat[row * w + col], frame.flat(d));
                    }}
                }
            }
        }
    }

    #[test]
    fn slices_follow_the_radiological_convention() {
        // RAS storage (as most NIfTI files): i runs to the patient's right, j anterior.
        let g = geometry([true, true, false], [0, 1, 2]);
        let frame = DisplayFrame::new([4, 3, 2], &g);
        // Display x = 0 is the patient's right: the stored i = 3.
        assert_eq!(frame.flat([0, 0, 0]), 3 + 4 * 2);
        // Coronal: the top row is the most superior slice.
        assert_eq!(frame.pixel_to_display(View::Coronal, 1, 0, 0), [0, 1, 1]);
        assert!(frame.slice_indices(View::Axial, 2).is_err());
    }
}
