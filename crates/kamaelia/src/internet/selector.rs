//! The "selector" service: which tokio runtime drives socket I/O.

use axon::Registry;

/// The registry name the network components look the service up by, as in Kamaelia.
pub const SELECTOR_SERVICE: &str = "selector";

/// Kamaelia's selector service, here: the handle of the tokio runtime whose reactor drives the
/// sockets. TcpClient and TcpServer create their sockets on it, so a program can put all of
/// its sockets on a runtime of its choosing by registering one before activating them.
///
/// ```
/// use kamaelia::internet::Selector;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = axon::Registry::new();
/// let io_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
/// Selector::install(&registry, io_runtime.handle().clone()).unwrap();
/// let (selector, created) = Selector::get_or_create(&registry).unwrap();
/// assert!(!created);
/// # drop(selector);
/// # io_runtime.shutdown_background();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Selector {
    handle: tokio::runtime::Handle,
}

impl Selector {
    /// Registers `handle` as the selector service.
    pub fn install(
        registry: &Registry,
        handle: tokio::runtime::Handle,
    ) -> Result<(), axon::RegistryError> {
        registry.register(SELECTOR_SERVICE, Selector { handle })
    }

    /// The registered selector, or a new one on the current runtime, registered first
    /// (Kamaelia's `getSelectorServices`). The flag says whether this call created it.
    ///
    /// Must be called from within a tokio runtime.
    pub fn get_or_create(
        registry: &Registry,
    ) -> Result<(std::sync::Arc<Selector>, bool), axon::RegistryError> {
        registry.get_or_register(SELECTOR_SERVICE, || Selector {
            handle: tokio::runtime::Handle::current(),
        })
    }

    /// The runtime handle.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}
