//! Zip read the way torch's reader (miniz) reads it: the central directory at the end is the
//! truth, sizes come from it, general-purpose flag bits and CRCs are not enforced. Every member
//! is scanned by content, not only `data.pkl`. The places where Python's zipfile and miniz
//! disagree (flag bits, CRC, names that differ between the two headers, duplicates, members
//! missing from the directory) are reported, since they are how scanners were bypassed.

use std::collections::{HashMap, HashSet};

use crate::finding::{Category, Finding, Severity};
use crate::formats;

use super::{Compression, Ctx, MAX_ARCHIVE_ENTRIES, member_loc};

const EOCD_SIG: &[u8] = b"PK\x05\x06";
const CDH_SIG: &[u8] = b"PK\x01\x02";
const LFH_SIG: &[u8] = b"PK\x03\x04";
const EOCD64_LOC_SIG: &[u8] = b"PK\x06\x07";
const EOCD64_SIG: &[u8] = b"PK\x06\x06";
/// Flag bits any writer sets: 1-2 deflate options, 3 data descriptor, 11 UTF-8 names.
const ORDINARY_FLAGS: u16 = 0x0002 | 0x0004 | 0x0008 | 0x0800;

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], o: usize) -> Option<u64> {
    d.get(o..o + 8).map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    })
}

/// Position of the end-of-central-directory record, searched backwards over the largest
/// possible comment (65535 bytes) as every zip reader does.
pub(crate) fn find_eocd(data: &[u8]) -> Option<usize> {
    if data.len() < 22 {
        return None;
    }
    let lowest = data.len().saturating_sub(22 + 65535);
    let mut i = data.len() - 22;
    loop {
        if &data[i..i + 4] == EOCD_SIG {
            let comment = u16_at(data, i + 20)? as usize;
            if i + 22 + comment <= data.len() {
                return Some(i);
            }
        }
        if i == lowest {
            return None;
        }
        i -= 1;
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    csize: u64,
    usize_: u64,
    local: u64,
}

/// Where a member was found: in the directory reported first, in another reading of the
/// directories, or only by walking local headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Listed,
    Redirected,
    Hidden,
}

/// One reading of a central directory: its members, or why it could not be read.
type DirectoryRead = Result<Vec<Entry>, String>;

/// The last end-of-central-directory signature in the window a comment allows, whether or not
/// its comment fits in the file: Python's zipfile (and miniz) take that one.
fn last_eocd_signature(data: &[u8]) -> Option<usize> {
    if data.len() < 22 {
        return None;
    }
    let lowest = data.len().saturating_sub(22 + 65535);
    (lowest..=data.len() - 22)
        .rev()
        .find(|&i| &data[i..i + 4] == EOCD_SIG)
}

/// Every member list a zip reader may take from this file, the one this scanner reports first
/// (zipfile's reading of the last end record whose comment fits); the others are the end
/// record read as miniz (torch) and as the format's rule read it, and the last end signature
/// at all (zipfile and miniz take it even when its comment overruns the file).
fn directories(data: &[u8]) -> (Option<DirectoryRead>, Vec<Vec<Entry>>) {
    let fitting = find_eocd(data);
    let primary = fitting.map(|e| central_directory(data, e, Reading::Zipfile));
    let mut others = Vec::new();
    let mut eocds = vec![fitting, last_eocd_signature(data)];
    eocds.dedup();
    for eocd in eocds.into_iter().flatten() {
        for reading in [
            Reading::Zipfile,
            Reading::ZipfileOld,
            Reading::Miniz,
            Reading::Saturated,
        ] {
            if Some(eocd) == fitting && reading == Reading::Zipfile {
                continue;
            }
            if let Ok(v) = central_directory(data, eocd, reading) {
                others.push(v);
            }
        }
    }
    (primary, others)
}

/// How a reader finds the central directory from the end record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Python's zipfile: the ZIP64 record whenever a locator precedes the end record; bytes
    /// prepended to the archive shift every offset (`concat`).
    Zipfile,
    /// zipfile before the CVE-2025-8291 fix (most deployed Pythons): the ZIP64 record read at
    /// 76 bytes before the end record whatever the locator says, and the 76-byte shift only
    /// when a record is there.
    ZipfileOld,
    /// miniz (torch): the ZIP64 record whenever a locator is there, its offsets as written.
    Miniz,
    /// The format's rule: the ZIP64 record only where a 32-bit field is saturated.
    Saturated,
}

fn central_directory(data: &[u8], eocd: usize, reading: Reading) -> DirectoryRead {
    let mut entries = u16_at(data, eocd + 10).ok_or("short EOCD")? as u64;
    let mut cd_size = u32_at(data, eocd + 12).ok_or("short EOCD")? as u64;
    let mut cd_off = u32_at(data, eocd + 16).ok_or("short EOCD")? as u64;
    let mut zip64 = false;
    let locator = eocd
        .checked_sub(20)
        .filter(|&l| data.get(l..l + 4) == Some(EOCD64_LOC_SIG));
    let saturated = entries == 0xffff || cd_off == 0xffff_ffff || cd_size == 0xffff_ffff;
    if let Some(loc) = locator
        && (reading != Reading::Saturated || saturated)
    {
        let rec = if reading == Reading::ZipfileOld {
            eocd.saturating_sub(76)
        } else {
            u64_at(data, loc + 8).ok_or("short zip64 locator")? as usize
        };
        if rec.checked_add(4).and_then(|end| data.get(rec..end)) == Some(EOCD64_SIG) {
            entries = u64_at(data, rec + 32).ok_or("short zip64 EOCD")?;
            cd_size = u64_at(data, rec + 40).ok_or("short zip64 EOCD")?;
            cd_off = u64_at(data, rec + 48).ok_or("short zip64 EOCD")?;
            zip64 = true;
        }
    }
    // Bytes prepended to the archive (self-extractors, polyglots): zipfile computes the shift
    // from where the directory really ends (before the ZIP64 record and locator, 76 bytes).
    let dir_end = if locator.is_some() && (zip64 || reading != Reading::ZipfileOld) {
        eocd.saturating_sub(76)
    } else {
        eocd
    };
    // zipfile reads the directory where it ends (`concat`, the shift of every offset, may be
    // negative); miniz (torch) and the format's rule read it at the offset written.
    let concat: i64 = match reading {
        Reading::Zipfile | Reading::ZipfileOld => {
            (dir_end as i128 - cd_size as i128 - cd_off as i128)
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64
        }
        Reading::Miniz => 0,
        Reading::Saturated if zip64 => 0,
        Reading::Saturated => (dir_end as u64)
            .saturating_sub(cd_size)
            .saturating_sub(cd_off) as i64,
    };
    let shift = |off: u64| {
        u64::try_from(off as i128 + concat as i128)
            .unwrap_or(u64::MAX)
            .min(data.len() as u64)
    };
    let mut pos = usize::try_from(shift(cd_off)).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for _ in 0..entries.min(MAX_ARCHIVE_ENTRIES as u64 + 1) {
        if data.get(pos..pos + 4) != Some(CDH_SIG) {
            if out.is_empty() {
                return Err(format!("no central directory entry at byte {pos}"));
            }
            break;
        }
        let flags = u16_at(data, pos + 8).ok_or("short entry")?;
        let method = u16_at(data, pos + 10).ok_or("short entry")?;
        let crc = u32_at(data, pos + 16).ok_or("short entry")?;
        let mut csize = u32_at(data, pos + 20).ok_or("short entry")? as u64;
        let mut usize_ = u32_at(data, pos + 24).ok_or("short entry")? as u64;
        let nlen = u16_at(data, pos + 28).ok_or("short entry")? as usize;
        let xlen = u16_at(data, pos + 30).ok_or("short entry")? as usize;
        let clen = u16_at(data, pos + 32).ok_or("short entry")? as usize;
        let mut local = u32_at(data, pos + 42).ok_or("short entry")? as u64;
        let name_bytes = data
            .get(pos + 46..pos + 46 + nlen)
            .ok_or("name past the end")?;
        let extra = data
            .get(pos + 46 + nlen..pos + 46 + nlen + xlen)
            .unwrap_or_default();
        // ZIP64 extra field: the 64-bit values replace the saturated 32-bit ones, in order.
        let mut x = 0;
        while x + 4 <= extra.len() {
            let id = u16::from_le_bytes([extra[x], extra[x + 1]]);
            let len = u16::from_le_bytes([extra[x + 2], extra[x + 3]]) as usize;
            let body = extra.get(x + 4..x + 4 + len).unwrap_or_default();
            if id == 1 {
                let mut b = 0;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xffff_ffff
                        && let Some(v) = u64_at(body, b)
                    {
                        *field = v;
                        b += 8;
                    }
                }
            }
            x += 4 + len;
        }
        out.push(Entry {
            name: member_name(name_bytes),
            flags,
            method,
            crc,
            csize,
            usize_,
            local: shift(local),
        });
        pos += 46 + nlen + xlen + clen;
    }
    Ok(out)
}

/// Scans a zip found at the start of `data` (or whose directory is at its end); returns the
/// format name the members make it: pytorch-zip, npz, keras or zip.
pub(crate) fn scan(
    ctx: &mut Ctx,
    data: &[u8],
    loc: &str,
    depth: u8,
    _start: usize,
) -> &'static str {
    let report = |rule: &str, sev: Severity, cat: Category, msg: String, at: String| {
        Finding::new(rule, sev, cat, msg).at(at)
    };
    let (primary, other_directories) = directories(data);
    let entries = match primary {
        Some(dir) => match dir {
            Ok(e) => e,
            Err(why) => {
                ctx.push(report(
                    "zip.malformed",
                    Severity::Medium,
                    Category::Integrity,
                    format!("central directory unreadable ({why}); members found by walking local headers"),
                    loc.to_string(),
                ));
                walk_local_headers(data)
            }
        },
        None => {
            ctx.push(report(
                "zip.malformed",
                Severity::Medium,
                Category::Integrity,
                "no end-of-central-directory record; members found by walking local headers".into(),
                loc.to_string(),
            ));
            walk_local_headers(data)
        }
    };
    if entries.len() > MAX_ARCHIVE_ENTRIES {
        ctx.push(report(
            "archive.limit-exceeded",
            Severity::High,
            Category::Resource,
            format!("more than {MAX_ARCHIVE_ENTRIES} entries; the rest are not scanned"),
            loc.to_string(),
        ));
    }
    let entries: Vec<Entry> = entries.into_iter().take(MAX_ARCHIVE_ENTRIES).collect();

    // Local headers the directory does not list: invisible to zipfile and torch, seen by
    // streaming extractors. The walk starts at the file's first byte when a local header is
    // there (members may sit before the first listed one), else at the first listed member.
    let listed: HashSet<u64> = entries.iter().map(|e| e.local).collect();
    let mut hidden: Vec<Entry> = Vec::new();
    let walk_from = if data.starts_with(LFH_SIG) {
        Some(0)
    } else {
        entries.iter().map(|e| e.local).min()
    };
    if let Some(first) = walk_from {
        for e in walk_local_headers_from(data, first as usize) {
            if !listed.contains(&e.local) {
                hidden.push(e);
            }
        }
    }
    // Members another reading of the directories lists (a ZIP64 record the 32-bit fields do
    // not call for, an EOCD whose comment overruns the file): zipfile or miniz load those.
    let mut known: HashSet<(u64, String)> =
        entries.iter().map(|e| (e.local, e.name.clone())).collect();
    let mut redirected: Vec<Entry> = Vec::new();
    for e in other_directories.into_iter().flatten() {
        if redirected.len() >= MAX_ARCHIVE_ENTRIES {
            break;
        }
        if known.insert((e.local, e.name.clone())) {
            redirected.push(e);
        }
    }
    let redirected_at: HashSet<u64> = redirected.iter().map(|e| e.local).collect();
    hidden.retain(|h| !redirected_at.contains(&h.local));

    let mut names: HashMap<&str, usize> = HashMap::new();
    for e in &entries {
        *names.entry(e.name.as_str()).or_insert(0) += 1;
    }
    let mut dup_reported = HashSet::new();
    // Keras reads config.json whether or not metadata.json is there.
    let keras = entries.iter().any(|e| e.name == "config.json")
        && entries
            .iter()
            .any(|e| e.name == "metadata.json" || e.name.ends_with(".h5"));
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();

    for (e, origin) in entries
        .iter()
        .map(|e| (e, Origin::Listed))
        .chain(redirected.iter().map(|e| (e, Origin::Redirected)))
        .chain(hidden.iter().map(|e| (e, Origin::Hidden)))
    {
        let is_hidden = origin != Origin::Listed;
        let mloc = member_loc(loc, depth, &e.name);
        if origin == Origin::Redirected {
            ctx.push(report(
                "zip.second-directory",
                Severity::High,
                Category::Static,
                "another central directory lists this member (a ZIP64 record, or an end record whose comment overruns the file): Python's zipfile or miniz (torch) load it, readers of the first directory do not see it".into(),
                mloc.clone(),
            ));
        } else if is_hidden {
            ctx.push(report(
                "zip.hidden-member",
                Severity::High,
                Category::Static,
                "a local file header that the central directory does not list: streaming extractors see a member zipfile and torch do not".into(),
                mloc.clone(),
            ));
        }
        if names.get(e.name.as_str()).copied().unwrap_or(0) > 1
            && dup_reported.insert(e.name.clone())
        {
            ctx.push(report(
                "zip.duplicate-name",
                Severity::High,
                Category::Static,
                "two members share this name: miniz (torch) takes the first, Python's zipfile the last".into(),
                mloc.clone(),
            ));
        }
        if e.flags & !ORDINARY_FLAGS != 0 {
            ctx.push(
                report(
                    "zip.flag-bits",
                    Severity::High,
                    Category::Static,
                    format!("general-purpose flags 0x{:04x}: Python's zipfile refuses or misreads the member (encryption, patched data), torch ignores the bits and loads it", e.flags),
                    mloc.clone(),
                )
                .with_evidence(format!("flags=0x{:04x}", e.flags)),
            );
        }
        let Some(lh) = data
            .get(e.local as usize..)
            .filter(|d| d.starts_with(LFH_SIG))
        else {
            ctx.push(report(
                "zip.malformed",
                Severity::Medium,
                Category::Integrity,
                format!("no local header at byte {}", e.local),
                mloc.clone(),
            ));
            continue;
        };
        let (Some(nlen), Some(xlen)) = (u16_at(lh, 26), u16_at(lh, 28)) else {
            continue;
        };
        let local_name = lh.get(30..30 + nlen as usize).map(member_name);
        if let Some(ln) = &local_name
            && *ln != e.name
            && !is_hidden
        {
            {
                ctx.push(
                    report(
                        "zip.name-mismatch",
                        Severity::High,
                        Category::Static,
                        "the local header names this member differently from the central directory: zipfile refuses the archive, torch loads it".into(),
                        mloc.clone(),
                    )
                    .with_evidence(format!("central={:?} local={ln:?}", e.name)),
                );
            }
        }
        let start = e.local + 30 + nlen as u64 + xlen as u64;
        // A stored member is read for its uncompressed size by miniz (torch) and for its
        // compressed size by zipfile: both ranges are scanned (the longer holds the shorter).
        let stored_sizes_differ = e.method == 0 && e.csize != e.usize_;
        if stored_sizes_differ {
            ctx.push(
                report(
                    "zip.stored-size-mismatch",
                    Severity::High,
                    Category::Static,
                    "a stored member declares two sizes: readers that take the uncompressed one (miniz, for sizes from a ZIP64 field or where its own check is skipped) and zipfile, which takes the compressed one, read different bytes; both readings are scanned".into(),
                    mloc.clone(),
                )
                .with_evidence(format!("compressed={} uncompressed={}", e.csize, e.usize_)),
            );
        }
        let span = if e.method == 0 {
            e.csize.max(e.usize_)
        } else {
            e.csize
        };
        let end = start.saturating_add(span);
        if end > data.len() as u64 {
            ctx.push(report(
                "zip.malformed",
                Severity::Medium,
                Category::Integrity,
                format!(
                    "member data runs past the end of the file ({end} > {}); what is there is scanned",
                    data.len()
                ),
                mloc.clone(),
            ));
        }
        let end = end.min(data.len() as u64);
        if start > end {
            continue;
        }
        ranges.push((e.local, end, &e.name));
        let packed = &data[start as usize..end as usize];
        let owned;
        let content: &[u8] = match e.method {
            0 => packed,
            // Deflate (torch, zipfile), and bzip2 and lzma, which zipfile (numpy.load) reads too.
            8 | 12 | 14 => {
                let (kind, lzma_alone);
                let input = match e.method {
                    8 => {
                        kind = Compression::Deflate;
                        packed
                    }
                    12 => {
                        kind = Compression::Bzip2;
                        packed
                    }
                    _ => {
                        kind = Compression::Lzma;
                        match lzma_alone_header(packed, e.flags, e.usize_) {
                            Some(v) => {
                                lzma_alone = v;
                                &lzma_alone
                            }
                            None => &[][..],
                        }
                    }
                };
                match ctx.inflate_member(kind, input, e.usize_, &mloc) {
                    Some(v) => {
                        owned = v;
                        &owned
                    }
                    None => continue,
                }
            }
            m => {
                ctx.push(report(
                    "zip.unsupported-method",
                    Severity::Medium,
                    Category::Static,
                    format!("compression method {m} is not read by torch, zipfile nor this scanner; the member is not scanned"),
                    mloc.clone(),
                ));
                continue;
            }
        };
        if e.method == 0 || content.len() as u64 == e.usize_ {
            let mut crc = flate2::Crc::new();
            crc.update(content);
            if crc.sum() != e.crc && !is_hidden {
                ctx.push(
                    report(
                        "zip.crc-mismatch",
                        Severity::High,
                        Category::Static,
                        "the stored CRC-32 does not match the data: Python's zipfile raises on read, torch does not check".into(),
                        mloc.clone(),
                    )
                    .with_evidence(format!("stored=0x{:08x} actual=0x{:08x}", e.crc, crc.sum())),
                );
            }
        }
        if !keras && e.name == "config.json" {
            // Keras builds a model from config.json alone (a zip without metadata.json or
            // weights still runs its Lambda layers before it fails).
            ctx.findings
                .extend(formats::keras::scan_zip_member(&e.name, content, &mloc));
        }
        if keras {
            let found = formats::keras::scan_zip_member(&e.name, content, &mloc);
            ctx.findings.extend(found);
            // A member that is what its name says was read above; anything else (an .npy named
            // weights.json, which numpy.load would unpickle) goes to the router too.
            let as_named = if e.name.ends_with(".json") {
                matches!(content.trim_ascii_start().first(), Some(b'{' | b'['))
            } else {
                e.name.ends_with(".h5") && content.starts_with(b"\x89HDF\r\n\x1a\n")
            };
            if as_named {
                continue;
            }
        }
        ctx.route(content, &mloc, depth + 1);
    }

    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            ctx.push(report(
                "zip.overlap",
                Severity::High,
                Category::Resource,
                format!("members {:?} and {:?} share bytes: an overlapping-member zip bomb or a parser trick", w[0].2, w[1].2),
                member_loc(loc, depth, w[1].2),
            ));
            break;
        }
    }

    if keras {
        "keras"
    } else if entries
        .iter()
        .any(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
    {
        "pytorch-zip"
    } else if !entries.is_empty() && entries.iter().all(|e| e.name.ends_with(".npy")) {
        "npz"
    } else {
        "zip"
    }
}

fn walk_local_headers(data: &[u8]) -> Vec<Entry> {
    walk_local_headers_from(data, 0)
}

/// Members found by reading local headers one after another, as streaming extractors do.
fn walk_local_headers_from(data: &[u8], mut pos: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    while out.len() <= MAX_ARCHIVE_ENTRIES && data.get(pos..pos + 4) == Some(LFH_SIG) {
        let (
            Some(flags),
            Some(method),
            Some(crc),
            Some(csize),
            Some(usize_),
            Some(nlen),
            Some(xlen),
        ) = (
            u16_at(data, pos + 6),
            u16_at(data, pos + 8),
            u32_at(data, pos + 14),
            u32_at(data, pos + 18),
            u32_at(data, pos + 22),
            u16_at(data, pos + 26),
            u16_at(data, pos + 28),
        )
        else {
            break;
        };
        let name = data
            .get(pos + 30..pos + 30 + nlen as usize)
            .map(member_name)
            .unwrap_or_default();
        out.push(Entry {
            name,
            flags,
            method,
            crc,
            csize: csize as u64,
            usize_: usize_ as u64,
            local: pos as u64,
        });
        if flags & 0x0008 != 0 && csize == 0 {
            break; // sizes are in a data descriptor after the data: cannot skip without inflating
        }
        pos = pos + 30 + nlen as usize + xlen as usize + csize as usize;
        if data.get(pos..pos + 4) == Some(b"PK\x07\x08") {
            pos += 16;
        }
    }
    out
}

/// A zip LZMA member (method 14: a 2-byte version, a 2-byte properties length, the 5 property
/// bytes, then the raw stream) rewritten as the `.lzma` stream lzma-rs reads: properties, then
/// the unpacked size (unknown when flag bit 1 says an end marker closes the stream).
fn lzma_alone_header(packed: &[u8], flags: u16, unpacked: u64) -> Option<Vec<u8>> {
    let props_len = u16::from_le_bytes([*packed.get(2)?, *packed.get(3)?]) as usize;
    let props = packed.get(4..4 + 5)?;
    let stream = packed.get(4 + props_len..)?;
    let mut out = Vec::with_capacity(13 + stream.len());
    out.extend_from_slice(props);
    if flags & 0x0002 != 0 {
        out.extend_from_slice(&[0xff; 8]);
    } else {
        out.extend_from_slice(&unpacked.to_le_bytes());
    }
    out.extend_from_slice(stream);
    Some(out)
}

/// A member's name as Python's zipfile reads it: cut at the first NUL (`config.json\0x` is
/// `config.json` to keras).
fn member_name(raw: &[u8]) -> String {
    let cut = raw.iter().position(|&b| b == 0).map_or(raw, |n| &raw[..n]);
    String::from_utf8_lossy(cut).into_owned()
}
