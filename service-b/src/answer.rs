//! B's side of the answer decoder: A's answers are read with the runtime's
//! bounded decoder (`service_runtime::answer`, shared with A's proxy mode),
//! which says what failed as facts; `classify.rs` tells them as A's doing.

pub use service_runtime::answer::{cut, read_answer, Answer, ExactStatus, ReadBuf};
