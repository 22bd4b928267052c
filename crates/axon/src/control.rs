//! The control type every `control` inbox and `signal` outbox carries.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// What travels between `signal` outboxes and `control` inboxes.
///
/// Kamaelia's `producerFinished` and `shutdownMicroprocess` are kept by name. Components add their
/// own notices ([`Control::Notice`], e.g. `SocketShutdown`) and typed errors ([`Control::Error`]).
///
/// The contract (see `docs/semantics.md`, §5): a component's `signal` carries any number of
/// `Error` and `Notice` messages and then exactly one *final* message, `ProducerFinished` or
/// `ShutdownMicroprocess`. A component that receives `Error` or `Notice` on `control` forwards it
/// on `signal` and keeps going; a final message makes it finish and is forwarded last.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Control {
    /// "No more data will come": finish what is queued, then end. Kamaelia's `producerFinished`.
    ProducerFinished {
        /// Optional detail, such as how a connection ended.
        detail: Option<Detail>,
    },
    /// "Stop now": end promptly. Kamaelia's `shutdownMicroprocess`.
    ShutdownMicroprocess {
        /// Optional detail, such as how much queued data was dropped.
        detail: Option<Detail>,
    },
    /// A typed, matchable error; see [`ErrorMessage::downcast_ref`].
    Error(ErrorMessage),
    /// A component-defined message that is neither final nor an error (e.g. `SocketShutdown`).
    Notice(Detail),
}

impl Control {
    /// `ProducerFinished` with no detail.
    pub fn producer_finished() -> Self {
        Control::ProducerFinished { detail: None }
    }

    /// `ShutdownMicroprocess` with no detail.
    pub fn shutdown() -> Self {
        Control::ShutdownMicroprocess { detail: None }
    }

    /// An error message from `component`.
    pub fn error<E>(component: impl Into<Arc<str>>, error: E) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Control::Error(ErrorMessage::new(component, error))
    }

    /// A notice carrying `payload`.
    pub fn notice<P: Payload>(payload: P) -> Self {
        Control::Notice(Detail::new(payload))
    }

    /// True for `ProducerFinished` and `ShutdownMicroprocess`: the messages that end a sender.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Control::ProducerFinished { .. } | Control::ShutdownMicroprocess { .. }
        )
    }

    /// True for `ShutdownMicroprocess`.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Control::ShutdownMicroprocess { .. })
    }

    /// True for `ProducerFinished`.
    pub fn is_producer_finished(&self) -> bool {
        matches!(self, Control::ProducerFinished { .. })
    }

    /// The typed error inside an `Error` message, if it is one and of type `E`.
    pub fn error_ref<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            Control::Error(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The payload of type `P` carried by this message (a notice or a final message's detail).
    pub fn payload<P: 'static>(&self) -> Option<&P> {
        match self {
            Control::Notice(d)
            | Control::ProducerFinished { detail: Some(d) }
            | Control::ShutdownMicroprocess { detail: Some(d) } => d.downcast_ref::<P>(),
            _ => None,
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::ProducerFinished { detail: None } => f.write_str("producer finished"),
            Control::ProducerFinished { detail: Some(d) } => write!(f, "producer finished ({d:?})"),
            Control::ShutdownMicroprocess { detail: None } => f.write_str("shutdown microprocess"),
            Control::ShutdownMicroprocess { detail: Some(d) } => {
                write!(f, "shutdown microprocess ({d:?})")
            }
            Control::Error(e) => write!(f, "error from {}: {}", e.component(), e.error()),
            Control::Notice(d) => write!(f, "notice {d:?}"),
        }
    }
}

/// Anything that can ride in a [`Detail`]: sendable, shareable, printable.
pub trait Payload: Any + fmt::Debug + Send + Sync {}

impl<T: Any + fmt::Debug + Send + Sync> Payload for T {}

/// A shared, type-erased payload that can be recovered with [`Detail::downcast_ref`].
#[derive(Clone)]
pub struct Detail(Arc<dyn Payload>);

impl Detail {
    /// Wraps `payload`.
    pub fn new<P: Payload>(payload: P) -> Self {
        Detail(Arc::new(payload))
    }

    /// The payload as a `P`, if that is its type.
    pub fn downcast_ref<P: 'static>(&self) -> Option<&P> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<P>()
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A typed error travelling on `signal`, with the name of the component it came from.
#[derive(Clone)]
pub struct ErrorMessage {
    component: Arc<str>,
    error: Arc<dyn StdError + Send + Sync>,
}

impl ErrorMessage {
    /// Wraps `error`, raised by `component`.
    pub fn new<E>(component: impl Into<Arc<str>>, error: E) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        ErrorMessage {
            component: component.into(),
            error: Arc::new(error),
        }
    }

    /// Wraps an already shared error.
    pub fn from_arc(
        component: impl Into<Arc<str>>,
        error: Arc<dyn StdError + Send + Sync>,
    ) -> Self {
        ErrorMessage {
            component: component.into(),
            error,
        }
    }

    /// The name of the component that raised it.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The error itself.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }

    /// The error as an `E`, if that is its type.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        let e: &(dyn StdError + 'static) = &*self.error;
        e.downcast_ref::<E>()
    }
}

impl fmt::Debug for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorMessage")
            .field("component", &self.component)
            .field("error", &format_args!("{}", self.error))
            .finish()
    }
}

impl fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Boom;
    impl fmt::Display for Boom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("boom")
        }
    }
    impl StdError for Boom {}

    #[test]
    fn errors_and_payloads_downcast_to_their_types() {
        let c = Control::error("X", Boom);
        assert!(c.error_ref::<Boom>().is_some());
        assert!(c.error_ref::<std::io::Error>().is_none());
        assert!(!c.is_final());
        let n = Control::notice(42_u32);
        assert_eq!(n.payload::<u32>(), Some(&42));
        let f = Control::ProducerFinished {
            detail: Some(Detail::new("how")),
        };
        assert!(f.is_final() && f.is_producer_finished());
        assert_eq!(f.payload::<&str>(), Some(&"how"));
        assert_eq!(c.to_string(), "error from X: boom");
    }
}
