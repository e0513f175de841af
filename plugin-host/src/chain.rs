//! A chain of transform plugins run as one stream. Encode applies them in
//! the order given; decode undoes them in reverse, so the same list (as a
//! manifest records it) works both ways.
//!
//! `spawn` runs each stage on its own blocking thread, with bounded
//! channels between them: the stages run in parallel like a shell
//! pipeline, plugin CPU never stalls the network side, and memory holds a
//! few pieces per stage whatever the stream's size.

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

    /// Runs the chain as a pipeline: each stage on its own blocking thread,
    /// with a bounded channel (one piece) before and after it, so the
    /// stages work on successive pieces at once, as the processes of a
    /// shell pipeline do. The output channel closes after the last bytes or
    /// after an error; the task gives the digest of one side, if asked,
    /// when the stream completed. Memory: per stage, the piece it works on
    /// and one waiting in each of its channels.
    pub fn spawn(
        self,
        hashed: Option<Side>,
    ) -> (
        ChainInput,
        mpsc::Receiver<Result<Bytes, ChainError>>,
        ChainTask,
    ) {
        let (input, mut upstream) = mpsc::channel::<Piece>(1);
        // Without stages, one that passes the bytes on (it still hashes).
        let mut stages: Vec<Option<(String, Transformer)>> =
            self.stages.into_iter().map(Some).collect();
        if stages.is_empty() {
            stages.push(None);
        }
        let last = stages.len() - 1;
        let mut tasks = Vec::with_capacity(stages.len() + 1);
        for (i, stage) in stages.into_iter().enumerate() {
            let (downstream, next) = mpsc::channel::<Piece>(1);
            let input_hash = (i == 0 && hashed == Some(Side::Input)).then(Hasher::default);
            let output_hash = (i == last && hashed == Some(Side::Output)).then(Hasher::default);
            let from = std::mem::replace(&mut upstream, next);
            tasks.push(tokio::task::spawn_blocking(move || {
                run_stage(stage, from, downstream, input_hash, output_hash)
            }));
        }
        let (output, outputs) = mpsc::channel(1);
        let mut pieces = upstream;
        // The last stage's pieces as the output: bytes or the error, and
        // the channel closes at the end of the stream.
        tasks.push(tokio::task::spawn_blocking(move || {
            loop {
                match pieces.blocking_recv() {
                    Some(Piece::Data(bytes)) => {
                        if output.blocking_send(Ok(bytes)).is_err() {
                            return Err(ChainStopped);
                        }
                    }
                    Some(Piece::Failed(error)) => {
                        let _ = output.blocking_send(Err(error));
                        return Err(ChainStopped);
                    }
                    Some(Piece::End) => return Ok(None),
                    None => return Err(ChainStopped),
                }
            }
        }));
        (ChainInput(input), outputs, ChainTask(tasks))
    }
}

/// One stage of the pipeline (None passes bytes on): pieces from `from`
/// through the transformer into `to`; at the end, its tail, then the end.
/// A failure goes downstream as `Failed` (the output reports it); input
/// closed without `End` (the feeder or an earlier stage gave up) closes
/// the output too, so the stream never looks complete.
fn run_stage(
    mut stage: Option<(String, Transformer)>,
    mut from: mpsc::Receiver<Piece>,
    to: mpsc::Sender<Piece>,
    mut input_hash: Option<Hasher>,
    mut output_hash: Option<Hasher>,
) -> Result<Option<ContentDigest>, ChainStopped> {
    let mut send = |step: Result<Bytes, ChainError>| match step {
        Ok(bytes) => {
            if let Some(hasher) = &mut output_hash {
                hasher.update(&bytes);
            }
            bytes.is_empty() || to.blocking_send(Piece::Data(bytes)).is_ok()
        }
        Err(e) => {
            let _ = to.blocking_send(Piece::Failed(e));
            false
        }
    };
    loop {
        let going = match from.blocking_recv() {
            Some(Piece::Data(bytes)) => {
                if let Some(hasher) = &mut input_hash {
                    hasher.update(&bytes);
                }
                match &mut stage {
                    _ if bytes.is_empty() => true,
                    None => send(Ok(bytes)),
                    Some((name, transformer)) => send(
                        transformer
                            .push(&bytes)
                            .map(Bytes::from)
                            .map_err(|error| failed(name, error)),
                    ),
                }
            }
            Some(Piece::Failed(error)) => {
                let _ = to.blocking_send(Piece::Failed(error));
                false
            }
            Some(Piece::End) => break,
            None => false,
        };
        if !going {
            return Err(ChainStopped);
        }
    }
    if let Some((name, transformer)) = stage
        && !send(
            transformer
                .finish()
                .map(Bytes::from)
                .map_err(|error| failed(&name, error)),
        )
    {
        return Err(ChainStopped);
    }
    if to.blocking_send(Piece::End).is_err() {
        return Err(ChainStopped);
    }
    Ok(input_hash.or(output_hash).map(Hasher::finish))
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
    /// A stage failed: passed on to the output, which reports it.
    Failed(ChainError),
    End,
}

/// The chain stopped before the end of its stream.
#[derive(Debug, thiserror::Error)]
#[error("the transform chain stopped before the end of the stream")]
pub struct ChainStopped;

/// The pipeline's threads: a stage each, and the output's.
pub struct ChainTask(Vec<JoinHandle<Result<Option<ContentDigest>, ChainStopped>>>);

impl ChainTask {
    /// Whether the stream went through every stage to its end, with the
    /// digest of the hashed side. Call after the output channel closed.
    pub async fn finished(self) -> Result<Option<ContentDigest>, ChainStopped> {
        let mut digest = None;
        for task in self.0 {
            if let Some(d) = task.await.unwrap_or(Err(ChainStopped))? {
                digest = Some(d);
            }
        }
        Ok(digest)
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
