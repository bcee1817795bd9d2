//! Request parsing on strings: the AOSP sequence's requests, each class of violation and
//! the answer it gets.

use super::*;
use crate::error::HubError;

fn refusal(result: Result<Ts43Request, HubError>) -> Ts43Refusal {
    match result {
        Err(HubError::Ts43 { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn query(q: &str) -> Result<Ts43Request, HubError> {
    request(Params::from_query(q)?)
}

const TAIL: &str = "terminal_id=356938035643809&app=ap2009&terminal_vendor=Goog&terminal_model=Pixel%208&terminal_sw_version=14&vers=0&entitlement_version=9.0";

#[test]
fn the_aosp_requests_of_a_transfer_pass() {
    let eap = query(&format!(
        "EAP_ID=0234107813240779%40nai.epc.mnc010.mcc234.3gppnetwork.org&{TAIL}&operation=CheckEligibility"
    ))
    .unwrap();
    assert_eq!(eap.auth, Auth::Eap);
    assert_eq!(eap.operation, Some(Operation::CheckEligibility));
    let token = query(&format!(
        "IMSI=234107813240779&token=abc-_123&{TAIL}&operation=AcquireTemporaryToken&operation_targets=ManageSubscription%2CAcquireConfiguration"
    ))
    .unwrap();
    assert_eq!(
        token.targets,
        vec![
            Operation::ManageSubscription,
            Operation::AcquireConfiguration
        ]
    );
    let transfer = query(&format!(
        "temporary_token=tt1&{TAIL}&operation=ManageSubscription&operation_type=3&terminal_eid=89882119900000000000000000001654"
    ))
    .unwrap();
    assert_eq!(transfer.operation_type, Some(TRANSFER));
    assert_eq!(transfer.apps, vec!["ap2009".to_owned()]);
    assert_eq!(transfer.terminal_id.as_deref(), Some("356938035643809"));
}

#[test]
fn authentication_groups_are_exactly_one() {
    for q in [
        format!("{TAIL}&operation=CheckEligibility"),
        format!("EAP_ID=0%40x&temporary_token=t&{TAIL}"),
        format!("token=t&{TAIL}"),
        format!("IMSI=234107813240779&EAP_ID=0%40x&{TAIL}"),
    ] {
        assert_eq!(refusal(query(&q)), Ts43Refusal::Malformed, "{q}");
    }
}

#[test]
fn violations_get_the_protocols_answers() {
    let base = format!("temporary_token=t&{TAIL}");
    assert_eq!(
        refusal(query(&format!("{base}&operation=FlyToTheMoon"))),
        Ts43Refusal::InvalidOperation
    );
    assert_eq!(
        refusal(query(&format!(
            "{base}&operation=ManageSubscription&operation_type=x"
        ))),
        Ts43Refusal::Malformed
    );
    for bad in [
        "&operation=ManageSubscription&operation_type=9",
        "&operation=ManageSubscription",
        "&operation=AcquireTemporaryToken",
        "&operation=AcquireTemporaryToken&operation_targets=Nope",
        "&operation=CheckEligibility&terminal_eid=123",
        "&operation=CheckEligibility&notif_action=7",
        "&operation=CheckEligibility&terminal_vendor=Google",
    ] {
        assert_eq!(
            refusal(query(&format!("{base}{bad}"))),
            Ts43Refusal::InvalidParameter,
            "{bad}"
        );
    }
    assert_eq!(
        refusal(query("IMSI=12ab&token=t&operation=CheckEligibility")),
        Ts43Refusal::InvalidParameter
    );
    assert_eq!(refusal(query("EAP_ID=%zz")), Ts43Refusal::Malformed);
}

#[test]
fn the_json_post_variant_reads_the_same_keys() {
    let body = br#"{"temporary_token":"tt1","terminal_id":"356938035643809","app":"[ap2009]","vers":"0","operation":"ManageSubscription","operation_type":3}"#;
    let r = request(Params::from_json(body).unwrap()).unwrap();
    assert_eq!(r.operation_type, Some(3));
    assert_eq!(r.apps, vec!["ap2009".to_owned()]);
    let rewritten = r.params.with_auth(&Auth::Temporary {
        token: "fresh".into(),
    });
    let again = request(Params::from_json(rewritten.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        again.auth,
        Auth::Temporary {
            token: "fresh".into()
        }
    );
}

#[test]
fn rewriting_the_auth_keeps_every_other_segment_byte_for_byte() {
    let q = format!("IMSI=1234567&token=a%2Bb&{TAIL}&operation=AcquireConfiguration");
    let r = query(&q).unwrap();
    let out = r.params.with_auth(&Auth::Temporary {
        token: "t/1+2".into(),
    });
    assert_eq!(
        out,
        format!("temporary_token=t%2F1%2B2&{TAIL}&operation=AcquireConfiguration")
    );
}
