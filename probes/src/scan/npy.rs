//! `.npy` arrays: the header is a Python dict literal; an object dtype means the data is a
//! pickle that `numpy.load(allow_pickle=True)` runs, so it goes to the pickle VM.

use crate::finding::{Category, Finding, Severity};
use crate::pickle;

use super::Ctx;

pub(crate) const MAGIC: &[u8] = b"\x93NUMPY";

/// Header bytes read: numpy itself refuses headers past 10 000 bytes by default.
const MAX_HEADER: usize = 1 << 20;

pub(crate) fn scan(ctx: &mut Ctx, data: &[u8], loc: &str) -> &'static str {
    let bad = |ctx: &mut Ctx, why: String| {
        ctx.push(
            Finding::new(
                "numpy.malformed",
                Severity::Medium,
                Category::Integrity,
                why,
            )
            .at(loc.to_string()),
        );
        "numpy"
    };
    let Some(&major) = data.get(6) else {
        return bad(ctx, "truncated .npy preamble".into());
    };
    let (hlen, hstart) = match major {
        1 => match data.get(8..10) {
            Some(b) => (u16::from_le_bytes([b[0], b[1]]) as usize, 10),
            None => return bad(ctx, "truncated .npy preamble".into()),
        },
        2 | 3 => match data.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => return bad(ctx, "truncated .npy preamble".into()),
        },
        v => return bad(ctx, format!("unknown .npy version {v}")),
    };
    if hlen > MAX_HEADER {
        return bad(ctx, format!("header of {hlen} bytes"));
    }
    let Some(header) = data.get(hstart..hstart + hlen) else {
        return bad(ctx, "header runs past the end of the file".into());
    };
    let header = String::from_utf8_lossy(header);
    let descr = header
        .split_once("'descr':")
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or_default();
    // The object dtype is `'|O'` (or `'O'`); a structured dtype lists fields, any of which may
    // be an object field.
    let descr_value: String = if descr.starts_with('[') {
        descr.chars().take_while(|&c| c != ']').collect()
    } else {
        descr
            .chars()
            .skip(1)
            .take_while(|&c| c != '\'' && c != '"')
            .collect()
    };
    let object = descr_value.contains("|O") || descr_value == "O" || descr_value.contains("'O'");
    if object {
        let start = hstart + hlen;
        ctx.push(
            Finding::new(
                "numpy.object-array",
                Severity::Medium,
                Category::Static,
                "object array: its data is a pickle, run by numpy.load(allow_pickle=True)",
            )
            .at(format!("{loc}@{start}")),
        );
        let scan = pickle::scan_from(data, start, loc, &pickle::Limits::default());
        ctx.findings.extend(scan.findings);
        if !scan.recognized && start < data.len() {
            ctx.push(
                Finding::new(
                    "numpy.malformed",
                    Severity::Medium,
                    Category::Integrity,
                    "object array whose data is not a pickle",
                )
                .at(format!("{loc}@{start}")),
            );
        }
    }
    "numpy"
}
