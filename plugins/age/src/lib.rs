//! age: encryption in the age v1 format (age-encryption.org/v1) to one or
//! more X25519 recipients, so `age -d -i key.txt` decrypts a backup.
//! ChaCha20-Poly1305 (fast in wasm, see `chacha`), not AES-GCM.
//!
//! Config (JSON): to encode `{"recipients": ["age1..."]}`; to decode
//! `{"identities": ["AGE-SECRET-KEY-1..."]}` (an identity file's text works
//! too: one key per line, `#` comments). Either may be one string instead
//! of a list, as a secret setting from a file is. Encode ignores
//! identities and decode recipients, so one configuration serves both. Keys, nonces and ephemeral shares
//! come from the host's entropy for this stream, never reused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Nonce};
use guest_sdk::{Direction, Error, Info, Transform};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
mod chacha;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use chacha::ChaCha20Poly1305;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// Plaintext bytes per payload chunk.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// A header larger than this is not an age header we wrote or can read.
const MAX_HEADER: usize = 64 * 1024;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "one_or_many")]
    recipients: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    identities: Vec<String>,
}

/// A string or a list of strings. A secret setting arrives as one string
/// (an identity file's text); never echoed in an error.
fn one_or_many<'de, D: serde::Deserializer<'de>>(input: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(input)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(list) => list,
    })
}

pub enum Age {
    Encode {
        /// The header, written before the first output.
        header: Option<Vec<u8>>,
        stream: Stream,
    },
    Decode {
        identities: Vec<StaticSecret>,
        /// Bytes of the header and nonce, until the payload key is known.
        start: Vec<u8>,
        stream: Option<Stream>,
    },
}

/// The STREAM construction over the payload: chunks sealed with a counter
/// nonce whose last byte marks the final chunk.
pub struct Stream {
    cipher: ChaCha20Poly1305,
    counter: u64,
    /// Input not yet sealed or opened; the last chunk waits for `finish`.
    pending: Vec<u8>,
}

impl Stream {
    fn new(file_key: &[u8; 16], nonce: &[u8; 16]) -> Self {
        let key: [u8; 32] = hkdf(file_key, nonce, b"payload");
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            counter: 0,
            pending: Vec::new(),
        }
    }

    fn nonce(&mut self, last: bool) -> Result<[u8; 12], Error> {
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&self.counter.to_be_bytes());
        nonce[11] = u8::from(last);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| Error::Failed("too many chunks".into()))?;
        Ok(nonce)
    }

    /// Seals every chunk known not to be the last (all of them at finish),
    /// in place at the end of `out`.
    fn seal(&mut self, out: &mut Vec<u8>, finish: bool) -> Result<(), Error> {
        self.each_chunk(finish, CHUNK, |cipher, nonce, chunk, _, _| {
            let start = out.len();
            out.extend_from_slice(chunk);
            let tag = cipher
                .encrypt_in_place_detached(nonce, b"", &mut out[start..])
                .map_err(|_| Error::Failed("encryption failed".into()))?;
            out.extend_from_slice(&tag);
            Ok(())
        })
    }

    /// Opens every chunk known not to be the last (all of them at finish),
    /// in place at the end of `out`; nothing of a chunk that fails its tag
    /// stays there.
    fn open(&mut self, out: &mut Vec<u8>, finish: bool) -> Result<(), Error> {
        self.each_chunk(finish, CHUNK + TAG, |cipher, nonce, chunk, first, last| {
            // Only an empty payload may end with an empty chunk.
            if chunk.len() < TAG || (last && chunk.len() == TAG && !first) {
                return Err(Error::InvalidInput("the age payload is truncated".into()));
            }
            let (sealed, tag) = chunk.split_at(chunk.len() - TAG);
            let start = out.len();
            out.extend_from_slice(sealed);
            cipher
                .decrypt_in_place_detached(nonce, b"", &mut out[start..], tag.into())
                .map_err(|_| {
                    out.truncate(start);
                    Error::InvalidInput(if last {
                        "the age payload is truncated or corrupt".into()
                    } else {
                        "the age payload is corrupt".into()
                    })
                })
        })
    }

    /// Runs `step` on each `size`-byte chunk of the pending bytes that is
    /// known not to be the last, and at `finish` on the rest as the last;
    /// the bytes used leave the buffer in one go.
    fn each_chunk(
        &mut self,
        finish: bool,
        size: usize,
        mut step: impl FnMut(&ChaCha20Poly1305, &Nonce, &[u8], bool, bool) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut used = 0;
        loop {
            let left = self.pending.len() - used;
            if left <= size && !finish {
                break;
            }
            let take = left.min(size);
            let last = finish && left <= size;
            let first = self.counter == 0;
            let nonce = self.nonce(last)?;
            let chunk = &self.pending[used..used + take];
            step(&self.cipher, Nonce::from_slice(&nonce), chunk, first, last)?;
            used += take;
            if last {
                break;
            }
        }
        self.pending.drain(..used);
        Ok(())
    }
}

impl Transform for Age {
    const INFO: Info = Info::new(
        "age",
        env!("CARGO_PKG_VERSION"),
        "age v1 encryption to X25519 recipients (age -d -i key.txt decrypts)",
    );
    const CONFIG_EXAMPLE: &'static str =
        r#"{"recipients": ["age1..."]} or {"identities": ["AGE-SECRET-KEY-1..."]}"#;
    type Config = Config;

    fn new(config: Config, direction: Direction, entropy: Vec<u8>) -> Result<Self, Error> {
        match direction {
            Direction::Encode => {
                if config.recipients.is_empty() {
                    return Err(Error::Config(
                        "recipients is empty: give at least one age1... public key".into(),
                    ));
                }
                let recipients = config
                    .recipients
                    .iter()
                    .map(|r| parse_recipient(r))
                    .collect::<Result<Vec<_>, _>>()?;
                if entropy.len() < 32 {
                    return Err(Error::Failed("the host gave too little entropy".into()));
                }
                let random =
                    |purpose: &str| -> [u8; 32] { hkdf(&entropy, b"", purpose.as_bytes()) };
                let file_key: [u8; 16] = random("file key")[..16].try_into().expect("16 bytes");
                let nonce: [u8; 16] = random("payload nonce")[..16].try_into().expect("16 bytes");
                let mut header = VERSION_LINE.to_vec();
                for (i, recipient) in recipients.iter().enumerate() {
                    let ephemeral = StaticSecret::from(random(&format!("ephemeral {i}")));
                    let share = PublicKey::from(&ephemeral);
                    let shared = ephemeral.diffie_hellman(recipient);
                    let wrap_key =
                        wrap_key(shared.as_bytes(), share.as_bytes(), recipient.as_bytes());
                    let body = ChaCha20Poly1305::new(Key::from_slice(&wrap_key))
                        .encrypt(Nonce::from_slice(&[0; 12]), file_key.as_slice())
                        .map_err(|_| Error::Failed("wrapping the file key failed".into()))?;
                    header.extend_from_slice(
                        format!("-> X25519 {}\n", B64.encode(share.as_bytes())).as_bytes(),
                    );
                    header.extend_from_slice(wrap_lines(&B64.encode(body)).as_bytes());
                }
                header.extend_from_slice(b"---");
                let mac = header_mac(&file_key, &header);
                header.extend_from_slice(format!(" {}\n", B64.encode(mac)).as_bytes());
                header.extend_from_slice(&nonce);
                Ok(Self::Encode {
                    header: Some(header),
                    stream: Stream::new(&file_key, &nonce),
                })
            }
            Direction::Decode => {
                let identities = config
                    .identities
                    .iter()
                    .flat_map(|text| text.lines())
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(parse_identity)
                    .collect::<Result<Vec<_>, _>>()?;
                if identities.is_empty() {
                    return Err(Error::Config(
                        "identities is empty: give the AGE-SECRET-KEY-1... of a recipient".into(),
                    ));
                }
                Ok(Self::Decode {
                    identities,
                    start: Vec::new(),
                    stream: None,
                })
            }
        }
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Encode { header, stream } => {
                if let Some(header) = header.take() {
                    out.extend_from_slice(&header);
                }
                stream.pending.extend_from_slice(chunk);
                stream.seal(out, false)
            }
            Self::Decode {
                identities,
                start,
                stream,
            } => {
                match stream {
                    Some(stream) => stream.pending.extend_from_slice(chunk),
                    None => {
                        start.extend_from_slice(chunk);
                        let Some((file_key, payload_start)) = read_header(start, identities)?
                        else {
                            return Ok(());
                        };
                        if start.len() < payload_start + 16 {
                            // The nonce has not fully arrived: keep waiting.
                            return Ok(());
                        }
                        let nonce: [u8; 16] = start[payload_start..payload_start + 16]
                            .try_into()
                            .expect("16 bytes");
                        let mut opened = Stream::new(&file_key, &nonce);
                        opened.pending = start.split_off(payload_start + 16);
                        start.clear();
                        *stream = Some(opened);
                    }
                }
                match stream {
                    Some(stream) => stream.open(out, false),
                    None => Ok(()),
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Encode { header, stream } => {
                if let Some(header) = header.take() {
                    out.extend_from_slice(&header);
                }
                stream.seal(out, true)
            }
            Self::Decode { stream, .. } => match stream {
                Some(stream) => stream.open(out, true),
                None => Err(Error::InvalidInput(
                    "the input ends before the age header does (not an age file, or truncated)"
                        .into(),
                )),
            },
        }
    }
}

/// Parses the header once it is complete: Some((file key, offset of the
/// payload nonce)), or None while more bytes are needed.
fn read_header(
    bytes: &[u8],
    identities: &[StaticSecret],
) -> Result<Option<([u8; 16], usize)>, Error> {
    let not_age =
        || Error::InvalidInput("not an age v1 file (no age-encryption.org/v1 header)".into());
    if bytes.len() < VERSION_LINE.len() {
        return if VERSION_LINE.starts_with(bytes) {
            Ok(None)
        } else {
            Err(not_age())
        };
    }
    if !bytes.starts_with(VERSION_LINE) {
        return Err(not_age());
    }
    // The MAC line: "--- " + MAC, at the start of a line.
    let Some(mac_line) = find(bytes, b"\n--- ").map(|i| i + 1) else {
        return if bytes.len() > MAX_HEADER {
            Err(not_age())
        } else {
            Ok(None)
        };
    };
    let Some(end) = find(&bytes[mac_line..], b"\n").map(|i| mac_line + i) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes[..mac_line]).map_err(|_| not_age())?;
    let mac = B64
        .decode(&bytes[mac_line + 4..end])
        .map_err(|_| Error::InvalidInput("the age header MAC is not base64".into()))?;
    let mut lines = text[VERSION_LINE.len()..].lines();
    let mut file_key = None;
    while let Some(line) = lines.next() {
        let args: Vec<&str> = line
            .strip_prefix("-> ")
            .ok_or_else(not_age)?
            .split(' ')
            .collect();
        let mut body = String::new();
        for part in lines.by_ref() {
            body.push_str(part);
            if part.len() < 64 {
                break;
            }
        }
        if args.first() != Some(&"X25519") || args.len() != 2 || file_key.is_some() {
            continue;
        }
        let share: [u8; 32] = B64
            .decode(args[1])
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::InvalidInput("a malformed X25519 stanza".into()))?;
        let body = B64
            .decode(&body)
            .map_err(|_| Error::InvalidInput("a malformed X25519 stanza".into()))?;
        for identity in identities {
            let shared = identity.diffie_hellman(&PublicKey::from(share));
            let ours = PublicKey::from(identity);
            let key = wrap_key(shared.as_bytes(), &share, ours.as_bytes());
            if let Ok(plain) = ChaCha20Poly1305::new(Key::from_slice(&key))
                .decrypt(Nonce::from_slice(&[0; 12]), body.as_slice())
                && let Ok(key) = <[u8; 16]>::try_from(plain.as_slice())
            {
                file_key = Some(key);
                break;
            }
        }
    }
    let file_key = file_key.ok_or_else(|| {
        Error::InvalidInput(
            "none of the given identities is a recipient of this backup (wrong age key?)".into(),
        )
    })?;
    // The MAC covers the header up to and including "---".
    let expected = header_mac(&file_key, &bytes[..mac_line + 3]);
    if expected.as_slice() != mac.as_slice() {
        return Err(Error::InvalidInput(
            "the age header MAC does not match (tampered header)".into(),
        ));
    }
    Ok(Some((file_key, end + 1)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn hkdf<const N: usize>(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .expect("N is a valid HKDF length");
    out
}

fn wrap_key(shared: &[u8; 32], share: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(recipient);
    hkdf(shared, &salt, X25519_INFO)
}

fn header_mac(file_key: &[u8; 16], header: &[u8]) -> [u8; 32] {
    let key: [u8; 32] = hkdf(file_key, b"", b"header");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(header);
    mac.finalize().into_bytes().into()
}

/// Base64 in lines of 64 columns; the last line is always shorter.
fn wrap_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        if line.len() < 64 {
            return out;
        }
        rest = tail;
    }
}

fn parse_recipient(text: &str) -> Result<PublicKey, Error> {
    let bad = || {
        Error::Config(format!(
            "recipient `{text}` is not an age X25519 public key (age1...)"
        ))
    };
    let (hrp, bytes) = bech32::decode(text.trim()).map_err(|_| bad())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    if hrp.as_str() != "age" {
        return Err(bad());
    }
    Ok(PublicKey::from(bytes))
}

fn parse_identity(text: &str) -> Result<StaticSecret, Error> {
    // Never echo a secret key back in an error.
    let bad = || {
        Error::Config("an identity is not an age X25519 secret key (AGE-SECRET-KEY-1...)".into())
    };
    let (hrp, bytes) = bech32::decode(text).map_err(|_| bad())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    if !hrp.as_str().eq_ignore_ascii_case("age-secret-key-") {
        return Err(bad());
    }
    Ok(StaticSecret::from(bytes))
}

guest_sdk::export_transform!(Age);

#[cfg(test)]
mod tests {
    use super::*;
    use bech32::{Bech32, Hrp};
    use guest_sdk::run_transform;

    fn keypair(seed: u8) -> (String, String) {
        let secret = [seed; 32];
        let public = PublicKey::from(&StaticSecret::from(secret));
        let recipient =
            bech32::encode::<Bech32>(Hrp::parse("age").unwrap(), public.as_bytes()).unwrap();
        let identity =
            bech32::encode_upper::<Bech32>(Hrp::parse("AGE-SECRET-KEY-").unwrap(), &secret)
                .unwrap();
        (recipient, identity)
    }

    fn encrypt(recipients: &[&str], input: &[u8], chunk: usize, entropy: u8) -> Vec<u8> {
        let config = serde_json::json!({ "recipients": recipients }).to_string();
        run_transform::<Age>(&config, Direction::Encode, vec![entropy; 64], input, chunk).unwrap()
    }

    fn decrypt(identity: &str, input: &[u8], chunk: usize) -> Result<Vec<u8>, Error> {
        let config = serde_json::json!({ "identities": [identity] }).to_string();
        run_transform::<Age>(&config, Direction::Decode, vec![], input, chunk)
    }

    #[test]
    fn round_trips_at_chunk_boundaries_in_pieces_of_any_size() {
        let (recipient, identity) = keypair(1);
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            let input: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            for chunk in [1, 1000, CHUNK, 1 << 20] {
                if chunk == 1 && size > 2 * CHUNK {
                    continue;
                }
                let sealed = encrypt(&[&recipient], &input, chunk, 9);
                assert!(sealed.len() > input.len());
                assert_eq!(
                    decrypt(&identity, &sealed, chunk).unwrap(),
                    input,
                    "size {size}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn any_recipient_can_decrypt_and_others_cannot() {
        let (r1, i1) = keypair(1);
        let (r2, i2) = keypair(2);
        let (_, stranger) = keypair(3);
        let sealed = encrypt(&[&r1, &r2], b"snapshot", 4096, 5);
        assert_eq!(decrypt(&i1, &sealed, 7).unwrap(), b"snapshot");
        assert_eq!(decrypt(&i2, &sealed, 7).unwrap(), b"snapshot");
        let error = decrypt(&stranger, &sealed, 7).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidInput(m) if m.contains("wrong age key")),
            "{error}"
        );
    }

    #[test]
    fn fresh_entropy_fresh_ciphertext() {
        let (recipient, _) = keypair(1);
        assert_ne!(
            encrypt(&[&recipient], b"same", 10, 1),
            encrypt(&[&recipient], b"same", 10, 2)
        );
    }

    #[test]
    fn tampering_and_truncation_are_refused() {
        let (recipient, identity) = keypair(1);
        let input = vec![42u8; 3 * CHUNK];
        let sealed = encrypt(&[&recipient], &input, 65_536, 1);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            decrypt(&identity, &flipped, 65_536),
            Err(Error::InvalidInput(_))
        ));
        // Cut at a chunk boundary: the last chunk marker is missing.
        let header_and_two = sealed.len() - (CHUNK + TAG);
        let error = decrypt(&identity, &sealed[..header_and_two], 65_536).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidInput(m) if m.contains("truncated")),
            "{error}"
        );
        let mut header = sealed.clone();
        header[30] ^= 1;
        assert!(matches!(
            decrypt(&identity, &header, 65_536),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            decrypt(&identity, b"plain", 2),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn config_errors_name_the_field_and_keep_secrets_out() {
        let error = run_transform::<Age>(
            r#"{"recipients": []}"#,
            Direction::Encode,
            vec![0; 64],
            b"",
            1,
        )
        .unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("recipients")),
            "{error}"
        );
        let error = run_transform::<Age>(
            r#"{"recipients": ["age1nope"]}"#,
            Direction::Encode,
            vec![0; 64],
            b"",
            1,
        )
        .unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("age1nope")),
            "{error}"
        );
        let error = run_transform::<Age>(
            r#"{"identities": ["AGE-SECRET-KEY-1SECRETSTUFF"]}"#,
            Direction::Decode,
            vec![],
            b"",
            1,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("SECRETSTUFF"), "{error}");
        // A secret setting arrives as one string; a mistyped one is not echoed.
        let error = run_transform::<Age>(
            r#"{"identities": {"key": "AGE-SECRET-KEY-1SECRETSTUFF"}}"#,
            Direction::Decode,
            vec![],
            b"",
            1,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("SECRETSTUFF"), "{error}");
    }

    #[test]
    fn one_configuration_serves_both_directions() {
        let (recipient, identity) = keypair(9);
        // As a backup Job gives it: recipients in config, the identity file
        // as one string from a secret setting.
        let config = serde_json::json!({
            "recipients": recipient,
            "identities": format!("# created: today\n{identity}\n"),
        })
        .to_string();
        let sealed =
            run_transform::<Age>(&config, Direction::Encode, vec![7; 64], b"data", 3).unwrap();
        let opened = run_transform::<Age>(&config, Direction::Decode, vec![], &sealed, 5).unwrap();
        assert_eq!(opened, b"data");
    }

    /// Interop with the reference CLI (`age`, `age-keygen`; scripts/setup
    /// installs them): it decrypts what we encrypt and we decrypt what it
    /// encrypts.
    #[test]
    fn the_age_cli_agrees() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!("age-plugin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key.txt");
        let _ = std::fs::remove_file(&key_file);
        let keygen = Command::new("age-keygen")
            .arg("-o")
            .arg(&key_file)
            .output()
            .expect("age-keygen runs");
        assert!(keygen.status.success());
        let key_text = std::fs::read_to_string(&key_file).unwrap();
        let recipient = key_text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_string();
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();

        // Feeds stdin from a thread, so a full stdout pipe cannot deadlock.
        let run = |command: &mut Command, stdin: Vec<u8>| -> Vec<u8> {
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut pipe = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || pipe.write_all(&stdin));
            let output = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert!(output.status.success());
            output.stdout
        };
        let sealed = encrypt(&[&recipient], &input, 30_000, 3);
        let opened = run(
            Command::new("age").arg("-d").arg("-i").arg(&key_file),
            sealed,
        );
        assert_eq!(opened, input, "age -d reads ours");

        let theirs = run(Command::new("age").args(["-r", &recipient]), input.clone());
        let config = serde_json::json!({ "identities": [key_text] }).to_string();
        let opened =
            run_transform::<Age>(&config, Direction::Decode, vec![], &theirs, 9_999).unwrap();
        assert_eq!(opened, input, "we read age's");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The native half of scripts/bench-plugins, on the snapshot the wasm half
/// wrote to $BENCH_INPUT.
#[cfg(test)]
mod bench {
    use super::*;
    use guest_sdk::run_transform;
    use std::time::Instant;

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn bench_native() {
        let path = std::env::var("BENCH_INPUT").expect("BENCH_INPUT names the snapshot");
        let input = std::fs::read(path).unwrap();
        let secret = [7u8; 32];
        let public = PublicKey::from(&StaticSecret::from(secret));
        let hrp = |h: &str| bech32::Hrp::parse(h).unwrap();
        let recipient = bech32::encode::<bech32::Bech32>(hrp("age"), public.as_bytes()).unwrap();
        let identity =
            bech32::encode_upper::<bech32::Bech32>(hrp("AGE-SECRET-KEY-"), &secret).unwrap();
        let mib = |bytes: usize, started: Instant| {
            bytes as f64 / 1048576.0 / started.elapsed().as_secs_f64()
        };
        let config = serde_json::json!({ "recipients": [recipient] }).to_string();
        let started = Instant::now();
        let sealed =
            run_transform::<Age>(&config, Direction::Encode, vec![1; 64], &input, 1 << 20).unwrap();
        let encrypt = mib(input.len(), started);
        let config = serde_json::json!({ "identities": [identity] }).to_string();
        let started = Instant::now();
        run_transform::<Age>(&config, Direction::Decode, vec![], &sealed, 1 << 20).unwrap();
        println!(
            "native age: encrypt {encrypt:.0} MiB/s, decrypt {:.0} MiB/s",
            mib(sealed.len(), started)
        );
    }
}
