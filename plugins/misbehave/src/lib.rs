//! Test-only: a transform that misbehaves as its config says, on the push
//! that takes it past `after` bytes (default 0: the first push):
//! `{"do": "loop" | "allocate" | "flood" | "panic" | "fail", "after": N}`.
//! Until then, and for anything else (or `"echo"`), it copies its input. The host's adversarial
//! tests use it to show each misbehaviour is stopped with the right reason.

use guest_sdk::{Direction, Error, Info, Transform};
use serde::Deserialize;

pub struct Misbehave {
    action: String,
    after: u64,
    seen: u64,
}

#[derive(Deserialize)]
pub struct Config {
    #[serde(rename = "do")]
    action: String,
    #[serde(default)]
    after: u64,
}

impl Transform for Misbehave {
    const INFO: Info = Info::new(
        "misbehave",
        env!("CARGO_PKG_VERSION"),
        "test-only: misbehaves on purpose",
    );
    type Config = Config;

    fn new(config: Config, _direction: Direction, _entropy: Vec<u8>) -> Result<Self, Error> {
        Ok(Self {
            action: config.action,
            after: config.after,
            seen: 0,
        })
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.seen += chunk.len() as u64;
        if self.seen <= self.after {
            out.extend_from_slice(chunk);
            return Ok(());
        }
        match self.action.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "flood" => out.resize(out.len() + 100 * (1 << 20), 0),
            "panic" => panic!("misbehave was told to panic"),
            "fail" => return Err(Error::InvalidInput("told to fail".into())),
            _ => out.extend_from_slice(chunk),
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), Error> {
        Ok(())
    }
}

guest_sdk::export_transform!(Misbehave);
