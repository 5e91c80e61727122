//! Reading and writing documents in "tagrelay parts/1" through the ports. Parts are fetched by
//! exact version (`name:version`, ten per GetParameters call) and are immutable once written, so
//! a document read once is kept for the life of the process: a warm function reads a record's
//! parts once, however often it looks at the history again.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::format::{head_value, join, needs_parts, parse_head, part_name, split, split_selector, DocumentError};
use crate::ports::{ParameterHistory, ParameterStore, ParameterVersion, RecordStore};

/// The most document text the process keeps (bytes); beyond it the cache starts again empty.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Default)]
struct Cache {
    documents: HashMap<String, String>,
    bytes: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn cached(head_value: &str) -> Option<String> {
    cache().lock().ok().and_then(|cache| cache.documents.get(head_value).cloned())
}

fn remember(head_value: &str, document: &str) {
    let Ok(mut cache) = cache().lock() else { return };
    let size = head_value.len() + document.len();
    if cache.bytes + size > CACHE_BYTES {
        cache.documents.clear();
        cache.bytes = 0;
    }
    if size <= CACHE_BYTES && cache.documents.insert(head_value.to_owned(), document.to_owned()).is_none() {
        cache.bytes += size;
    }
}

/// The document a head parameter's `value` stands for: the value itself, or its parts joined.
pub async fn resolve<S: ParameterStore>(store: &S, head: &str, value: &str) -> Result<String, DocumentError> {
    let Some(parsed) = parse_head(head, value)? else { return Ok(value.to_owned()) };
    if let Some(document) = cached(value) {
        return Ok(document);
    }
    let found = store
        .get_parameters(&parsed.parts)
        .await
        .map_err(|source| DocumentError::Aws { head: head.to_owned(), source })?;
    let mut values = Vec::with_capacity(parsed.parts.len());
    for part in &parsed.parts {
        // parse_head checked every selector.
        let Some((name, version)) = split_selector(part) else { continue };
        match found.get(name) {
            Some(stored) if stored.version == version => values.push(stored.value.as_str()),
            _ => return Err(DocumentError::PartMissing { head: head.to_owned(), part: part.clone() }),
        }
    }
    let document = join(head, &parsed, &values)?;
    remember(value, &document);
    Ok(document)
}

/// The document at `head` now (`selector`: `head` or `head:version`); `None` when the parameter
/// does not exist.
pub async fn read<S: ParameterStore>(store: &S, head: &str, selector: &str) -> Result<Option<String>, DocumentError> {
    let found = store
        .get_parameters(&[selector.to_owned()])
        .await
        .map_err(|source| DocumentError::Aws { head: head.to_owned(), source })?;
    match found.get(head) {
        Some(stored) => resolve(store, head, &stored.value).await.map(Some),
        None => Ok(None),
    }
}

/// `head`'s history (oldest first, as SSM keeps it) with every version's value resolved to its
/// document. A version whose parts are gone (SSM keeps each part's newest 100 versions) keeps
/// its head value, which no record reader takes for a record: it is skipped like a hand edit.
pub async fn read_history<S>(store: &S, head: &str) -> Result<Vec<ParameterVersion>, crate::ports::AwsError>
where
    S: ParameterStore + ParameterHistory,
{
    let mut history = store.parameter_history(head).await?;
    for version in &mut history {
        match resolve(store, head, &version.value).await {
            Ok(document) => version.value = document,
            Err(DocumentError::Aws { source, .. }) => return Err(source),
            Err(err) => {
                tracing::warn!(parameter = head, version = version.version, error = %err, "record version unreadable; skipped");
            }
        }
    }
    Ok(history)
}

/// Writes `document` as `head`'s next version: inline when it fits, else its parts first and
/// then the head naming their versions, so a head never names a part that is not written. An
/// interrupted write leaves at most unused part versions behind. Returns the head's version.
///
/// A part whose newest version already holds its text is named at that version, not written
/// again: `PutParameter` is SSM's scarcest rate (3 a second by default), and a release of one
/// service at 1,000 changes one or two of a record's parts (see `split`).
pub async fn write<S: RecordStore + ParameterStore>(
    store: &S,
    head: &str,
    document: &str,
    description: &str,
) -> Result<i64, DocumentError> {
    let aws = |source| DocumentError::Aws { head: head.to_owned(), source };
    if !needs_parts(document) {
        return store.put_record(head, document, description).await.map_err(aws);
    }
    let parts = split(head, document)?;
    let count = parts.len();
    let names: Vec<String> = (0..count).map(|index| part_name(head, index)).collect();
    let newest = store.get_parameters(&names).await.map_err(aws)?;
    let mut written = Vec::with_capacity(count);
    for (index, (part, name)) in parts.iter().zip(names).enumerate() {
        if let Some(stored) = newest.get(&name).filter(|stored| stored.value == *part) {
            written.push((name, stored.version));
            continue;
        }
        let part_description = format!("tagrelay: part {} of {count} of {head}", index + 1);
        let version = store.put_record(&name, part, &part_description).await.map_err(aws)?;
        written.push((name, version));
    }
    store.put_record(head, &head_value(document, &written), description).await.map_err(aws)
}
