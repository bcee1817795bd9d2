//! The format, cap or enumeration of each parameter the eSIM transfer uses (AOSP names;
//! RCC.14 caps for the terminal fields); the reasons never quote the value.

use super::MAX_VALUE;

fn digits(value: &str, min: usize, max: usize) -> Result<(), String> {
    if (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("must be {min}-{max} digits"))
    }
}

fn capped(value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character".into());
    }
    Ok(())
}

/// The format of one parameter (AOSP names; RCC.14 caps for the terminal fields).
pub(super) fn check_format(name: &str, value: &str) -> Result<(), String> {
    match name {
        "IMSI" => digits(value, 6, 15),
        "EAP_ID" => {
            capped(value, 253)?;
            if value.contains('@') && !value.starts_with('@') {
                Ok(())
            } else {
                Err("is not an NAI (identity@realm)".into())
            }
        }
        "token" | "temporary_token" | "notif_token" => {
            if (1..=512).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(())
            } else {
                Err("must be 1-512 printable characters".into())
            }
        }
        "terminal_id" | "target_terminal_id" | "old_terminal_id" | "companion_terminal_id" => {
            if value.is_empty() {
                return Err("is empty".into());
            }
            capped(value, 64)
        }
        "terminal_vendor" | "companion_terminal_vendor" => capped(value, 4),
        "terminal_model" | "companion_terminal_model" | "target_terminal_model" => {
            capped(value, 10)
        }
        "terminal_sw_version" | "companion_terminal_sw_version" => capped(value, 20),
        "app" => {
            let apps = value.trim_matches(|c| c == '[' || c == ']');
            if apps.split(',').all(|a| {
                let a = a.trim();
                a.len() == 6 && a.starts_with("ap") && a[2..].bytes().all(|b| b.is_ascii_digit())
            }) {
                Ok(())
            } else {
                Err("is not an app ID like ap2009".into())
            }
        }
        "vers" => digits(value, 1, 10),
        "entitlement_version" => {
            let ok = value.split('.').count() <= 2
                && value.split('.').all(|p| {
                    !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())
                });
            if ok {
                Ok(())
            } else {
                Err("is not a version like 9.0".into())
            }
        }
        "notif_action" => match value {
            "0" | "1" | "2" | "3" | "4" => Ok(()),
            _ => Err("must be 0-4".into()),
        },
        "terminal_eid" | "target_terminal_eid" | "companion_terminal_eid" => digits(value, 32, 32),
        "terminal_iccid"
        | "target_terminal_iccid"
        | "old_terminal_iccid"
        | "companion_terminal_iccid" => {
            let digits_only = value.strip_suffix(['F', 'f']).unwrap_or(value);
            digits(digits_only, 18, 20)
        }
        "MSG_btn" => match value {
            "0" | "1" => Ok(()),
            _ => Err("must be 0 or 1".into()),
        },
        _ => capped(value, MAX_VALUE),
    }
}
