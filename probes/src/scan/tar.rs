//! Tar, as Python's tarfile reads it for legacy torch checkpoints (`sys_info_pickle`,
//! `pickle`, `tensors`, `storages`): ustar, pax and GNU long names, every regular member routed
//! by content. Members are slices of the input, so nothing is allocated from a declared size.

use crate::finding::{Category, Finding, Severity};

use super::{Ctx, MAX_ARCHIVE_ENTRIES, member_loc};

const BLOCK: usize = 512;

/// Python's tarfile accepts the header sum with bytes read unsigned or signed (old tars).
fn checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = octal(&h[148..156]) else {
        return false;
    };
    let field = |i: usize| (148..156).contains(&i);
    let unsigned: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| if field(i) { 32 } else { b as i64 })
        .sum();
    let signed: i64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| if field(i) { 32 } else { b as i8 as i64 })
        .sum();
    stored as i64 == unsigned || stored as i64 == signed
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256 for sizes past 8 GiB.
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

pub(crate) fn sniff(data: &[u8]) -> bool {
    data.len() >= BLOCK
        && (data[257..262] == *b"ustar" || (data[0] != 0 && checksum_ok(&data[..BLOCK])))
}

pub(crate) fn scan(ctx: &mut Ctx, data: &[u8], loc: &str, depth: u8) -> &'static str {
    let mut pos = 0usize;
    let mut names = Vec::new();
    let mut long_name: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    let mut count = 0usize;
    while pos + BLOCK <= data.len() {
        let h = &data[pos..pos + BLOCK];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        if !checksum_ok(h) {
            ctx.push(
                Finding::new(
                    "tar.malformed",
                    Severity::Medium,
                    Category::Integrity,
                    format!("bad tar header checksum at byte {pos}; the rest is not read"),
                )
                .at(loc.to_string()),
            );
            break;
        }
        count += 1;
        if count > MAX_ARCHIVE_ENTRIES {
            ctx.push(
                Finding::new(
                    "archive.limit-exceeded",
                    Severity::High,
                    Category::Resource,
                    format!("more than {MAX_ARCHIVE_ENTRIES} entries; the rest are not scanned"),
                )
                .at(loc.to_string()),
            );
            break;
        }
        let Some(size) = octal(&h[124..136]) else {
            ctx.push(
                Finding::new(
                    "tar.malformed",
                    Severity::Medium,
                    Category::Integrity,
                    "unreadable member size",
                )
                .at(loc.to_string()),
            );
            break;
        };
        let kind = h[156];
        let mut name = cstr(&h[..100]);
        if &h[257..262] == b"ustar" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(n) = long_name.take() {
            name = n;
        }
        // A pax `size=` record overrides the header's size of the member it precedes.
        let size = pax_size.take().unwrap_or(size);
        // tarfile skips data only after regular members and types it does not know: links,
        // devices, folders and FIFOs (and a V7 regular member named like a folder) have none,
        // whatever size their header declares.
        let size = if matches!(kind, b'1'..=b'6') || (kind == 0 && name.ends_with('/')) {
            0
        } else {
            size
        };
        let start = pos + BLOCK;
        let end = start as u64 + size;
        if end > data.len() as u64 {
            ctx.push(
                Finding::new(
                    "tar.malformed",
                    Severity::Medium,
                    Category::Integrity,
                    format!("member {name:?} runs past the end of the file"),
                )
                .at(loc.to_string()),
            );
            break;
        }
        let body = &data[start..end as usize];
        match kind {
            b'0' | 0 | b'7' | b'S' => {
                let mloc = member_loc(loc, depth, &name);
                ctx.route(body, &mloc, depth + 1);
                names.push(name);
            }
            b'L' => long_name = Some(cstr(body)),
            b'x' => {
                // pax records: "<len> path=<name>\n"
                let text = String::from_utf8_lossy(body);
                for rec in text.split('\n') {
                    if let Some((_, kv)) = rec.split_once(' ') {
                        if let Some(p) = kv.strip_prefix("path=") {
                            long_name = Some(p.to_string());
                        } else if let Some(n) = kv.strip_prefix("size=") {
                            pax_size = n.trim().parse().ok();
                        }
                    }
                }
            }
            b'1' | b'2' => {
                let target = cstr(&h[157..257]);
                if target.starts_with('/') || target.split('/').any(|c| c == "..") {
                    ctx.push(
                        Finding::new(
                            "tar.link-escape",
                            Severity::High,
                            Category::Static,
                            "a link member points outside the archive",
                        )
                        .at(member_loc(loc, depth, &name))
                        .with_evidence(target),
                    );
                }
            }
            // Python's tarfile reads a member of a type it does not know as a regular file
            // (`extractfile` hands out its data), so torch.load does too.
            b'3' | b'4' | b'5' | b'6' | b'K' | b'g' | b'X' => {}
            _ => {
                let mloc = member_loc(loc, depth, &name);
                ctx.route(body, &mloc, depth + 1);
                names.push(name);
            }
        }
        let padded = (size as usize).div_ceil(BLOCK) * BLOCK;
        pos = start + padded;
    }
    let base = |n: &String| n.rsplit('/').next().unwrap_or(n).to_string();
    let bases: Vec<String> = names.iter().map(base).collect();
    if bases.iter().any(|b| b == "pickle") && bases.iter().any(|b| b == "storages") {
        "pytorch-tar"
    } else {
        "tar"
    }
}
