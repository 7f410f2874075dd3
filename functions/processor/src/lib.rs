//! The processor: canonical events from the `events` topic become changes to the unified customer
//! record, each with its audit entry, in one DynamoDB transaction; changes are announced as
//! `customer.updated` on the `updates` topic.

pub mod config;
pub mod handler;
pub mod process;

/// The allocator of everything that links the processor (the Lambda, its tests and benchmarks).
/// Applying an event allocates and frees hundreds of small blocks (the record's JSON read and
/// written again, the diff, the audit entry, the transaction's items): with glibc's malloc a third
/// of the time went to malloc and free; with mimalloc the benchmark's path takes a quarter less time
/// (docs/decisions/0016-mimalloc-for-the-processor.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
