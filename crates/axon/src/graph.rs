//! The live graph as Graphviz DOT text (Kamaelia's Introspector, rendered).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::component::{ComponentId, Core};
use crate::spec::{BoxId, Direction, LinkKind};

pub(crate) struct Node {
    pub(crate) parent: Option<ComponentId>,
    pub(crate) core: Arc<Core>,
}

/// The id of the box at `index` of `core`'s table, made or not.
fn box_id(core: &Arc<Core>, index: usize) -> BoxId {
    match crate::rare::resolve(core, index, false, false) {
        Some(store) => store.id(),
        None => {
            let d = core.exit.lock().declared(index);
            BoxId {
                owner: Arc::from(core.label()),
                name: d.name().clone(),
                direction: d.direction(),
                message_type: d.r.message_type_name(),
            }
        }
    }
}

fn node_name(b: &BoxId) -> String {
    format!("{:?}", format!("{}.{}", b.owner, b.name))
}

/// Components become clusters (nested under their parents), boxes become nodes, links become
/// edges: solid for outbox -> inbox, dashed for passthrough.
pub(crate) fn render(nodes: &[Node]) -> String {
    let mut children: BTreeMap<Option<ComponentId>, Vec<&Node>> = BTreeMap::new();
    let known: std::collections::BTreeSet<ComponentId> =
        nodes.iter().map(|n| n.core.id()).collect();
    for n in nodes {
        let parent = n.parent.filter(|p| known.contains(p));
        children.entry(parent).or_default().push(n);
    }
    let mut out = String::from("digraph axon {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
    fn cluster(
        out: &mut String,
        n: &Node,
        children: &BTreeMap<Option<ComponentId>, Vec<&Node>>,
        depth: usize,
    ) {
        let pad = "  ".repeat(depth);
        let label = n.core.label();
        let _ = writeln!(out, "{pad}subgraph \"cluster_{label}\" {{");
        let _ = writeln!(out, "{pad}  label={:?};", label.to_string());
        for (i, d) in n.core.listed() {
            let shape = match d.direction() {
                Direction::In => "invhouse",
                Direction::Out => "house",
            };
            let _ = writeln!(
                out,
                "{pad}  {} [label={:?}, shape={shape}];",
                node_name(&box_id(&n.core, i)),
                d.name().to_string()
            );
        }
        if let Some(kids) = children.get(&Some(n.core.id())) {
            for k in kids {
                cluster(out, k, children, depth + 1);
            }
        }
        let _ = writeln!(out, "{pad}}}");
    }
    if let Some(tops) = children.get(&None) {
        for n in tops {
            cluster(&mut out, n, &children, 1);
        }
    }
    for n in nodes {
        // A rare box not made is linked to nothing (and not made for the graph).
        let made = (n.core.listed().into_iter())
            .filter_map(|(i, _)| crate::rare::resolve(&n.core, i, false, false));
        for r in made.map(crate::BoxRef::new) {
            if let Some(dst) = r.linked_to() {
                let style = match LinkKind::between(r.direction(), dst.direction) {
                    Some(LinkKind::Normal) | None => "solid",
                    Some(_) => "dashed",
                };
                let _ = writeln!(
                    out,
                    "  {} -> {} [style={style}];",
                    node_name(&r.id()),
                    node_name(&dst)
                );
            }
        }
    }
    out.push_str("}\n");
    out
}
