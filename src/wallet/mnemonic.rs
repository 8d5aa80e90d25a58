//! The recovery phrase: a wallet seed as 24 BIP39 words (English list).
//!
//! The 32-byte seed *is* the BIP39 entropy: the phrase is the seed's 256
//! bits and an 8-bit checksum (the first byte of its SHA-256) in 24 words of
//! 11 bits, and the seed comes back from the phrase exactly. BIP39's PBKDF2
//! step (2048 rounds of HMAC-SHA512 to a 64-byte seed for BIP32) is not
//! used: klero derives its signing and VRF keys from the 32-byte seed with
//! BLAKE3 (`Keypair::from_seed`), so there is no HD tree to feed, and this
//! way every existing seed (a key file, `wallet export`) has a phrase and
//! every phrase is a key file (docs/wallet.md).
//!
//! The phrase and the entropy are held in `Zeroizing` buffers (and
//! `bip39::Mnemonic` zeroes its word indices on drop).

use bip39::{Language, Mnemonic};
use zeroize::Zeroizing;

/// Words in a phrase: 256 bits of seed + 8 of checksum, 11 bits a word.
pub(crate) const WORDS: usize = 24;

/// Why a phrase was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MnemonicError {
    /// Not 24 words.
    #[error("a recovery phrase has {WORDS} words; this one has {0}")]
    WordCount(usize),
    /// A word not in the BIP39 English list.
    #[error("word {0} of the recovery phrase is not in the BIP39 English word list")]
    UnknownWord(usize),
    /// Every word is valid but the checksum does not match.
    #[error("the recovery phrase's checksum does not match: a word is wrong or out of order")]
    Checksum,
}

/// The 24-word phrase of `seed`, words separated by single spaces.
pub(crate) fn phrase_of(seed: &[u8; 32]) -> Zeroizing<String> {
    // 32 bytes is a valid BIP39 entropy length, so this cannot fail.
    let mnemonic = Mnemonic::from_entropy_in(Language::English, seed).unwrap_or_else(|_| unreachable!());
    let mut phrase = Zeroizing::new(String::with_capacity(WORDS * 9));
    for (i, word) in mnemonic.words().enumerate() {
        if i > 0 {
            phrase.push(' ');
        }
        phrase.push_str(word);
    }
    phrase
}

/// The seed a phrase encodes. Case and the amount of whitespace between
/// words do not matter.
///
/// # Errors
///
/// [`MnemonicError`] naming what is wrong; a phrase with a wrong word
/// almost always fails the checksum (1 in 256 passes it).
pub(crate) fn seed_of(phrase: &str) -> Result<Zeroizing<[u8; 32]>, MnemonicError> {
    let mut normalized = Zeroizing::new(String::with_capacity(phrase.len()));
    let mut count = 0;
    for word in phrase.split_whitespace() {
        if count > 0 {
            normalized.push(' ');
        }
        normalized.extend(word.chars().map(|c| c.to_ascii_lowercase()));
        count += 1;
    }
    if count != WORDS {
        return Err(MnemonicError::WordCount(count));
    }
    let mnemonic = Mnemonic::parse_in_normalized(Language::English, &normalized).map_err(|e| match e {
        bip39::Error::UnknownWord(i) => MnemonicError::UnknownWord(i + 1),
        bip39::Error::BadWordCount(n) => MnemonicError::WordCount(n),
        _ => MnemonicError::Checksum,
    })?;
    let entropy = Zeroizing::new(mnemonic.to_entropy_array());
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&entropy.0[..32]);
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP39's published English vector for entropy 0x7f × 32.
    #[test]
    fn matches_the_bip39_vector_and_round_trips() {
        let phrase = phrase_of(&[0x7f; 32]);
        assert_eq!(
            phrase.as_str(),
            "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title"
        );
        assert_eq!(*seed_of(&phrase).expect("valid"), [0x7f; 32]);
        let shouted = phrase.to_uppercase().replace(' ', "  \n ");
        assert_eq!(*seed_of(&shouted).expect("case and spacing"), [0x7f; 32]);
    }

    #[test]
    fn refuses_a_wrong_word_a_bad_checksum_and_a_short_phrase() {
        let phrase = phrase_of(&[0x7f; 32]);
        let words: Vec<&str> = phrase.split(' ').collect();
        let swapped = |i: usize, w: &str| {
            let mut v = words.clone();
            v[i] = w;
            v.join(" ")
        };
        assert_eq!(seed_of(&swapped(23, "abandon")), Err(MnemonicError::Checksum));
        assert_eq!(seed_of(&swapped(4, "klero")), Err(MnemonicError::UnknownWord(5)));
        assert_eq!(seed_of(&words[..12].join(" ")), Err(MnemonicError::WordCount(12)));
        assert_eq!(seed_of(""), Err(MnemonicError::WordCount(0)));
    }
}
