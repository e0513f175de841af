//! Runs the fake OpenBao as a standalone server for the local demo and the
//! benchmark. It writes a token allowed to take snapshots to --token-file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use testkit::{FakeConfig, FakeOpenBao, SnapshotSpec};

#[derive(Parser)]
#[command(about = "A fake OpenBao node that serves Raft snapshots (for demos and benchmarks)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8200")]
    listen: SocketAddr,
    /// Size of state.bin in MiB.
    #[arg(long, default_value_t = 64)]
    state_mib: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// gzip level of the archive (0 = stored blocks, fastest).
    #[arg(long, default_value_t = 1)]
    gzip_level: u32,
    /// Where to write a token with the `backup` policy.
    #[arg(long)]
    token_file: PathBuf,
    /// Where to write the URL once listening (useful with --listen port 0).
    #[arg(long)]
    url_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let token = format!("s.{}", hex::encode(testkit::random::<16>()));
    std::fs::write(&args.token_file, &token).expect("write --token-file");
    let spec = SnapshotSpec {
        gzip_level: args.gzip_level,
        ..SnapshotSpec::new(args.state_mib * 1024 * 1024, args.seed)
    };
    let fake = FakeOpenBao::start_on(
        args.listen,
        FakeConfig::new(spec).with_token(&token, &["backup", "restore"]),
    )
    .await;
    eprintln!(
        "fake OpenBao listening on {} (token in {})",
        fake.url(),
        args.token_file.display()
    );
    if let Some(path) = &args.url_file {
        std::fs::write(path, fake.url()).expect("write --url-file");
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
