//! Kamaelia components on the axon runtime.
pub mod chassis;
pub mod file;
pub mod internet;
pub mod util;

pub use axon;
pub use chassis::{Graphline, Pipeline};
pub use file::{FileReaderError, RateControlledFileReader, SentCounter};
pub use internet::{ConnectedSocketAdapter, MakeSsl, SslReady, TcpClient, TcpError, TcpServer};
pub use util::{ConsoleEchoer, ConsoleError, ConsoleReader, OneShot, OneShotError, ReadMode};
