//! The "tagrelay parts/1" format, pure.
//!
//! A document (UTF-8 text) lives at a head parameter `H`. When it fits one parameter the head
//! holds it as is. Otherwise it is cut into parts stored at `H-part/0`, `H-part/1`, … and the head
//! holds `{"tagrelay_parts":{"sha256":"<hex>","parts":["H-part/0:<version>", …]}}`: each part by
//! the exact version written, so a head version always names the bytes it was written with,
//! even after the parts are written again for a later document, and the SHA-256 of the whole
//! document catches a part edited by hand. infra/ writes the configuration in this format, the
//! functions write records and run manifests in it, and the buildspec reads run manifests.
//!
//! Parts end with `-part/<i>` rather than sitting under `H/`: an EventBridge wildcard on the head
//! names (`/tagrelay/*/verified`) then never matches a part, and SSM is never asked to hold a
//! parameter and a path of the same name.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The most one part holds, in bytes: an Intelligent-Tiering parameter takes 8 KB (8,192 bytes;
/// it is stored in the Advanced tier above 4 KB). A margin below it, so an emulator or a proxy
/// that counts differently never refuses a part.
pub const PART_BYTES: usize = 8_000;
/// Parts per document: bounds what one read fetches (10 parts per GetParameters call).
pub const MAX_PARTS: usize = 100;
/// The largest document: 800 KB.
pub const MAX_DOCUMENT_BYTES: usize = PART_BYTES * MAX_PARTS;
/// A document this size or smaller is kept in the head itself.
pub const INLINE_BYTES: usize = PART_BYTES;

const HEAD_KEY: &str = "tagrelay_parts";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    #[error("{head}: the document is {bytes} bytes; tagrelay stores at most {MAX_DOCUMENT_BYTES} ({MAX_PARTS} parts of {PART_BYTES})")]
    TooLarge { head: String, bytes: usize },
    #[error("{head}: tagrelay_parts.{field}: {message}")]
    BadHead { head: String, field: String, message: String },
    #[error("{head}: part {part} is missing (deleted by hand, or older than the newest 100 versions SSM keeps)")]
    PartMissing { head: String, part: String },
    #[error("{head}: the parts do not add up to the document the head names (SHA-256 {actual}, expected {expected}): a part was changed by hand")]
    Corrupt { head: String, expected: String, actual: String },
    #[error("{head}: {source}")]
    Aws { head: String, source: crate::ports::AwsError },
}

/// What a head parameter holds when the document is in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// SHA-256 of the whole document, lowercase hex.
    pub sha256: String,
    /// `name:version` of each part, in order.
    pub parts: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadValue {
    tagrelay_parts: Head,
}

/// The name of part `index` of the document at `head`.
pub fn part_name(head: &str, index: usize) -> String {
    format!("{head}-part/{index}")
}

/// Whether `document` must be stored in parts.
pub fn needs_parts(document: &str) -> bool {
    document.len() > INLINE_BYTES
}

/// About this many parts a document is cut into by content (fewer when they would exceed
/// `PART_BYTES`' share, more when a part reaches `PART_BYTES` first).
const PARTS_BY_CONTENT: usize = 24;
/// Bytes of the key after a comma that decide whether it ends a part.
const ANCHOR_BYTES: usize = 48;
/// Commas this deep or less separate entries (`{"tags":{"a":"1","b":"2"}}`: depth 2); deeper
/// ones sit inside an entry, before keys that repeat in every entry (`"value"`).
const ENTRY_DEPTH: usize = 2;

/// `document` cut into parts of at most `PART_BYTES` bytes, each ending on a character boundary.
///
/// Where to cut is decided by the content (between two entries, by a hash of the key that
/// follows), not by offsets: a change to one entry, even one that changes its length, changes
/// the part that holds it and leaves the others' text as it was, so `store::write` writes only
/// that part again. Any cut is valid (readers concatenate), so this is the writer's choice alone.
pub fn split(head: &str, document: &str) -> Result<Vec<String>, DocumentError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { head: head.to_owned(), bytes: document.len() });
    }
    let points = entry_boundaries(document);
    let parts = cut_all(document, |start| cut_by_content(document, &points, start));
    // Parts cut by content average ~5 KB: a document near the maximum is cut full instead; and
    // cuts on character boundaries can still need more than MAX_PARTS (multi-byte text).
    let parts = if parts.len() <= MAX_PARTS { parts } else { cut_all(document, |start| cut_full(document, start)) };
    if parts.len() > MAX_PARTS {
        return Err(DocumentError::TooLarge { head: head.to_owned(), bytes: document.len() });
    }
    Ok(parts)
}

fn cut_all(document: &str, cut: impl Fn(usize) -> usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < document.len() {
        let end = if document.len() - start <= PART_BYTES { document.len() } else { cut(start) };
        parts.push(document[start..end].to_owned());
        start = end;
    }
    parts
}

/// The last character boundary at most `PART_BYTES` after `start`.
fn cut_full(document: &str, start: usize) -> usize {
    let mut limit = start + PART_BYTES;
    while !document.is_char_boundary(limit) {
        limit -= 1;
    }
    limit
}

/// Where the part starting at `start` ends (more than `PART_BYTES` remain): the first anchored
/// entry boundary after it, else the last entry boundary, else the last character boundary.
fn cut_by_content(document: &str, points: &[(usize, bool)], start: usize) -> usize {
    let limit = cut_full(document, start);
    let within =
        &points[points.partition_point(|(at, _)| *at <= start)..points.partition_point(|(at, _)| *at <= limit)];
    within.iter().find(|(_, anchored)| *anchored).or(within.last()).map_or(limit, |(at, _)| *at)
}

/// The position just after each comma between entries (outside strings, at most `ENTRY_DEPTH`
/// deep), and whether it ends a part: one in `k` by the hash of the key that follows, `k` a
/// power of two from the number of entries alone (never from their bytes), so that editing a
/// value moves no cut. A document that is not JSON has fewer or none; it is cut all the same.
fn entry_boundaries(document: &str) -> Vec<(usize, bool)> {
    let bytes = document.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut points = Vec::new();
    for (at, byte) in bytes.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            // After an ASCII comma: a character boundary.
            b',' if depth <= ENTRY_DEPTH => points.push(at + 1),
            _ => {}
        }
    }
    let per_part = (points.len() / PARTS_BY_CONTENT).max(1);
    // The largest power of two not above it.
    let one_in = 1u64 << per_part.ilog2();
    points.into_iter().map(|at| (at, anchor(&bytes[at..]).is_multiple_of(one_in))).collect()
}

/// A hash of the key that follows a comma (up to its `:`, at most `ANCHOR_BYTES`), so a value
/// edited in place never moves a cut: FNV-1a, then MurmurHash3's 64-bit finaliser (FNV's bits
/// alone are too alike for keys that differ in their last characters).
fn anchor(rest: &[u8]) -> u64 {
    let key = rest.iter().take(ANCHOR_BYTES).take_while(|b| **b != b':');
    let mut hash = key.fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The head's value for a document written as parts at these versions.
pub fn head_value(document: &str, parts: &[(String, i64)]) -> String {
    let head = Head {
        sha256: sha256_hex(document),
        parts: parts.iter().map(|(name, version)| format!("{name}:{version}")).collect(),
    };
    // Two strings: serialising cannot fail.
    serde_json::to_string(&HeadValue { tagrelay_parts: head }).unwrap_or_default()
}

/// The parts a head value names; `None` when the value is the document itself. A value that
/// claims to be a head (its one key is `tagrelay_parts`) but is not a valid one is an error.
pub fn parse_head(head: &str, value: &str) -> Result<Option<Head>, DocumentError> {
    // Cheap test first: every document tagrelay stores is JSON, most are not heads.
    if !value.trim_start().starts_with('{') || !value.contains(HEAD_KEY) {
        return Ok(None);
    }
    let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value) else {
        return Ok(None);
    };
    if object.len() != 1 || !object.contains_key(HEAD_KEY) {
        return Ok(None);
    }
    let bad = |field: &str, message: String| DocumentError::BadHead {
        head: head.to_owned(),
        field: field.to_owned(),
        message,
    };
    let parsed: HeadValue = serde_json::from_str(value).map_err(|err| bad("*", err.to_string()))?;
    let Head { sha256, parts } = &parsed.tagrelay_parts;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(bad("sha256", format!("{sha256:?} is not 64 lowercase hex digits")));
    }
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(bad("parts", format!("{} parts; expected 1 to {MAX_PARTS}", parts.len())));
    }
    for (index, part) in parts.iter().enumerate() {
        let Some((name, _)) = split_selector(part) else {
            return Err(bad(&format!("parts[{index}]"), format!("{part:?} is not name:version")));
        };
        // Only the head's own parts: a hand-edited head cannot make a reader fetch another
        // parameter.
        if name != part_name(head, index) {
            return Err(bad(&format!("parts[{index}]"), format!("{name:?} is not {:?}", part_name(head, index))));
        }
    }
    Ok(Some(parsed.tagrelay_parts))
}

/// `name:version` → (name, version).
pub fn split_selector(part: &str) -> Option<(&str, i64)> {
    let (name, version) = part.rsplit_once(':')?;
    let version: i64 = version.parse().ok()?;
    (!name.is_empty() && version >= 1).then_some((name, version))
}

/// The document from its parts' values (in the head's order), checked against the head's hash.
pub fn join(head_name: &str, head: &Head, values: &[&str]) -> Result<String, DocumentError> {
    let document: String = values.concat();
    let actual = sha256_hex(&document);
    if actual != head.sha256 {
        return Err(DocumentError::Corrupt { head: head_name.to_owned(), expected: head.sha256.clone(), actual });
    }
    Ok(document)
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_document_stays_inline_and_a_large_one_is_cut_on_character_boundaries() {
        assert!(!needs_parts(&"x".repeat(INLINE_BYTES)));
        assert!(needs_parts(&"x".repeat(INLINE_BYTES + 1)));
        // 3-byte characters: 8,000 is not a multiple of 3, so cuts fall before a boundary.
        let document = "€".repeat(6_000);
        let parts = split("/h", &document).expect("fits");
        assert_eq!(parts.len(), 3);
        assert!(parts[..2].iter().all(|p| p.len() <= PART_BYTES && p.len() > PART_BYTES - 3));
        assert_eq!(parts.concat(), document);
        assert_eq!(split("/h", "").expect("empty"), Vec::<String>::new());
    }

    /// A release record's shape: 1,000 services, `"service":"tag"` entries.
    fn record(tags: &[(usize, &str)]) -> String {
        let entry = |i: usize| {
            let tag = tags.iter().find(|(at, _)| *at == i).map_or("1042", |(_, tag)| *tag);
            format!("\"payments-api-{i:04}\":\"{tag}\"")
        };
        format!("{{\"tags\":{{{}}}}}", (0..1_000).map(entry).collect::<Vec<_>>().join(","))
    }

    #[test]
    fn parts_are_cut_by_content_so_an_edited_entry_changes_only_its_part() {
        let before = split("/h", &record(&[])).expect("fits");
        assert!(before.len() >= 4, "{}", before.len());
        assert!(before[..before.len() - 1].iter().all(|p| p.ends_with(',')), "cut between entries");
        assert!(before[..before.len() - 1].iter().all(|p| p.ends_with(',')), "cut between entries");
        // One tag edited in place, one made longer (every later byte moves): each changes the
        // one part that holds it.
        for edit in [(500, "1043"), (500, "1043-hotfix-with-a-longer-tag")] {
            let after = split("/h", &record(&[edit])).expect("fits");
            assert_eq!(after.len(), before.len(), "{edit:?}");
            let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            assert_eq!(changed, 1, "{edit:?}");
            assert_eq!(after.concat(), record(&[edit]));
        }
    }

    #[test]
    fn a_document_beyond_the_part_limit_is_refused_naming_the_head() {
        let err = split("/tagrelay/dev/verified", &"x".repeat(MAX_DOCUMENT_BYTES + 1)).expect_err("too large");
        assert!(err.to_string().starts_with("/tagrelay/dev/verified: the document is 800001 bytes"), "{err}");
        assert_eq!(split("/h", &"x".repeat(MAX_DOCUMENT_BYTES)).expect("the limit fits").len(), MAX_PARTS);
        // Commas everywhere would cut parts of ~5 KB: at the limit they are cut full instead.
        let commas = "ab,".repeat(MAX_DOCUMENT_BYTES / 3);
        let parts = split("/h", &commas).expect("the limit fits");
        assert_eq!((parts.len(), parts.concat() == commas), (MAX_PARTS, true));
        // 3-byte characters up to the limit cannot fill every part to 8,000: refused, not a
        // head no reader accepts.
        let wide = "€".repeat(MAX_DOCUMENT_BYTES / 3);
        assert!(matches!(split("/h", &wide), Err(DocumentError::TooLarge { .. })));
    }

    #[test]
    fn a_head_round_trips_and_checks_the_hash() {
        let document = format!("{{\"a\":\"{}\"}}", "y".repeat(20_000));
        let parts = split("/h", &document).expect("fits");
        let written: Vec<(String, i64)> = (0..parts.len()).map(|i| (part_name("/h", i), 3)).collect();
        let value = head_value(&document, &written);
        let head = parse_head("/h", &value).expect("valid").expect("a head");
        assert_eq!(head.parts, vec!["/h-part/0:3", "/h-part/1:3", "/h-part/2:3"]);
        let values: Vec<&str> = parts.iter().map(String::as_str).collect();
        assert_eq!(join("/h", &head, &values).expect("intact"), document);
        let mut edited = parts.clone();
        edited[1].replace_range(0..1, "z");
        let values: Vec<&str> = edited.iter().map(String::as_str).collect();
        assert!(matches!(join("/h", &head, &values), Err(DocumentError::Corrupt { .. })));
    }

    #[test]
    fn documents_are_not_mistaken_for_heads_and_broken_heads_name_the_field() {
        for inline in ["{\"fingerprint\":\"sha256:ab\"}", "not json", "{\"tagrelay_parts\":1,\"other\":2}", ""] {
            assert!(parse_head("/h", inline).expect(inline).is_none(), "{inline}");
        }
        let cases = [
            (r#"{"tagrelay_parts":{"sha256":"AB","parts":["/h-part/0:1"]}}"#, "tagrelay_parts.sha256"),
            (&format!(r#"{{"tagrelay_parts":{{"sha256":"{}","parts":[]}}}}"#, "a".repeat(64)), "tagrelay_parts.parts"),
            (
                &format!(r#"{{"tagrelay_parts":{{"sha256":"{}","parts":["/h-part/0"]}}}}"#, "a".repeat(64)),
                "tagrelay_parts.parts[0]",
            ),
            (
                &format!(r#"{{"tagrelay_parts":{{"sha256":"{}","parts":["/h-part/0:0"]}}}}"#, "a".repeat(64)),
                "tagrelay_parts.parts[0]",
            ),
            (r#"{"tagrelay_parts":{"sha":"x"}}"#, "tagrelay_parts.*"),
            (
                &format!(r#"{{"tagrelay_parts":{{"sha256":"{}","parts":["/secret:1"]}}}}"#, "a".repeat(64)),
                "tagrelay_parts.parts[0]",
            ),
            (
                &format!(r#"{{"tagrelay_parts":{{"sha256":"{}","parts":["/h-part/1:1"]}}}}"#, "a".repeat(64)),
                "tagrelay_parts.parts[0]",
            ),
        ];
        for (value, field) in cases {
            let err = parse_head("/h", value).expect_err(value);
            assert!(err.to_string().starts_with(&format!("/h: {field}:")), "{value}: {err}");
        }
    }
}
