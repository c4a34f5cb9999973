use super::*;

const GUID: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

#[test]
fn party_is_digits() {
    assert_eq!(PartyId::parse("510001").unwrap().to_string(), "510001");
    assert_eq!(PartyId::from(42u64).to_string(), "42");
    assert_eq!(PartyId::parse("510001").unwrap().as_u64(), 510001);
    assert_eq!(PartyId::parse("0").unwrap().as_u64(), 0);
    for bad in [
        "",
        "12a",
        "-1",
        " 1",
        "1/2",
        "1234567890123456789",
        "007",
        "+1",
    ] {
        let e = PartyId::parse(bad).unwrap_err();
        assert_eq!(e.kind, "party id", "{bad:?}");
    }
}

#[test]
fn guid_is_lowercase_hyphenated_uuid() {
    assert_eq!(InstanceGuid::parse(GUID).unwrap().to_string(), GUID);
    let simple = GUID.replace('-', "");
    let braced = format!("{{{GUID}}}");
    let upper = GUID.to_uppercase();
    for bad in [
        "",
        "not-a-guid",
        simple.as_str(),
        braced.as_str(),
        upper.as_str(),
        "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4g",
        "6f1c2b3a4-d5e-4f60-8a7b-9c0d1e2f3a4b",
    ] {
        assert!(InstanceGuid::parse(bad).is_err(), "{bad:?}");
    }
    assert_ne!(InstanceGuid::new_random(), InstanceGuid::new_random());
    assert!(InstanceGuid::parse(InstanceGuid::new_random().to_string()).is_ok());
}

#[test]
fn segments_refuse_empty_and_slash() {
    assert_eq!(DataTypeId::parse("model").unwrap(), "model");
    assert_eq!(ElementId::parse(GUID).unwrap().to_string(), GUID);
    for bad in ["", "a/b", "a\nb"] {
        assert!(DataTypeId::parse(bad).is_err(), "{bad:?}");
        assert!(ElementId::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn element_ids_keep_the_servers_string() {
    let upper = GUID.to_uppercase();
    for s in [GUID, "e1", upper.as_str(), "{x}"] {
        let id = ElementId::parse(s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(id.as_cow(), s);
        assert_eq!(id, s);
    }
    // Equal exactly when the strings are; ordered as the strings are.
    assert_ne!(
        ElementId::parse(GUID).unwrap(),
        ElementId::parse(&upper).unwrap()
    );
    let mut ids: Vec<ElementId> = ["b", GUID, "0", "ffffffff-0000-4000-8000-000000000000"]
        .iter()
        .map(|s| ElementId::parse(s).unwrap())
        .collect();
    ids.sort();
    let strings: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut sorted = strings.clone();
    sorted.sort();
    assert_eq!(strings, sorted);
}

#[test]
fn instance_id_round_trips_as_party_slash_guid() {
    let s = format!("510001/{GUID}");
    let id: InstanceId = s.parse().unwrap();
    assert_eq!(id.party, "510001");
    assert_eq!(id.guid, GUID);
    assert_eq!(id.to_string(), s);
    for bad in ["510001".to_string(), format!("x/{GUID}"), "1/nope".into()] {
        assert!(InstanceId::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn serde_is_the_plain_string_and_checks_on_the_way_in() {
    let id = InstanceId::parse(format!("7/{GUID}")).unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"7/{GUID}\""));
    assert_eq!(serde_json::from_str::<InstanceId>(&json).unwrap(), id);
    assert_eq!(
        serde_json::to_string(&PartyId::from(7u64)).unwrap(),
        "\"7\""
    );
    assert!(serde_json::from_str::<PartyId>("\"7x\"").is_err());
    assert!(serde_json::from_str::<DataTypeId>("\"\"").is_err());
    let e: ElementId = serde_json::from_str(&format!("\"{GUID}\"")).unwrap();
    assert_eq!(e, GUID);
    assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{GUID}\""));
}

#[test]
fn error_value_is_bounded() {
    let long = "x".repeat(1000);
    assert_eq!(PartyId::parse(long).unwrap_err().value.len(), 80);
}

#[test]
fn ids_work_as_map_keys_by_str() {
    let mut m = std::collections::HashMap::new();
    m.insert(DataTypeId::parse("model").unwrap(), 1);
    assert_eq!(m.get("model"), Some(&1));
}

#[test]
fn data_types_share_one_allocation() {
    let a = DataTypeId::parse("shared-type").unwrap();
    let b = DataTypeId::parse(String::from("shared-type")).unwrap();
    assert!(Arc::ptr_eq(&a.0, &b.0));
    assert!(Arc::ptr_eq(&a.0, &a.clone().0));
}

#[test]
fn ids_are_compact() {
    use std::mem::size_of;
    assert_eq!(size_of::<PartyId>(), 8);
    assert_eq!(size_of::<InstanceGuid>(), 16);
    assert_eq!(size_of::<InstanceId>(), 24);
    assert_eq!(size_of::<DataTypeId>(), 8);
    assert!(size_of::<ElementId>() <= 24);
}
