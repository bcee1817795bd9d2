//! The nine AID1 functions of AID.02 chapter 7 as one table: for each, its name, title,
//! method, path template, which role hosts it, and the statuses its answer may carry.
//! Everything else (routing, body rules, answer checks) reads from here.

use crate::aid1::Role;
use http::Method;

/// One AID1 function. Functions are named by title, never by section number (the spec's
/// numbering repeats 7.1 and cites 7.6.x for what is 7.7.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// 7.3, `POST /cesim/msp/v1/users/{account_id}`, MSP → CMP.
    SendMspToken,
    /// 7.4, `POST /cesim/msp/v1/users/{msp_token}/invalidate`, MSP → CMP.
    NotifyMspTokenInvalid,
    /// 7.5, `POST /cesim/msp/v1/users/{msp_token}/profiles`, MSP → CMP.
    SendProfileInformation,
    /// 7.6, `PATCH /cesim/msp/v1/subscriptions/{msp_token}`, MSP → CMP.
    UpdateSubscriptionInfo,
    /// 7.7.2.1, `POST /cesim/msp/v1/activation-codes/{msp_token}`, MSP → CMP.
    SendActivationCode,
    /// 7.7, `POST /v1/activation-code-requests/{msp_token}`, CMP → MSP.
    RequestActivationCode,
    /// 7.8, `POST /v1/statuses/{msp_token}`, CMP → MSP.
    SendCsimStatus,
    /// 7.9, `DELETE /v1/users/{msp_token}`, CMP → MSP.
    RequestInvalidateMspToken,
    /// 7.10, `GET /v1/profiles/status/{msp_token}[?iccid=…]`, CMP → MSP.
    RequestProfileStatus,
}

/// The documented non-2xx statuses shared by most functions.
const ERRORS_401_404_422_500: &[u16] = &[401, 404, 422, 500];
/// The documented non-2xx statuses of the functions that also know 403.
const ERRORS_401_403_404_422_500: &[u16] = &[401, 403, 404, 422, 500];

impl Function {
    /// All nine, in the spec's order.
    pub const ALL: [Function; 9] = [
        Function::SendMspToken,
        Function::NotifyMspTokenInvalid,
        Function::SendProfileInformation,
        Function::UpdateSubscriptionInfo,
        Function::SendActivationCode,
        Function::RequestActivationCode,
        Function::SendCsimStatus,
        Function::RequestInvalidateMspToken,
        Function::RequestProfileStatus,
    ];

    /// The snake_case name, e.g. `"request_activation_code"` (metric label, config key).
    pub fn name(self) -> &'static str {
        match self {
            Function::SendMspToken => "send_msp_token",
            Function::NotifyMspTokenInvalid => "notify_msp_token_invalid",
            Function::SendProfileInformation => "send_profile_information",
            Function::UpdateSubscriptionInfo => "update_subscription_info",
            Function::SendActivationCode => "send_activation_code",
            Function::RequestActivationCode => "request_activation_code",
            Function::SendCsimStatus => "send_csim_status",
            Function::RequestInvalidateMspToken => "request_invalidate_msp_token",
            Function::RequestProfileStatus => "request_profile_status",
        }
    }

    /// The function named `name` (as [`Function::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The spec's title, e.g. `"Request Activation Code"`.
    pub fn title(self) -> &'static str {
        match self {
            Function::SendMspToken => "Send MSP Token",
            Function::NotifyMspTokenInvalid => "Notify MSP Token Invalid",
            Function::SendProfileInformation => "Send Profile Information",
            Function::UpdateSubscriptionInfo => "Update Subscription Info",
            Function::SendActivationCode => "Send Activation Code",
            Function::RequestActivationCode => "Request Activation Code",
            Function::SendCsimStatus => "Send CSIM Status",
            Function::RequestInvalidateMspToken => "Request Invalidate MSP Token",
            Function::RequestProfileStatus => "Request Profile Status",
        }
    }

    /// The section of AID.02 v1.0 that defines it (for messages and docs only).
    pub fn section(self) -> &'static str {
        match self {
            Function::SendMspToken => "7.3",
            Function::NotifyMspTokenInvalid => "7.4",
            Function::SendProfileInformation => "7.5",
            Function::UpdateSubscriptionInfo => "7.6",
            Function::SendActivationCode => "7.7.2.1",
            Function::RequestActivationCode => "7.7",
            Function::SendCsimStatus => "7.8",
            Function::RequestInvalidateMspToken => "7.9",
            Function::RequestProfileStatus => "7.10",
        }
    }

    /// The role that hosts the function (the callee): the CMP for `/cesim/msp/v1/…`, the
    /// MSP for `/v1/…`.
    pub fn host(self) -> Role {
        match self {
            Function::SendMspToken
            | Function::NotifyMspTokenInvalid
            | Function::SendProfileInformation
            | Function::UpdateSubscriptionInfo
            | Function::SendActivationCode => Role::Cmp,
            Function::RequestActivationCode
            | Function::SendCsimStatus
            | Function::RequestInvalidateMspToken
            | Function::RequestProfileStatus => Role::Msp,
        }
    }

    /// The role that calls the function: the other one.
    pub fn caller(self) -> Role {
        self.host().other()
    }

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Function::UpdateSubscriptionInfo => Method::PATCH,
            Function::RequestInvalidateMspToken => Method::DELETE,
            Function::RequestProfileStatus => Method::GET,
            _ => Method::POST,
        }
    }

    /// The path template as the spec writes it, e.g.
    /// `"/v1/activation-code-requests/{msp_token}"` (the optional `?iccid=` of Request
    /// Profile Status is not part of it).
    pub fn path_template(self) -> &'static str {
        match self {
            Function::SendMspToken => "/cesim/msp/v1/users/{account_id}",
            Function::NotifyMspTokenInvalid => "/cesim/msp/v1/users/{msp_token}/invalidate",
            Function::SendProfileInformation => "/cesim/msp/v1/users/{msp_token}/profiles",
            Function::UpdateSubscriptionInfo => "/cesim/msp/v1/subscriptions/{msp_token}",
            Function::SendActivationCode => "/cesim/msp/v1/activation-codes/{msp_token}",
            Function::RequestActivationCode => "/v1/activation-code-requests/{msp_token}",
            Function::SendCsimStatus => "/v1/statuses/{msp_token}",
            Function::RequestInvalidateMspToken => "/v1/users/{msp_token}",
            Function::RequestProfileStatus => "/v1/profiles/status/{msp_token}",
        }
    }

    /// The 2xx statuses the spec allows in the answer: 200 (sync) or 201 (async) for
    /// Request Activation Code, exactly one for every other function.
    pub fn success_statuses(self) -> &'static [u16] {
        match self {
            Function::SendMspToken
            | Function::UpdateSubscriptionInfo
            | Function::SendCsimStatus => &[201],
            Function::NotifyMspTokenInvalid | Function::RequestInvalidateMspToken => &[204],
            Function::SendProfileInformation
            | Function::SendActivationCode
            | Function::RequestProfileStatus => &[200],
            Function::RequestActivationCode => &[200, 201],
        }
    }

    /// The non-2xx statuses the spec documents for the function.
    pub fn error_statuses(self) -> &'static [u16] {
        match self {
            Function::NotifyMspTokenInvalid => &[401, 404, 500],
            Function::SendMspToken
            | Function::SendProfileInformation
            | Function::UpdateSubscriptionInfo => ERRORS_401_403_404_422_500,
            Function::SendActivationCode
            | Function::RequestActivationCode
            | Function::SendCsimStatus
            | Function::RequestInvalidateMspToken
            | Function::RequestProfileStatus => ERRORS_401_404_422_500,
        }
    }

    /// Whether the request may carry a JSON body: false for Request Invalidate MSP Token
    /// (DELETE) and Request Profile Status (GET). Notify MSP Token Invalid has a body whose
    /// only member is optional, so it may also come without one (see
    /// [`Function::body_required`]).
    pub fn has_request_body(self) -> bool {
        !matches!(
            self,
            Function::RequestInvalidateMspToken | Function::RequestProfileStatus
        )
    }

    /// Whether an empty request body is refused: true for every function with a body except
    /// Notify MSP Token Invalid.
    pub fn body_required(self) -> bool {
        self.has_request_body() && self != Function::NotifyMspTokenInvalid
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_titles_and_templates_are_unique() {
        let names: HashSet<_> = Function::ALL.iter().map(|f| f.name()).collect();
        let titles: HashSet<_> = Function::ALL.iter().map(|f| f.title()).collect();
        let routes: HashSet<_> = Function::ALL
            .iter()
            .map(|f| (f.method(), f.path_template()))
            .collect();
        assert_eq!(names.len(), 9);
        assert_eq!(titles.len(), 9);
        assert_eq!(routes.len(), 9);
    }

    #[test]
    fn from_name_round_trips() {
        for f in Function::ALL {
            assert_eq!(Function::from_name(f.name()), Some(f));
        }
        assert_eq!(Function::from_name("Send MSP Token"), None);
    }

    #[test]
    fn host_follows_the_path_prefix() {
        for f in Function::ALL {
            let cmp_hosted = f.path_template().starts_with("/cesim/msp/v1/");
            assert_eq!(f.host() == Role::Cmp, cmp_hosted, "{f}");
            assert!(cmp_hosted || f.path_template().starts_with("/v1/"));
            assert_ne!(f.host(), f.caller());
        }
    }

    #[test]
    fn statuses_follow_the_digest_table() {
        assert_eq!(
            Function::RequestActivationCode.success_statuses(),
            &[200, 201]
        );
        assert_eq!(Function::SendMspToken.success_statuses(), &[201]);
        assert_eq!(Function::NotifyMspTokenInvalid.success_statuses(), &[204]);
        assert_eq!(Function::RequestProfileStatus.success_statuses(), &[200]);
        assert_eq!(
            Function::NotifyMspTokenInvalid.error_statuses(),
            &[401, 404, 500]
        );
        assert!(Function::SendMspToken.error_statuses().contains(&403));
        assert!(!Function::SendCsimStatus.error_statuses().contains(&403));
        for f in Function::ALL {
            assert!(f.success_statuses().iter().all(|s| (200..300).contains(s)));
            assert!(f.error_statuses().iter().all(|s| *s >= 400));
        }
    }

    #[test]
    fn bodies() {
        assert!(!Function::RequestInvalidateMspToken.has_request_body());
        assert!(!Function::RequestProfileStatus.has_request_body());
        assert!(Function::NotifyMspTokenInvalid.has_request_body());
        assert!(!Function::NotifyMspTokenInvalid.body_required());
        assert!(Function::SendMspToken.body_required());
        assert_eq!(Function::RequestProfileStatus.method(), Method::GET);
        assert_eq!(Function::UpdateSubscriptionInfo.method(), Method::PATCH);
        assert_eq!(Function::RequestInvalidateMspToken.method(), Method::DELETE);
    }
}
