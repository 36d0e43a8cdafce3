//! Reports for radiologists and researchers: HTML, DICOM SEG and DICOM SR.
