//! CRC-32C of record frames, three lanes at a time.
//!
//! A frame is a few hundred bytes, and for buffers that short the `crc32c` crate runs the
//! `crc32` instruction serially: each step waits for the one before (3 cycles for 8 bytes), so
//! it was the largest single user-space cost of ingest (7% of a 1 GiB run). Here a buffer of
//! 96 bytes or more (`MIN_LANES_LEN`) is cut into three equal lanes whose CRCs are computed in one
//! interleaved loop, then joined: the CRC of `A ‖ B` is `shift(crc(A), |B|) ^ crc(B)`, where
//! `shift(c, n)` (the state after `n` zero bytes) is one carry-less multiply of `c` by
//! `x^(8n-33) mod P` and one `crc32` of the 64-bit product. The multipliers are a table built
//! at compile time. The result is the same CRC-32C; elsewhere the `crc32c` crate is used.

/// Shortest buffer cut into lanes; shorter ones gain nothing over the serial loop.
const MIN_LANES_LEN: usize = 96;
/// Longest lane the multiplier table covers (twice this is shifted); longer buffers use the
/// `crc32c` crate's own parallel loop, which is fast at those lengths.
const MAX_LANE: usize = 2048;

/// CRC-32C (Castagnoli) of `data`, as `crc32c::crc32c` computes it.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if data.len() >= MIN_LANES_LEN
            && data.len() / 3 <= MAX_LANE
            && std::arch::is_x86_feature_detected!("sse4.2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            // SAFETY: the CPU has both instruction sets (checked just above).
            return unsafe { lanes::crc32c(data) };
        }
    }
    crc32c::crc32c(data)
}

/// Reflected CRC-32C polynomial.
#[cfg(any(target_arch = "x86_64", test))]
const POLY: u32 = 0x82F6_3B78;

/// `x^e mod P` in the reflected bit order the `crc32` instruction uses (bit 31 is `x^0`).
#[cfg(any(target_arch = "x86_64", test))]
const fn xpow(e: usize) -> u32 {
    let mut v: u32 = 1 << 31;
    let mut i = 0;
    while i < e {
        v = (v >> 1) ^ if v & 1 == 1 { POLY } else { 0 };
        i += 1;
    }
    v
}

/// `MULTIPLIERS[k]` shifts a CRC state past `8k` bytes: `x^(64k - 33) mod P`.
#[cfg(target_arch = "x86_64")]
const MULTIPLIERS: [u32; 2 * MAX_LANE / 8 + 1] = {
    let mut t = [0u32; 2 * MAX_LANE / 8 + 1];
    // Entry 0 is never used (a lane is at least 32 bytes); each next one is 64 powers of x on.
    let mut v = xpow(64 - 33);
    let mut k = 1;
    while k < t.len() {
        t[k] = v;
        let mut i = 0;
        while i < 64 {
            v = (v >> 1) ^ if v & 1 == 1 { POLY } else { 0 };
            i += 1;
        }
        k += 1;
    }
    t
};

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::MULTIPLIERS;
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_crc32_u64, _mm_crc32_u8, _mm_cvtsi128_si64, _mm_cvtsi64_si128,
    };

    /// The state `crc` after `8 * words` zero bytes.
    #[inline]
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    fn shift(crc: u32, words: usize) -> u32 {
        let k = _mm_cvtsi64_si128(i64::from(MULTIPLIERS[words]));
        let c = _mm_cvtsi64_si128(i64::from(crc));
        let product = _mm_cvtsi128_si64(_mm_clmulepi64_si128(c, k, 0)) as u64;
        _mm_crc32_u64(0, product) as u32
    }

    #[inline]
    fn word(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[..8]);
        u64::from_le_bytes(w)
    }

    /// See the module doc. `data` is at least 96 bytes and its lanes are in the table.
    #[target_feature(enable = "sse4.2,pclmulqdq")]
    pub fn crc32c(data: &[u8]) -> u32 {
        let words = data.len() / 24;
        let lane = words * 8;
        let (a, rest) = data.split_at(lane);
        let (b, rest) = rest.split_at(lane);
        let (c, tail) = rest.split_at(lane);
        let (mut ca, mut cb, mut cc) = (u64::from(u32::MAX), 0u64, 0u64);
        for ((wa, wb), wc) in a
            .chunks_exact(8)
            .zip(b.chunks_exact(8))
            .zip(c.chunks_exact(8))
        {
            ca = _mm_crc32_u64(ca, word(wa));
            cb = _mm_crc32_u64(cb, word(wb));
            cc = _mm_crc32_u64(cc, word(wc));
        }
        let mut crc = shift(ca as u32, 2 * words) ^ shift(cb as u32, words) ^ cc as u32;
        let mut tail_words = tail.chunks_exact(8);
        for w in &mut tail_words {
            crc = _mm_crc32_u64(u64::from(crc), word(w)) as u32;
        }
        for &byte in tail_words.remainder() {
            crc = _mm_crc32_u8(crc, byte);
        }
        !crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn every_length_and_alignment_matches_the_crc32c_crate() {
        let data = bytes(3 * MAX_LANE + 200, 7);
        for len in 0..data.len() - 8 {
            for start in [0, 1, 5] {
                let d = &data[start..start + len];
                assert_eq!(crc32c(d), crc32c::crc32c(d), "len {len} start {start}");
            }
        }
    }

    #[test]
    fn runs_of_equal_bytes_match_the_crc32c_crate() {
        for b in [0u8, 0xff, 0x80] {
            for len in [96, 97, 300, 1000, 6000] {
                let d = vec![b; len];
                assert_eq!(crc32c(&d), crc32c::crc32c(&d), "byte {b} len {len}");
            }
        }
    }

    #[test]
    fn xpow_is_multiplication_by_x() {
        // x^32 mod P is P itself (in the reflected order, P without its x^32 term).
        assert_eq!(xpow(32), POLY);
        assert_eq!(xpow(0), 1 << 31);
        assert_eq!(xpow(1), 1 << 30);
    }
}
