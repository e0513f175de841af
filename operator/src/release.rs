//! The OpenBao release a cluster asks for and the one its StatefulSet
//! runs: an upgrade is the difference between the two.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;

use crate::api::OpenBaoClusterSpec;
use crate::names::{OPENBAO_CONTAINER, VERSION_ANNOTATION};

const DEFAULT_IMAGE: &str = "openbao/openbao";

/// The OpenBao a StatefulSet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub image: String,
}

impl Release {
    /// What the spec asks for: `image`, or `openbao/openbao:<version>`;
    /// the version, or the image's tag when only the image is given.
    pub fn wanted(spec: &OpenBaoClusterSpec) -> Option<Self> {
        let image = match (&spec.image, &spec.version) {
            (Some(image), _) => image.clone(),
            (None, Some(version)) => format!("{DEFAULT_IMAGE}:{version}"),
            (None, None) => return None,
        };
        let version = spec.version.clone().unwrap_or_else(|| image_tag(&image));
        Some(Self { version, image })
    }

    /// What a StatefulSet runs now.
    pub fn running(statefulset: &StatefulSet) -> Option<Self> {
        let pod = statefulset.spec.as_ref()?.template.spec.as_ref()?;
        let image = pod
            .containers
            .iter()
            .find(|c| c.name == OPENBAO_CONTAINER)?
            .image
            .clone()?;
        let version = statefulset
            .annotations()
            .get(VERSION_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| image_tag(&image));
        Some(Self { version, image })
    }
}

/// `repo/name:tag@sha256:...` -> `tag` (or the digest, or `latest`).
fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, tag)), _) => tag.into(),
        (None, Some(digest)) => digest.into(),
        (None, None) => "latest".into(),
    }
}
