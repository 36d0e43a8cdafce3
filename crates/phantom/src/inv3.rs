//! Reader for InVesalius 3 projects (`.inv3`): a gzip-compressed tar holding `main.plist` (shape,
//! spacing, dtype of the image matrix) and `matrix.dat` (raw little-endian voxels, C order,
//! shape `[slices, rows, columns]`).
//!
//! InVesalius keeps no patient orientation. Its matrix is axial, slices inferior -> superior, columns
//! towards the patient's left, and rows in VTK's bottom-up order (posterior first); the reader flips
//! the rows so the volume is LPS-stored (checked on the example project: the CT table is posterior,
//! the mandible in the lowest slices).
use crate::PhantomError;
use nodal_core::{Geometry, Volume};
use std::io::Read;
use std::path::Path;

fn err(path: &Path, reason: impl Into<String>) -> PhantomError {
    PhantomError::Inv3 { path: path.to_path_buf(), reason: reason.into() }
}

/// The text of `<key>NAME</key>` followed by a value block (up to the next `<key>` at that depth
/// is approximated by the next closing tag of the value's kind).
fn after_key<'a>(xml: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("<key>{key}</key>");
    let at = xml.find(&pat)? + pat.len();
    Some(&xml[at..])
}

fn numbers_in_array(s: &str) -> Vec<f64> {
    let Some(end) = s.find("</array>") else { return Vec::new() };
    let body = &s[..end];
    let mut out = Vec::new();
    for part in body.split('<') {
        if let Some(v) = part.strip_prefix("integer>").or_else(|| part.strip_prefix("real>")) {
            if let Ok(x) = v.trim().parse::<f64>() {
                out.push(x);
            }
        }
    }
    out
}

/// Parses shape, spacing and dtype from `main.plist`.
pub fn parse_main_plist(xml: &str, path: &Path) -> Result<([usize; 3], [f64; 3], String), PhantomError> {
    let m = after_key(xml, "matrix").ok_or_else(|| err(path, "main.plist has no matrix entry"))?;
    let shape = numbers_in_array(after_key(m, "shape").ok_or_else(|| err(path, "matrix has no shape"))?);
    let dtype = after_key(m, "dtype")
        .and_then(|s| s.split("<string>").nth(1))
        .and_then(|s| s.split("</string>").next())
        .ok_or_else(|| err(path, "matrix has no dtype"))?
        .to_string();
    let spacing = numbers_in_array(after_key(xml, "spacing").ok_or_else(|| err(path, "no spacing"))?);
    if shape.len() != 3 || spacing.len() != 3 {
        return Err(err(path, format!("shape {shape:?} / spacing {spacing:?} are not 3D")));
    }
    if shape.iter().any(|&s| !(1.0..=4096.0).contains(&s)) || spacing.iter().any(|&s| !(s > 0.0 && s < 50.0))
    {
        return Err(err(path, format!("implausible shape {shape:?} or spacing {spacing:?}")));
    }
    // shape = [slices, rows, columns]; spacing = [column, row, slice] (VTK order).
    Ok((
        [shape[2] as usize, shape[1] as usize, shape[0] as usize],
        [spacing[0], spacing[1], spacing[2]],
        dtype,
    ))
}

/// Reads an `.inv3` project as an HU volume.
pub fn read_inv3(path: &Path) -> Result<Volume<i16>, PhantomError> {
    let f = std::fs::File::open(path).map_err(|e| PhantomError::io(path, e))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut plist = None;
    let mut matrix = None;
    for entry in ar.entries().map_err(|e| err(path, e.to_string()))? {
        let mut e = entry.map_err(|e| err(path, e.to_string()))?;
        let name = e.path().map_err(|e| err(path, e.to_string()))?.to_string_lossy().into_owned();
        let base = name.rsplit('/').next().unwrap_or("").to_string();
        if base == "main.plist" {
            let mut s = String::new();
            e.read_to_string(&mut s).map_err(|e| err(path, e.to_string()))?;
            plist = Some(s);
        } else if base == "matrix.dat" {
            let size = e.header().size().map_err(|e| err(path, e.to_string()))?;
            if size > (nodal_core::MAX_VOXELS as u64) * 2 {
                return Err(err(path, "matrix.dat too large"));
            }
            let mut b = Vec::with_capacity(size as usize);
            e.read_to_end(&mut b).map_err(|e| err(path, e.to_string()))?;
            matrix = Some(b);
        }
    }
    let plist = plist.ok_or_else(|| err(path, "no main.plist"))?;
    let bytes = matrix.ok_or_else(|| err(path, "no matrix.dat"))?;
    let (dims, spacing, dtype) = parse_main_plist(&plist, path)?;
    if dtype != "int16" {
        return Err(err(path, format!("unsupported matrix dtype {dtype}")));
    }
    let n = dims[0] * dims[1] * dims[2];
    if bytes.len() != 2 * n {
        return Err(err(
            path,
            format!("matrix.dat has {} bytes, expected {} for {dims:?}", bytes.len(), 2 * n),
        ));
    }
    let vals: Vec<i16> = bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let arr = ndarray::Array3::from_shape_vec([dims[2], dims[1], dims[0]], vals)
        .map_err(|e| err(path, e.to_string()))?;
    // InVesalius keeps VTK's bottom-up row order: flip rows so that j runs anterior -> posterior
    // (slices already run inferior -> superior).
    let mut arr = arr;
    arr.invert_axis(ndarray::Axis(1));
    let arr = arr.as_standard_layout().into_owned();
    // f32-exact spacing, as NIfTI will store it.
    let geom = Geometry::axis_aligned(spacing.map(|s| s as f32 as f64), [0.0, 0.0, 0.0]);
    Ok(Volume::new(arr, geom)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plist() {
        let xml = "<dict><key>matrix</key><dict><key>dtype</key><string>int16</string><key>shape</key><array><integer>3</integer><integer>4</integer><integer>5</integer></array></dict><key>spacing</key><array><real>0.5</real><real>0.5</real><real>2.0</real></array></dict>";
        let (d, s, t) = parse_main_plist(xml, Path::new("x")).unwrap();
        assert_eq!(d, [5, 4, 3]);
        assert_eq!(s, [0.5, 0.5, 2.0]);
        assert_eq!(t, "int16");
        assert!(parse_main_plist("<dict></dict>", Path::new("x")).is_err());
    }
}
