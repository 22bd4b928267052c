//! Graphline: named components wired by a table of linkages.

use std::collections::HashSet;

use axon::{
    link_refs, BoxRef, Component, Control, Direction, Inbox, Outbox, WiringError, CONTROL, SIGNAL,
};
use futures_util::future::join_all;

axon::box_table! {
    /// Graphline's fixed boxes, declared once, as data: the builder declares them from here (the
    /// boxes that linkages give the Graphline itself are declared as those linkages say).
    const BOXES: GraphlineBoxes {
        control: CONTROL => "passed through if a linkage starts at `(\"\", \"control\")`; otherwise each message goes to every child whose `control` no linkage feeds",
        child_signals: "_childSignals" => "the `signal` of every child that no linkage takes: their errors, and their ends",
        signal: SIGNAL => "if no linkage feeds it: children's errors, then one final message when all children have ended",
    }
}

/// Names that mean "the Graphline itself" in a linkage, as in Kamaelia.
const SELF_NAMES: [&str; 2] = ["", "self"];

/// Named components and the linkages between them (Kamaelia.Chassis.Graphline).
///
/// # Example
///
/// The page's SSL example reads in Rust (the `graphline!` macro keeps its shape):
///
/// ```no_run
/// use kamaelia::{graphline, ConsoleEchoer, ConsoleReader, MakeSsl, OneShot, TcpClient};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// graphline! {
///     MAKESSL = OneShot::new(MakeSsl::new()),
///     CONSOLE = ConsoleReader::new(),
///     ECHO = ConsoleEchoer::new(),
///     CONNECTION = TcpClient::new("localhost", 8443),
///     linkages = {
///         ("MAKESSL", "outbox"): ("CONNECTION", "makessl"),
///         ("CONSOLE", "outbox"): ("CONNECTION", "inbox"),
///         ("CONNECTION", "outbox"): ("ECHO", "inbox"),
///     }
/// }?
/// .activate();
/// axon::run(async {})?;
/// # Ok(())
/// # }
/// ```
///
/// A runnable one:
///
/// ```
/// use axon::{Inbox, Scheduler};
/// use kamaelia::{graphline, OneShot};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let g = graphline! {
///     HELLO = OneShot::new("hello"),
///     linkages = {
///         ("HELLO", "outbox"): ("", "outbox"),
///     }
/// }?;
/// let sink = Inbox::<&str>::standalone("sink", 4);
/// axon::link_refs(&g.boxref("outbox")?, &sink.boxref())?;
/// assert!(Scheduler::new().run(async { g.activate(); }).await.is_ok());
/// assert_eq!(sink.recv().await, "hello");
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// Every linkage is made when the Graphline is built, so an unknown component or box, a link
/// in the wrong direction or between different message types is an error from
/// [`Graphline::build`] (or the macro) before anything runs. `""` (or `"self"`) names the
/// Graphline's own boxes: `("", "inbox") -> (child, box)` passes the Graphline's inbox through
/// to the child; `(child, box) -> ("", "outbox")` exposes the child's outbox as the Graphline's.
/// Such boxes are created with the message type of the box at the other end.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `control` | `Control` | passed through if a linkage starts at `("", "control")`; otherwise each message goes to every child whose `control` no linkage feeds |
/// | any `("", name)` source | the linked child's type | passed through to that child |
/// | `_childSignals` | `Control` | the `signal` of every child that no linkage takes: their errors, and their ends |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `signal` | `Control` | if no linkage feeds it: children's errors, then one final message when all children have ended |
/// | any `("", name)` destination | the linked child's type | the child's output |
///
/// # Shutdown
///
/// The Graphline ends when all its children have ended. If no linkage feeds its `signal`, it
/// then sends the ShutdownMicroprocess it received on `control`, or else ProducerFinished.
///
/// # Errors
///
/// Building fails with a [`WiringError`] naming the component, box and types involved. At run
/// time, the `Control::Error` messages of children whose `signal` no linkage takes are passed
/// on the Graphline's own `signal`, so no child's failure goes unreported.
#[derive(Default)]
pub struct Graphline {
    components: Vec<(String, Component)>,
    linkages: Vec<((String, String), (String, String))>,
    grouped: bool,
}

impl Graphline {
    /// An empty Graphline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component under `name`.
    pub fn component(mut self, name: &str, component: impl Into<Component>) -> Self {
        self.components.push((name.to_string(), component.into()));
        self
    }

    /// Adds a linkage from `(component, box)` to `(component, box)`.
    pub fn link(mut self, src: (&str, &str), dst: (&str, &str)) -> Self {
        self.linkages.push((
            (src.0.to_string(), src.1.to_string()),
            (dst.0.to_string(), dst.1.to_string()),
        ));
        self
    }

    /// Runs the Graphline and all its children as one task (an [`axon::Group`]; see
    /// docs/semantics.md §10): for the components of one connection, which wake each other all
    /// the time and gain nothing from running in parallel. Each child is still a component in
    /// full (its own failures, stop, report).
    pub fn grouped(mut self) -> Self {
        self.grouped = true;
        self
    }

    /// Wires everything and returns the Graphline as a component, or the first wiring error.
    pub fn build(self) -> Result<Component, WiringError> {
        let Graphline {
            components,
            linkages,
            grouped,
        } = self;
        if components.is_empty() {
            return Err(WiringError::Empty {
                chassis: "Graphline",
            });
        }
        let mut names = HashSet::new();
        for (n, c) in &components {
            if SELF_NAMES.contains(&n.as_str()) || !names.insert(n.clone()) {
                return Err(WiringError::DuplicateBox {
                    component: c.label().to_string(),
                    name: n.clone(),
                });
            }
        }
        let find = |name: &str| {
            components
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c)
                .ok_or_else(|| WiringError::UnknownComponent {
                    component: name.to_string(),
                })
        };

        let mut b = Component::build("Graphline");
        if grouped {
            b.hosts_group();
        }
        let control = b.control_from(BOXES.control);
        let signal = b.signal_from(BOXES.signal);
        let mut control_passed = false;
        let mut signal_fed = false;
        let mut controls_fed: HashSet<String> = HashSet::new();
        let mut signals_taken: HashSet<String> = HashSet::new();

        for ((sc, sb), (dc, db)) in &linkages {
            let src_self = SELF_NAMES.contains(&sc.as_str());
            let dst_self = SELF_NAMES.contains(&dc.as_str());
            if src_self && dst_self {
                let own = b.boxref(sb).or_else(|_| b.boxref(db))?;
                return Err(WiringError::WrongDirection {
                    src: own.id().clone(),
                    dst: own.id().clone(),
                });
            }
            let dst = if dst_self {
                None
            } else {
                Some(find(dc)?.boxref(db)?)
            };
            let src = if src_self {
                None
            } else {
                Some(find(sc)?.boxref(sb)?)
            };
            let src = match src {
                Some(r) => r,
                None => {
                    // Passing our own box through to a child: it is an inbox of ours.
                    let like = dst.clone().ok_or_else(|| WiringError::UnknownComponent {
                        component: dc.clone(),
                    })?;
                    if sb == CONTROL {
                        control_passed = true;
                    }
                    own_box(&mut b, sb, Direction::In, &like)?
                }
            };
            let dst = match dst {
                Some(r) => r,
                None => {
                    if db == SIGNAL {
                        signal_fed = true;
                    }
                    own_box(&mut b, db, Direction::Out, &src)?
                }
            };
            if !dst_self && db == CONTROL {
                controls_fed.insert(dc.clone());
            }
            if !src_self && sb == SIGNAL {
                signals_taken.insert(sc.clone());
            }
            link_refs(&src, &dst)?;
        }

        // Kamaelia's control fan-out: one private outbox per child whose control is not fed.
        let mut fan_out: Vec<Outbox<Control>> = Vec::new();
        if !control_passed {
            for (n, c) in &components {
                if controls_fed.contains(n) {
                    continue;
                }
                if let Ok(child_control) = c.boxref(CONTROL) {
                    let out = b.outbox::<Control>(
                        &format!("_cs_{n}"),
                        "control messages fanned out to a child",
                    );
                    link_refs(&out.boxref(), &child_control)?;
                    fan_out.push(out);
                }
            }
        }
        // Children's signals that no linkage takes: collect their errors.
        let child_signals: Inbox<Control> = b.inbox_from(BOXES.child_signals);
        for (n, c) in &components {
            if signals_taken.contains(n) {
                continue;
            }
            if let Ok(s) = c.boxref(SIGNAL) {
                if s.linked_to().is_none() {
                    link_refs(&s, &child_signals.boxref())?;
                }
            }
        }
        if let Some(e) = b.error() {
            return Err(e.clone());
        }

        let children: Vec<Component> = components.into_iter().map(|(_, c)| c).collect();
        Ok(b.main(move |cx| async move {
            let handles = super::run_children(&cx, children).await;
            let all = join_all(handles.iter().map(|h| h.join()));
            tokio::pin!(all);
            let mut shutdown_seen = false;
            loop {
                tokio::select! {
                    _ = &mut all => break,
                    msg = control.recv(), if !control_passed => {
                        shutdown_seen |= msg.is_shutdown();
                        for out in &fan_out {
                            // A child that has ended no longer needs it.
                            let _ = out.force_send(msg.clone());
                        }
                    }
                    msg = child_signals.recv() => pass_on(&signal, signal_fed, msg).await,
                }
            }
            while let Some(msg) = child_signals.try_recv() {
                pass_on(&signal, signal_fed, msg).await;
            }
            if !signal_fed {
                let last = if shutdown_seen {
                    Control::shutdown()
                } else {
                    Control::producer_finished()
                };
                let _ = signal.send(last).await;
            }
            Ok(())
        }))
    }
}

/// Passes a child's error or notice on the Graphline's `signal`. When a linkage feeds that
/// `signal`, the Graphline may not add to it: errors are logged instead (the runtime's report
/// still lists a failed child).
async fn pass_on(signal: &Outbox<Control>, signal_fed: bool, msg: Control) {
    if msg.is_final() {
        return;
    }
    if signal_fed {
        if let Control::Error(e) = &msg {
            tracing::warn!("a Graphline child reported an error: {e}");
        }
        return;
    }
    let _ = signal.send(msg).await;
}

/// The Graphline's own box `name`, created to match `like` if it does not exist yet.
fn own_box(
    b: &mut axon::ComponentBuilder,
    name: &str,
    direction: Direction,
    like: &BoxRef,
) -> Result<BoxRef, WiringError> {
    match b.boxref(name) {
        Ok(r) if r.direction() == direction => Ok(r),
        Ok(r) => Err(WiringError::WrongDirection {
            src: r.id().clone(),
            dst: like.id().clone(),
        }),
        Err(_) => Ok(b.mirror(
            name,
            direction,
            like,
            "a box of the Graphline's own, passed through",
        )),
    }
}

/// Builds a [`Graphline`] in the shape of Kamaelia's: named components, then `linkages`.
///
/// Returns `Result<Component, WiringError>`.
#[macro_export]
macro_rules! graphline {
    (@acc $g:expr; linkages = { $( ($s:literal, $sb:literal) : ($d:literal, $db:literal) ),* $(,)? } $(,)?) => {
        $g $( .link(($s, $sb), ($d, $db)) )* .build()
    };
    (@acc $g:expr; $name:ident = $comp:expr, $($rest:tt)*) => {
        $crate::graphline!(@acc $g.component(stringify!($name), $comp); $($rest)*)
    };
    ($($t:tt)*) => {
        $crate::graphline!(@acc $crate::Graphline::new(); $($t)*)
    };
}
