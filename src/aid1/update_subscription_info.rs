//! 7.6 Update Subscription Info, `PATCH /cesim/msp/v1/subscriptions/{msp_token}`,
//! MSP → CMP: new values for what the CMP shows the customer about the subscription.
//! Answer: 201, no body (any body is ignored).
//!
//! Body rules: every member is optional and has the rule it has in Send MSP Token
//! (`phoneNumber` and `iv` standard Base64, `subscriptionType` `private` | `business` |
//! `unknown`, `customerGroup` a string of at most 256 characters), but
//!
//! * at least one of the four must be present and not `null`; a body that updates nothing
//!   is [`ViolationKind::EmptyBody`] (code 60);
//! * `phoneNumber` and `iv` come together: an IV belongs to one ciphertext, so a new
//!   encrypted number without its IV, or an IV without a number, cannot be decrypted.
//!
//! [`ViolationKind::EmptyBody`]: crate::aid1::ViolationKind::EmptyBody

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj, BODY};
use crate::aid1::send_msp_token::{
    opt_customer_group, opt_iv, opt_phone_number, SubscriptionType, SUBSCRIPTION_TYPES,
};
use crate::aid1::types::{Iv, PhoneNumber};
use crate::aid1::violation::{Violation, ViolationKind};

/// A validated Update Subscription Info body: at least one member is `Some`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateSubscriptionInfo {
    /// A new encrypted MSISDN with its IV (redacted in `Debug`).
    pub phone_number: Option<(PhoneNumber, Iv)>,
    /// A new subscription type.
    pub subscription_type: Option<SubscriptionType>,
    /// A new customer group (`""` is kept: it may clear the group).
    pub customer_group: Option<String>,
}

/// Parses an Update Subscription Info body.
pub fn parse(body: &[u8]) -> Result<UpdateSubscriptionInfo, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let phone_number = opt_phone_number(&obj, "phoneNumber")?;
    let iv = opt_iv(&obj, "iv")?;
    let subscription_type = fields::opt_one_of(&obj, "subscriptionType", SUBSCRIPTION_TYPES)?;
    let customer_group = opt_customer_group(&obj, "customerGroup")?;
    let phone_number = match (phone_number, iv) {
        (Some(number), Some(iv)) => Some((number, iv)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Violation::syntax("iv", "is required with phoneNumber"));
        }
        (None, Some(_)) => {
            return Err(Violation::syntax("phoneNumber", "is required with iv"));
        }
    };
    if phone_number.is_none() && subscription_type.is_none() && customer_group.is_none() {
        return Err(Violation::new(
            ViolationKind::EmptyBody,
            BODY,
            "updates nothing: give phoneNumber and iv, subscriptionType or customerGroup",
        ));
    }
    Ok(UpdateSubscriptionInfo {
        phone_number,
        subscription_type,
        customer_group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_one_member_is_enough() {
        let parsed = parse(br#"{"subscriptionType":"business"}"#).unwrap();
        assert_eq!(parsed.subscription_type, Some(SubscriptionType::Business));
        let parsed = parse(br#"{"customerGroup":""}"#).unwrap();
        assert_eq!(parsed.customer_group.as_deref(), Some(""));
        let parsed =
            parse(br#"{"phoneNumber":"b3YsYkQqi5xw1xRL","iv":"N1RnMnHhudFLgi1l"}"#).unwrap();
        assert!(parsed.phone_number.is_some());
        assert!(!format!("{parsed:?}").contains("b3Ys"));
    }

    #[test]
    fn all_four_together() {
        let body = br#"{"phoneNumber":"YWJj","iv":"YWJj","subscriptionType":"unknown","customerGroup":"Market_Germany"}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.customer_group.as_deref(), Some("Market_Germany"));
    }

    #[test]
    fn nothing_to_update_is_an_empty_body() {
        for body in [
            &b"{}"[..],
            br#"{"subscriptionType":null,"iv":null}"#,
            br#"{"other":1}"#,
            b"",
        ] {
            assert_eq!(parse(body).unwrap_err().kind, ViolationKind::EmptyBody);
        }
    }

    #[test]
    fn phone_number_and_iv_come_together() {
        let v = parse(br#"{"phoneNumber":"YWJj"}"#).unwrap_err();
        assert_eq!((v.kind, v.field.as_str()), (ViolationKind::Syntax, "iv"));
        let v = parse(br#"{"iv":"YWJj","subscriptionType":"private"}"#).unwrap_err();
        assert_eq!(v.field, "phoneNumber");
    }

    #[test]
    fn members_keep_their_send_msp_token_rules() {
        for (body, field) in [
            (
                &br#"{"subscriptionType":"PRIVATE"}"#[..],
                "subscriptionType",
            ),
            (br#"{"phoneNumber":"%%%","iv":"YWJj"}"#, "phoneNumber"),
            (br#"{"phoneNumber":"YWJj","iv":7}"#, "iv"),
            (br#"{"customerGroup":[]}"#, "customerGroup"),
        ] {
            let v = parse(body).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (ViolationKind::Syntax, field));
        }
    }
}
