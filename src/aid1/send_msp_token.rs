//! 7.3 Send MSP Token, `POST /cesim/msp/v1/users/{account_id}`, MSP → CMP: the MSP hands
//! the CMP the federated id (`msp_token`) for the user the account id names, or an `error`
//! saying why it could not make one. Answer: 201, no body (any body is ignored).
//!
//! Body rules (the spec marks nothing required; these are the hub's reading):
//!
//! * `error` (string, at most 512 characters) set and non-empty: the MSP refused. Every
//!   other member is then optional, but checked when present; only `msp_token` is kept.
//! * `error` absent, `null` or `""`: `msp_token` (UUID), `phoneNumber` (Base64),
//!   `subscriptionType` (`private` | `business` | `unknown`) and `iv` (Base64) are required;
//!   `customerGroup` (string, at most 256 characters) is optional.
//! * A malformed `msp_token` is [`ViolationKind::BadMspToken`] (7.3's 422 "msp_token format
//!   is incorrect"), not `Syntax`.
//!
//! [`ViolationKind::BadMspToken`]: crate::aid1::ViolationKind::BadMspToken

use crate::aid1::fields;
use crate::aid1::json::{parse_object, Obj};
use crate::aid1::types::{Iv, MspToken, PhoneNumber};
use crate::aid1::violation::Violation;

/// Longest accepted `error`, as 7.3 says.
pub const ERROR_MAX: usize = 512;
/// Longest accepted `customerGroup` (the spec gives none).
pub const CUSTOMER_GROUP_MAX: usize = 256;

/// `subscriptionType` (7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionType {
    /// `private`.
    Private,
    /// `business`.
    Business,
    /// `unknown`.
    Unknown,
}

impl SubscriptionType {
    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Private => "private",
            SubscriptionType::Business => "business",
            SubscriptionType::Unknown => "unknown",
        }
    }
}

/// The spellings of [`SubscriptionType`].
pub(crate) const SUBSCRIPTION_TYPES: &[(&str, SubscriptionType)] = &[
    ("private", SubscriptionType::Private),
    ("business", SubscriptionType::Business),
    ("unknown", SubscriptionType::Unknown),
];

/// A validated Send MSP Token body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendMspToken {
    /// The MSP made a token for the user.
    Token(NewMspToken),
    /// The MSP could not make a token.
    Refused {
        /// Why (the spec suggests "code: description", e.g. `1000:Customer not eligible`).
        error: String,
        /// A token, if the MSP sent one anyway.
        msp_token: Option<MspToken>,
    },
}

/// The members of a successful Send MSP Token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMspToken {
    /// The federated id.
    pub msp_token: MspToken,
    /// The encrypted MSISDN (redacted in `Debug`).
    pub phone_number: PhoneNumber,
    /// Private, business or unknown.
    pub subscription_type: SubscriptionType,
    /// An optional reporting group agreed between MSP and CMP.
    pub customer_group: Option<String>,
    /// The initialization vector of the phone number encryption.
    pub iv: Iv,
}

/// Parses a Send MSP Token body.
pub fn parse(body: &[u8]) -> Result<SendMspToken, Violation> {
    let map = parse_object(body)?;
    let obj = Obj::root(&map);
    let error = fields::opt_error(&obj, "error", ERROR_MAX)?;
    if let Some(error) = error {
        let msp_token = match obj.get("msp_token") {
            Some(_) => Some(fields::msp_token(&obj, "msp_token")?),
            None => None,
        };
        opt_phone_number(&obj, "phoneNumber")?;
        fields::opt_one_of(&obj, "subscriptionType", SUBSCRIPTION_TYPES)?;
        opt_customer_group(&obj, "customerGroup")?;
        opt_iv(&obj, "iv")?;
        return Ok(SendMspToken::Refused { error, msp_token });
    }
    let msp_token = fields::msp_token(&obj, "msp_token")?;
    let phone_number = phone_number(&obj, "phoneNumber", obj.str("phoneNumber")?)?;
    let subscription_type = fields::one_of(&obj, "subscriptionType", SUBSCRIPTION_TYPES)?;
    let customer_group = opt_customer_group(&obj, "customerGroup")?;
    let iv = iv(&obj, "iv", obj.str("iv")?)?;
    Ok(SendMspToken::Token(NewMspToken {
        msp_token,
        phone_number,
        subscription_type,
        customer_group,
        iv,
    }))
}

fn phone_number(obj: &Obj<'_>, name: &str, text: &str) -> Result<PhoneNumber, Violation> {
    PhoneNumber::parse(text).map_err(|r| Violation::syntax(obj.path_of(name), r))
}

fn iv(obj: &Obj<'_>, name: &str, text: &str) -> Result<Iv, Violation> {
    Iv::parse(text).map_err(|r| Violation::syntax(obj.path_of(name), r))
}

/// An optional `phoneNumber`: standard Base64.
pub(crate) fn opt_phone_number(
    obj: &Obj<'_>,
    name: &str,
) -> Result<Option<PhoneNumber>, Violation> {
    obj.opt_str(name)?
        .map(|text| phone_number(obj, name, text))
        .transpose()
}

/// An optional `iv`: standard Base64.
pub(crate) fn opt_iv(obj: &Obj<'_>, name: &str) -> Result<Option<Iv>, Violation> {
    obj.opt_str(name)?
        .map(|text| iv(obj, name, text))
        .transpose()
}

/// An optional `customerGroup` of at most [`CUSTOMER_GROUP_MAX`] characters.
pub(crate) fn opt_customer_group(obj: &Obj<'_>, name: &str) -> Result<Option<String>, Violation> {
    fields::opt_text(obj, name, CUSTOMER_GROUP_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    const TOKEN: &str = "25bca1e2-338f-11d6-ac61-9e71138fd521";

    fn body(members: &str) -> Vec<u8> {
        format!("{{{members}}}").into_bytes()
    }

    fn full() -> String {
        format!(
            r#""msp_token":"{TOKEN}","phoneNumber":"b3YsYkQqi5xw1xRLsDxcfaRC1PANhnhGEICHXNvj","subscriptionType":"private","customerGroup":"Market_Germany","iv":"N1RnMnHhudFLgi1l""#
        )
    }

    #[test]
    fn the_spec_example_is_accepted() {
        let SendMspToken::Token(t) = parse(&body(&full())).unwrap() else {
            panic!("expected a token")
        };
        assert_eq!(t.msp_token.to_string(), TOKEN);
        assert_eq!(t.subscription_type, SubscriptionType::Private);
        assert_eq!(t.customer_group.as_deref(), Some("Market_Germany"));
        assert_eq!(t.iv.as_str(), "N1RnMnHhudFLgi1l");
        assert!(!format!("{t:?}").contains("b3YsYkQq"));
    }

    #[test]
    fn customer_group_is_optional_and_unknown_members_are_ignored() {
        let members = format!(
            r#""msp_token":"{TOKEN}","phoneNumber":"YWJj","subscriptionType":"unknown","iv":"YWJj","customerGroup":null,"future":{{"x":[1]}}"#
        );
        assert!(matches!(parse(&body(&members)), Ok(SendMspToken::Token(_))));
    }

    #[test]
    fn an_error_needs_nothing_else() {
        let parsed = parse(br#"{"error":"1000:Customer not eligible"}"#).unwrap();
        assert_eq!(
            parsed,
            SendMspToken::Refused {
                error: "1000:Customer not eligible".to_owned(),
                msp_token: None
            }
        );
        let with_token =
            format!(r#"{{"error":"19: Other account ID error.","msp_token":"{TOKEN}"}}"#);
        assert!(matches!(
            parse(with_token.as_bytes()),
            Ok(SendMspToken::Refused {
                msp_token: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn an_error_is_capped_and_members_beside_it_are_still_checked() {
        let long = format!(r#"{{"error":"{}"}}"#, "e".repeat(ERROR_MAX + 1));
        assert_eq!(parse(long.as_bytes()).unwrap_err().field, "error");
        let exact = format!(r#"{{"error":"{}"}}"#, "\u{e9}".repeat(ERROR_MAX));
        assert!(parse(exact.as_bytes()).is_ok());
        let v = parse(br#"{"error":"x","subscriptionType":"gold"}"#).unwrap_err();
        assert_eq!(v.field, "subscriptionType");
        let v = parse(br#"{"error":"x","msp_token":"nope"}"#).unwrap_err();
        assert_eq!(v.kind, ViolationKind::BadMspToken);
    }

    #[test]
    fn empty_or_null_error_means_no_error() {
        let v = parse(br#"{"error":""}"#).unwrap_err();
        assert_eq!(
            (v.kind, v.field.as_str()),
            (ViolationKind::Syntax, "msp_token")
        );
        let v = parse(br#"{"error":null}"#).unwrap_err();
        assert_eq!(v.field, "msp_token");
    }

    #[test]
    fn each_required_member_is_required() {
        for name in ["msp_token", "phoneNumber", "subscriptionType", "iv"] {
            let all = full();
            let members: Vec<&str> = all
                .split(',')
                .filter(|m| !m.starts_with(&format!("\"{name}\"")))
                .collect();
            let v = parse(&body(&members.join(","))).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (ViolationKind::Syntax, name));
            let nulled = full().replace(
                &format!("\"{name}\":"),
                &format!("\"{name}\":null,\"was\":"),
            );
            let v = parse(&body(&nulled)).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (ViolationKind::EmptyBody, name));
        }
    }

    #[test]
    fn malformed_members() {
        let cases = [
            (
                "msp_token",
                r#""msp_token":"not-a-uuid""#,
                ViolationKind::BadMspToken,
            ),
            ("msp_token", r#""msp_token":7"#, ViolationKind::Syntax),
            (
                "phoneNumber",
                r#""phoneNumber":"b3Ys-_==""#,
                ViolationKind::Syntax,
            ),
            ("phoneNumber", r#""phoneNumber":"""#, ViolationKind::Syntax),
            (
                "subscriptionType",
                r#""subscriptionType":"Private""#,
                ViolationKind::Syntax,
            ),
            ("iv", r#""iv":"N1Rn MnHh""#, ViolationKind::Syntax),
            (
                "customerGroup",
                r#""customerGroup":5"#,
                ViolationKind::Syntax,
            ),
        ];
        for (name, replacement, kind) in cases {
            let members: Vec<String> = full()
                .split(',')
                .map(|m| {
                    if m.starts_with(&format!("\"{name}\"")) {
                        replacement.to_owned()
                    } else {
                        m.to_owned()
                    }
                })
                .collect();
            let v = parse(&body(&members.join(","))).unwrap_err();
            assert_eq!((v.kind, v.field.as_str()), (kind, name), "{replacement}");
            assert!(!v.reason.contains("b3Ys"));
        }
    }

    #[test]
    fn customer_group_is_capped() {
        let members = full().replace("Market_Germany", &"g".repeat(CUSTOMER_GROUP_MAX + 1));
        assert_eq!(parse(&body(&members)).unwrap_err().field, "customerGroup");
    }

    #[test]
    fn spellings_round_trip() {
        for (text, value) in SUBSCRIPTION_TYPES {
            assert_eq!(value.as_str(), *text);
        }
    }
}
