//! `axon::Label` compared with a string: equal to exactly what `Display` prints (`Kind#12`), and
//! to no other spelling of the same kind and number.

use axon::Component;

#[test]
fn a_label_equals_exactly_the_text_it_prints() {
    let b = Component::build("Kind");
    let label = b.label();
    let id = label.id().0;
    let shown = label.to_string();
    assert_eq!(shown, format!("Kind#{id}"));
    assert!(label == *shown.as_str());
    assert!(label == shown.as_str());
    let others = [
        format!("Kind#0{id}"),
        format!("Kind#00{id}"),
        format!("Kind#+{id}"),
        format!("Kind# {id}"),
        format!("Kind#{id} "),
        format!(" Kind#{id}"),
        format!("kind#{id}"),
        format!("Kind{id}"),
        format!("Kind#{}", id + 1),
        format!("Kind#{id}0"),
        "Kind#".to_string(),
        format!("Kind#{id}#{id}"),
        format!("Kind#-{id}"),
        format!("Kind#{id}\u{0}"),
    ];
    for other in &others {
        assert!(
            label != other.as_str(),
            "{label} compared equal to {other:?}"
        );
    }
}

#[test]
fn a_kind_with_a_hash_in_it_compares_by_the_last_one() {
    let b = Component::build("A#B");
    let label = b.label();
    let id = label.id().0;
    assert!(label == format!("A#B#{id}").as_str());
    assert!(label != format!("A#B#0{id}").as_str());
    assert!(label != format!("B#{id}").as_str());
}
