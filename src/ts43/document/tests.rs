//! The document reader and writer on bytes: the notes' examples, AOSP's tolerances, the
//! JSON form, round trips.

use super::*;

const MANAGE: &str = r#"<?xml version="1.0"?>
<wap-provisioningdoc version="1.1">
  <characteristic type="VERS"><parm name="version" value="3"/><parm name="validity" value="86400"/></characteristic>
  <characteristic type="TOKEN"><parm name="token" value="tok-example-1"/></characteristic>
  <characteristic type="APPLICATION">
    <parm name="AppID" value="ap2009"/>
    <parm name="OperationResult" value="1"/>
    <parm name="SubscriptionResult" value="2"/>
    <characteristic type="DownloadInfo">
      <parm name="ProfileIccid" value="8988211000000530082"/>
      <parm name="ProfileActivationCode" value="MSRTTURQLkVYQU1QTEUuQ09NJEFCQy0xMjM="/>
    </characteristic>
  </characteristic>
</wap-provisioningdoc>"#;

#[test]
fn the_notes_example_reads_as_a_tree() {
    let doc = Document::parse(MANAGE.as_bytes(), Format::Xml).unwrap();
    assert_eq!(doc.token(), Some("tok-example-1"));
    let app = doc.application().unwrap();
    assert_eq!(app.parm("operationresult"), Some("1"));
    let info = app.child("DownloadInfo").unwrap();
    assert_eq!(info.parm("ProfileIccid"), Some("8988211000000530082"));
    assert!(
        app.child("downloadinfo").is_none(),
        "types are case-sensitive"
    );
}

#[test]
fn xml_round_trips_and_escapes() {
    let mut doc = Document::parse(MANAGE.as_bytes(), Format::Xml).unwrap();
    doc.application_mut()
        .unwrap()
        .set_parm("GeneralErrorText", "a<b & \"c\"");
    let again = Document::parse(&doc.serialise(Format::Xml), Format::Xml).unwrap();
    assert_eq!(again, doc);
}

#[test]
fn a_bare_ampersand_is_tolerated_as_aosp_does() {
    let xml = r#"<r><characteristic type="APPLICATION"><parm name="NotEnabledURL" value="http://x/?a=1&b=2"/></characteristic></r>"#;
    let doc = Document::parse(xml.as_bytes(), Format::Xml).unwrap();
    assert_eq!(
        doc.application().unwrap().parm("NotEnabledURL"),
        Some("http://x/?a=1&b=2")
    );
}

#[test]
fn broken_xml_is_refused_without_panicking() {
    for bad in [
        "",
        "<",
        "<a",
        "<a><characteristic type='x'>",
        "<a><parm/></a>",
        "<a></a>trailing",
        "<a x=1/>",
        "\u{0}",
    ] {
        assert!(
            Document::parse(bad.as_bytes(), Format::Xml).is_err(),
            "{bad:?}"
        );
    }
    let deep = "<characteristic type='a'>".repeat(40);
    assert!(Document::parse(format!("<r>{deep}").as_bytes(), Format::Xml).is_err());
}

#[test]
fn json_documents_map_app_ids_to_applications() {
    let json = r#"{"Vers":{"version":"1","validity":"172800"},"Token":{"token":"t1"},
        "ap2009":{"OperationResult":"1","PrimaryConfiguration":{"ServiceStatus":"2","ICCID":"8988211000000530082"}}}"#;
    let doc = Document::parse(json.as_bytes(), Format::Json).unwrap();
    assert_eq!(doc.token(), Some("t1"));
    let app = doc.application().unwrap();
    assert_eq!(app.parm("AppID"), Some("ap2009"));
    assert_eq!(
        app.child("PrimaryConfiguration")
            .unwrap()
            .parm("ServiceStatus"),
        Some("2")
    );
    let back = Document::parse(&doc.serialise(Format::Json), Format::Json).unwrap();
    assert_eq!(back, doc);
    let xml = Document::parse(&doc.serialise(Format::Xml), Format::Xml).unwrap();
    assert_eq!(xml, doc);
}

#[test]
fn debug_never_prints_values() {
    let doc = Document::parse(MANAGE.as_bytes(), Format::Xml).unwrap();
    let text = format!("{doc:?}");
    assert!(!text.contains("tok-example-1"), "{text}");
    assert!(!text.contains("8988211000000530082"), "{text}");
}
