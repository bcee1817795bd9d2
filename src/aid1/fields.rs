//! Readers for the body members several functions share (`iccid`, `profileType`,
//! `activationCode`, enumerations, bounded text …): each takes the object and the member
//! name, applies the member's rule and turns a failure into the [`Violation`] of the right
//! kind, with the JSON path as `field`.

use crate::aid1::json::Obj;
use crate::aid1::request::Rules;
use crate::aid1::types::{ActivationCode, Eid, Iccid, MspToken, ProfileType, RequestId};
use crate::aid1::violation::{Violation, ViolationKind};

/// Longest accepted `profileType` / `deviceType` (7.7: `[ASCII]{20}`, read as "at most 20").
pub(crate) const SHORT_ASCII_MAX: usize = 20;

/// A required `msp_token`-like UUID member; malformed is [`ViolationKind::BadMspToken`].
pub(crate) fn msp_token(obj: &Obj<'_>, name: &str) -> Result<MspToken, Violation> {
    let text = obj.str(name)?;
    MspToken::parse(text)
        .map_err(|r| Violation::new(ViolationKind::BadMspToken, obj.path_of(name), r))
}

/// A required `activationCodeRequestID`; malformed is [`ViolationKind::BadRequestId`].
pub(crate) fn request_id(obj: &Obj<'_>, name: &str) -> Result<RequestId, Violation> {
    let text = obj.str(name)?;
    RequestId::parse(text)
        .map_err(|r| Violation::new(ViolationKind::BadRequestId, obj.path_of(name), r))
}

/// A required ICCID.
pub(crate) fn iccid(obj: &Obj<'_>, name: &str, rules: &Rules) -> Result<Iccid, Violation> {
    let text = obj.str(name)?;
    Iccid::parse(text, rules.strict_iccid).map_err(|r| Violation::syntax(obj.path_of(name), r))
}

/// An ICCID that may be `null` or absent (`swappedIccid`): `None` then. An empty string is
/// not `null` and is refused.
pub(crate) fn iccid_or_null(
    obj: &Obj<'_>,
    name: &str,
    rules: &Rules,
) -> Result<Option<Iccid>, Violation> {
    match obj.opt_str(name)? {
        None => Ok(None),
        Some(text) => Iccid::parse(text, rules.strict_iccid)
            .map(Some)
            .map_err(|r| Violation::syntax(obj.path_of(name), format!("{r}, or null"))),
    }
}

/// Printable ASCII (space to `~`), 1 to [`SHORT_ASCII_MAX`] characters.
pub(crate) fn short_ascii<'a>(obj: &Obj<'a>, name: &str) -> Result<&'a str, Violation> {
    let text = obj.str(name)?;
    if text.is_empty()
        || text.len() > SHORT_ASCII_MAX
        || !text.bytes().all(|b| (b' '..=b'~').contains(&b))
    {
        return Err(Violation::syntax(
            obj.path_of(name),
            format!("must be 1 to {SHORT_ASCII_MAX} printable ASCII characters"),
        ));
    }
    Ok(text)
}

/// A required `profileType`: malformed is `Syntax`, well-formed but not `personal` is
/// [`ViolationKind::ProfileTypeUnknown`].
pub(crate) fn profile_type(obj: &Obj<'_>, name: &str) -> Result<ProfileType, Violation> {
    let text = short_ascii(obj, name)?;
    ProfileType::from_spec(text).ok_or_else(|| {
        Violation::new(
            ViolationKind::ProfileTypeUnknown,
            obj.path_of(name),
            "unknown profile type (the spec defines only personal)",
        )
    })
}

/// A required `activationCode`; failing the grammar is
/// [`ViolationKind::ActivationCodeFormat`]. The reason never quotes the code.
pub(crate) fn activation_code(obj: &Obj<'_>, name: &str) -> Result<ActivationCode, Violation> {
    let text = obj.str(name)?;
    ActivationCode::parse(text).map_err(|r| {
        Violation::new(
            ViolationKind::ActivationCodeFormat,
            obj.path_of(name),
            format!("does not follow the SGP.22 activation code grammar: {r}"),
        )
    })
}

/// An `eid` that may be empty, `null` or absent (all `None`).
pub(crate) fn eid_or_empty(obj: &Obj<'_>, name: &str) -> Result<Option<Eid>, Violation> {
    match obj.opt_str(name)? {
        None | Some("") => Ok(None),
        Some(text) => Eid::parse(text)
            .map(Some)
            .map_err(|r| Violation::syntax(obj.path_of(name), r)),
    }
}

/// Optional free text of at most `max` characters (`null` is absent, `""` is kept).
pub(crate) fn opt_text(obj: &Obj<'_>, name: &str, max: usize) -> Result<Option<String>, Violation> {
    match obj.opt_str(name)? {
        None => Ok(None),
        Some(text) if text.chars().count() > max => Err(Violation::syntax(
            obj.path_of(name),
            format!("longer than {max} characters"),
        )),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

/// Optional `error` text (Send MSP Token, Send Activation Code): at most `max` characters;
/// `null` and `""` both mean "not set".
pub(crate) fn opt_error(
    obj: &Obj<'_>,
    name: &str,
    max: usize,
) -> Result<Option<String>, Violation> {
    Ok(opt_text(obj, name, max)?.filter(|t| !t.is_empty()))
}

/// A required member whose value is one of `choices` (case-sensitive).
pub(crate) fn one_of<T: Copy>(
    obj: &Obj<'_>,
    name: &str,
    choices: &[(&str, T)],
) -> Result<T, Violation> {
    let text = obj.str(name)?;
    pick(obj, name, text, choices)
}

/// An optional member whose value, when present, is one of `choices`.
pub(crate) fn opt_one_of<T: Copy>(
    obj: &Obj<'_>,
    name: &str,
    choices: &[(&str, T)],
) -> Result<Option<T>, Violation> {
    match obj.opt_str(name)? {
        None => Ok(None),
        Some(text) => pick(obj, name, text, choices).map(Some),
    }
}

fn pick<T: Copy>(
    obj: &Obj<'_>,
    name: &str,
    text: &str,
    choices: &[(&str, T)],
) -> Result<T, Violation> {
    choices
        .iter()
        .find(|(spelling, _)| *spelling == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(s, _)| *s).collect();
            Violation::syntax(
                obj.path_of(name),
                format!("must be one of {}", names.join(", ")),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aid1::json::parse_object;

    #[test]
    fn shared_readers() {
        let map = parse_object(
            br#"{"t":"personal","u":"business","d":"tcu","l":"x\u00e9","e":"","c":"1$A.B$C","bad":"1$A$C","sw":null,"s":""}"#,
        )
        .unwrap();
        let obj = Obj::root(&map);
        let rules = Rules::default();
        assert_eq!(profile_type(&obj, "t").unwrap(), ProfileType::Personal);
        assert_eq!(
            profile_type(&obj, "u").unwrap_err().kind,
            ViolationKind::ProfileTypeUnknown
        );
        assert_eq!(
            profile_type(&obj, "l").unwrap_err().kind,
            ViolationKind::Syntax
        );
        assert_eq!(short_ascii(&obj, "d").unwrap(), "tcu");
        assert_eq!(eid_or_empty(&obj, "e").unwrap(), None);
        assert_eq!(eid_or_empty(&obj, "absent").unwrap(), None);
        assert!(activation_code(&obj, "c").is_ok());
        assert_eq!(
            activation_code(&obj, "bad").unwrap_err().kind,
            ViolationKind::ActivationCodeFormat
        );
        assert_eq!(iccid_or_null(&obj, "sw", &rules).unwrap(), None);
        assert_eq!(
            iccid_or_null(&obj, "s", &rules).unwrap_err().kind,
            ViolationKind::Syntax
        );
        assert_eq!(opt_error(&obj, "s", 5).unwrap(), None);
        assert_eq!(opt_text(&obj, "s", 5).unwrap(), Some(String::new()));
        assert!(opt_text(&obj, "l", 1).is_err());
        assert!(opt_text(&obj, "l", 2).is_ok());
        let choice = [("private", 1), ("business", 2)];
        assert_eq!(one_of(&obj, "u", &choice).unwrap(), 2);
        let v = one_of(&obj, "t", &choice).unwrap_err();
        assert_eq!(v.reason, "must be one of private, business");
        assert_eq!(opt_one_of(&obj, "absent", &choice).unwrap(), None);
    }
}
