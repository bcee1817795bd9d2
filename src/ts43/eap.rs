//! The EAP-AKA relay as it crosses the hub: the `{"eap-relay-packet": "<base64>"}`
//! envelope in both directions and the EAP packet inside, checked for shape only (the
//! hub never computes AKA and never sees a key). The session is the ECS's cookie, which
//! the hub passes through unchanged both ways; the follow-up POST goes to the bare URL.

use base64::Engine as _;

/// The envelope key.
pub const PACKET_KEY: &str = "eap-relay-packet";

/// What an EAP packet is, as far as the relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// Request/AKA-Challenge (from the ECS), with AT_RAND and AT_AUTN.
    Challenge,
    /// Response/AKA-Challenge (from the device), with AT_RES and AT_MAC.
    ChallengeResponse,
    /// Response/AKA-Synchronization-Failure with AT_AUTS (the SQN resync).
    SyncFailure,
    /// Response/AKA-Authentication-Reject.
    Reject,
    /// Response/AKA-Client-Error.
    ClientError,
    /// Request/AKA-Notification.
    Notification,
    /// EAP-Success.
    Success,
    /// EAP-Failure.
    Failure,
}

impl Packet {
    /// A metric label.
    pub fn name(self) -> &'static str {
        match self {
            Packet::Challenge => "challenge",
            Packet::ChallengeResponse => "challenge_response",
            Packet::SyncFailure => "sync_failure",
            Packet::Reject => "reject",
            Packet::ClientError => "client_error",
            Packet::Notification => "notification",
            Packet::Success => "success",
            Packet::Failure => "failure",
        }
    }

    /// Whether a device may send it.
    pub fn from_device(self) -> bool {
        matches!(
            self,
            Packet::ChallengeResponse | Packet::SyncFailure | Packet::Reject | Packet::ClientError
        )
    }
}

/// The packet inside an envelope body.
pub fn open(body: &[u8]) -> Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the EAP relay body is not JSON".to_owned())?;
    let packet = value
        .get(PACKET_KEY)
        .and_then(|p| p.as_str())
        .ok_or_else(|| format!("the EAP relay body has no `{PACKET_KEY}`"))?;
    base64::engine::general_purpose::STANDARD
        .decode(packet.trim())
        .map_err(|_| "the EAP packet is not Base64".to_owned())
}

/// Whether a JSON answer body is an EAP relay envelope.
pub fn is_envelope(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get(PACKET_KEY).is_some())
}

/// Classifies an EAP packet, checking its length and attribute layout.
pub fn classify(packet: &[u8]) -> Result<Packet, String> {
    let [code, _id, len_hi, len_lo, rest @ ..] = packet else {
        return Err("the EAP packet is shorter than its header".into());
    };
    let length = usize::from(*len_hi) << 8 | usize::from(*len_lo);
    if length != packet.len() {
        return Err(format!(
            "the EAP length field says {length}, the packet has {}",
            packet.len()
        ));
    }
    match code {
        3 if rest.is_empty() => return Ok(Packet::Success),
        4 if rest.is_empty() => return Ok(Packet::Failure),
        1 | 2 => {}
        _ => return Err(format!("EAP code {code} is not a relay packet")),
    }
    let [kind, subtype, _, _, attrs @ ..] = rest else {
        return Err("the EAP-AKA header is cut short".into());
    };
    if *kind != 23 && *kind != 50 {
        return Err(format!("EAP type {kind} is not AKA"));
    }
    let found = attributes(attrs)?;
    let has = |t: u8| found.contains(&t);
    let packet = match (code, subtype) {
        (1, 1) if has(1) && has(2) => Packet::Challenge,
        (1, 12) => Packet::Notification,
        (2, 1) if has(3) && has(11) => Packet::ChallengeResponse,
        (2, 4) if has(4) => Packet::SyncFailure,
        (2, 2) => Packet::Reject,
        (2, 14) => Packet::ClientError,
        _ => {
            return Err(format!(
                "EAP-AKA code {code} subtype {subtype} lacks its attributes or is unexpected"
            ))
        }
    };
    Ok(packet)
}

/// The attribute types of an AKA packet, checking each length (in 4-byte units).
fn attributes(mut attrs: &[u8]) -> Result<Vec<u8>, String> {
    let mut types = Vec::new();
    while !attrs.is_empty() {
        let [kind, units, ..] = attrs else {
            return Err("an EAP-AKA attribute is cut short".into());
        };
        let len = usize::from(*units) * 4;
        if len == 0 || len > attrs.len() {
            return Err(format!("EAP-AKA attribute {kind} has a bad length"));
        }
        let fixed = match kind {
            1 | 2 | 11 => Some(20),
            4 => Some(16),
            _ => None,
        };
        if fixed.is_some_and(|f| f != len) {
            return Err(format!("EAP-AKA attribute {kind} is {len} bytes"));
        }
        types.push(*kind);
        attrs = &attrs[len..];
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aka(code: u8, subtype: u8, attrs: &[(u8, usize)]) -> Vec<u8> {
        let mut body = vec![23, subtype, 0, 0];
        for (kind, len) in attrs {
            body.push(*kind);
            body.push((*len / 4) as u8);
            body.extend(std::iter::repeat_n(0, len - 2));
        }
        let total = body.len() + 4;
        let mut packet = vec![code, 7, (total >> 8) as u8, total as u8];
        packet.extend(body);
        packet
    }

    #[test]
    fn packets_of_the_relay_are_recognised() {
        assert_eq!(
            classify(&aka(1, 1, &[(1, 20), (2, 20), (11, 20)])),
            Ok(Packet::Challenge)
        );
        assert_eq!(
            classify(&aka(2, 1, &[(3, 12), (11, 20)])),
            Ok(Packet::ChallengeResponse)
        );
        assert_eq!(classify(&aka(2, 4, &[(4, 16)])), Ok(Packet::SyncFailure));
        assert_eq!(classify(&[3, 1, 0, 4]), Ok(Packet::Success));
        assert_eq!(classify(&[4, 1, 0, 4]), Ok(Packet::Failure));
    }

    #[test]
    fn broken_packets_are_refused() {
        assert!(classify(&[]).is_err());
        assert!(classify(&[2, 1, 0, 9]).is_err());
        assert!(classify(&aka(1, 1, &[(1, 20)])).is_err(), "no AUTN");
        assert!(classify(&aka(2, 4, &[(4, 12)])).is_err(), "short AUTS");
        let mut p = aka(2, 1, &[(3, 12), (11, 20)]);
        p[4] = 18;
        assert!(classify(&p).is_err(), "not AKA");
    }

    #[test]
    fn envelopes_open_to_their_packet() {
        let body = br#"{"eap-relay-packet":"AwEABA=="}"#;
        assert_eq!(open(body).unwrap(), vec![3, 1, 0, 4]);
        assert!(is_envelope(body));
        assert!(open(b"{}").is_err());
        assert!(open(br#"{"eap-relay-packet":"***"}"#).is_err());
    }
}
