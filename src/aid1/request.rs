//! One entry point for request bodies: [`request`] hands the bytes to the file of the
//! function the route named and returns its typed request inside [`Aid1Request`]. The
//! exhaustive `match` here is the one place that knows all nine.

use crate::aid1::function::Function;
use crate::aid1::notify_msp_token_invalid::{self, NotifyMspTokenInvalid};
use crate::aid1::request_activation_code::{self, RequestActivationCode};
use crate::aid1::request_invalidate_msp_token;
use crate::aid1::request_profile_status;
use crate::aid1::send_activation_code::{self, SendActivationCode};
use crate::aid1::send_csim_status::{self, SendCsimStatus};
use crate::aid1::send_msp_token::{self, SendMspToken};
use crate::aid1::send_profile_information::{self, SendProfileInformation};
use crate::aid1::update_subscription_info::{self, UpdateSubscriptionInfo};
use crate::aid1::violation::Violation;

/// Deployment choices that change what is valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Accept only the spec's 20–22-digit ICCIDs (5.4) instead of 18–22 (the digest's
    /// decision; the spec's own 7.5 example has 19 digits). Default: false.
    pub strict_iccid: bool,
}

/// A validated request body, one variant per function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aid1Request {
    /// 7.3.
    SendMspToken(SendMspToken),
    /// 7.4.
    NotifyMspTokenInvalid(NotifyMspTokenInvalid),
    /// 7.5.
    SendProfileInformation(SendProfileInformation),
    /// 7.6.
    UpdateSubscriptionInfo(UpdateSubscriptionInfo),
    /// 7.7.2.1.
    SendActivationCode(SendActivationCode),
    /// 7.7.
    RequestActivationCode(RequestActivationCode),
    /// 7.8.
    SendCsimStatus(SendCsimStatus),
    /// 7.9: no body.
    RequestInvalidateMspToken,
    /// 7.10: no body (the optional ICCID is in the query, see [`crate::aid1::Route`]).
    RequestProfileStatus,
}

impl Aid1Request {
    /// The function this request is for.
    pub fn function(&self) -> Function {
        match self {
            Aid1Request::SendMspToken(_) => Function::SendMspToken,
            Aid1Request::NotifyMspTokenInvalid(_) => Function::NotifyMspTokenInvalid,
            Aid1Request::SendProfileInformation(_) => Function::SendProfileInformation,
            Aid1Request::UpdateSubscriptionInfo(_) => Function::UpdateSubscriptionInfo,
            Aid1Request::SendActivationCode(_) => Function::SendActivationCode,
            Aid1Request::RequestActivationCode(_) => Function::RequestActivationCode,
            Aid1Request::SendCsimStatus(_) => Function::SendCsimStatus,
            Aid1Request::RequestInvalidateMspToken => Function::RequestInvalidateMspToken,
            Aid1Request::RequestProfileStatus => Function::RequestProfileStatus,
        }
    }
}

/// Parses and validates the body of a request to `function`. The body is parsed once; see
/// the module docs of [`crate::aid1`] for the shared rules and each function's file for its
/// own.
pub fn request(function: Function, body: &[u8], rules: &Rules) -> Result<Aid1Request, Violation> {
    Ok(match function {
        Function::SendMspToken => Aid1Request::SendMspToken(send_msp_token::parse(body)?),
        Function::NotifyMspTokenInvalid => {
            Aid1Request::NotifyMspTokenInvalid(notify_msp_token_invalid::parse(body)?)
        }
        Function::SendProfileInformation => {
            Aid1Request::SendProfileInformation(send_profile_information::parse(body, rules)?)
        }
        Function::UpdateSubscriptionInfo => {
            Aid1Request::UpdateSubscriptionInfo(update_subscription_info::parse(body)?)
        }
        Function::SendActivationCode => {
            Aid1Request::SendActivationCode(send_activation_code::parse(body, rules)?)
        }
        Function::RequestActivationCode => {
            Aid1Request::RequestActivationCode(request_activation_code::parse(body, rules)?)
        }
        Function::SendCsimStatus => {
            Aid1Request::SendCsimStatus(send_csim_status::parse(body, rules)?)
        }
        Function::RequestInvalidateMspToken => {
            request_invalidate_msp_token::parse(body)?;
            Aid1Request::RequestInvalidateMspToken
        }
        Function::RequestProfileStatus => {
            request_profile_status::parse(body)?;
            Aid1Request::RequestProfileStatus
        }
    })
}

/// Refuses a body on a function that defines none (whitespace is tolerated).
pub(crate) fn no_body(body: &[u8]) -> Result<(), Violation> {
    if crate::aid1::json::is_blank(body) {
        Ok(())
    } else {
        Err(Violation::syntax(
            crate::aid1::json::BODY,
            "this function takes no request body",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::violation::ViolationKind;

    #[test]
    fn every_function_dispatches_to_its_own_variant() {
        let bodies: [(Function, &[u8]); 9] = [
            (
                Function::SendMspToken,
                br#"{"error":"1000:Customer not eligible"}"#,
            ),
            (Function::NotifyMspTokenInvalid, b""),
            (
                Function::SendProfileInformation,
                br#"{"profiles":[{"iccid":"8944500805172032953","status":"invalid"}]}"#,
            ),
            (Function::UpdateSubscriptionInfo, br#"{"subscriptionType":"private"}"#),
            (
                Function::SendActivationCode,
                br#"{"activationCodeRequestID":"14abc1e2-338f-11e6-ac61-9e71128cae77","error":"no"}"#,
            ),
            (
                Function::RequestActivationCode,
                br#"{"profileType":"personal","deviceType":"tcu","imei":"","eid":"","activationCodeRequestID":"14abc1e2-338f-11e6-ac61-9e71128cae77"}"#,
            ),
            (
                Function::SendCsimStatus,
                br#"{"iccid":"98341201501601380129","eid":"","status":"deleted"}"#,
            ),
            (Function::RequestInvalidateMspToken, b""),
            (Function::RequestProfileStatus, b"\r\n"),
        ];
        for (function, body) in bodies {
            let parsed = request(function, body, &Rules::default());
            assert_eq!(parsed.map(|r| r.function()), Ok(function), "{function}");
        }
    }

    #[test]
    fn bodiless_functions_refuse_a_body() {
        for f in [
            Function::RequestInvalidateMspToken,
            Function::RequestProfileStatus,
        ] {
            let v = request(f, b"{}", &Rules::default()).unwrap_err();
            assert_eq!(v.kind, ViolationKind::Syntax);
        }
    }

    #[test]
    fn required_bodies_refuse_emptiness() {
        for f in Function::ALL.into_iter().filter(|f| f.body_required()) {
            let v = request(f, b"  ", &Rules::default()).unwrap_err();
            assert_eq!(v.kind, ViolationKind::EmptyBody, "{f}");
        }
    }

    #[test]
    fn mutated_bodies_never_panic() {
        let seeds: [&[u8]; 3] = [
            br#"{"profiles":[{"iccid":"8944500805172032953","status":"invalid","reason":"x"}]}"#,
            br#"{"iccid":"98341201501601380129","activationCode":"LPA:1$A.B$C$1.2$1","profileType":"personal","swappedIccid":null,"activationCodeRequestID":"14abc1e2-338f-11e6-ac61-9e71128cae77"}"#,
            br#"{"msp_token":"25bca1e2-338f-11d6-ac61-9e71138fd521","phoneNumber":"YWJj","iv":"YWI=","subscriptionType":"private","code":"10","error":""}"#,
        ];
        let alphabet = b"{}[]\",:$.-0123456789aAeEfF \\nul\xff\x00";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for round in 0..3000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..=next(4) {
                let at = next(body.len());
                match next(3) {
                    0 => body[at] = alphabet[next(alphabet.len())],
                    1 => {
                        body.remove(at);
                    }
                    _ => body.insert(at, alphabet[next(alphabet.len())]),
                }
            }
            for f in Function::ALL {
                let _ = request(f, &body, &Rules::default());
                let _ =
                    crate::aid1::answer(f, [200, 201, 404][round % 3], &body, &Rules::default());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let inputs: [&[u8]; 8] = [
            b"\x00",
            b"{\"profiles\":[[]]}",
            b"{\"profiles\":{}}",
            b"{\"iccid\":1e400}",
            b"{\"msp_token\":[\"a\"]}",
            b"{\"activationCode\":\"\\ud800\"}",
            b"[{}]",
            b"{\"a\":-0}",
        ];
        for f in Function::ALL {
            for body in inputs {
                let _ = request(f, body, &Rules { strict_iccid: true });
            }
        }
    }
}
