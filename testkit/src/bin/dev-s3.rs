//! Starts a local Garage S3 server with one bucket for the demo and the
//! benchmark. Writes the S3 credentials as files (the layout the backup Job
//! mounts) and `<dir>/env` (shell exports) once ready, then runs until
//! SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use testkit::garage::{Garage, REGION};

#[derive(Parser)]
#[command(about = "A local Garage S3 server with one bucket")]
struct Args {
    /// Where to write `env`, `accessKeyId` and `secretAccessKey`.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "openbao-backups")]
    bucket: String,
}

fn main() {
    let args = Args::parse();
    let garage = Garage::start().unwrap_or_else(|e| panic!("{e}"));
    let grants: [&[&str]; 2] = [
        &["bucket", "create", &args.bucket],
        &[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &args.bucket,
            "--key",
            &garage.access_key_id,
        ],
    ];
    for command in grants {
        let out = garage.cli(command).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "garage {} failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    std::fs::create_dir_all(&args.dir).expect("create --dir");
    std::fs::write(args.dir.join("accessKeyId"), &garage.access_key_id).expect("write accessKeyId");
    std::fs::write(args.dir.join("secretAccessKey"), &garage.secret_access_key)
        .expect("write secretAccessKey");
    let mut env = format!(
        "export S3_ENDPOINT={}\nexport S3_REGION={REGION}\nexport S3_BUCKET={}\n",
        garage.endpoint, args.bucket
    );
    env.push_str(&format!("export GARAGE_DIR={}\n", garage.dir.display()));
    for (name, value) in garage.aws_env() {
        env.push_str(&format!("export {name}={value}\n"));
    }
    // Written last and renamed into place: its presence means "ready".
    let tmp = args.dir.join("env.tmp");
    std::fs::write(&tmp, env).expect("write env");
    std::fs::rename(&tmp, args.dir.join("env")).expect("publish env");
    eprintln!(
        "Garage S3 at {} with bucket {}",
        garage.endpoint, args.bucket
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
    garage.stop();
}
