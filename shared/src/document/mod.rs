//! Documents larger than one SSM parameter: the configuration, the records and the run
//! manifests at 1,000 services. A document is stored at a head parameter, inline when it fits,
//! else as parts (`format`, pure); `store` reads and writes them through the ports.

pub mod format;
pub mod store;

pub use format::{part_name, DocumentError, Head, MAX_DOCUMENT_BYTES, MAX_PARTS, PART_BYTES};
pub use store::{read, read_history, resolve, write};
