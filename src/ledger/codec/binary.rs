//! The binary layout of schema version 1 (tag byte [`super::BINARY_V1`] in front of a
//! value): every field in declaration order, without names.
//!
//! * integers little-endian at their full width (`u64` 8 bytes, `u16` 2), `bool` one byte
//!   (0 or 1);
//! * a UUID as its 16 bytes;
//! * a string as its length in bytes (LEB128: seven bits a byte, low bits first, the top bit
//!   set on every byte but the last) and its UTF-8 bytes;
//! * `Option`: one byte, 0 for none, or 1 followed by the value;
//! * an enum: one byte naming the variant (the numbers in the `impl`s below, fixed once
//!   written), then the variant's fields.
//!
//! Reading is total: a value that ends early, goes on after its record, or holds a byte no
//! variant or `bool` has is an error saying so, never a panic.
//!
//! The JSON of the same shape took serde_json about 2 300 instructions per record in the
//! ledger writer (callgrind) and 200–300 bytes; this takes about 100 and 50–100 bytes.

use uuid::Uuid;

use crate::ledger::types::{
    AcRequest, AcState, Federation, FederationState, Outcome, Pair, Profile, ProfileSource,
    Withdrawal,
};

/// A value in the binary layout.
pub(in crate::ledger) trait Binary: Sized {
    /// Appends the value to `out`.
    fn put(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `input`.
    fn take(input: &mut Input<'_>) -> Result<Self, String>;
}

/// The bytes not read yet.
pub(in crate::ledger) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "the record ends early: {} more expected, {} left",
                byte_count(n),
                self.rest.len()
            ));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(N)?);
        Ok(array)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    /// A length in LEB128.
    fn len(&mut self) -> Result<usize, String> {
        let mut len = 0usize;
        for shift in (0..usize::BITS).step_by(7) {
            let byte = self.byte()?;
            let bits = usize::from(byte & 0x7f);
            if (bits << shift) >> shift != bits {
                break; // bits beyond the top
            }
            len |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(len);
            }
        }
        Err("a length does not fit in a usize".to_string())
    }
}

fn put_len(mut len: usize, out: &mut Vec<u8>) {
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// Reads the whole of `bytes` as one `T`.
pub(in crate::ledger) fn read<T: Binary>(bytes: &[u8]) -> Result<T, String> {
    let mut input = Input { rest: bytes };
    let value = T::take(&mut input)?;
    match input.rest.len() {
        0 => Ok(value),
        n => Err(format!("{} after the record", byte_count(n))),
    }
}

/// `n` bytes in words.
fn byte_count(n: usize) -> String {
    match n {
        1 => "1 byte".to_string(),
        n => format!("{n} bytes"),
    }
}

impl Binary for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        input.array().map(u64::from_le_bytes)
    }
}

impl Binary for u16 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        input.array().map(u16::from_le_bytes)
    }
}

impl Binary for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        match input.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{other} is not a bool")),
        }
    }
}

impl Binary for Uuid {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        input.array().map(Uuid::from_bytes)
    }
}

impl Binary for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        let len = input.len()?;
        let bytes = input.bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }
}

impl<T: Binary> Binary for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.put(out);
            }
        }
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        match input.byte()? {
            0 => Ok(None),
            1 => T::take(input).map(Some),
            other => Err(format!("{other} is not an option's tag")),
        }
    }
}

/// An enum of unit variants, each written as its number.
macro_rules! unit_variants {
    ($ty:ident { $($variant:ident = $tag:literal),+ $(,)? }) => {
        impl Binary for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                out.push(match self {
                    $($ty::$variant => $tag,)+
                });
            }
            fn take(input: &mut Input<'_>) -> Result<Self, String> {
                match input.byte()? {
                    $($tag => Ok($ty::$variant),)+
                    other => Err(unknown_variant(stringify!($ty), other)),
                }
            }
        }
    };
}

unit_variants!(Withdrawal {
    MspNotified = 0,
    CmpRequested = 1,
    Operator = 2,
});

unit_variants!(ProfileSource {
    SyncAnswer = 0,
    AsyncAnswer = 1,
    Swapped = 2,
    CsimStatus = 3,
    ProfileInformation = 4,
    ProfileStatusAnswer = 5,
});

fn unknown_variant(ty: &str, tag: u8) -> String {
    format!("{ty} has no variant {tag}")
}

impl Binary for Pair {
    fn put(&self, out: &mut Vec<u8>) {
        self.msp.put(out);
        self.cmp.put(out);
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        Ok(Pair {
            msp: String::take(input)?,
            cmp: String::take(input)?,
        })
    }
}

impl Binary for Federation {
    fn put(&self, out: &mut Vec<u8>) {
        self.msp_token.put(out);
        self.pair.put(out);
        self.sid.put(out);
        self.subscription_type.put(out);
        self.created_at.put(out);
        self.learned.put(out);
        self.state.put(out);
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        Ok(Federation {
            msp_token: Uuid::take(input)?,
            pair: Pair::take(input)?,
            sid: Binary::take(input)?,
            subscription_type: Binary::take(input)?,
            created_at: u64::take(input)?,
            learned: bool::take(input)?,
            state: FederationState::take(input)?,
        })
    }
}

impl Binary for FederationState {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            FederationState::Reserved { at } => {
                out.push(0);
                at.put(out);
            }
            FederationState::Active => out.push(1),
            FederationState::Invalid { at, by, reason } => {
                out.push(2);
                at.put(out);
                by.put(out);
                reason.put(out);
            }
        }
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        match input.byte()? {
            0 => Ok(FederationState::Reserved {
                at: u64::take(input)?,
            }),
            1 => Ok(FederationState::Active),
            2 => Ok(FederationState::Invalid {
                at: u64::take(input)?,
                by: Withdrawal::take(input)?,
                reason: Binary::take(input)?,
            }),
            other => Err(unknown_variant("FederationState", other)),
        }
    }
}

impl Binary for AcRequest {
    fn put(&self, out: &mut Vec<u8>) {
        self.id.put(out);
        self.msp_token.put(out);
        self.pair.put(out);
        self.created_at.put(out);
        self.state.put(out);
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        Ok(AcRequest {
            id: Uuid::take(input)?,
            msp_token: Uuid::take(input)?,
            pair: Pair::take(input)?,
            created_at: u64::take(input)?,
            state: AcState::take(input)?,
        })
    }
}

impl Binary for AcState {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            AcState::Pending => out.push(0),
            AcState::Open { deadline } => {
                out.push(1);
                deadline.put(out);
            }
            AcState::Answering { at, deadline } => {
                out.push(2);
                at.put(out);
                deadline.put(out);
            }
            AcState::Closed { at, outcome } => {
                out.push(3);
                at.put(out);
                outcome.put(out);
            }
        }
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        match input.byte()? {
            0 => Ok(AcState::Pending),
            1 => Ok(AcState::Open {
                deadline: u64::take(input)?,
            }),
            2 => Ok(AcState::Answering {
                at: u64::take(input)?,
                deadline: u64::take(input)?,
            }),
            3 => Ok(AcState::Closed {
                at: u64::take(input)?,
                outcome: Outcome::take(input)?,
            }),
            other => Err(unknown_variant("AcState", other)),
        }
    }
}

impl Binary for Outcome {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Outcome::Sync => out.push(0),
            Outcome::Refused { status } => {
                out.push(1);
                status.put(out);
            }
            Outcome::Answered => out.push(2),
            Outcome::AnsweredWithError => out.push(3),
            Outcome::Expired => out.push(4),
            Outcome::Abandoned => out.push(5),
        }
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        match input.byte()? {
            0 => Ok(Outcome::Sync),
            1 => Ok(Outcome::Refused {
                status: u16::take(input)?,
            }),
            2 => Ok(Outcome::Answered),
            3 => Ok(Outcome::AnsweredWithError),
            4 => Ok(Outcome::Expired),
            5 => Ok(Outcome::Abandoned),
            other => Err(unknown_variant("Outcome", other)),
        }
    }
}

impl Binary for Profile {
    fn put(&self, out: &mut Vec<u8>) {
        self.msp_token.put(out);
        self.iccid.put(out);
        self.status.put(out);
        self.source.put(out);
        self.at.put(out);
    }
    fn take(input: &mut Input<'_>) -> Result<Self, String> {
        Ok(Profile {
            msp_token: Uuid::take(input)?,
            iccid: String::take(input)?,
            status: String::take(input)?,
            source: ProfileSource::take(input)?,
            at: u64::take(input)?,
        })
    }
}
