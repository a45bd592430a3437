use super::*;
use alloc::string::ToString;

#[test]
fn distance_counts_edits_and_transpositions() {
    assert_eq!(distance("", ""), 0);
    assert_eq!(distance("on-fault", "on-fault"), 0);
    assert_eq!(distance("on-falt", "on-fault"), 1);
    assert_eq!(distance("bootagrs", "bootargs"), 1);
    assert_eq!(distance("cpu", "cpus"), 1);
    assert_eq!(distance("", "abc"), 3);
    assert_eq!(distance("kitten", "sitting"), 3);
}

#[test]
fn suggests_only_close_known_names() {
    assert_eq!(suggest(PARTITION_PROPERTIES, "on-falt"), Some("on-fault"));
    assert_eq!(suggest(PARTITION_PROPERTIES, "virtual-urat"), Some("virtual-uart"));
    assert_eq!(suggest(PARTITION_PROPERTIES, "device"), Some("devices"));
    assert_eq!(suggest(CHANNEL_PROPERTIES, "endpoint"), Some("endpoints"));
    assert_eq!(suggest(PARTITION_PROPERTIES, "colour"), None);
    assert_eq!(suggest(CHANNELS_PROPERTIES, "anything"), None);
    assert_eq!(suggest(PARTITION_PROPERTIES, &"x".repeat(1000)), None);
}

#[test]
fn known_names_include_phandles() {
    assert!(is_known(CHANNEL_PROPERTIES, "phandle"));
    assert!(is_known(HYPERVISOR_PROPERTIES, "linux,phandle"));
    assert!(is_known(PARTITION_PROPERTIES, "tantalum,image-sha256"));
    assert!(!is_known(HYPERVISOR_PROPERTIES, "cpus"));
}

#[test]
fn warnings_print_node_and_hint() {
    let w = ConfigWarning::new(
        "/hypervisor/ping",
        WarningKind::UnknownProperty { property: "on-falt".into(), suggestion: Some("on-fault") },
    );
    assert_eq!(
        w.to_string(),
        "/hypervisor/ping: unknown property 'on-falt' (ignored); did you mean 'on-fault'?"
    );
    let w = ConfigWarning::new("/hypervisor/ping", WarningKind::UnknownChild { name: "extra".into() });
    assert_eq!(w.to_string(), "/hypervisor/ping: unknown child node 'extra' (ignored)");
}
