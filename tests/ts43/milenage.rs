//! The USIM side of EAP-AKA, computed by the test device: Milenage f1–f5 and f1*/f5*
//! (3GPP TS 35.206) on AES-128, checked against TS 35.208 test set 1, and the EAP-AKA key
//! derivation (RFC 4187: MK, the FIPS 186-2 PRF, K_aut) with AT_MAC.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

type B16 = [u8; 16];

fn enc(k: &B16, x: &B16) -> B16 {
    let cipher = Aes128::new(k.into());
    let mut block = aes::Block::clone_from_slice(x);
    cipher.encrypt_block(&mut block);
    block.into()
}

fn xor(a: &B16, b: &B16) -> B16 {
    std::array::from_fn(|i| a[i] ^ b[i])
}

fn rot(x: &B16, bytes: usize) -> B16 {
    std::array::from_fn(|i| x[(i + bytes) % 16])
}

/// A USIM's key material.
#[derive(Clone)]
pub struct Usim {
    /// K.
    pub k: B16,
    /// OPc.
    pub opc: B16,
}

/// What f2–f5 give for one RAND.
pub struct Vector {
    /// RES (f2).
    pub res: [u8; 8],
    /// CK (f3).
    pub ck: B16,
    /// IK (f4).
    pub ik: B16,
    /// AK (f5).
    pub ak: [u8; 6],
}

impl Usim {
    /// OPc from OP.
    pub fn opc_of(k: &B16, op: &B16) -> B16 {
        xor(&enc(k, op), op)
    }

    fn out(&self, rand: &B16, r: usize, c: u8) -> B16 {
        let temp = enc(&self.k, &xor(rand, &self.opc));
        let mut x = rot(&xor(&temp, &self.opc), r);
        x[15] ^= c;
        xor(&enc(&self.k, &x), &self.opc)
    }

    /// f1 (MAC-A) and f1* (MAC-S).
    pub fn f1(&self, rand: &B16, sqn: &[u8; 6], amf: &[u8; 2]) -> ([u8; 8], [u8; 8]) {
        let temp = enc(&self.k, &xor(rand, &self.opc));
        let mut in1 = [0u8; 16];
        in1[..6].copy_from_slice(sqn);
        in1[6..8].copy_from_slice(amf);
        in1[8..14].copy_from_slice(sqn);
        in1[14..].copy_from_slice(amf);
        let x = xor(&temp, &rot(&xor(&in1, &self.opc), 8));
        let out1 = xor(&enc(&self.k, &x), &self.opc);
        (out1[..8].try_into().unwrap(), out1[8..].try_into().unwrap())
    }

    /// f2–f5.
    pub fn vector(&self, rand: &B16) -> Vector {
        let out2 = self.out(rand, 0, 1);
        Vector {
            res: out2[8..].try_into().unwrap(),
            ak: out2[..6].try_into().unwrap(),
            ck: self.out(rand, 4, 2),
            ik: self.out(rand, 8, 4),
        }
    }

    /// f5* (the resync anonymity key).
    pub fn f5_star(&self, rand: &B16) -> [u8; 6] {
        self.out(rand, 12, 8)[..6].try_into().unwrap()
    }
}

/// SHA-1's compression function alone (the G of FIPS 186-2).
fn sha1_g(block: &[u8; 64]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut w = [0u32; 80];
    for i in 0..16 {
        w[i] = u32::from_be_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = h;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A827999),
            20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
            _ => (b ^ c ^ d, 0xCA62C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
        *x = x.wrapping_add(y);
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// K_aut of EAP-AKA: MK = SHA1(identity | IK | CK), then the FIPS 186-2 PRF.
pub fn k_aut(identity: &str, ik: &B16, ck: &B16) -> B16 {
    let mut input = identity.as_bytes().to_vec();
    input.extend_from_slice(ik);
    input.extend_from_slice(ck);
    let mk = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    let mut xkey: [u8; 20] = mk.as_ref().try_into().unwrap();
    let mut out = Vec::new();
    while out.len() < 40 {
        let mut block = [0u8; 64];
        block[..20].copy_from_slice(&xkey);
        let w = sha1_g(&block);
        out.extend_from_slice(&w);
        // XKEY = (1 + XKEY + w) mod 2^160
        let mut carry = 1u16;
        for i in (0..20).rev() {
            let sum = u16::from(xkey[i]) + u16::from(w[i]) + carry;
            xkey[i] = sum as u8;
            carry = sum >> 8;
        }
    }
    out[16..32].try_into().unwrap()
}

/// HMAC-SHA1-128 over `packet` (its AT_MAC zeroed) with `k_aut`.
pub fn mac(k_aut: &B16, packet: &[u8]) -> [u8; 16] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, k_aut);
    ring::hmac::sign(&key, packet).as_ref()[..16]
        .try_into()
        .unwrap()
}

/// Hex to bytes (test data).
pub fn hex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn milenage_matches_ts_35_208_test_set_1() {
    let k = hex("465b5ce8b199b49faa5f0a2ee238a6bc");
    let opc = Usim::opc_of(&k, &hex("cdc202d5123e20f62b6d676ac72cb318"));
    assert_eq!(opc, hex::<16>("cd63cb71954a9f4e48a5994e37a02baf"));
    let usim = Usim { k, opc };
    let rand = hex("23553cbe9637a89d218ae64dae47bf35");
    let (mac_a, mac_s) = usim.f1(&rand, &hex("ff9bb4d0b607"), &hex("b9b9"));
    assert_eq!(mac_a, hex::<8>("4a9ffac354dfafb3"));
    assert_eq!(mac_s, hex::<8>("01cfaf9ec4e871e9"));
    let v = usim.vector(&rand);
    assert_eq!(v.res, hex::<8>("a54211d5e3ba50bf"));
    assert_eq!(v.ck, hex::<16>("b40ba9a3c58b2a05bbf0d987b21bf8cb"));
    assert_eq!(v.ik, hex::<16>("f769bcd751044604127672711c6d3441"));
    assert_eq!(v.ak, hex::<6>("aa689c648370"));
    assert_eq!(usim.f5_star(&rand), hex::<6>("451e8beca43b"));
}

#[test]
fn sha1_g_of_an_empty_padded_message_is_sha1() {
    // SHA-1("") is the compression of the one padded block 0x80 0… 0.
    let mut block = [0u8; 64];
    block[0] = 0x80;
    assert_eq!(
        hex::encode(sha1_g(&block)),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
}
