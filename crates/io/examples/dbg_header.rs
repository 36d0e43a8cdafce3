use dicom_dictionary_std::tags;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let obj = dicom_object::OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(&p).unwrap();
    println!("{:?}", obj.meta().media_storage_sop_class_uid());
    println!("{:?}", obj.get(tags::SERIES_INSTANCE_UID).map(|e| e.to_str().map(|s| s.to_string())));
    println!("{:?}", obj.get(tags::ROWS).map(|e| e.to_multi_float64()));
}
