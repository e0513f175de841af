//! A chain of transform plugins run as one stream. Encode applies them in
//! the order given; decode undoes them in reverse, so the same list (as a
//! manifest records it) works both ways.
//!
//! `spawn` runs the chain on a blocking thread between two bounded
//! channels: plugin CPU never stalls the network side, and memory holds a
//! few chunks whatever the stream's size.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::component::{Direction, Transformer};
use crate::errors::PluginError;
use crate::spec::ConfiguredPlugin;
use contract::snapshot::ContentDigest;

/// Bytes of fresh entropy handed to each transformer.
pub const ENTROPY_BYTES: usize = 64;

pub fn fresh_entropy() -> [u8; ENTROPY_BYTES] {
    let mut entropy = [0u8; ENTROPY_BYTES];
    getrandom::fill(&mut entropy).expect("the OS provides randomness");
    entropy
}

/// A plugin failed; `stage` says which (`transform 2 (age 0.1.0)`).
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {error}")]
pub struct ChainError {
    pub stage: String,
    pub error: PluginError,
}

pub struct Chain {
    stages: Vec<(String, Transformer)>,
}

impl Chain {
    /// Starts a transformer per plugin. `plugins` is in encode order for
    /// both directions.
    pub fn new(plugins: &[ConfiguredPlugin], direction: Direction) -> Result<Self, ChainError> {
        let mut stages = Vec::with_capacity(plugins.len());
        for (i, configured) in plugins.iter().enumerate() {
            let info = &configured.plugin.info;
            let stage = format!("transform {} ({} {})", i + 1, info.name, info.version);
            let start = || {
                configured.plugin.transformer(
                    configured.plugin_config(),
                    direction,
                    &fresh_entropy(),
                )
            };
            // A constructor cannot fail (WIT): a bad configuration shows at
            // the first push. Find it now, on a throwaway instance, before
            // any byte of the stream moves.
            let checked = start()
                .and_then(|mut probe| probe.push(&[]))
                .and_then(|_| start());
            stages.push((
                stage.clone(),
                checked.map_err(|error| failed(&stage, error))?,
            ));
        }
        if direction == Direction::Decode {
            stages.reverse();
        }
        Ok(Self { stages })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Passes `input` through every stage; without stages, as it is.
    pub fn push(&mut self, input: Bytes) -> Result<Bytes, ChainError> {
        let mut data = input;
        for (stage, transformer) in &mut self.stages {
            if data.is_empty() {
                break;
            }
            data = transformer
                .push(&data)
                .map(Bytes::from)
                .map_err(|error| failed(stage, error))?;
        }
        Ok(data)
    }

    /// Ends the stream: each stage's tail goes through the stages after it
    /// before they finish in turn.
    pub fn finish(self) -> Result<Bytes, ChainError> {
        let mut tail = Vec::new();
        for (stage, mut transformer) in self.stages {
            let mut out = if tail.is_empty() {
                Vec::new()
            } else {
                transformer
                    .push(&tail)
                    .map_err(|error| failed(&stage, error))?
            };
            out.extend(
                transformer
                    .finish()
                    .map_err(|error| failed(&stage, error))?,
            );
            tail = out;
        }
        Ok(tail.into())
    }

    /// Runs the chain on a blocking thread. The output channel closes after
    /// the last bytes or after an error; the task gives the digest of one
    /// side, if asked, when the stream completed.
    pub fn spawn(
        self,
        hashed: Option<Side>,
    ) -> (
        ChainInput,
        mpsc::Receiver<Result<Bytes, ChainError>>,
        ChainTask,
    ) {
        let (input, mut pieces) = mpsc::channel::<Piece>(1);
        let (output, received) = mpsc::channel(1);
        let task = tokio::task::spawn_blocking(move || {
            let mut chain = self;
            let mut input_hash = (hashed == Some(Side::Input)).then(Hasher::default);
            let mut output_hash = (hashed == Some(Side::Output)).then(Hasher::default);
            let mut send = |step: Result<Bytes, ChainError>| match step {
                Ok(bytes) => {
                    if let Some(hasher) = &mut output_hash {
                        hasher.update(&bytes);
                    }
                    bytes.is_empty() || output.blocking_send(Ok(bytes)).is_ok()
                }
                Err(e) => {
                    let _ = output.blocking_send(Err(e));
                    false
                }
            };
            loop {
                let going = match pieces.blocking_recv() {
                    Some(Piece::Data(bytes)) => {
                        if let Some(hasher) = &mut input_hash {
                            hasher.update(&bytes);
                        }
                        send(chain.push(bytes))
                    }
                    Some(Piece::End) => break,
                    // The feeder gave up: the stream is unfinished.
                    None => false,
                };
                if !going {
                    return Err(ChainStopped);
                }
            }
            if !send(chain.finish()) {
                return Err(ChainStopped);
            }
            Ok(input_hash.or(output_hash).map(Hasher::finish))
        });
        (ChainInput(input), received, ChainTask(task))
    }
}

/// Which side of the chain `spawn` hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

/// Size and SHA-256 of bytes seen so far.
#[derive(Default)]
pub struct Hasher {
    size: u64,
    sha: Sha256,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.sha.update(bytes);
    }

    pub fn finish(self) -> ContentDigest {
        ContentDigest {
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
        }
    }
}

fn failed(stage: &str, error: PluginError) -> ChainError {
    ChainError {
        stage: stage.into(),
        error,
    }
}

enum Piece {
    Data(Bytes),
    End,
}

/// The chain stopped before the end of its stream.
#[derive(Debug, thiserror::Error)]
#[error("the transform chain stopped before the end of the stream")]
pub struct ChainStopped;

pub struct ChainTask(JoinHandle<Result<Option<ContentDigest>, ChainStopped>>);

impl ChainTask {
    /// Whether the stream went through to its end, with the output's
    /// digest when it was hashed. Call after the output channel closed.
    pub async fn finished(self) -> Result<Option<ContentDigest>, ChainStopped> {
        self.0.await.unwrap_or(Err(ChainStopped))
    }
}

/// The sending side. Only `end` finishes the stream: input dropped
/// without it abandons the chain, so a failed source never looks complete.
pub struct ChainInput(mpsc::Sender<Piece>);

impl ChainInput {
    /// False when the chain has stopped (it failed: its output says why).
    pub async fn send(&self, bytes: Bytes) -> bool {
        self.0.send(Piece::Data(bytes)).await.is_ok()
    }

    pub async fn end(self) -> bool {
        self.0.send(Piece::End).await.is_ok()
    }
}
