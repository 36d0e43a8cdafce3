//! Small CT series built at test time (no registry data needed): native or RLE-compressed DICOM and
//! NIfTI written by the crate's own writer. The bad-input tests and the mutation sweep start from these.
use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::Array3;
use nodal_core::{Geometry, Volume};
use std::path::{Path, PathBuf};

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// How a synthetic series is stored.
#[derive(Clone, Debug)]
pub struct Spec {
    pub cols: usize,
    pub rows: usize,
    pub slices: usize,
    pub rle: bool,
    /// Signed stored values equal to HU (true) or unsigned HU + 1024 (false).
    pub signed: bool,
    /// Write RescaleIntercept/RescaleSlope (-1024/1 unsigned, 0/1 signed).
    pub rescale: bool,
    pub pixel_spacing: [f64; 2],
    pub slice_spacing: f64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            cols: 16,
            rows: 12,
            slices: 3,
            rle: false,
            signed: false,
            rescale: true,
            pixel_spacing: [0.8, 0.7],
            slice_spacing: 2.5,
        }
    }
}

/// HU of voxel (i, j, k) of the synthetic series: air to bone, negative values included.
pub fn hu(i: usize, j: usize, k: usize) -> i16 {
    ((i * 37 + j * 101 + k * 211) % 2000) as i16 - 1000
}

/// The volume the series must read back as.
pub fn expected(spec: &Spec) -> Vec<i16> {
    let mut v = Vec::new();
    for k in 0..spec.slices {
        for j in 0..spec.rows {
            for i in 0..spec.cols {
                v.push(hu(i, j, k));
            }
        }
    }
    v
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// The data set of slice `k` without PixelData.
pub fn slice_header(spec: &Spec, k: usize) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, format!("1.2.826.0.1.3680043.99.1.{}", k + 1));
    put(&mut o, tags::MODALITY, VR::CS, "CT");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.99.2");
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.99.3");
    put(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.826.0.1.3680043.99.4");
    let z = -100.0 + spec.slice_spacing * k as f64;
    put(&mut o, tags::IMAGE_POSITION_PATIENT, VR::DS, format!("-50\\-60\\{z}"));
    put(&mut o, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0");
    put(&mut o, tags::PIXEL_SPACING, VR::DS, format!("{}\\{}", spec.pixel_spacing[0], spec.pixel_spacing[1]));
    put(&mut o, tags::SLICE_THICKNESS, VR::DS, format!("{}", spec.slice_spacing));
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(spec.rows as u16));
    put(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(spec.cols as u16));
    put(&mut o, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(&mut o, tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16));
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(spec.signed as u16));
    if spec.rescale {
        put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, if spec.signed { "0" } else { "-1024" });
        put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    }
    o
}

/// Stored 16-bit words of slice `k`.
pub fn stored(spec: &Spec, k: usize) -> Vec<u16> {
    let mut v = Vec::with_capacity(spec.rows * spec.cols);
    for j in 0..spec.rows {
        for i in 0..spec.cols {
            let h = hu(i, j, k);
            v.push(if spec.signed { h as u16 } else { (h as i32 + 1024) as u16 });
        }
    }
    v
}

/// PackBits (DICOM RLE) of one byte plane, literal runs only; padded to an even length.
fn packbits(plane: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for run in plane.chunks(128) {
        out.push((run.len() - 1) as u8);
        out.extend_from_slice(run);
    }
    if out.len() % 2 == 1 {
        out.push(0x80); // no-op header
    }
    out
}

/// One RLE frame of 16-bit words: 64-byte header, then the high-byte and low-byte segments.
pub fn rle_frame(words: &[u16]) -> Vec<u8> {
    let hi: Vec<u8> = words.iter().map(|w| (w >> 8) as u8).collect();
    let lo: Vec<u8> = words.iter().map(|w| *w as u8).collect();
    let (s0, s1) = (packbits(&hi), packbits(&lo));
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(&2u32.to_le_bytes());
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[8..12].copy_from_slice(&(64 + s0.len() as u32).to_le_bytes());
    f.extend(s0);
    f.extend(s1);
    f
}

/// Writes `obj` as a Part 10 file in transfer syntax `ts`.
pub fn write(obj: InMemDicomObject, ts: &str, path: &Path) {
    let sop = obj.element(tags::SOP_INSTANCE_UID).map(|e| e.to_str().unwrap().to_string());
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(sop.unwrap_or_else(|_| "1.2.826.0.1.3680043.99.9".into()));
    obj.with_meta(meta).unwrap().write_to_file(path).unwrap();
}

/// Slice `k` with its pixel data (native OW, or an RLE fragment `frame` — by default the correct one).
pub fn slice_object(spec: &Spec, k: usize, rle_fragment: Option<Vec<u8>>) -> InMemDicomObject {
    let mut o = slice_header(spec, k);
    let words = stored(spec, k);
    if spec.rle {
        let frag = rle_fragment.unwrap_or_else(|| rle_frame(&words));
        let seq: Value<InMemDicomObject, Vec<u8>> =
            PixelFragmentSequence::new(Vec::<u32>::new(), vec![frag]).into();
        o.put(DataElement::new(tags::PIXEL_DATA, VR::OB, seq));
    } else {
        put(&mut o, tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()));
    }
    o
}

/// Writes the series into `dir` (created) as `slice{k}.dcm`; returns the files.
pub fn write_series(spec: &Spec, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..spec.slices)
        .map(|k| {
            let p = dir.join(format!("slice{k}.dcm"));
            let ts = if spec.rle { RLE_LOSSLESS } else { EXPLICIT_VR_LE };
            write(slice_object(spec, k, None), ts, &p);
            p
        })
        .collect()
}

/// A small CT volume (HU) in a plain axis-aligned grid, for NIfTI inputs.
pub fn ct_volume(dims: [usize; 3], spacing: [f64; 3]) -> Volume<i16> {
    let [ni, nj, nk] = dims;
    let data = Array3::from_shape_fn([nk, nj, ni], |(k, j, i)| hu(i, j, k));
    Volume::new(data, Geometry::axis_aligned(spacing, [-10.0, 20.0, 30.0])).unwrap()
}
