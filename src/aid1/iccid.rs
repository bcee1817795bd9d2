//! The ICCID (AID.02 5.4) and the digest's decision on its length: the spec says 20–22
//! digits, its own 7.5 example has 19, and real ICCIDs have 18–20 (10 BCD bytes on the card,
//! ES2+ allows a trailing `F` pad). [`Iccid`] accepts 18–22 digits plus an optional pad by
//! default and the spec's 20–22 in strict mode; a failing Luhn digit is reported, not
//! refused.

/// An ICCID (5.4), stored as its digits without padding.
///
/// Decision (digest, "ICCID length"): 18–22 digits, optionally followed by one `F` or `f`
/// padding character that is not counted and not stored; strict mode narrows the digits to
/// the spec's 20–22. The Luhn check digit is not enforced; [`Iccid::luhn_ok`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iccid(String);

impl Iccid {
    /// Parses an ICCID; `strict` selects 20–22 digits instead of 18–22.
    pub fn parse(text: &str, strict: bool) -> Result<Iccid, String> {
        let digits = text
            .strip_suffix('F')
            .or_else(|| text.strip_suffix('f'))
            .unwrap_or(text);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be decimal digits, optionally followed by one 'F'".to_owned());
        }
        let (min, max) = if strict { (20, 22) } else { (18, 22) };
        if !(min..=max).contains(&digits.len()) {
            return Err(format!("must have {min} to {max} digits"));
        }
        Ok(Iccid(digits.to_owned()))
    }

    /// The digits, without padding.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the last digit is a valid Luhn check digit over the others (ITU-T E.118).
    pub fn luhn_ok(&self) -> bool {
        let sum: u32 = self
            .0
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b.wrapping_sub(b'0'));
                if i % 2 == 1 {
                    let twice = d * 2;
                    if twice > 9 {
                        twice - 9
                    } else {
                        twice
                    }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}

impl std::fmt::Display for Iccid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iccid_lengths_follow_the_decision() {
        // 7.5's own example is 19 digits: accepted by default, refused in strict mode.
        assert!(Iccid::parse("8944500805172032953", false).is_ok());
        assert!(Iccid::parse("8944500805172032953", true).is_err());
        assert!(Iccid::parse("98341201501601380129", true).is_ok());
        assert!(Iccid::parse("894450080517203295", false).is_ok());
        assert!(Iccid::parse("89445008051720329", false).is_err());
        assert!(Iccid::parse(&"8".repeat(22), true).is_ok());
        assert!(Iccid::parse(&"8".repeat(23), false).is_err());
        assert!(Iccid::parse("", false).is_err());
        assert!(Iccid::parse("F", false).is_err());
        assert!(Iccid::parse("8944500805172032953 ", false).is_err());
        assert!(Iccid::parse("+944500805172032953", false).is_err());
        assert!(Iccid::parse("894450080517203295FF", false).is_err());
    }

    #[test]
    fn iccid_padding_is_stripped() {
        let i = Iccid::parse("8944500805172032953F", false).unwrap();
        assert_eq!(i.as_str(), "8944500805172032953");
        assert!(Iccid::parse("8944500805172032953f", false).is_ok());
        assert!(Iccid::parse("8944500805172032953F", true).is_err());
    }

    #[test]
    fn iccid_luhn() {
        assert!(Iccid::parse("8988211000000530082", false)
            .unwrap()
            .luhn_ok());
        assert!(!Iccid::parse("8988211000000530083", false)
            .unwrap()
            .luhn_ok());
        assert!(Iccid::parse("89882110000005300811", false)
            .unwrap()
            .luhn_ok());
    }
}
