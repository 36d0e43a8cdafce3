//! A walk over a DICOM file's element headers that checks every declared length against the bytes the
//! file holds, without reading any value.
//!
//! Why: the parser (dicom-parser) reserves and zero-fills each value's declared length before reading
//! it, so a single corrupted length field in a 1 KB file makes it touch up to 4 GiB before it notices
//! the file is short. Checking lengths first bounds every allocation of the later parse by the file's
//! size. It refuses lengths that cannot fit, nesting deeper than [`MAX_DEPTH`], and whatever makes
//! the parser read elements at other boundaries than the walk does, so that it would reach lengths
//! the walk never checked (libFuzzer found 3-6 KB files that made it reserve 0.5-3.5 GB that way):
//! a stray item or delimiter tag, items overrunning their sequence, a binary numeric value whose
//! length is not a whole number of values, and a deflated data set that does not inflate to its
//! end (one that does is walked as it inflates). Truncation is left to the parser to report.
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::VR;
use dicom_dictionary_std::StandardDataDictionary;
use flate2::read::DeflateDecoder;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// Sequences nest a few levels in real files (enhanced CT: 3); deeper nesting is refused rather than
/// followed, so that neither this walk nor the parser recurses without bound on a crafted file.
const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = u32::MAX;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// What the walk learned.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Layout {
    /// The declared length of a top-level native (not encapsulated) PixelData, when the walk got there.
    pub pixel_data_len: Option<u64>,
}

enum Fail {
    /// Not an error here: stop checking (the parser will say what is wrong, if anything).
    Stop,
    /// A length that cannot fit, or too deep a nesting.
    Bad(String),
}

impl From<std::io::Error> for Fail {
    fn from(_: std::io::Error) -> Self {
        // Truncation (or an I/O error) is the parser's to report, with its own message.
        Fail::Stop
    }
}

struct Walker<R> {
    r: R,
    pos: u64,
    len: u64,
    big_endian: bool,
    layout: Layout,
}

/// A reader the walk can move forward in without reading what it skips when it can (a file seeks;
/// an inflated data set has to be read through).
trait Forward: Read {
    fn forward(&mut self, n: u64) -> std::io::Result<()>;
}

impl<R: Read + Seek> Forward for BufReader<R> {
    fn forward(&mut self, n: u64) -> std::io::Result<()> {
        self.seek_relative(n as i64)
    }
}

impl<R: Read> Forward for DeflateDecoder<R> {
    fn forward(&mut self, n: u64) -> std::io::Result<()> {
        let skipped = std::io::copy(&mut self.by_ref().take(n), &mut std::io::sink())?;
        if skipped < n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// The most a deflated data set may inflate to: a CT of [`crate::MAX_VOXELS`] 16-bit voxels and
/// 64 MiB of attributes. Beyond that it is refused as a deflate bomb before the parser inflates it.
const MAX_INFLATED: u64 = crate::MAX_VOXELS as u64 * 2 + (64 << 20);

impl<R: Forward> Walker<R> {
    fn u16(&mut self) -> Result<u16, Fail> {
        let mut b = [0u8; 2];
        self.r.read_exact(&mut b)?;
        self.pos += 2;
        Ok(if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }
    fn u32(&mut self) -> Result<u32, Fail> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b)?;
        self.pos += 4;
        Ok(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }
    fn tag(&mut self) -> Result<(u16, u16), Fail> {
        Ok((self.u16()?, self.u16()?))
    }
    fn skip(&mut self, n: u64) -> Result<(), Fail> {
        self.r.forward(n)?;
        self.pos += n;
        Ok(())
    }
    /// Refuses a length that runs past the end of the file (or of the enclosing item).
    fn fits(&self, tag: (u16, u16), len: u32, end: Option<u64>) -> Result<(), Fail> {
        let limit = end.unwrap_or(self.len).min(self.len);
        let left = limit.saturating_sub(self.pos);
        if len as u64 > left {
            return Err(Fail::Bad(format!(
                "element ({:04X},{:04X}) whose value starts at byte {} declares {len} bytes but only \
                 {left} remain",
                tag.0, tag.1, self.pos
            )));
        }
        Ok(())
    }

    /// Elements until `end` (a defined-length item), an item delimiter, or the end of the file.
    fn dataset(&mut self, end: Option<u64>, implicit: bool, depth: usize) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            return Err(Fail::Bad(format!("sequences nested more than {MAX_DEPTH} deep")));
        }
        loop {
            if end.is_some_and(|e| self.pos >= e) || self.pos >= self.len {
                return Ok(());
            }
            let tag = self.tag()?;
            // An item delimiter ends an item; among the top-level elements it is stray (the
            // parser reads on past it, 4 GB for a fuzzed 7 KB file).
            if tag == ITEM_END && depth > 0 {
                self.u32()?;
                return Ok(());
            }
            if tag.0 == 0xFFFE {
                // An item or sequence delimiter among elements, or another tag of the delimiters'
                // group: no valid file has one, and the parser, reading on from it, reserves what
                // the bytes after it declare (1.2 and 3.5 GB for two 3 KB files the fuzzer made).
                return Err(Fail::Bad(format!(
                    "item or delimiter tag ({:04X},{:04X}) out of place at byte {}",
                    tag.0,
                    tag.1,
                    self.pos - 4
                )));
            }
            // The VR that decides how the parser reads the value: the file's, or in implicit VR the
            // dictionary's.
            let mut value_vr = None;
            let (vr, len) = if implicit {
                let vr = StandardDataDictionary.by_tag(dicom_core::Tag(tag.0, tag.1)).map(|e| e.vr());
                if let Some(VirtualVr::Exact(v)) = vr {
                    value_vr = Some(v);
                }
                let vr = match vr {
                    Some(VirtualVr::Exact(VR::SQ)) => Some(VR::SQ),
                    _ => None,
                };
                (vr, self.u32()?)
            } else {
                let mut b = [0u8; 2];
                self.r.read_exact(&mut b)?;
                self.pos += 2;
                // As the parser does: an unknown VR is UN.
                let vr = VR::from_binary(b).unwrap_or(VR::UN);
                let len = if !short_length(vr) {
                    self.skip(2)?;
                    self.u32()?
                } else {
                    self.u16()? as u32
                };
                (Some(vr), len)
            };
            let value_vr = value_vr.or(vr);
            if let Some(unit) = value_vr.and_then(binary_unit).filter(|u| len != UNDEFINED && len % u != 0) {
                // The parser reads whole numbers of such values and goes on from there: the rest of
                // the value is read as the next element's header (a fuzzed 6-byte FD made it
                // reserve 1.2 GB that way).
                return Err(Fail::Bad(format!(
                    "element ({:04X},{:04X}) {:?} has {len} bytes, not a whole number of {unit}-byte values",
                    tag.0,
                    tag.1,
                    value_vr.unwrap_or(VR::UN)
                )));
            }
            if len == UNDEFINED {
                if tag == PIXEL_DATA {
                    // Encapsulated pixel data (also in an icon image sequence).
                    self.fragments()?;
                } else if implicit || vr == Some(VR::SQ) {
                    self.items(None, implicit, depth + 1)?;
                } else if vr == Some(VR::UN) {
                    // PS3.5 6.2.2 (CP-246): an undefined-length UN is a sequence whose items are
                    // implicit VR little endian. The parser (dicom-parser 0.10) reads them in the
                    // file's own encoding, so the walk must too: the lengths it would then read
                    // are what it allocates for (3.7 GB for pydicom's 674-byte UN_sequence.dcm).
                    self.items(None, implicit, depth + 1).map_err(|e| match e {
                        Fail::Bad(_) => Fail::Bad(format!(
                            "element ({:04X},{:04X}) is a sequence encoded as UN with an undefined \
                             length (implicit VR items), which the DICOM parser cannot read",
                            tag.0, tag.1
                        )),
                        stop => stop,
                    })?;
                } else {
                    // PS3.5 7.1.1: only sequences (SQ, UN) and encapsulated pixel data have an
                    // undefined length. The parser would read such a value to the end of the
                    // file, first reserving up to 4 GiB for it.
                    return Err(Fail::Bad(format!(
                        "element ({:04X},{:04X}) {:?} has an undefined length, which only sequences and \
                         encapsulated pixel data may have",
                        tag.0,
                        tag.1,
                        vr.unwrap_or(VR::UN)
                    )));
                }
                continue;
            }
            self.fits(tag, len, end)?;
            if tag == PIXEL_DATA && depth == 0 {
                self.layout.pixel_data_len = Some(len as u64);
            }
            if vr == Some(VR::SQ) {
                let item_end = self.pos + len as u64;
                self.items(Some(item_end), implicit, depth + 1)?;
                if self.pos != item_end {
                    return Err(Fail::Bad(format!(
                        "the items of sequence ({:04X},{:04X}) do not end where its length says (byte {item_end})",
                        tag.0, tag.1
                    )));
                }
            } else {
                self.skip(len as u64)?;
            }
        }
    }

    /// Items of a sequence until `end` (defined length) or a sequence delimiter.
    fn items(&mut self, end: Option<u64>, implicit: bool, depth: usize) -> Result<(), Fail> {
        loop {
            if end.is_some_and(|e| self.pos >= e) || self.pos >= self.len {
                return Ok(());
            }
            let tag = self.tag()?;
            let len = self.u32()?;
            if tag == SEQ_END {
                return Ok(());
            }
            if tag != ITEM {
                // The parser reads on from a stray tag, reserving what the bytes after it declare.
                return Err(Fail::Bad(format!(
                    "({:04X},{:04X}) where a sequence item or delimiter must be, at byte {}",
                    tag.0,
                    tag.1,
                    self.pos - 8
                )));
            }
            if len == UNDEFINED {
                self.dataset(None, implicit, depth)?;
            } else {
                self.fits(tag, len, end)?;
                let item_end = self.pos + len as u64;
                self.dataset(Some(item_end), implicit, depth)?;
                if self.pos != item_end {
                    return Err(Fail::Bad(format!(
                        "an item's elements do not end where its length says (byte {item_end})"
                    )));
                }
            }
        }
    }

    /// Encapsulated pixel data: the offset table and fragments, each a defined-length item.
    fn fragments(&mut self) -> Result<(), Fail> {
        loop {
            let tag = self.tag()?;
            let len = self.u32()?;
            if tag == SEQ_END {
                return Ok(());
            }
            if tag != ITEM {
                return Err(Fail::Bad(format!(
                    "({:04X},{:04X}) where a pixel data fragment or delimiter must be, at byte {}",
                    tag.0,
                    tag.1,
                    self.pos - 8
                )));
            }
            self.fits(tag, len, None)?;
            self.skip(len as u64)?;
        }
    }
}

/// The size of one value of a binary numeric VR (and of the "other" VRs made of such values),
/// whose length must be a multiple of it.
fn binary_unit(vr: VR) -> Option<u32> {
    match vr {
        VR::SS | VR::US | VR::OW => Some(2),
        VR::SL | VR::UL | VR::FL | VR::AT | VR::OF | VR::OL => Some(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => Some(8),
        _ => None,
    }
}

/// VRs with a 2-byte length in explicit VR (PS3.5 7.1.2); every other VR, and an unknown one, has a
/// reserved field and a 4-byte length. The same list as dicom-encoding's decoder, so that both read
/// the same length from the same bytes.
fn short_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// Walks the file meta group (explicit VR little endian) and the data set. `Err` for a declared
/// length that does not fit in the file, too deep a nesting, or a broken structure of items and
/// delimiters (a stray delimiter tag, items that overrun their sequence), from which the parser would
/// read on into lengths this walk never checked; truncation and what the walk cannot follow (a
/// deflated data set) end the walk quietly for the parser to report.
pub(crate) fn check(path: &Path) -> Result<Layout, String> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(Layout::default()) };
    let Ok(len) = file.metadata().map(|m| m.len()) else { return Ok(Layout::default()) };
    let mut w = Walker { r: BufReader::new(file), pos: 0, len, big_endian: false, layout: Layout::default() };
    match walk(&mut w, path) {
        Ok(()) | Err(Fail::Stop) => Ok(w.layout),
        Err(Fail::Bad(reason)) => Err(reason),
    }
}

fn walk(w: &mut Walker<BufReader<std::fs::File>>, path: &Path) -> Result<(), Fail> {
    w.skip(132)?; // preamble + "DICM"
    let mut ts = String::new();
    loop {
        let at = w.pos;
        let tag = w.tag()?;
        if tag.0 != 0x0002 {
            w.r.seek_relative(at as i64 - w.pos as i64)?;
            w.pos = at;
            break;
        }
        let mut b = [0u8; 2];
        w.r.read_exact(&mut b)?;
        w.pos += 2;
        let vr = VR::from_binary(b).unwrap_or(VR::UN);
        let len = if !short_length(vr) {
            w.skip(2)?;
            w.u32()?
        } else {
            w.u16()? as u32
        };
        if len == UNDEFINED {
            return Err(Fail::Stop);
        }
        w.fits(tag, len, None)?;
        if tag == (0x0002, 0x0010) && len <= 64 {
            let mut v = vec![0u8; len as usize];
            w.r.read_exact(&mut v)?;
            w.pos += len as u64;
            ts = String::from_utf8_lossy(&v).trim_end_matches(['\0', ' ']).to_string();
        } else {
            w.skip(len as u64)?;
        }
    }
    let implicit = match ts.as_str() {
        // Deflated (PS3.5 A.5: raw deflate after the file meta): the lengths are checked against
        // what the data set inflates to, walking it as it inflates. A corrupt stream ends where
        // it stops inflating, for the parser as for this walk.
        "1.2.840.10008.1.2.1.99" => return walk_deflated(path, w.pos),
        "1.2.840.10008.1.2" => true,
        "1.2.840.10008.1.2.2" => {
            w.big_endian = true;
            false
        }
        _ => false,
    };
    w.dataset(None, implicit, 0)
}

/// The data set of a deflated file, which starts at byte `start`: its inflated length first (refused
/// beyond [`MAX_INFLATED`]), then a walk over it as it inflates again.
fn walk_deflated(path: &Path, start: u64) -> Result<(), Fail> {
    let inflate = || -> Result<DeflateDecoder<BufReader<std::fs::File>>, Fail> {
        let mut file = BufReader::new(std::fs::File::open(path)?);
        file.seek(std::io::SeekFrom::Start(start))?;
        Ok(DeflateDecoder::new(file))
    };
    let mut counted = 0u64;
    let mut stream = inflate()?.take(MAX_INFLATED + 1);
    // To the end of the stream. One that cannot be inflated to its end is refused: where a corrupt
    // block stops the inflation depends on the size of the reads, so the parser could read on
    // past the point where this walk stopped checking.
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => counted += n as u64,
            Err(e) => {
                return Err(Fail::Bad(format!("the deflated data set cannot be inflated: {e}")));
            }
        }
    }
    if counted > MAX_INFLATED {
        return Err(Fail::Bad(format!(
            "the deflated data set inflates to more than {MAX_INFLATED} bytes (a deflate bomb?)"
        )));
    }
    let mut w = Walker { r: inflate()?, pos: 0, len: counted, big_endian: false, layout: Layout::default() };
    w.dataset(None, false, 0).map_err(|e| match e {
        Fail::Bad(reason) => Fail::Bad(format!("in the inflated data set: {reason}")),
        stop => stop,
    })
}
