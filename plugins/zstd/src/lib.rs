//! zstd: compression whose output is standard zstd frames, one per window
//! of input (2 MiB at level 3; `zstd -d` reads it). Config (JSON), every field optional:
//! `{"level": 3, "unwrapGzip": false}`.
//!
//! OpenBao snapshots are already gzip, and gzip output barely compresses
//! again. With `unwrapGzip`, encode takes the gzip layer off and compresses
//! the tar inside; decode wraps the tar in gzip again, in stored blocks as
//! OpenBao 2.7 writes it (deflating it again would only cost time: the
//! stream goes straight to OpenBao), so the result is a snapshot OpenBao
//! accepts (the same files, whose checksums verify), though not byte for
//! byte the stream OpenBao sent.

use std::io::Write;

use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};
use guest_sdk::{Direction, Error, Info, Transform};
use serde::Deserialize;
use zstd::bulk::Compressor;
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    level: i32,
    unwrap_gzip: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            level: 3,
            unwrap_gzip: false,
        }
    }
}

pub enum Zstd {
    Encode {
        /// Takes the gzip layer off first (`unwrapGzip`).
        gunzip: Option<GzDecoder<Vec<u8>>>,
        zstd: Frames,
    },
    Decode {
        zstd: Decoder<'static>,
        /// 0 once the last frame is complete: anything else at the end
        /// means the input was cut.
        hint: usize,
        /// Puts a gzip layer back (`unwrapGzip`).
        gzip: Option<GzEncoder<Vec<u8>>>,
    },
}

/// Output buffer per zstd call when decoding.
const BUFFER: usize = 128 * 1024;

impl Transform for Zstd {
    const INFO: Info = Info::new(
        "zstd",
        env!("CARGO_PKG_VERSION"),
        "zstd compression (standard frames); unwrapGzip compresses the tar inside the snapshot",
    );
    const CONFIG_EXAMPLE: &'static str = r#"{"level": 3, "unwrapGzip": false}"#;
    type Config = Config;

    fn new(config: Config, direction: Direction, _entropy: Vec<u8>) -> Result<Self, Error> {
        if !(1..=19).contains(&config.level) {
            return Err(Error::Config(format!(
                "level {} is out of range: use 1 (fastest) to 19 (smallest)",
                config.level
            )));
        }
        let failed = |e: std::io::Error| Error::Failed(format!("zstd: {e}"));
        Ok(match direction {
            Direction::Encode => Self::Encode {
                gunzip: config.unwrap_gzip.then(|| GzDecoder::new(Vec::new())),
                zstd: Frames::new(config.level).map_err(failed)?,
            },
            Direction::Decode => Self::Decode {
                zstd: Decoder::new().map_err(failed)?,
                hint: 0,
                gzip: config
                    .unwrap_gzip
                    .then(|| GzEncoder::new(Vec::new(), Compression::none())),
            },
        })
    }

    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Encode { gunzip, zstd } => match gunzip {
                Some(gunzip) => {
                    gunzip.write_all(chunk).map_err(not_gzip)?;
                    let tar = std::mem::take(gunzip.get_mut());
                    zstd.push(&tar, out)
                }
                None => zstd.push(chunk, out),
            },
            Self::Decode { zstd, hint, gzip } => match gzip {
                Some(gzip) => {
                    let mut tar = Vec::new();
                    *hint = decompress(zstd, chunk, &mut tar)?;
                    gzip.write_all(&tar)
                        .map_err(|e| Error::Failed(format!("gzip: {e}")))?;
                    out.append(gzip.get_mut());
                    Ok(())
                }
                None => {
                    *hint = decompress(zstd, chunk, out)?;
                    Ok(())
                }
            },
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Encode { gunzip, zstd } => {
                if let Some(gunzip) = gunzip {
                    gunzip.try_finish().map_err(not_gzip)?;
                    let tar = std::mem::take(gunzip.get_mut());
                    zstd.push(&tar, out)?;
                }
                zstd.finish(out)
            }
            Self::Decode { hint, gzip, .. } => {
                if *hint != 0 {
                    return Err(Error::InvalidInput(
                        "the zstd stream ends in the middle of a frame (truncated backup?)".into(),
                    ));
                }
                if let Some(gzip) = gzip {
                    gzip.try_finish()
                        .map_err(|e| Error::Failed(format!("gzip: {e}")))?;
                    out.append(gzip.get_mut());
                }
                Ok(())
            }
        }
    }
}

fn not_gzip(e: std::io::Error) -> Error {
    Error::InvalidInput(format!(
        "unwrapGzip: the input is not a gzip stream ({e}); leave unwrapGzip off for other data"
    ))
}

/// Input bytes per frame at `level`: its window (zstd's table for large
/// inputs: 2 MiB for levels 3 to 8), at least 1 MiB. At level 3, 4 and
/// 8 MiB frames compressed slower in wasm (more memory touched per call),
/// 1 MiB ones 1.3% larger.
fn frame_size(level: i32) -> usize {
    let window_log = match level {
        ..=2 => 20,
        3..=8 => 21,
        9..=16 => 22,
        17.. => 23,
    };
    1 << window_log
}

/// Compresses in independent frames of [`frame_size`] input bytes, each in
/// one call over contiguous memory, straight into the output. zstd's
/// streaming mode copies the input into a ring buffer and, once that wraps,
/// matches against two segments (its slower "extDict" path) nearly all the
/// time; frames took about 15% off zstd's CPU in wasm, for about 0.5% more
/// output. `zstd -d` reads concatenated frames as one stream.
pub struct Frames {
    compressor: Compressor<'static>,
    size: usize,
    pending: Vec<u8>,
    /// Whether a frame was written: empty input still makes one.
    written: bool,
}

impl Frames {
    fn new(level: i32) -> std::io::Result<Self> {
        let size = frame_size(level);
        Ok(Self {
            compressor: Compressor::new(level)?,
            size,
            pending: Vec::with_capacity(size),
            written: false,
        })
    }

    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        while !input.is_empty() {
            let take = (self.size - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == self.size {
                self.frame(out)?;
            }
        }
        Ok(())
    }

    /// Compresses what is pending as one frame, appended to `out`.
    fn frame(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
        let end = out.len() as u64;
        let mut cursor = std::io::Cursor::new(out);
        cursor.set_position(end);
        self.compressor
            .compress_to_buffer(&self.pending, &mut cursor)
            .map_err(|e| Error::Failed(format!("zstd: {e}")))?;
        self.pending.clear();
        self.written = true;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.pending.is_empty() && self.written {
            return Ok(());
        }
        self.frame(out)
    }
}

/// Returns zstd's hint: 0 when the input ended a frame.
fn decompress(
    zstd: &mut Decoder<'static>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, Error> {
    let mut input = InBuffer::around(input);
    let mut buffer = vec![0u8; BUFFER];
    let mut hint = 1;
    loop {
        let consumed = input.pos();
        let mut output = OutBuffer::around(&mut buffer[..]);
        let next = zstd
            .run(&mut input, &mut output)
            .map_err(|e| Error::InvalidInput(format!("not a zstd stream: {e}")))?;
        let written = output.pos();
        out.extend_from_slice(&buffer[..written]);
        // A call that did nothing (the frame was already complete) says
        // what the next frame would need, not how this one ended.
        if written > 0 || input.pos() > consumed {
            hint = next;
        }
        // Done when the input is used up and zstd had room to spare.
        if input.pos() == input.src.len() && written < buffer.len() {
            return Ok(hint);
        }
    }
}

guest_sdk::export_transform!(Zstd);

#[cfg(test)]
mod tests {
    use super::*;
    use guest_sdk::run_transform;
    use std::io::Read;

    fn sample(size: usize) -> Vec<u8> {
        // Half text-like, half noise: something to compress, not too much.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..size)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 2048 < 1024 {
                    b"openbao"[i % 7]
                } else {
                    state as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_in_chunks_of_any_size_and_zstd_reads_it() {
        let input = sample(3 * 1024 * 1024 + 11);
        for chunk in [1, 7, 4096, 65_536, 1024 * 1024, 8 * 1024 * 1024] {
            let input = if chunk < 100 {
                &input[..50_000]
            } else {
                &input[..]
            };
            let encoded =
                run_transform::<Zstd>("", Direction::Encode, vec![], input, chunk).unwrap();
            assert!(encoded.len() < input.len());
            // The reference decoder reads our frames.
            assert_eq!(zstd::decode_all(&encoded[..]).unwrap(), input);
            let decoded =
                run_transform::<Zstd>("", Direction::Decode, vec![], &encoded, chunk).unwrap();
            assert_eq!(decoded, input, "chunks of {chunk}");
        }
    }

    /// One frame per window of input (2 MiB at level 3, 8 MiB at 19), each
    /// a complete frame of its own; empty input is one empty frame.
    #[test]
    fn input_is_compressed_in_frames_of_the_levels_window() {
        const MIB: usize = 1 << 20;
        let frames = |encoded: &[u8]| {
            let mut rest = encoded;
            let mut sizes = Vec::new();
            while !rest.is_empty() {
                let frame = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
                sizes.push(
                    zstd::bulk::decompress(&rest[..frame], 8 * MIB)
                        .unwrap()
                        .len(),
                );
                rest = &rest[frame..];
            }
            sizes
        };
        let input = sample(4 * MIB + 5);
        let encoded = run_transform::<Zstd>("", Direction::Encode, vec![], &input, 65_536).unwrap();
        assert_eq!(frames(&encoded), [2 * MIB, 2 * MIB, 5]);
        let level_1 =
            run_transform::<Zstd>(r#"{"level": 1}"#, Direction::Encode, vec![], &input, MIB)
                .unwrap();
        assert_eq!(frames(&level_1), [MIB, MIB, MIB, MIB, 5]);
        let level_19 = run_transform::<Zstd>(
            r#"{"level": 19}"#,
            Direction::Encode,
            vec![],
            &input[..MIB],
            MIB,
        )
        .unwrap();
        assert_eq!(frames(&level_19), [MIB]);
        let empty = run_transform::<Zstd>("", Direction::Encode, vec![], &[], 1).unwrap();
        assert_eq!(frames(&empty), [0]);
        let decoded = run_transform::<Zstd>("", Direction::Decode, vec![], &empty, 1).unwrap();
        assert!(decoded.is_empty());
    }

    #[test]
    fn unwrap_gzip_compresses_the_content_and_rebuilds_a_gzip_stream() {
        let content = sample(2 * 1024 * 1024);
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&content).unwrap();
        let gzipped = gzip.finish().unwrap();
        let config = r#"{"unwrapGzip": true, "level": 5}"#;
        let encoded =
            run_transform::<Zstd>(config, Direction::Encode, vec![], &gzipped, 100_000).unwrap();
        assert_eq!(
            zstd::decode_all(&encoded[..]).unwrap(),
            content,
            "the frames hold the content"
        );
        let rebuilt =
            run_transform::<Zstd>(config, Direction::Decode, vec![], &encoded, 65_536).unwrap();
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&rebuilt[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, content);
    }

    #[test]
    fn a_cut_stream_and_foreign_input_are_refused() {
        let input = sample(1024 * 1024);
        let encoded = run_transform::<Zstd>("", Direction::Encode, vec![], &input, 65_536).unwrap();
        let cut = &encoded[..encoded.len() - 10];
        let error = run_transform::<Zstd>("", Direction::Decode, vec![], cut, 65_536).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidInput(m) if m.contains("truncated")),
            "{error}"
        );
        let error =
            run_transform::<Zstd>("", Direction::Decode, vec![], b"plain text", 4).unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)), "{error}");
        let error = run_transform::<Zstd>(
            r#"{"unwrapGzip": true}"#,
            Direction::Encode,
            vec![],
            b"plain",
            4,
        )
        .unwrap_err();
        assert!(
            matches!(&error, Error::InvalidInput(m) if m.contains("not a gzip stream")),
            "{error}"
        );
        let error = run_transform::<Zstd>(r#"{"level": 30}"#, Direction::Encode, vec![], b"", 4)
            .unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("level 30")),
            "{error}"
        );
    }
}

/// The native half of scripts/bench-plugins: the same code as the wasm
/// plugin, on the snapshot the wasm half wrote to $BENCH_INPUT.
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
        let mib = |bytes: usize, started: Instant| {
            bytes as f64 / 1048576.0 / started.elapsed().as_secs_f64()
        };
        for config in [r#"{"level": 3}"#, r#"{"level": 3, "unwrapGzip": true}"#] {
            let started = Instant::now();
            let encoded =
                run_transform::<Zstd>(config, Direction::Encode, vec![], &input, 1 << 20).unwrap();
            let encode = mib(input.len(), started);
            let started = Instant::now();
            run_transform::<Zstd>(config, Direction::Decode, vec![], &encoded, 1 << 20).unwrap();
            println!(
                "native zstd {config}: encode {encode:.0} MiB/s, decode {:.0} MiB/s",
                mib(encoded.len(), started)
            );
        }
    }
}
