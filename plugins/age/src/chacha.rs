//! ChaCha20 (RFC 8439) for wasm SIMD (`simd128`), for which the chacha20
//! crate has no backend: its portable code computes one block at a time in
//! scalar words. This computes four blocks at once, each state word held as
//! four lanes (one per block); it cut the age plugin's CPU in wasm by about
//! a quarter. The AEAD around it stays the chacha20poly1305 crate's.
//!
//! Built natively, the plugin uses the chacha20 crate (which has x86 SIMD),
//! so the native benchmark stays the best native code; the rounds here are
//! then checked against it with plain four-word lanes.

use chacha20poly1305::ChaChaPoly1305;
use chacha20poly1305::consts::{U4, U12, U32, U64};
use cipher::{
    Block, BlockSizeUser, IvSizeUser, KeyIvInit, KeySizeUser, ParBlocks, ParBlocksSizeUser,
    StreamBackend, StreamCipherCore, StreamCipherCoreWrapper, StreamCipherSeekCore, StreamClosure,
};

/// The payload's AEAD with the four-block ChaCha20.
pub type ChaCha20Poly1305 = ChaChaPoly1305<ChaCha20, U12>;
pub type ChaCha20 = StreamCipherCoreWrapper<Core>;

const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
const LANES: usize = 4;

pub struct Core {
    /// Constants, key, block counter (word 12) and nonce.
    state: [u32; 16],
}

impl KeySizeUser for Core {
    type KeySize = U32;
}

impl IvSizeUser for Core {
    type IvSize = U12;
}

impl BlockSizeUser for Core {
    type BlockSize = U64;
}

impl KeyIvInit for Core {
    fn new(key: &cipher::Key<Self>, iv: &cipher::Iv<Self>) -> Self {
        let mut state = [0u32; 16];
        state[..4].copy_from_slice(&CONSTANTS);
        let words = key.chunks_exact(4).chain(iv.chunks_exact(4));
        for (word, bytes) in [4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
            .into_iter()
            .zip(words)
        {
            state[word] = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
        }
        Self { state }
    }
}

impl StreamCipherCore for Core {
    fn remaining_blocks(&self) -> Option<usize> {
        (u32::MAX - self.state[12]).try_into().ok()
    }

    fn process_with_backend(&mut self, f: impl StreamClosure<BlockSize = U64>) {
        f.call(&mut Backend(self));
    }
}

impl StreamCipherSeekCore for Core {
    type Counter = u32;

    fn get_block_pos(&self) -> u32 {
        self.state[12]
    }

    fn set_block_pos(&mut self, pos: u32) {
        self.state[12] = pos;
    }
}

struct Backend<'a>(&'a mut Core);

impl BlockSizeUser for Backend<'_> {
    type BlockSize = U64;
}

impl ParBlocksSizeUser for Backend<'_> {
    type ParBlocksSize = U4;
}

impl StreamBackend for Backend<'_> {
    /// A single block (the Poly1305 key, a chunk's last blocks): the first
    /// of four.
    fn gen_ks_block(&mut self, block: &mut Block<Self>) {
        let [first, ..] = four_blocks(&self.0.state);
        write_block(&first, block);
        self.0.state[12] = self.0.state[12].wrapping_add(1);
    }

    fn gen_par_ks_blocks(&mut self, blocks: &mut ParBlocks<Self>) {
        for (words, block) in four_blocks(&self.0.state).iter().zip(blocks.iter_mut()) {
            write_block(words, block);
        }
        self.0.state[12] = self.0.state[12].wrapping_add(LANES as u32);
    }
}

/// Blocks `counter .. counter + 4` of keystream: for each block, its
/// sixteen words as four lanes of four.
#[inline(always)]
fn four_blocks(state: &[u32; 16]) -> [[Lane; 4]; LANES] {
    let mut start: [Lane; 16] = std::array::from_fn(|word| Lane::splat(state[word]));
    start[12] = Lane::counters(state[12]);
    let mut x = start;
    for _ in 0..10 {
        quarter_round(&mut x, 0, 4, 8, 12);
        quarter_round(&mut x, 1, 5, 9, 13);
        quarter_round(&mut x, 2, 6, 10, 14);
        quarter_round(&mut x, 3, 7, 11, 15);
        quarter_round(&mut x, 0, 5, 10, 15);
        quarter_round(&mut x, 1, 6, 11, 12);
        quarter_round(&mut x, 2, 7, 8, 13);
        quarter_round(&mut x, 3, 4, 9, 14);
    }
    // Lane `i` of word `w` is word `w` of block `i`: transpose each group
    // of four words.
    let mut blocks = [[Lane::splat(0); 4]; LANES];
    for group in 0..4 {
        let word = |i: usize| x[4 * group + i].add(start[4 * group + i]);
        let columns = Lane::transpose([word(0), word(1), word(2), word(3)]);
        for (block, column) in blocks.iter_mut().zip(columns) {
            block[group] = column;
        }
    }
    blocks
}

#[inline(always)]
fn write_block(words: &[Lane; 4], block: &mut [u8]) {
    for (bytes, lane) in block.chunks_exact_mut(16).zip(words) {
        lane.write_le(bytes);
    }
}

#[inline(always)]
fn quarter_round(x: &mut [Lane; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].add(x[b]);
    x[d] = x[d].xor(x[a]).rotate_left(16);
    x[c] = x[c].add(x[d]);
    x[b] = x[b].xor(x[c]).rotate_left(12);
    x[a] = x[a].add(x[b]);
    x[d] = x[d].xor(x[a]).rotate_left(8);
    x[c] = x[c].add(x[d]);
    x[b] = x[b].xor(x[c]).rotate_left(7);
}

/// One state word of four blocks. wasm SIMD where the build enables it
/// (scripts/build-plugins does); elsewhere four plain words, which is
/// what the native tests check the rounds with.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Clone, Copy)]
struct Lane(std::arch::wasm32::v128);

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Lane {
    fn splat(word: u32) -> Self {
        Self(std::arch::wasm32::u32x4_splat(word))
    }

    fn counters(first: u32) -> Self {
        let [a, b, c, d] = std::array::from_fn(|lane| first.wrapping_add(lane as u32));
        Self(std::arch::wasm32::u32x4(a, b, c, d))
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(std::arch::wasm32::u32x4_add(self.0, other.0))
    }

    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        Self(std::arch::wasm32::v128_xor(self.0, other.0))
    }

    #[inline(always)]
    fn rotate_left(self, bits: u32) -> Self {
        use std::arch::wasm32::{u32x4_shl, u32x4_shr, v128_or};
        Self(v128_or(
            u32x4_shl(self.0, bits),
            u32x4_shr(self.0, 32 - bits),
        ))
    }

    #[inline(always)]
    fn transpose([a, b, c, d]: [Self; 4]) -> [Self; 4] {
        use std::arch::wasm32::i32x4_shuffle;
        let ab_low = i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0);
        let cd_low = i32x4_shuffle::<0, 4, 1, 5>(c.0, d.0);
        let ab_high = i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0);
        let cd_high = i32x4_shuffle::<2, 6, 3, 7>(c.0, d.0);
        [
            Self(i32x4_shuffle::<0, 1, 4, 5>(ab_low, cd_low)),
            Self(i32x4_shuffle::<2, 3, 6, 7>(ab_low, cd_low)),
            Self(i32x4_shuffle::<0, 1, 4, 5>(ab_high, cd_high)),
            Self(i32x4_shuffle::<2, 3, 6, 7>(ab_high, cd_high)),
        ]
    }

    /// wasm is little-endian: the lanes' bytes as they lie in memory.
    #[inline(always)]
    fn write_le(self, bytes: &mut [u8]) {
        assert!(bytes.len() >= 16);
        // SAFETY: 16 bytes are there (checked); v128_store allows any alignment.
        unsafe { std::arch::wasm32::v128_store(bytes.as_mut_ptr().cast(), self.0) }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[derive(Clone, Copy)]
struct Lane([u32; LANES]);

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
impl Lane {
    fn splat(word: u32) -> Self {
        Self([word; LANES])
    }

    fn counters(first: u32) -> Self {
        Self(std::array::from_fn(|lane| first.wrapping_add(lane as u32)))
    }

    fn add(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i].wrapping_add(other.0[i])))
    }

    fn xor(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] ^ other.0[i]))
    }

    fn rotate_left(self, bits: u32) -> Self {
        Self(self.0.map(|word| word.rotate_left(bits)))
    }

    fn transpose(rows: [Self; 4]) -> [Self; 4] {
        std::array::from_fn(|column| Self(std::array::from_fn(|row| rows[row].0[column])))
    }

    fn write_le(self, bytes: &mut [u8]) {
        for (out, word) in bytes.chunks_exact_mut(4).zip(self.0) {
            out.copy_from_slice(&word.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::{Aead, KeyInit};

    /// Same ciphertext and tag as the chacha20poly1305 crate's own cipher,
    /// for every length around the block and four-block boundaries.
    #[test]
    fn agrees_with_the_chacha20_crate() {
        let key = [7u8; 32];
        let ours = super::ChaCha20Poly1305::new(&key.into());
        let theirs = chacha20poly1305::ChaCha20Poly1305::new(&key.into());
        let plain: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 63, 64, 65, 255, 256, 257, 320, 1000, 65_536, 70_000] {
            let nonce = [len as u8; 12].into();
            assert_eq!(
                ours.encrypt(&nonce, &plain[..len]).unwrap(),
                theirs.encrypt(&nonce, &plain[..len]).unwrap(),
                "length {len}"
            );
        }
    }

    /// RFC 8439, 2.4.2: the sunscreen text.
    #[test]
    fn rfc_8439_test_vector() {
        use cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let mut text = *b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut cipher = super::ChaCha20::new(&key.into(), &nonce.into());
        cipher.seek(64u32);
        cipher.apply_keystream(&mut text);
        assert_eq!(hex(&text[..16]), "6e2e359a2568f98041ba0728dd0d6981");
        assert_eq!(hex(&text[text.len() - 2..]), "874d");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
