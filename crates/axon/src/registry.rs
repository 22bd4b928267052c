//! Named services: Kamaelia's Coordinating Assistant Tracker.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

type Service = Arc<dyn Any + Send + Sync>;

/// A registry of named services, one per [`crate::Scheduler`].
///
/// A service is any shared value: a handle, an outbox to a component's inbox, a runtime. The
/// `"selector"` service of the network components is the tokio runtime handle that drives
/// socket I/O.
///
/// ```
/// let reg = axon::Registry::new();
/// reg.register("answer", 42_u32).unwrap();
/// assert_eq!(*reg.lookup::<u32>("answer").unwrap(), 42);
/// assert!(reg.register("answer", 7_u32).is_err());
/// reg.deregister("answer").unwrap();
/// assert!(reg.lookup::<u32>("answer").is_err());
/// ```
#[derive(Default)]
pub struct Registry {
    services: Mutex<HashMap<String, Service>>,
}

/// Why a registry call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// `register` with a name that is taken (Kamaelia's `ServiceAlreadyExists`).
    AlreadyExists(String),
    /// `lookup` or `deregister` of a name that is not registered.
    Missing(String),
    /// `lookup` asked for a type other than the one registered.
    WrongType {
        /// The service name.
        name: String,
        /// The type asked for.
        wanted: &'static str,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::AlreadyExists(n) => write!(f, "a service named {n:?} already exists"),
            RegistryError::Missing(n) => write!(f, "no service named {n:?}"),
            RegistryError::WrongType { name, wanted } => {
                write!(f, "the service {name:?} is not a {wanted}")
            }
        }
    }
}

impl std::error::Error for RegistryError {}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Service>> {
        // No code panics while holding this lock.
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `service` under `name`.
    pub fn register<T: Any + Send + Sync>(
        &self,
        name: &str,
        service: T,
    ) -> Result<(), RegistryError> {
        let mut m = self.map();
        if m.contains_key(name) {
            return Err(RegistryError::AlreadyExists(name.to_string()));
        }
        m.insert(name.to_string(), Arc::new(service));
        Ok(())
    }

    /// The service registered under `name`, as a `T`.
    pub fn lookup<T: Any + Send + Sync>(&self, name: &str) -> Result<Arc<T>, RegistryError> {
        let s = self
            .map()
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::Missing(name.to_string()))?;
        s.downcast::<T>().map_err(|_| RegistryError::WrongType {
            name: name.to_string(),
            wanted: std::any::type_name::<T>(),
        })
    }

    /// The service under `name`, registering `make()` first if there is none (Kamaelia's
    /// `getSelectorServices`). The second value is true if this call created it.
    pub fn get_or_register<T: Any + Send + Sync>(
        &self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<(Arc<T>, bool), RegistryError> {
        let mut m = self.map();
        let (s, created) = match m.get(name) {
            Some(s) => (s.clone(), false),
            None => {
                let s: Service = Arc::new(make());
                m.insert(name.to_string(), s.clone());
                (s, true)
            }
        };
        drop(m);
        let s = s.downcast::<T>().map_err(|_| RegistryError::WrongType {
            name: name.to_string(),
            wanted: std::any::type_name::<T>(),
        })?;
        Ok((s, created))
    }

    /// Removes the service under `name`.
    pub fn deregister(&self, name: &str) -> Result<(), RegistryError> {
        self.map()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| RegistryError::Missing(name.to_string()))
    }

    /// The names registered now, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map().keys().cloned().collect();
        v.sort();
        v
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("services", &self.names())
            .finish()
    }
}
