//! The traffic: a realistic AID1 mix over onboarded federations. Mostly Request Activation
//! Code answered synchronously and Send CSIM Status; some Request Profile Status, new
//! onboardings (Send MSP Token) and asynchronous activation codes, where the load generator
//! plays the MSP: after the 201 it sends Send Activation Code with the same
//! `activationCodeRequestID` through the setup under test, so the hub matches it in its
//! ledger.

use crate::account_id::{self, AccountClaims};
use http::Method;
use uuid::Uuid;

/// The (MSP, CMP) pairs with an agreement in the stage's directory; lanes and federations
/// are spread over them.
pub const PAIRS: [(&str, &str); 3] = [
    ("mspalpha", "cmpone"),
    ("mspalpha", "cmptwo"),
    ("mspbeta", "cmpone"),
];

/// One operation of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Request Activation Code, answered at once with the code (CMP → MSP).
    CodeSync,
    /// Send CSIM Status (CMP → MSP).
    CsimStatus,
    /// Request Profile Status (CMP → MSP).
    ProfileStatus,
    /// Send MSP Token for a new federation (MSP → CMP).
    Onboard,
    /// Request Activation Code answered 201, then Send Activation Code (two requests).
    CodeAsync,
}

/// The mix, as weights of operations.
pub const MIX: [(Op, u32); 5] = [
    (Op::CodeSync, 40),
    (Op::CsimStatus, 30),
    (Op::ProfileStatus, 12),
    (Op::Onboard, 8),
    (Op::CodeAsync, 10),
];

/// The mix in words, for the report.
pub const MIX_TEXT: &str = "40% Request Activation Code (sync), 30% Send CSIM Status, \
12% Request Profile Status, 8% Send MSP Token, 10% async activation code \
(Request Activation Code 201 + Send Activation Code)";

/// HTTP requests per operation on average (the async operation makes two).
pub fn requests_per_op() -> f64 {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let async_share = MIX
        .iter()
        .filter(|(op, _)| *op == Op::CodeAsync)
        .map(|(_, w)| *w)
        .sum::<u32>();
    1.0 + f64::from(async_share) / f64::from(total)
}

/// Picks an operation by weight.
pub fn pick(rng: &mut Rng) -> Op {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut roll = (rng.next_u64() % u64::from(total)) as u32;
    for (op, weight) in MIX {
        if roll < weight {
            return op;
        }
        roll -= weight;
    }
    Op::CodeSync
}

/// A small deterministic generator (xorshift64*): the mix needs spread, not secrecy.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// An element of a non-empty slice.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[(self.next_u64() % items.len() as u64) as usize])
    }
}

/// Every [`Call::label`] the mix uses.
pub const LABELS: [&str; 6] = [
    "request_activation_code sync",
    "request_activation_code async",
    "send_activation_code",
    "send_csim_status",
    "request_profile_status",
    "send_msp_token",
];

/// One request of the mix, before it is put on a route.
#[derive(Debug)]
pub struct Call {
    /// What the report counts errors and latencies by: the AID1 function, with the async
    /// Request Activation Code (a durable ledger write) apart from the sync one.
    pub label: &'static str,
    /// Method.
    pub method: Method,
    /// Path and query, without any upstream prefix.
    pub path: String,
    /// JSON body.
    pub body: Option<String>,
    /// The status a correct exchange answers.
    pub expect: u16,
}

const EID: &str = "89882119900000000000000000001654";

/// Request Activation Code; `asynchronous` makes the simulated MSP answer 201.
pub fn request_code(token: &Uuid, request_id: &Uuid, asynchronous: bool) -> Call {
    let device = if asynchronous { "async" } else { "tcu" };
    Call {
        label: if asynchronous {
            "request_activation_code async"
        } else {
            "request_activation_code sync"
        },
        method: Method::POST,
        path: format!("/v1/activation-code-requests/{token}"),
        body: Some(format!(
            r#"{{"profileType":"personal","deviceType":"{device}","imei":"","eid":"{EID}","activationCodeRequestID":"{request_id}"}}"#
        )),
        expect: if asynchronous { 201 } else { 200 },
    }
}

/// Send Activation Code for an async request.
pub fn send_code(token: &Uuid, request_id: &Uuid) -> Call {
    Call {
        label: "send_activation_code",
        method: Method::POST,
        path: format!("/cesim/msp/v1/activation-codes/{token}"),
        body: Some(format!(
            r#"{{"iccid":"{iccid}","activationCode":"{code}","profileType":"personal","activationCodeRequestID":"{request_id}","swappedIccid":null}}"#,
            iccid = crate::sim::SIM_ICCID,
            code = crate::sim::SIM_ACTIVATION_CODE,
        )),
        expect: 200,
    }
}

/// Send CSIM Status; `n` varies the reported status.
pub fn csim_status(token: &Uuid, n: u64) -> Call {
    let status = ["installed", "enabled", "disabled"][(n % 3) as usize];
    Call {
        label: "send_csim_status",
        method: Method::POST,
        path: format!("/v1/statuses/{token}"),
        body: Some(format!(
            r#"{{"iccid":"{iccid}","eid":"{EID}","status":"{status}"}}"#,
            iccid = crate::sim::SIM_ICCID
        )),
        expect: 201,
    }
}

/// Request Profile Status.
pub fn profile_status(token: &Uuid) -> Call {
    Call {
        label: "request_profile_status",
        method: Method::GET,
        path: format!("/v1/profiles/status/{token}"),
        body: None,
        expect: 200,
    }
}

/// Send MSP Token for `token`, with an account id signed by the CMP's `secret`.
pub fn onboard(token: &Uuid, secret: &[u8]) -> Call {
    let now = crate::aid1::lifecycle::now_ms() / 1000;
    let claims = AccountClaims {
        sid: Uuid::new_v4(),
        exp: now + 3600,
        iat: Some(now),
        has_ver: false,
    };
    let account_id = account_id::sign(&claims, Some("6789"), false, secret);
    Call {
        label: "send_msp_token",
        method: Method::POST,
        path: format!("/cesim/msp/v1/users/{account_id}"),
        body: Some(format!(
            r#"{{"msp_token":"{token}","phoneNumber":"b3YsYkQqi5xw1xRLsDxcfaRC1PANhnhGEICHXNvj","subscriptionType":"private","customerGroup":"Market_Germany","iv":"N1RnMnHhudFLgi1l"}}"#
        )),
        expect: 201,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_picks_every_operation_near_its_weight() {
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            let op = pick(&mut rng);
            let i = MIX.iter().position(|(o, _)| *o == op).unwrap();
            counts[i] += 1;
        }
        for (i, (_, weight)) in MIX.iter().enumerate() {
            let share = f64::from(counts[i]) / 1000.0;
            assert!((share - f64::from(*weight)).abs() < 1.0, "{i}: {share}");
        }
        assert!((requests_per_op() - 1.1).abs() < 1e-9);
    }

    #[test]
    fn every_call_has_one_of_the_listed_labels_and_every_label_a_call() {
        let token = Uuid::new_v4();
        let calls = [
            request_code(&token, &token, false),
            request_code(&token, &token, true),
            send_code(&token, &token),
            csim_status(&token, 1),
            profile_status(&token),
            onboard(&token, b"secret"),
        ];
        let mut used: Vec<&str> = calls.iter().map(|c| c.label).collect();
        used.sort_unstable();
        let mut listed = LABELS.to_vec();
        listed.sort_unstable();
        assert_eq!(used, listed);
    }

    #[test]
    fn bodies_are_json() {
        let token = Uuid::new_v4();
        for call in [
            request_code(&token, &token, true),
            send_code(&token, &token),
            csim_status(&token, 1),
            onboard(&token, b"secret"),
        ] {
            let body = call.body.unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{body}"
            );
        }
    }
}
