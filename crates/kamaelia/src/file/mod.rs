//! Kamaelia.File: reading files into a system — [`RateControlledFileReader`].

mod rate_controlled_file_reader;
mod token_bucket;

pub(crate) use token_bucket::TokenBucket;

pub use rate_controlled_file_reader::{
    FileReaderError, RateControlledFileReader, SentCounter, DEFAULT_RATE, DEFAULT_READ_SIZE,
    MAX_CHUNK_SIZE,
};
