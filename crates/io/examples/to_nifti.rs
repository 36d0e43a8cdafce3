//! Reads a CT or volume the way nodal does and writes it as NIfTI — used by the Python cross-checks
//! (tests/python/test_io_*.py) to compare nodal's reading and writing with nibabel's and pydicom's.
//!
//! `to_nifti <input> <output.nii[.gz]> [--dtype u8|i16|u16|i32|f32|f64] [--series UID]`
//!
//! A NIfTI input is read with `read_nifti::<dtype>` (default f64: scaling applied, nothing rounded); a
//! DICOM file or folder is read with `read_ct_series` and written as int16 HU.
use nodal_io::{is_nifti_path, read_ct_series, read_nifti, write_nifti};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: to_nifti <input> <output> [--dtype T] [--series UID]".into());
    };
    let opt = |name: &str| rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).cloned();
    if is_nifti_path(input.as_ref()) {
        match opt("--dtype").as_deref().unwrap_or("f64") {
            "u8" => write_nifti(&read_nifti::<u8>(input)?, output)?,
            "i16" => write_nifti(&read_nifti::<i16>(input)?, output)?,
            "u16" => write_nifti(&read_nifti::<u16>(input)?, output)?,
            "i32" => write_nifti(&read_nifti::<i32>(input)?, output)?,
            "f32" => write_nifti(&read_nifti::<f32>(input)?, output)?,
            "f64" => write_nifti(&read_nifti::<f64>(input)?, output)?,
            other => return Err(format!("unknown dtype {other}").into()),
        }
    } else {
        let scan = read_ct_series(input, opt("--series").as_deref())?;
        write_nifti(&scan.hu, output)?;
    }
    Ok(())
}
