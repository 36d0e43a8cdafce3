//! NIfTI-1 single-file (`.nii`, `.nii.gz`) reading and writing.
//!
//! The 348-byte header is parsed and written here directly (it is a fixed binary layout): that keeps
//! every failure a typed [`IoError`] naming the file, lets sizes be checked before anything is
//! allocated, and avoids the `nifti` crate's dependency on a different `ndarray` major version.
//!
//! Geometry: NIfTI affines map voxel indices to RAS millimetres; nodal works in LPS, so the first two
//! rows are negated. The sform is used when `sform_code > 0`, else the qform (quaternion) when
//! `qform_code > 0`, else nibabel's fallback (pixdim scaling, centred, x flipped) — the same choice
//! as nibabel's `get_best_affine`.
use crate::IoError;
use crate::MAX_VOXELS;
use flate2::read::MultiGzDecoder;
use nodal_core::{Geometry, Volume, Voxel};
use std::io::{BufReader, Read, Write};
use std::path::Path;

const HEADER_SIZE: usize = 348;
/// Header + 4-byte extension flag; written files put voxel data here.
const VOX_OFFSET: usize = 352;

/// A NIfTI datatype nodal reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NiftiDtype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl NiftiDtype {
    fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => NiftiDtype::U8,
            256 => NiftiDtype::I8,
            4 => NiftiDtype::I16,
            512 => NiftiDtype::U16,
            8 => NiftiDtype::I32,
            768 => NiftiDtype::U32,
            16 => NiftiDtype::F32,
            64 => NiftiDtype::F64,
            _ => return None,
        })
    }

    /// Bytes per voxel.
    pub fn size_bytes(self) -> usize {
        match self {
            NiftiDtype::U8 | NiftiDtype::I8 => 1,
            NiftiDtype::I16 | NiftiDtype::U16 => 2,
            NiftiDtype::I32 | NiftiDtype::U32 | NiftiDtype::F32 => 4,
            NiftiDtype::F64 => 8,
        }
    }

    /// numpy-style name (`int16`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NiftiDtype::U8 => "uint8",
            NiftiDtype::I8 => "int8",
            NiftiDtype::I16 => "int16",
            NiftiDtype::U16 => "uint16",
            NiftiDtype::I32 => "int32",
            NiftiDtype::U32 => "uint32",
            NiftiDtype::F32 => "float32",
            NiftiDtype::F64 => "float64",
        }
    }
}

/// What [`read_nifti_header`] learns without reading voxels.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiHeader {
    /// (ni, nj, nk).
    pub dims: [usize; 3],
    /// Stored voxel type.
    pub dtype: NiftiDtype,
    /// `Some((slope, inter))` when the header scales values (slope not 0/NaN and not the identity).
    pub scaling: Option<(f64, f64)>,
    /// Index -> RAS affine as stored (sform, else qform, else fallback).
    pub affine_ras: [[f64; 4]; 4],
    /// The same placement in nodal's LPS convention.
    pub geometry: Geometry,
    /// Which header field gave the affine: "sform", "qform" or "pixdim".
    pub affine_source: &'static str,
    pub sform_code: i16,
    pub qform_code: i16,
    /// Byte offset of the voxel data.
    pub vox_offset: usize,
    /// True for big-endian files.
    pub big_endian: bool,
}

/// Voxel types nodal writes to NIfTI (and reads without conversion when the stored type matches).
pub trait NiftiVoxel: Voxel {
    /// NIfTI datatype code.
    const DATATYPE: i16;
    /// The matching stored type.
    const DTYPE: NiftiDtype;
    /// Appends the little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! nifti_voxel {
    ($($t:ty => $code:expr, $dt:ident);* $(;)?) => {$(
        impl NiftiVoxel for $t {
            const DATATYPE: i16 = $code;
            const DTYPE: NiftiDtype = NiftiDtype::$dt;
            #[inline]
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
nifti_voxel!(u8 => 2, U8; i16 => 4, I16; u16 => 512, U16; i32 => 8, I32; u32 => 768, U32; f32 => 16, F32; f64 => 64, F64);

/// Opens `path` and returns a reader over the (decompressed) bytes. Gzip is recognised by its magic
/// bytes, not by the file name.
fn open_stream(path: &Path) -> Result<(Box<dyn Read + Send>, bool), IoError> {
    let open_err = |source| IoError::Open { path: path.to_path_buf(), error: source };
    let mut file = std::fs::File::open(path).map_err(open_err)?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic).map_err(open_err)?;
    drop(file);
    let file = BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(open_err)?);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok((Box::new(MultiGzDecoder::new(file)), true))
    } else {
        Ok((Box::new(file), false))
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

struct Raw<'a> {
    b: &'a [u8],
    be: bool,
}

impl Raw<'_> {
    fn i16(&self, off: usize) -> i16 {
        let a = [self.b[off], self.b[off + 1]];
        if self.be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn f32(&self, off: usize) -> f64 {
        let a = [self.b[off], self.b[off + 1], self.b[off + 2], self.b[off + 3]];
        (if self.be { f32::from_be_bytes(a) } else { f32::from_le_bytes(a) }) as f64
    }
}

fn parse_header(path: &Path, bytes: &[u8; HEADER_SIZE]) -> Result<NiftiHeader, IoError> {
    let not_nifti = |reason: String| IoError::NotNifti { path: path.to_path_buf(), reason };
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let big_endian = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        _ => return Err(not_nifti(format!("sizeof_hdr is {le}, expected 348"))),
    };
    let magic = &bytes[344..348];
    if magic == b"ni1\0" {
        return Err(IoError::UnsupportedNifti {
            path: path.to_path_buf(),
            reason: "header/image pair (.hdr/.img) files are not supported; convert to .nii".into(),
        });
    }
    if magic != b"n+1\0" {
        return Err(not_nifti(format!("magic is {magic:?}, expected \"n+1\\0\"")));
    }
    let r = Raw { b: bytes, be: big_endian };
    let dim: Vec<i64> = (0..8).map(|a| r.i16(40 + 2 * a) as i64).collect();
    let invalid_dims = |reason: &str| IoError::InvalidDims {
        path: path.to_path_buf(),
        dims: dim.clone(),
        reason: reason.to_string(),
    };
    let ndim = dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(invalid_dims("dim[0] must be between 1 and 7"));
    }
    let mut dims = [1usize; 3];
    for a in 0..ndim as usize {
        let d = dim[a + 1];
        if d <= 0 {
            return Err(invalid_dims("a dimension is 0 or negative"));
        }
        if a < 3 {
            dims[a] = d as usize;
        } else if d != 1 {
            return Err(IoError::UnsupportedNifti {
                path: path.to_path_buf(),
                reason: format!("{ndim}-D image with dims {:?}; only 3-D volumes are read", &dim[1..]),
            });
        }
    }
    // Each dim is at most 32767, so the product cannot overflow a 64-bit usize.
    let n = dims.iter().product::<usize>();
    if n > MAX_VOXELS {
        return Err(invalid_dims(&format!(
            "{} x {} x {} = {n} voxels exceeds nodal's limit of {MAX_VOXELS} voxels (crop or resample the \
             volume)",
            dims[0], dims[1], dims[2]
        )));
    }
    let code = r.i16(70);
    let dtype = NiftiDtype::from_code(code).ok_or_else(|| IoError::UnsupportedNifti {
        path: path.to_path_buf(),
        reason: format!(
            "datatype code {code} (supported: uint8, int8, int16, uint16, int32, uint32, float32, float64)"
        ),
    })?;
    let vox_offset = r.f32(108);
    if !vox_offset.is_finite() || vox_offset < HEADER_SIZE as f64 || vox_offset.fract() != 0.0 {
        return Err(not_nifti(format!("vox_offset {vox_offset} is not a byte offset >= 348")));
    }
    let slope = r.f32(112);
    let inter = r.f32(116);
    // NIfTI: slope 0 (or NaN, as nibabel writes) means "no scaling", and the intercept is then unused.
    // An infinite slope, or a non-finite intercept next to a real slope, would turn every voxel into
    // inf/NaN, which the conversion to integers would silently make 0 or the type's extreme.
    if slope.is_infinite() || (slope.is_finite() && slope != 0.0 && !inter.is_finite()) {
        return Err(IoError::InvalidScaling {
            path: path.to_path_buf(),
            reason: format!("scl_slope {slope}, scl_inter {inter}"),
        });
    }
    let scaling = if slope.is_finite() && slope != 0.0 {
        if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        }
    } else {
        None
    };
    let pixdim: Vec<f64> = (0..8).map(|a| r.f32(76 + 4 * a)).collect();
    let qform_code = r.i16(252);
    let sform_code = r.i16(254);
    let (affine_ras, affine_source) = if sform_code > 0 {
        let mut m = [[0.0; 4]; 4];
        for row in 0..3 {
            for c in 0..4 {
                m[row][c] = r.f32(280 + 16 * row + 4 * c);
            }
        }
        m[3][3] = 1.0;
        (m, "sform")
    } else if qform_code > 0 {
        let q = [r.f32(256), r.f32(260), r.f32(264)];
        let off = [r.f32(268), r.f32(272), r.f32(276)];
        (quatern_to_affine(q, off, [pixdim[1], pixdim[2], pixdim[3]], pixdim[0]), "qform")
    } else {
        let mut m = [[0.0; 4]; 4];
        let s = [-pixdim[1].abs(), pixdim[2].abs(), pixdim[3].abs()];
        for a in 0..3 {
            m[a][a] = s[a];
            m[a][3] = -s[a] * (dims[a] as f64 - 1.0) / 2.0;
        }
        m[3][3] = 1.0;
        (m, "pixdim")
    };
    let mut lps = affine_ras;
    for c in 0..4 {
        lps[0][c] = -lps[0][c];
        lps[1][c] = -lps[1][c];
    }
    let geometry = Geometry::from_affine_lps(&lps).map_err(|e| IoError::InvalidGeometry {
        path: path.to_path_buf(),
        reason: format!("{affine_source} affine {affine_ras:?}: {e}"),
    })?;
    Ok(NiftiHeader {
        dims,
        dtype,
        scaling,
        affine_ras,
        geometry,
        affine_source,
        sform_code,
        qform_code,
        vox_offset: vox_offset as usize,
        big_endian,
    })
}

/// NIfTI quaternion (b, c, d), offset, pixdim and qfac -> index-to-RAS affine (the NIfTI-1 standard
/// formula, `nifti_quatern_to_mat44`).
fn quatern_to_affine(q: [f64; 3], offset: [f64; 3], pix: [f64; 3], qfac: f64) -> [[f64; 4]; 4] {
    let [b, c, d] = q;
    let a2 = 1.0 - (b * b + c * c + d * d);
    // Rounding in the stored float32s can make a^2 slightly negative: the standard then renormalises.
    let (a, b, c, d) = if a2 < 1e-7 {
        let s = (b * b + c * c + d * d).sqrt();
        (0.0, b / s, c / s, d / s)
    } else {
        (a2.sqrt(), b, c, d)
    };
    let rot = [
        [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
        [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
        [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    let qfac = if qfac < 0.0 { -1.0 } else { 1.0 };
    let scale = [pix[0].abs(), pix[1].abs(), qfac * pix[2].abs()];
    let mut m = [[0.0; 4]; 4];
    for r in 0..3 {
        for col in 0..3 {
            m[r][col] = rot[r][col] * scale[col];
        }
        m[r][3] = offset[r];
    }
    m[3][3] = 1.0;
    m
}

/// Rotation part of an index-to-RAS affine -> NIfTI quaternion (b, c, d) and qfac
/// (`nifti_mat44_to_quatern` for an orthonormal direction matrix).
fn affine_to_quatern(dir_cols: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    // r[row][col]: column `col` is the RAS direction of index axis `col`.
    let mut r = [[0.0; 3]; 3];
    for row in 0..3 {
        for col in 0..3 {
            r[row][col] = dir_cols[col][row];
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        let aa = 0.5 * trace.sqrt();
        a = aa;
        b = 0.25 * (r[2][1] - r[1][2]) / aa;
        c = 0.25 * (r[0][2] - r[2][0]) / aa;
        d = 0.25 * (r[1][0] - r[0][1]) / aa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    // The standard keeps a >= 0 (a is implied from b, c, d).
    let s = if a < 0.0 { -1.0 } else { 1.0 };
    ([s * b, s * c, s * d], qfac)
}

/// Reads only the header: dims, stored datatype, scaling and geometry.
pub fn read_nifti_header(path: impl AsRef<Path>) -> Result<NiftiHeader, IoError> {
    let path = path.as_ref();
    let (mut stream, gz) = open_stream(path)?;
    let mut bytes = [0u8; HEADER_SIZE];
    let got = read_full(&mut stream, &mut bytes).map_err(|e| stream_err(path, gz, e))?;
    if got < HEADER_SIZE {
        return Err(IoError::NotNifti {
            path: path.to_path_buf(),
            reason: format!("only {got} bytes, a NIfTI-1 header has {HEADER_SIZE}"),
        });
    }
    parse_header(path, &bytes)
}

fn stream_err(path: &Path, gz: bool, source: std::io::Error) -> IoError {
    if gz {
        IoError::Gzip { path: path.to_path_buf(), error: source }
    } else {
        IoError::Open { path: path.to_path_buf(), error: source }
    }
}

/// Reads a NIfTI-1 volume, applying `scl_slope`/`scl_inter` and converting the stored type to `T`
/// (rounding and saturating for integer `T`). A stored type equal to `T` without scaling is copied
/// bit-exactly.
///
/// Refused with a typed error, before the volume is allocated where the header alone tells: more than
/// [`crate::MAX_VOXELS`] voxels, fewer data bytes than declared, an infinite `scl_slope` or a
/// non-finite `scl_inter`; and after reading into an integer `T`, NaN or infinite stored voxels
/// ([`IoError::NonFiniteVoxels`]), which the conversion would otherwise turn into 0 or the type's
/// extreme. A float `T` receives them as stored.
pub fn read_nifti<T: Voxel>(path: impl AsRef<Path>) -> Result<Volume<T>, IoError> {
    let path = path.as_ref();
    let mut rows = NiftiRows::<T>::open(path)?;
    let [ni, nj, nk] = rows.header().dims;
    let total = ni * nj * nk;
    let reserve = |values: &mut Vec<T>, additional: usize| {
        values.try_reserve_exact(additional).map_err(|_| IoError::Allocation {
            path: path.to_path_buf(),
            bytes: ((values.len() + additional) * std::mem::size_of::<T>()) as u64,
        })
    };
    let mut values = Vec::new();
    if !rows.compressed {
        // Sizes were checked against MAX_VOXELS and the file's length in `open`: the whole volume is
        // there, so reserve it at once.
        reserve(&mut values, total)?;
    }
    loop {
        if rows.compressed {
            // A gzip stream's length says nothing about what it inflates to: grow with the data that
            // actually arrives (doubling, never past the declared size) so that a truncated or lying
            // stream fails with an error instead of first reserving the full declared volume.
            let block = rows.block_rows() * ni;
            if values.capacity() - values.len() < block {
                let len = values.len();
                let target = (2 * len).max(len + block).max(1 << 20).min(total);
                reserve(&mut values, target - len)?;
            }
        }
        if rows.next_rows(&mut values)?.is_none() {
            break;
        }
    }
    let geometry = rows.header().geometry;
    let data = ndarray::Array3::from_shape_vec([nk, nj, ni], values).expect("length matches dims");
    Volume::new(data, geometry)
        .map_err(|e| IoError::InvalidGeometry { path: path.to_path_buf(), reason: e.to_string() })
}

/// The label id a stored value stands for, or why it stands for none: ids are whole numbers in
/// `0..=u32::MAX` (0 = background). A saturating cast would turn -1 into background and 0.5 into
/// 0 or 1, silently dropping or merging labels.
///
/// # Errors
/// The reason the value is no id.
pub fn label_id(v: f64) -> Result<u32, &'static str> {
    if !v.is_finite() {
        Err("not finite")
    } else if v < 0.0 {
        Err("negative")
    } else if v.fract() != 0.0 {
        Err("not a whole number")
    } else if v > u32::MAX as f64 {
        Err("above the largest id, 4294967295")
    } else {
        Ok(v as u32)
    }
}

/// Reads an instance label map (any stored type, scaling applied) as `u32` ids, refusing values
/// that are no id ([`label_id`]). Read a block of rows at a time, so no `f64` copy of the volume
/// is ever held.
///
/// # Errors
/// As [`read_nifti`], and [`IoError::InvalidLabel`] naming the first bad value.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Volume<u32>, IoError> {
    let path = path.as_ref();
    let mut rows = NiftiRows::<f64>::open(path)?;
    let [ni, nj, nk] = rows.header().dims;
    let total = ni * nj * nk;
    let too_big = |n: usize| IoError::Allocation { path: path.to_path_buf(), bytes: (n * 4) as u64 };
    let mut ids: Vec<u32> = Vec::new();
    if !rows.compressed {
        // The file's length was checked against the header in `open`: the data is all there.
        ids.try_reserve_exact(total).map_err(|_| too_big(total))?;
    }
    let mut block = Vec::new();
    loop {
        block.clear();
        if rows.next_rows(&mut block)?.is_none() {
            break;
        }
        // A gzip stream may lie about its size: grow with the data that arrives.
        ids.try_reserve(block.len()).map_err(|_| too_big(ids.len() + block.len()))?;
        for &v in &block {
            let id = label_id(v).map_err(|reason| IoError::InvalidLabel {
                path: path.to_path_buf(),
                value: v,
                reason,
            })?;
            ids.push(id);
        }
    }
    let geometry = rows.header().geometry;
    let data = ndarray::Array3::from_shape_vec([nk, nj, ni], ids).expect("length matches dims");
    Volume::new(data, geometry)
        .map_err(|e| IoError::InvalidGeometry { path: path.to_path_buf(), reason: e.to_string() })
}

/// Decoded bytes per block of [`NiftiRows::next_rows`]: small enough that the inflated bytes are
/// still in cache when they are converted and when the caller looks at them.
const BLOCK_BYTES: usize = 1 << 17;

/// A NIfTI-1 file read a block of rows at a time, so that a caller that keeps only part of the
/// voxels (the nonzero ones of a mask, say) never holds the whole volume.
///
/// Row `r` holds voxels `(0..ni, j, k)` with `r = k * nj + j`; values are converted to `T` exactly as
/// [`read_nifti`] converts them (it is built on this reader), and errors are the same.
pub struct NiftiRows<T: Voxel> {
    path: std::path::PathBuf,
    stream: Box<dyn Read + Send>,
    gz: bool,
    header: NiftiHeader,
    /// rows already returned
    next_row: usize,
    n_rows: usize,
    /// stored bytes per row
    row_bytes: usize,
    raw: Vec<u8>,
    convert: Converter<T>,
    /// True for a gzip stream (whose inflated length is not known up front).
    compressed: bool,
    /// True when `T` cannot hold NaN/inf (an integer type): such stored values are then an error
    /// instead of silently becoming 0 or the type's extreme. Float `T` keeps them bit-exactly.
    reject_non_finite: bool,
    /// Non-finite stored values seen so far (float datatypes only), and the linear index of the first.
    non_finite: u64,
    first_non_finite: Option<usize>,
}

impl<T: Voxel> std::fmt::Debug for NiftiRows<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NiftiRows")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl<T: Voxel> NiftiRows<T> {
    /// Opens `path`, parses the header and skips to the voxel data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let (mut stream, gz) = open_stream(path)?;
        let mut hbytes = [0u8; HEADER_SIZE];
        let got = read_full(&mut stream, &mut hbytes).map_err(|e| stream_err(path, gz, e))?;
        if got < HEADER_SIZE {
            return Err(IoError::NotNifti {
                path: path.to_path_buf(),
                reason: format!("only {got} bytes, a NIfTI-1 header has {HEADER_SIZE}"),
            });
        }
        let header = parse_header(path, &hbytes)?;
        // Skip extensions up to the data.
        let skip = (header.vox_offset - HEADER_SIZE) as u64;
        let skipped = std::io::copy(&mut (&mut stream).take(skip), &mut std::io::sink())
            .map_err(|e| stream_err(path, gz, e))?;
        let [ni, nj, nk] = header.dims;
        let row_bytes = ni * header.dtype.size_bytes();
        let data_bytes = (row_bytes * nj * nk) as u64;
        if !gz {
            // An uncompressed file must hold all the voxels its header declares: check the length
            // before any caller reserves memory for them.
            let len = std::fs::metadata(path)
                .map_err(|error| IoError::Open { path: path.to_path_buf(), error })?
                .len();
            let found = len.saturating_sub(header.vox_offset as u64);
            if found < data_bytes {
                return Err(IoError::DataSizeMismatch {
                    path: path.to_path_buf(),
                    expected_bytes: data_bytes,
                    found_bytes: found,
                });
            }
        }
        if skipped < skip {
            return Err(IoError::DataSizeMismatch {
                path: path.to_path_buf(),
                expected_bytes: (row_bytes * nj * nk) as u64,
                found_bytes: 0,
            });
        }
        let convert = Converter::new(header.dtype, header.big_endian, header.scaling, ni * nj * nk);
        Ok(NiftiRows {
            path: path.to_path_buf(),
            stream,
            gz,
            header,
            next_row: 0,
            n_rows: nj * nk,
            row_bytes,
            raw: Vec::new(),
            convert,
            compressed: gz,
            reject_non_finite: !T::from_f64(f64::NAN).to_f64().is_nan(),
            non_finite: 0,
            first_non_finite: None,
        })
    }

    /// Rows per block of [`Self::next_rows`] (the last block may be shorter).
    fn block_rows(&self) -> usize {
        (BLOCK_BYTES / self.row_bytes.max(1)).max(1)
    }

    /// Counts NaN/inf stored values of a float datatype in `raw` (the block starting at `first_row`).
    fn count_non_finite(&mut self, first_row: usize) {
        if !self.reject_non_finite {
            return;
        }
        let be = self.header.big_endian;
        let mut note = |at: usize, finite: bool| {
            if !finite {
                self.non_finite += 1;
                self.first_non_finite.get_or_insert(at);
            }
        };
        let base = first_row * self.header.dims[0];
        match self.header.dtype {
            NiftiDtype::F32 => {
                for (n, c) in self.raw.chunks_exact(4).enumerate() {
                    let a = [c[0], c[1], c[2], c[3]];
                    let v = if be { f32::from_be_bytes(a) } else { f32::from_le_bytes(a) };
                    note(base + n, v.is_finite());
                }
            }
            NiftiDtype::F64 => {
                for (n, c) in self.raw.chunks_exact(8).enumerate() {
                    let a: [u8; 8] = c.try_into().unwrap();
                    let v = if be { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) };
                    note(base + n, v.is_finite());
                }
            }
            _ => {}
        }
    }

    /// The parsed header.
    pub fn header(&self) -> &NiftiHeader {
        &self.header
    }

    /// Decodes the next block of whole rows and *appends* its `n_rows * ni` values to `out`. Returns
    /// the index of the block's first row, or `None` once every row has been returned (a gzip
    /// stream is then read to its end, so a damaged trailer is an error rather than ignored). That
    /// last call is also where NaN/inf voxels of a float file read into an integer `T` are reported
    /// ([`IoError::NonFiniteVoxels`], with their count and the first one's index).
    pub fn next_rows(&mut self, out: &mut Vec<T>) -> Result<Option<usize>, IoError> {
        let path = self.path.as_path();
        if self.next_row == self.n_rows {
            if let Some(first) = self.first_non_finite {
                let [ni, nj, _] = self.header.dims;
                return Err(IoError::NonFiniteVoxels {
                    path: path.to_path_buf(),
                    count: self.non_finite,
                    first_index: [first % ni, first / ni % nj, first / (ni * nj)],
                });
            }
            if self.gz {
                std::io::copy(&mut self.stream, &mut std::io::sink())
                    .map_err(|e| stream_err(path, self.gz, e))?;
                // Drained: a second call at the end has nothing left to check.
                self.gz = false;
            }
            return Ok(None);
        }
        let rows = self.block_rows().min(self.n_rows - self.next_row);
        let nbytes = rows * self.row_bytes;
        self.raw.resize(nbytes, 0);
        let got = read_full(&mut self.stream, &mut self.raw).map_err(|e| stream_err(path, self.gz, e))?;
        if got < nbytes {
            return Err(IoError::DataSizeMismatch {
                path: path.to_path_buf(),
                expected_bytes: (self.n_rows * self.row_bytes) as u64,
                found_bytes: (self.next_row * self.row_bytes + got) as u64,
            });
        }
        self.count_non_finite(self.next_row);
        self.convert.extend(&self.raw, out);
        let first = self.next_row;
        self.next_row += rows;
        Ok(Some(first))
    }
}

/// Stored bytes -> `T`, with `value = stored * slope + inter` when scaled and then `T::from_f64`.
/// Stored types of one or two bytes go through a table of all their values (the same expression,
/// evaluated once per possible value instead of once per voxel), and a stored type equal to `T`
/// without scaling is copied bit-exactly.
enum Converter<T> {
    /// The stored type is `T` and unscaled: decoded as itself.
    Same { dtype: NiftiDtype, be: bool },
    /// `table[byte]` for 8-bit types.
    Table8(Vec<T>),
    /// `table[bits]` for 16-bit types, the bit pattern read in the file's byte order.
    Table16 { table: Vec<T>, be: bool },
    /// Per-voxel conversion.
    Direct { dtype: NiftiDtype, be: bool, scaling: Option<(f64, f64)> },
}

/// Below this many voxels a 65536-entry table costs more than it saves.
const MIN_VOXELS_FOR_TABLE16: usize = 1 << 18;

impl<T: Voxel> Converter<T> {
    fn new(dtype: NiftiDtype, be: bool, scaling: Option<(f64, f64)>, n_voxels: usize) -> Self {
        // The same expression as `convert_into`, so table entries equal per-voxel results.
        let value = |v: f64| match scaling {
            None => T::from_f64(v),
            Some((s, i)) => T::from_f64(v * s + i),
        };
        if scaling.is_none() && stored_as::<T>(dtype) {
            return Converter::Same { dtype, be };
        }
        let big = n_voxels >= MIN_VOXELS_FOR_TABLE16;
        match dtype {
            NiftiDtype::U8 => Converter::Table8((0..=255u8).map(|b| value(b as f64)).collect()),
            NiftiDtype::I8 => Converter::Table8((0..=255u8).map(|b| value(b as i8 as f64)).collect()),
            NiftiDtype::U16 if big => {
                Converter::Table16 { table: (0..=u16::MAX).map(|b| value(b as f64)).collect(), be }
            }
            NiftiDtype::I16 if big => {
                Converter::Table16 { table: (0..=u16::MAX).map(|b| value(b as i16 as f64)).collect(), be }
            }
            _ => Converter::Direct { dtype, be, scaling },
        }
    }

    /// Appends the values of `raw` (whole voxels) to `out`.
    fn extend(&self, raw: &[u8], out: &mut Vec<T>) {
        match self {
            Converter::Same { dtype, be } => {
                if !extend_same_type(raw, *dtype, *be, out) {
                    convert_into(raw, *dtype, *be, None, out)
                }
            }
            Converter::Table8(t) => out.extend(raw.iter().map(|&b| t[b as usize])),
            Converter::Table16 { table, be: true } => {
                out.extend(raw.chunks_exact(2).map(|c| table[u16::from_be_bytes([c[0], c[1]]) as usize]))
            }
            Converter::Table16 { table, be: false } => {
                out.extend(raw.chunks_exact(2).map(|c| table[u16::from_le_bytes([c[0], c[1]]) as usize]))
            }
            Converter::Direct { dtype, be, scaling } => convert_into(raw, *dtype, *be, *scaling, out),
        }
    }
}

/// True when the stored type is `T` itself.
fn stored_as<T: Voxel>(dtype: NiftiDtype) -> bool {
    use std::any::TypeId;
    let stored = match dtype {
        NiftiDtype::U8 => TypeId::of::<u8>(),
        NiftiDtype::I8 => TypeId::of::<i8>(),
        NiftiDtype::I16 => TypeId::of::<i16>(),
        NiftiDtype::U16 => TypeId::of::<u16>(),
        NiftiDtype::I32 => TypeId::of::<i32>(),
        NiftiDtype::U32 => TypeId::of::<u32>(),
        NiftiDtype::F32 => TypeId::of::<f32>(),
        NiftiDtype::F64 => TypeId::of::<f64>(),
    };
    stored == TypeId::of::<T>()
}

/// Appends `raw` decoded as its own type when `out` is a `Vec` of that type (returns false
/// otherwise): no round trip through f64, so the copy is bit-exact and avoids a rounding call per
/// voxel.
fn extend_same_type(raw: &[u8], dtype: NiftiDtype, be: bool, out: &mut dyn std::any::Any) -> bool {
    macro_rules! same {
        ($t:ty, $n:expr, $dt:ident) => {
            if dtype == NiftiDtype::$dt {
                if let Some(o) = out.downcast_mut::<Vec<$t>>() {
                    o.extend(raw.chunks_exact($n).map(|c| {
                        let a: [u8; $n] = c.try_into().unwrap();
                        if be {
                            <$t>::from_be_bytes(a)
                        } else {
                            <$t>::from_le_bytes(a)
                        }
                    }));
                    return true;
                }
            }
        };
    }
    if dtype == NiftiDtype::U8 {
        if let Some(o) = out.downcast_mut::<Vec<u8>>() {
            o.extend_from_slice(raw);
            return true;
        }
    }
    same!(i8, 1, I8);
    same!(i16, 2, I16);
    same!(u16, 2, U16);
    same!(i32, 4, I32);
    same!(u32, 4, U32);
    same!(f32, 4, F32);
    same!(f64, 8, F64);
    false
}

/// Decodes stored voxels to `T` and appends them: `value = stored * slope + inter` when scaled.
fn convert_into<T: Voxel>(
    raw: &[u8],
    dtype: NiftiDtype,
    be: bool,
    scaling: Option<(f64, f64)>,
    out: &mut Vec<T>,
) {
    macro_rules! decode {
        ($t:ty, $n:expr) => {{
            let it = raw.chunks_exact($n).map(|c| {
                let a: [u8; $n] = c.try_into().unwrap();
                if be {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            });
            match scaling {
                None => out.extend(it.map(|v| T::from_f64(v as f64))),
                Some((s, i)) => out.extend(it.map(|v| T::from_f64(v as f64 * s + i))),
            }
        }};
    }
    match dtype {
        NiftiDtype::U8 => decode!(u8, 1),
        NiftiDtype::I8 => decode!(i8, 1),
        NiftiDtype::I16 => decode!(i16, 2),
        NiftiDtype::U16 => decode!(u16, 2),
        NiftiDtype::I32 => decode!(i32, 4),
        NiftiDtype::U32 => decode!(u32, 4),
        NiftiDtype::F32 => decode!(f32, 4),
        NiftiDtype::F64 => decode!(f64, 8),
    }
}

fn put_i16(h: &mut [u8], off: usize, v: i16) {
    h[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_i32(h: &mut [u8], off: usize, v: i32) {
    h[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_f32(h: &mut [u8], off: usize, v: f64) {
    h[off..off + 4].copy_from_slice(&(v as f32).to_le_bytes());
}

/// The 352-byte little-endian header (+ empty extension flag) for a volume of `T`.
fn build_header<T: NiftiVoxel>(dims: [usize; 3], g: &Geometry) -> Vec<u8> {
    let mut h = vec![0u8; VOX_OFFSET];
    put_i32(&mut h, 0, HEADER_SIZE as i32);
    h[38] = b'r'; // regular = 'r' (legacy Analyze field nibabel also sets)
    put_i16(&mut h, 40, 3);
    for a in 0..3 {
        put_i16(&mut h, 42 + 2 * a, dims[a] as i16);
    }
    for a in 3..7 {
        put_i16(&mut h, 42 + 2 * a, 1);
    }
    put_i16(&mut h, 70, T::DATATYPE);
    put_i16(&mut h, 72, (8 * std::mem::size_of::<T>()) as i16);
    // RAS direction columns of the index axes.
    let mut dir_ras = g.direction;
    for d in dir_ras.iter_mut() {
        d[0] = -d[0];
        d[1] = -d[1];
    }
    let (quat, qfac) = affine_to_quatern(dir_ras);
    put_f32(&mut h, 76, qfac);
    for a in 0..3 {
        put_f32(&mut h, 80 + 4 * a, g.spacing_mm[a]);
    }
    for a in 3..7 {
        put_f32(&mut h, 80 + 4 * a, 1.0);
    }
    put_f32(&mut h, 108, VOX_OFFSET as f64);
    put_f32(&mut h, 112, 1.0); // scl_slope: identity scaling
    put_f32(&mut h, 116, 0.0);
    h[123] = 2 | 8; // xyzt_units: mm, seconds
    let descrip = b"nodal";
    h[148..148 + descrip.len()].copy_from_slice(descrip);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for a in 0..3 {
        put_f32(&mut h, 256 + 4 * a, quat[a]);
    }
    let ras = g.affine_ras();
    for a in 0..3 {
        put_f32(&mut h, 268 + 4 * a, ras[a][3]);
    }
    for r in 0..3 {
        for c in 0..4 {
            put_f32(&mut h, 280 + 16 * r + 4 * c, ras[r][c]);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// The header, then the voxels little-endian, encoded in slabs to bound the temporary buffer.
fn write_header_and_voxels<T: NiftiVoxel>(
    w: &mut impl Write,
    header: &[u8],
    vol: &Volume<T>,
) -> std::io::Result<()> {
    w.write_all(header)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in vol.as_slice().chunks((1 << 20) / std::mem::size_of::<T>()) {
        buf.clear();
        for &v in chunk {
            v.put_le(&mut buf);
        }
        w.write_all(&buf)?;
    }
    w.flush()
}

/// [`write_header_and_voxels`] through gzip; returns the inner writer.
fn write_gzipped<W: Write, T: NiftiVoxel>(w: W, header: &[u8], vol: &Volume<T>) -> std::io::Result<W> {
    // Level 3: within a few percent of the default size at about twice the speed on CT.
    let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::new(3));
    write_header_and_voxels(&mut enc, header, vol)?;
    // `finish` writes the gzip trailer and reports its errors; dropping the encoder would write it
    // too but swallow a failure, and the truncated file would be renamed into place.
    enc.finish()
}

/// Writes a volume as NIfTI-1 (`.nii`, or gzip-compressed when the name ends in `.gz`), with sform and
/// qform (code 1, scanner), units mm, datatype from `T`. Atomic: the data goes to a temporary file in
/// the same folder that is renamed over `path` only once complete.
pub fn write_nifti<T: NiftiVoxel>(vol: &Volume<T>, path: impl AsRef<Path>) -> Result<(), IoError> {
    let path = path.as_ref();
    let dims = vol.dims();
    if dims.iter().any(|&d| d > i16::MAX as usize) {
        return Err(IoError::InvalidDims {
            path: path.to_path_buf(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            reason: "NIfTI-1 dimensions are limited to 32767".into(),
        });
    }
    let header = build_header::<T>(dims, vol.geometry());
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    crate::write_atomic_with(path, |w| {
        if gz {
            write_gzipped(w, &header, vol).map(drop)
        } else {
            write_header_and_voxels(w, &header, vol)
        }
    })
    .map_err(|error| IoError::Write { path: path.to_path_buf(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte pattern of 1- and 2-byte types plus edge values of the wider ones, in both byte
    /// orders.
    fn samples(dtype: NiftiDtype, be: bool) -> Vec<u8> {
        let n = dtype.size_bytes();
        let mut out = Vec::new();
        if n <= 2 {
            for v in 0..(1u32 << (8 * n)) {
                let b = v.to_le_bytes();
                let mut c = b[..n].to_vec();
                if be {
                    c.reverse();
                }
                out.extend(c);
            }
        } else {
            let vals: [f64; 9] = [0.0, 1.0, -1.0, 2.5, -7.5, 65535.0, 1e9, -3e9, 0.49999];
            for v in vals {
                let mut c = match dtype {
                    NiftiDtype::I32 => (v as i32).to_le_bytes().to_vec(),
                    NiftiDtype::U32 => (v as u32).to_le_bytes().to_vec(),
                    NiftiDtype::F32 => (v as f32).to_le_bytes().to_vec(),
                    _ => v.to_le_bytes().to_vec(),
                };
                if be {
                    c.reverse();
                }
                out.extend(c);
            }
        }
        out
    }

    /// Accepts `room` bytes, then fails every write.
    #[derive(Debug)]
    struct FullAfter {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for FullAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = b.len().min(self.room - self.written.len());
            if n == 0 && !b.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"));
            }
            self.written.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_gzip_trailer_that_cannot_be_written_is_an_error() {
        let g = nodal_core::Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let vol = Volume::<i16>::filled([20, 20, 20], g, 7);
        let header = build_header::<i16>(vol.dims(), vol.geometry());
        let whole = write_gzipped(Vec::new(), &header, &vol).unwrap();
        // Room for everything but the 8-byte trailer (CRC32 + length).
        let short = FullAfter { written: Vec::new(), room: whole.len() - 8 };
        let err = write_gzipped(short, &header, &vol).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        let full =
            write_gzipped(FullAfter { written: Vec::new(), room: whole.len() }, &header, &vol).unwrap();
        assert_eq!(full.written, whole);
    }

    fn same_as_per_voxel<T: Voxel>() {
        let dtypes = [
            NiftiDtype::U8,
            NiftiDtype::I8,
            NiftiDtype::I16,
            NiftiDtype::U16,
            NiftiDtype::I32,
            NiftiDtype::U32,
            NiftiDtype::F32,
            NiftiDtype::F64,
        ];
        for dtype in dtypes {
            for be in [false, true] {
                for scaling in [None, Some((0.5, -3.0)), Some((1e-3, 0.25))] {
                    let raw = samples(dtype, be);
                    for n_voxels in [10, 1 << 20] {
                        let mut fast = Vec::new();
                        Converter::<T>::new(dtype, be, scaling, n_voxels).extend(&raw, &mut fast);
                        let mut slow = Vec::new();
                        convert_into::<T>(&raw, dtype, be, scaling, &mut slow);
                        // compare bit patterns through f64 (NaN-free inputs)
                        let f: Vec<f64> = fast.iter().map(|v| v.to_f64()).collect();
                        let s: Vec<f64> = slow.iter().map(|v| v.to_f64()).collect();
                        assert_eq!(f, s, "{dtype:?} be {be} scaling {scaling:?}");
                    }
                }
            }
        }
    }

    /// Blocks of several rows, rows longer than a block, and truncation inside a later block.
    #[test]
    fn rows_come_in_order_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let g = Geometry::axis_aligned([0.7, 0.8, 2.0], [1.0, 2.0, 3.0]);
        // f64 rows of 20000 voxels are longer than a block
        for dims in [[300usize, 200, 5], [20_000, 2, 3]] {
            let n: usize = dims.iter().product();
            let data: Vec<f64> = (0..n).map(|x| (x % 7919) as f64 - 3000.25).collect();
            let [ni, nj, nk] = dims;
            let vol = Volume::new(ndarray::Array3::from_shape_vec([nk, nj, ni], data).unwrap(), g).unwrap();
            let path = dir.path().join(format!("v{ni}.nii.gz"));
            write_nifti(&vol, &path).unwrap();
            let mut rows = NiftiRows::<f32>::open(&path).unwrap();
            let (mut next, mut blocks, mut all) = (0, 0, Vec::new());
            let mut block = Vec::new();
            while let Some(first) = rows.next_rows(&mut block).unwrap() {
                assert_eq!(first, next);
                assert_eq!(block.len() % ni, 0);
                next += block.len() / ni;
                blocks += 1;
                all.append(&mut block);
            }
            assert_eq!(next, nj * nk);
            assert!(blocks > 1);
            assert!(all.iter().zip(vol.as_slice()).all(|(a, b)| *a == *b as f32));
            assert_eq!(read_nifti::<f64>(&path).unwrap().as_slice(), vol.as_slice());
            // Cut inside the data: the size error counts the bytes that did arrive.
            let raw_path = dir.path().join(format!("v{ni}.nii"));
            write_nifti(&vol, &raw_path).unwrap();
            let b = std::fs::read(&raw_path).unwrap();
            let keep = VOX_OFFSET + 8 * n * 2 / 3 + 1;
            std::fs::write(&raw_path, &b[..keep]).unwrap();
            match read_nifti::<f64>(&raw_path).unwrap_err() {
                IoError::DataSizeMismatch { expected_bytes, found_bytes, .. } => {
                    assert_eq!(expected_bytes, 8 * n as u64);
                    assert_eq!(found_bytes, (keep - VOX_OFFSET) as u64);
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn tables_and_same_type_copies_equal_per_voxel_conversion() {
        same_as_per_voxel::<u8>();
        same_as_per_voxel::<i16>();
        same_as_per_voxel::<u16>();
        same_as_per_voxel::<i32>();
        same_as_per_voxel::<u32>();
        same_as_per_voxel::<f32>();
        same_as_per_voxel::<f64>();
    }

    #[test]
    fn quaternion_round_trip_for_all_axis_permutations_and_flips() {
        // Every signed permutation matrix (48 of them) plus an oblique one.
        let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let mut cases = Vec::new();
        for p in perms {
            for signs in 0..8 {
                let mut d = [[0.0; 3]; 3];
                for a in 0..3 {
                    d[a][p[a]] = if signs & (1 << a) != 0 { -1.0 } else { 1.0 };
                }
                cases.push(d);
            }
        }
        let (s, c) = (0.4f64.sin(), 0.4f64.cos());
        cases.push([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, -1.0]]);
        for d in cases {
            let (q, qfac) = affine_to_quatern(d);
            let m = quatern_to_affine(q, [0.0; 3], [1.0, 1.0, 1.0], qfac);
            for a in 0..3 {
                for r in 0..3 {
                    assert!((m[r][a] - d[a][r]).abs() < 1e-9, "{d:?} -> {m:?}");
                }
            }
        }
    }
}
