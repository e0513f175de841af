//! A directory as the storage target (a mounted PVC, NFS): the same keys as
//! in a bucket, as paths under the directory. An object is written to a
//! temporary file beside its final name (`.NAME.partial-ID`), synced, and
//! renamed into place (the directory synced too) only when complete, so a
//! failure leaves nothing under the key; a killed run's temporary file is
//! listed as an open upload and swept by a later backup.

use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::ObjectStream;
use crate::error::Error;
use crate::s3::{ObjectHead, OpenUpload};

/// Marks a temporary file: `.NAME.partial-ID` beside `NAME`.
const PARTIAL: &str = ".partial-";

fn failed(what: impl std::fmt::Display, error: std::io::Error) -> Error {
    Error::StorageAt("directory", format!("{what}: {error}"))
}

/// The root directory of the backups.
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    /// The directory must exist: a missing mount is an error, not a new,
    /// empty directory on the container's own disk.
    pub fn open(root: &Path) -> Result<Self, Error> {
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => Ok(Self { root: root.into() }),
            Ok(_) => Err(Error::Config(format!(
                "--directory (BACKUP_DIRECTORY) {} is not a directory: give the directory the volume is mounted at",
                root.display()
            ))),
            Err(e) => Err(Error::Config(format!(
                "--directory (BACKUP_DIRECTORY) {}: {e}: mount the volume there or fix the path",
                root.display()
            ))),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`, refusing a key that would leave the directory.
    pub fn path(&self, key: &str) -> Result<PathBuf, Error> {
        let relative = Path::new(key);
        let plain = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(Error::Config(format!(
                "`{key}` is not a key under the backup directory (no `..`, no leading `/`, not empty)"
            )));
        }
        Ok(self.root.join(relative))
    }

    /// Opens a temporary file beside `key`'s path, creating its directories.
    pub async fn begin(&self, key: &str) -> Result<Upload, Error> {
        let path = self.path(key)?;
        let parent = path.parent().expect("a key has a parent").to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| failed(parent.display(), e))?;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).expect("the OS provides randomness");
        let name = path
            .file_name()
            .expect("a key names a file")
            .to_string_lossy();
        let temporary = parent.join(format!(".{name}{PARTIAL}{}", hex::encode(id)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|e| failed(temporary.display(), e))?;
        Ok(Upload {
            file: Arc::new(file),
            temporary,
            path,
        })
    }

    /// Writes a small object through a temporary file.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), Error> {
        let upload = self.begin(key).await?;
        let size = body.len() as u64;
        let done = async {
            upload.write_at(0, Bytes::from(body)).await?;
            upload.complete(size).await
        }
        .await;
        if done.is_err() {
            let _ = upload.abort().await;
        }
        done
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, Error> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(ObjectHead {
                size: meta.len(),
                modified: meta.modified().ok().map(DateTime::<Utc>::from),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(path.display(), e)),
        }
    }

    pub async fn stream(&self, key: &str) -> Result<Option<ObjectStream>, Error> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(file_stream(file, path.display().to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(path.display(), e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        remove(&path).await
    }

    /// Every file under `prefix` but temporary ones: (key, size, modified).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64, DateTime<Utc>)>, Error> {
        Ok(self
            .walk(prefix)
            .await?
            .into_iter()
            .filter(|f| !f.key.contains(PARTIAL))
            .map(|f| (f.key, f.size, f.modified))
            .collect())
    }

    /// The temporary files under `prefix`, as uploads of their final keys.
    pub async fn open_uploads(&self, prefix: &str) -> Result<Vec<OpenUpload>, Error> {
        Ok(self
            .walk(prefix)
            .await?
            .into_iter()
            .filter_map(|f| {
                let (dir, name) = f.key.rsplit_once('/').unwrap_or(("", &f.key));
                let (name, _) = name.strip_prefix('.')?.split_once(PARTIAL)?;
                let key = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                Some(OpenUpload {
                    upload_id: f.key.clone(),
                    key,
                    initiated: f.modified,
                })
            })
            .collect())
    }

    /// Removes a temporary file `open_uploads` listed.
    pub async fn abort_open(&self, upload: &OpenUpload) -> Result<(), Error> {
        remove(&self.path(&upload.upload_id)?).await
    }

    /// Every file under `prefix` (keys joined with `/`).
    async fn walk(&self, prefix: &str) -> Result<Vec<Listed>, Error> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            // The deepest directory the prefix names whole.
            let start = match prefix.rfind('/') {
                Some(at) => &prefix[..at],
                None => "",
            };
            let mut found = Vec::new();
            let mut pending = vec![(root.join(start), start.to_string())];
            while let Some((dir, key)) = pending.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(failed(dir.display(), e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| failed(dir.display(), e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let key = if key.is_empty() {
                        name
                    } else {
                        format!("{key}/{name}")
                    };
                    let meta = entry
                        .metadata()
                        .map_err(|e| failed(entry.path().display(), e))?;
                    if meta.is_dir() {
                        pending.push((entry.path(), key));
                    } else if meta.is_file() && key.starts_with(&prefix) {
                        found.push(Listed {
                            key,
                            size: meta.len(),
                            modified: meta
                                .modified()
                                .map(DateTime::<Utc>::from)
                                .unwrap_or_else(|_| Utc::now()),
                        });
                    }
                }
            }
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
        .map_err(|e| Error::StorageAt("directory", format!("listing failed: {e}")))?
    }
}

struct Listed {
    key: String,
    size: u64,
    modified: DateTime<Utc>,
}

async fn remove(path: &Path) -> Result<(), Error> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(path.display(), e)),
    }
}

/// A file as a stream of chunks.
pub fn file_stream(file: tokio::fs::File, path: String) -> ObjectStream {
    futures_util::stream::unfold(Some(file), move |file| {
        let path = path.clone();
        async move {
            let mut file = file?;
            let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
            match file.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), Some(file))),
                Err(e) => Some((Err(Error::Storage(format!("reading {path}: {e}"))), None)),
            }
        }
    })
    .boxed()
}

/// An object being written to its temporary file.
#[derive(Debug, Clone)]
pub struct Upload {
    file: Arc<std::fs::File>,
    temporary: PathBuf,
    path: PathBuf,
}

impl Upload {
    /// Writes `body` at `offset` (parts land in any order, at once).
    pub async fn write_at(&self, offset: u64, body: Bytes) -> Result<(), Error> {
        let (file, temporary) = (self.file.clone(), self.temporary.clone());
        tokio::task::spawn_blocking(move || {
            file.write_all_at(&body, offset)
                .map_err(|e| failed(temporary.display(), e))
        })
        .await
        .map_err(|e| Error::StorageAt("directory", format!("write failed: {e}")))?
    }

    /// Syncs the file, checks its size, renames it into place and syncs
    /// the directory: the object is there, whole, or not at all.
    pub async fn complete(&self, size: u64) -> Result<(), Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let temporary = this.temporary.display();
            this.file.sync_all().map_err(|e| failed(&temporary, e))?;
            let written = this
                .file
                .metadata()
                .map_err(|e| failed(&temporary, e))?
                .len();
            if written != size {
                return Err(Error::StorageAt(
                    "directory",
                    format!("{temporary} holds {written} bytes, not the {size} written"),
                ));
            }
            std::fs::rename(&this.temporary, &this.path)
                .map_err(|e| failed(this.path.display(), e))?;
            let parent = this.path.parent().expect("a key has a parent");
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| failed(parent.display(), e))
        })
        .await
        .map_err(|e| Error::StorageAt("directory", format!("completing failed: {e}")))?
    }

    /// Removes the temporary file.
    pub async fn abort(&self) -> Result<(), Error> {
        remove(&self.temporary).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempdir::Dir, Directory) {
        let dir = tempdir::Dir::new();
        let directory = Directory::open(dir.path()).unwrap();
        (dir, directory)
    }

    /// A scratch directory, removed at the end.
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let mut id = [0u8; 6];
                getrandom::fill(&mut id).unwrap();
                let path = std::env::temp_dir().join(format!("local-store-{}", hex::encode(id)));
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn keys_stay_inside_the_directory() {
        let (_dir, store) = scratch();
        assert!(
            store
                .path("c/ns/bao/x.snap")
                .unwrap()
                .starts_with(store.root())
        );
        for bad in ["", "/etc/passwd", "c/../../x", "./x", "c//x/.."] {
            let err = store.path(bad).unwrap_err().to_string();
            assert!(
                err.contains("not a key under the backup directory"),
                "{bad}: {err}"
            );
        }
        let err = Directory::open(&store.root().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--directory (BACKUP_DIRECTORY)") && err.contains("mount the volume"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_object_appears_only_when_complete() {
        let (_dir, store) = scratch();
        let key = "p/ns/bao/20261124T030000.000Z-manual-aaaaaa.snap";
        let upload = store.begin(key).await.unwrap();
        // Parts out of order, at their offsets.
        upload
            .write_at(3, Bytes::from_static(b"def"))
            .await
            .unwrap();
        upload
            .write_at(0, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(store.list("p/").await.unwrap(), vec![]);
        let open = store.open_uploads("p/ns/bao/").await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].key, key);
        // A wrong size is refused and nothing appears.
        assert!(upload.complete(7).await.is_err());
        assert_eq!(store.head(key).await.unwrap(), None);
        upload.complete(6).await.unwrap();
        assert_eq!(store.get_all(key).await, b"abcdef");
        assert_eq!(store.open_uploads("p/").await.unwrap(), vec![]);
        let listed = store.list("p/ns/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].0.as_str(), listed[0].1), (key, 6));
        // Another cluster's prefix does not match.
        assert_eq!(store.list("p/ns/ba/").await.unwrap(), vec![]);
        assert_eq!(store.list("p/ns/ba").await.unwrap().len(), 1);

        // An aborted upload leaves nothing; the sweep's abort removes a
        // killed run's temporary file.
        let aborted = store.begin("p/ns/bao/y.snap").await.unwrap();
        aborted.write_at(0, Bytes::from_static(b"x")).await.unwrap();
        aborted.abort().await.unwrap();
        store.begin("p/ns/bao/z.snap").await.unwrap();
        let open = store.open_uploads("p/").await.unwrap();
        assert_eq!(open.len(), 1);
        store.abort_open(&open[0]).await.unwrap();
        assert_eq!(store.open_uploads("p/").await.unwrap(), vec![]);
        assert_eq!(store.list("p/").await.unwrap().len(), 1);
        store.delete(key).await.unwrap();
        store.delete(key).await.unwrap();
        assert_eq!(store.list("").await.unwrap(), vec![]);
    }

    impl Directory {
        async fn get_all(&self, key: &str) -> Vec<u8> {
            let mut stream = self.stream(key).await.unwrap().unwrap();
            let mut all = Vec::new();
            while let Some(chunk) = stream.next().await {
                all.extend_from_slice(&chunk.unwrap());
            }
            all
        }
    }
}
