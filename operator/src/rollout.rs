//! Which OpenBao pod to replace next. The StatefulSet updates `OnDelete`:
//! its controller recreates a deleted pod from the current template, and
//! the operator chooses the order: one pod at a time, only while every
//! other pod is ready, standbys first (highest ordinal first), the active
//! node last, so the cluster loses its leader once. Pure.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// The label OpenBao's Kubernetes service registration keeps on its pod.
pub const ACTIVE_LABEL: &str = "openbao-active";
/// The StatefulSet controller's record of the template a pod was made from.
const REVISION_LABEL: &str = "controller-revision-hash";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs the current template.
    Done,
    /// Nothing to do until the reason passes.
    Wait(String),
    /// Delete this pod (name, uid) so that it comes back updated.
    Replace { pod: String, uid: String },
}

/// Progress of a rollout: pods on the current template, of how many.
pub fn updated(statefulset: &StatefulSet, pods: &[Pod]) -> (usize, usize) {
    let revision = update_revision(statefulset);
    let replicas = replicas(statefulset);
    let done = pods
        .iter()
        .filter(|pod| revision.is_some() && revision == pod.labels().get(REVISION_LABEL))
        .count();
    (done.min(replicas), replicas)
}

pub fn next(statefulset: &StatefulSet, pods: &[Pod]) -> Step {
    // Nothing to replace: making pods is the StatefulSet controller's job.
    if pods.is_empty() {
        return Step::Done;
    }
    let status = statefulset.status.clone().unwrap_or_default();
    if status.observed_generation < statefulset.metadata.generation {
        return Step::Wait("the StatefulSet controller has not yet seen the new template".into());
    }
    let Some(revision) = update_revision(statefulset) else {
        return Step::Wait("the StatefulSet has no update revision yet".into());
    };
    let mut outdated: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.labels().get(REVISION_LABEL) != Some(revision))
        .collect();
    if outdated.is_empty() {
        return Step::Done;
    }
    let name = statefulset.name_any();
    for ordinal in 0..replicas(statefulset) {
        let pod_name = format!("{name}-{ordinal}");
        match pods.iter().find(|pod| pod.name_any() == pod_name) {
            None => return Step::Wait(format!("pod {pod_name} is being recreated")),
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                return Step::Wait(format!("pod {pod_name} is terminating"));
            }
            Some(pod) if !ready(pod) => {
                return Step::Wait(format!(
                    "pod {pod_name} is not ready (starting, or sealed: unseal it)"
                ));
            }
            Some(_) => {}
        }
    }
    // Standbys by descending ordinal, then the active node.
    outdated.sort_by_key(|pod| {
        let active = pod.labels().get(ACTIVE_LABEL).map(String::as_str) == Some("true");
        (active, std::cmp::Reverse(ordinal(pod)))
    });
    match outdated.first() {
        Some(pod) => Step::Replace {
            pod: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
        },
        None => Step::Done,
    }
}

fn update_revision(statefulset: &StatefulSet) -> Option<&String> {
    statefulset.status.as_ref()?.update_revision.as_ref()
}

fn replicas(statefulset: &StatefulSet) -> usize {
    let replicas = statefulset.spec.as_ref().and_then(|s| s.replicas);
    replicas.unwrap_or(1).max(0) as usize
}

fn ordinal(pod: &Pod) -> u32 {
    let name = pod.name_any();
    name.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

fn ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statefulset(generation: i64, observed: i64, revision: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "bao", "generation": generation},
            "spec": {"replicas": 3, "serviceName": "bao-internal", "selector": {},
                     "template": {}},
            "status": {"replicas": 3, "observedGeneration": observed,
                       "updateRevision": revision, "currentRevision": "bao-old"},
        }))
        .unwrap()
    }

    fn pod(ordinal: u32, revision: &str, ready: bool, active: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("bao-{ordinal}"), "uid": format!("uid-{ordinal}"),
                         "labels": {REVISION_LABEL: revision, ACTIVE_LABEL: active.to_string()}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn replace(ordinal: u32) -> Step {
        Step::Replace {
            pod: format!("bao-{ordinal}"),
            uid: format!("uid-{ordinal}"),
        }
    }

    #[test]
    fn standbys_go_first_highest_ordinal_first_and_the_active_node_last() {
        let sts = statefulset(2, 2, "bao-new");
        // bao-2 is the active node.
        let mut pods = vec![
            pod(0, "bao-old", true, false),
            pod(1, "bao-old", true, false),
            pod(2, "bao-old", true, true),
        ];
        let mut order = Vec::new();
        loop {
            match next(&sts, &pods) {
                Step::Replace { pod: name, .. } => {
                    order.push(name.clone());
                    let i = pods.iter().position(|p| p.name_any() == name).unwrap();
                    let active = pods[i].labels()[ACTIVE_LABEL] == "true";
                    pods[i] = pod(i as u32, "bao-new", true, active);
                }
                Step::Done => break,
                Step::Wait(why) => panic!("{why}"),
            }
        }
        assert_eq!(order, ["bao-1", "bao-0", "bao-2"]);
        assert_eq!(updated(&sts, &pods), (3, 3));
    }

    #[test]
    fn one_pod_at_a_time() {
        let sts = statefulset(2, 2, "bao-new");
        let up = vec![
            pod(0, "bao-old", true, true),
            pod(1, "bao-old", true, false),
        ];
        assert!(
            matches!(next(&sts, &up), Step::Wait(why) if why.contains("bao-2 is being recreated"))
        );
        let starting = vec![
            pod(0, "bao-old", true, true),
            pod(1, "bao-old", true, false),
            pod(2, "bao-new", false, false),
        ];
        assert!(
            matches!(next(&sts, &starting), Step::Wait(why) if why.contains("bao-2 is not ready"))
        );
        let mut terminating = up.clone();
        let mut leaving = pod(2, "bao-old", true, false);
        leaving.metadata.deletion_timestamp = Some(crate::status::time(chrono::Utc::now()));
        terminating.push(leaving);
        assert!(matches!(next(&sts, &terminating), Step::Wait(why) if why.contains("terminating")));
        let mut ready = starting.clone();
        ready[2] = pod(2, "bao-new", true, false);
        assert_eq!(next(&sts, &ready), replace(1));
        assert_eq!(updated(&sts, &ready), (1, 3));
    }

    #[test]
    fn waits_for_the_controller_to_see_the_template() {
        let pods = vec![
            pod(0, "bao-old", true, true),
            pod(1, "bao-old", true, false),
            pod(2, "bao-old", true, false),
        ];
        assert!(matches!(
            next(&statefulset(3, 2, "bao-old"), &pods),
            Step::Wait(_)
        ));
        assert_eq!(next(&statefulset(3, 3, "bao-old"), &pods), Step::Done);
        // Pods of the current template need nothing, ready or not (a new
        // cluster waiting to be initialized).
        let new = vec![
            pod(0, "bao-old", false, false),
            pod(1, "bao-old", false, false),
            pod(2, "bao-old", false, false),
        ];
        assert_eq!(next(&statefulset(1, 1, "bao-old"), &new), Step::Done);
        // No pods yet: nothing to replace.
        assert_eq!(next(&statefulset(1, 0, "bao-old"), &[]), Step::Done);
    }

    #[test]
    fn without_service_registration_labels_ordinals_decide() {
        let sts = statefulset(2, 2, "bao-new");
        let mut pods: Vec<Pod> = (0..3).map(|i| pod(i, "bao-old", true, false)).collect();
        for pod in &mut pods {
            pod.labels_mut().remove(ACTIVE_LABEL);
        }
        assert_eq!(next(&sts, &pods), replace(2));
    }
}
