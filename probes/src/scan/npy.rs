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
    let (hlen, hstart): (usize, usize) = match major {
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
        // numpy.load(allow_pickle=True) lifts its own header bound: what follows may still be
        // the pickle it runs.
        if let Some(rest) = hstart.checked_add(hlen).filter(|&s| s < data.len()) {
            scan_if_code(ctx, data, rest, loc);
        }
        return bad(ctx, format!("header of {hlen} bytes"));
    }
    let Some(header) = data.get(hstart..hstart + hlen) else {
        return bad(ctx, "header runs past the end of the file".into());
    };
    let header = String::from_utf8_lossy(header);
    let start = hstart + hlen;
    // numpy reads the header with ast.literal_eval: either quote, spaces around the colon, and
    // any spelling of the object type ('|O', 'O', 'O8', 'object', a field of a structured type).
    // ast.literal_eval keeps the last of two `descr` keys, a reader of the text the first:
    // either naming the object type counts. Adjacent literals are one string to Python
    // (`'de' 'scr'`), so they are joined first.
    let header = join_adjacent_literals(&header);
    let (first, last) = (descr_value(&header, false), descr_value(&header, true));
    // An escape in the header can spell a second `descr` key this reader does not see
    // (`'\x64escr'`); numpy never writes one.
    let object = header.contains('\\')
        || (first.is_none() && last.is_none())
        || first.as_deref().is_some_and(has_object_type)
        || last.as_deref().is_some_and(has_object_type);
    if !object {
        // Under a header this reader takes for another type, the data's imports are still
        // reported if they name code.
        scan_if_code(ctx, data, start, loc);
    }
    if object {
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

/// Runs the pickle VM on `data` from `start` and keeps its findings only if the bytes import
/// code by real names (numeric array bytes then stay clean).
fn scan_if_code(ctx: &mut Ctx, data: &[u8], start: usize, loc: &str) {
    let scan = pickle::scan_from(data, start, loc, &pickle::Limits::default());
    if scan.names_code() {
        ctx.findings.extend(scan.findings);
    }
}

/// The header with every quote made `'` and adjacent string literals joined (`'de' "scr"` is
/// `'descr'` to Python's parser).
fn join_adjacent_literals(header: &str) -> String {
    let single = header.replace('"', "'");
    let mut out = String::with_capacity(single.len());
    let mut chars = single.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let rest: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
            let after = chars.clone().nth(rest.chars().count());
            if after == Some('\'') {
                // A literal closes and the next opens: drop both quotes and the space between.
                for _ in 0..=rest.chars().count() {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The value of the header's `descr` key, as written (a quoted string or a bracketed list).
fn descr_value(header: &str, last: bool) -> Option<String> {
    let found = ["'descr'", "\"descr\""].iter().filter_map(|k| {
        if last {
            header.rfind(k)
        } else {
            header.find(k)
        }
        .map(|i| i + k.len())
    });
    let at = if last { found.max()? } else { found.min()? };
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut chars = rest.chars();
    match chars.next()? {
        q @ ('\'' | '"') => Some(chars.take_while(|&c| c != q).collect()),
        '[' => {
            let mut depth = 1;
            let body: String = chars
                .take_while(|&c| {
                    match c {
                        '[' | '(' => depth += 1,
                        ']' | ')' => depth -= 1,
                        _ => {}
                    }
                    depth > 0
                })
                .collect();
            Some(body)
        }
        _ => None,
    }
}

/// Whether a dtype spelling names the object type anywhere: `O`, `|O`, `O8`, `object`, or a
/// structured type with such a field (each quoted type in the list is checked).
fn has_object_type(descr: &str) -> bool {
    // One type: byte order, an optional subarray shape `(2,)`, then `O`, `O8` or `object`; a
    // string of comma-separated types (`'f4,O'`) is a structured type of them.
    let simple = |t: &str| {
        let t = t.trim().trim_start_matches(['|', '<', '>', '=']);
        let t = match t.strip_prefix('(') {
            Some(rest) => rest.split_once(')').map_or(rest, |(_, ty)| ty).trim(),
            None => t,
        };
        let t = t.trim_start_matches(['|', '<', '>', '=']);
        t == "object" || (t.starts_with('O') && t[1..].bytes().all(|b| b.is_ascii_digit()))
    };
    // Commas inside a shape `(2,3)` do not separate types.
    let mut depth = 0i32;
    let parts = descr.split(|c| {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        c == ',' && depth == 0
    });
    if parts.into_iter().any(simple) {
        return true;
    }
    // Quoted strings inside a structured type: every other one is a field name, but a field
    // named 'O' only makes this conservative.
    descr.split(['\'', '"']).skip(1).step_by(2).any(simple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_dtype_spellings_are_seen() {
        for header in [
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            "{\"descr\": \"|O\", \"fortran_order\": False, \"shape\": (1,)}",
            "{'descr' : '|O', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': 'object', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': 'O8', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': 'f4,O', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '(2,)O', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': [('a', '<f4'), (\"b\", \"O\")], 'fortran_order': False, 'shape': (1,), }",
        ] {
            let d = descr_value(header, false);
            assert!(d.as_deref().is_some_and(has_object_type), "{header}: {d:?}");
        }
        for header in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (1,), }",
        ] {
            let d = descr_value(header, false);
            assert!(
                d.as_deref().is_some_and(|d| !has_object_type(d)),
                "{header}: {d:?}"
            );
        }
        // ast.literal_eval keeps the last of two keys.
        let twice = "{'descr': '<f4', 'descr': '|O', 'fortran_order': False, 'shape': (1,), }";
        assert_eq!(descr_value(twice, false).as_deref(), Some("<f4"));
        assert_eq!(descr_value(twice, true).as_deref(), Some("|O"));
        let joined = join_adjacent_literals("{'descr': '<f4', 'de' \"scr\": '|O', }");
        assert_eq!(descr_value(&joined, true).as_deref(), Some("|O"));
    }
}
