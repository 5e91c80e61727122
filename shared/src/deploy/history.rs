//! Reading a project's builds back, newest first, as far as reconcile needs: down to the newest
//! tagrelay (fingerprinted) build, however many builds started by hand follow it, and no further.
//! That one build is all the decision needs besides the running ones above it: what it deployed
//! and how it ended, and its id, which makes the next run's idempotency token.
//!
//! Bounded: at most `MAX_BUILDS_READ` builds (10 pages of ListBuildsForProject, 11 or so
//! BatchGetBuilds calls). Past the bound the environment is treated as never deployed by tagrelay
//! (a change starts a first run; the schedule starts one only once a change was recorded), and
//! a WARN line says so.

use std::collections::VecDeque;

use crate::ports::BuildRecord;
use crate::ports::{AwsError, BuildRunner};

/// How many builds are read at most looking for the newest tagrelay build.
pub const MAX_BUILDS_READ: usize = 1_000;
/// The first BatchGetBuilds asks for this many: the newest tagrelay build is nearly always among
/// them, and a build's description is a few KB.
const FIRST_CHUNK: usize = 10;
/// BatchGetBuilds takes at most 100 ids.
const CHUNK: usize = 100;

/// A project's newest builds, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildHistory {
    /// Down to and including the newest tagrelay build, or every build read.
    pub builds: Vec<BuildRecord>,
    /// `MAX_BUILDS_READ` builds were read without finding a tagrelay build (there may be one
    /// further back).
    pub bound_reached: bool,
}

impl BuildHistory {
    /// A build of the project that is running (any: a manual one holds the state lock too).
    pub fn running(&self) -> Option<&BuildRecord> {
        self.builds.iter().find(|build| build.status == crate::ports::BuildStatus::InProgress)
    }

    /// The newest build tagrelay started (with a fingerprint).
    pub fn newest_tagrelay(&self) -> Option<&BuildRecord> {
        self.builds.iter().find(|build| build.fingerprint.is_some())
    }
}

/// The builds reconcile needs: newest first, down to the newest tagrelay build.
pub async fn deploy_history<B: BuildRunner + Sync>(runner: &B, project: &str) -> Result<BuildHistory, AwsError> {
    read(runner, project, MAX_BUILDS_READ, |build| build.fingerprint.is_some()).await
}

/// The project's newest `limit` builds (fewer when it has fewer), newest first.
pub async fn newest_builds<B: BuildRunner + Sync>(
    runner: &B,
    project: &str,
    limit: usize,
) -> Result<Vec<BuildRecord>, AwsError> {
    Ok(read(runner, project, limit, |_| false).await?.builds)
}

/// Reads ids a page at a time and builds a chunk at a time until `last` says a build is the
/// last one needed, the project has no more, or `bound` ids were asked for.
async fn read<B: BuildRunner + Sync>(
    runner: &B,
    project: &str,
    bound: usize,
    last: impl Fn(&BuildRecord) -> bool,
) -> Result<BuildHistory, AwsError> {
    let mut builds = Vec::new();
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut next: Option<String> = None;
    let mut listed_all = false;
    let mut asked = 0;
    while asked < bound {
        if pending.is_empty() {
            if listed_all {
                return Ok(BuildHistory { builds, bound_reached: false });
            }
            let page = runner.list_build_ids(project, next.as_deref()).await?;
            // An empty page ends the listing even with a token: nothing to page towards.
            listed_all = page.next.is_none() || page.ids.is_empty();
            next = page.next;
            pending.extend(page.ids);
            continue;
        }
        let size = if asked == 0 { FIRST_CHUNK } else { CHUNK }.min(bound - asked).min(pending.len());
        let ids: Vec<String> = pending.drain(..size).collect();
        asked += ids.len();
        for build in runner.get_builds(project, &ids).await? {
            let done = last(&build);
            builds.push(build);
            if done {
                return Ok(BuildHistory { builds, bound_reached: false });
            }
        }
    }
    // Nothing more to read anyway: not a bound that hid anything.
    let bound_reached = !(pending.is_empty() && listed_all);
    Ok(BuildHistory { builds, bound_reached })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::BuildStatus;
    use crate::ports::{BuildIdPage, StartBuild, StartOutcome};

    /// Builds newest first, listed `page` ids at a time; records every call.
    struct Pages {
        builds: Vec<BuildRecord>,
        page: usize,
        calls: Mutex<Vec<String>>,
    }

    impl Pages {
        fn new(builds: Vec<BuildRecord>, page: usize) -> Self {
            Self { builds, page, calls: Mutex::new(Vec::new()) }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|calls| calls.clone()).unwrap_or_default()
        }

        fn log(&self, call: String) {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(call);
            }
        }
    }

    impl BuildRunner for Pages {
        async fn list_build_ids(&self, _project: &str, next: Option<&str>) -> Result<BuildIdPage, AwsError> {
            let start: usize = next.map_or(0, |token| token.parse().unwrap_or(usize::MAX));
            self.log(format!("list {start}"));
            let end = start.saturating_add(self.page).min(self.builds.len());
            let ids = self.builds.get(start..end).unwrap_or_default().iter().map(|b| b.id.clone()).collect();
            Ok(BuildIdPage { ids, next: (end < self.builds.len()).then(|| end.to_string()) })
        }

        async fn get_builds(&self, _project: &str, ids: &[String]) -> Result<Vec<BuildRecord>, AwsError> {
            self.log(format!("get {}", ids.len()));
            assert!(ids.len() <= CHUNK, "BatchGetBuilds takes at most 100 ids");
            Ok(ids.iter().filter_map(|id| self.builds.iter().find(|b| &b.id == id).cloned()).collect())
        }

        async fn start_build(&self, _request: &StartBuild) -> Result<StartOutcome, AwsError> {
            unreachable!("history never starts a build")
        }
    }

    fn manual(n: usize) -> Vec<BuildRecord> {
        (0..n).map(|i| build(&format!("manual:{i}"), None)).collect()
    }

    fn build(id: &str, fingerprint: Option<&str>) -> BuildRecord {
        BuildRecord {
            id: id.into(),
            status: BuildStatus::Succeeded,
            fingerprint: fingerprint.map(str::to_owned),
            started: None,
            ended: None,
        }
    }

    fn ids(history: &BuildHistory) -> Vec<&str> {
        history.builds.iter().map(|b| b.id.as_str()).collect()
    }

    #[tokio::test]
    async fn the_newest_tagrelay_build_is_found_behind_many_manual_builds_and_nothing_older_is_read() {
        let builds =
            [manual(250), vec![build("tagrelay:2", Some("/a=2@x")), build("tagrelay:1", Some("/a=1@x"))]].concat();
        let runner = Pages::new(builds, 100);
        let history = deploy_history(&runner, "p").await.expect("read");
        assert_eq!(history.builds.len(), 251);
        assert_eq!(history.builds.last().map(|b| b.id.as_str()), Some("tagrelay:2"));
        assert!(!history.bound_reached);
        assert_eq!(
            runner.calls(),
            ["list 0", "get 10", "get 90", "list 100", "get 100", "list 200", "get 52"],
            "pages while needed, chunks of at most 100, the first one small"
        );
    }

    #[tokio::test]
    async fn the_common_case_costs_one_page_and_one_small_chunk() {
        let builds = [manual(2), vec![build("tagrelay:1", Some("/a=1@x"))], manual(300)].concat();
        let runner = Pages::new(builds, 100);
        let history = deploy_history(&runner, "p").await.expect("read");
        assert_eq!(ids(&history), ["manual:0", "manual:1", "tagrelay:1"]);
        assert_eq!(runner.calls(), ["list 0", "get 10"]);
    }

    #[tokio::test]
    async fn a_project_without_a_tagrelay_build_is_read_to_its_end() {
        let runner = Pages::new(manual(130), 100);
        let history = deploy_history(&runner, "p").await.expect("read");
        assert_eq!(history.builds.len(), 130);
        assert!(!history.bound_reached, "all was read: nothing hidden");
        let empty = Pages::new(Vec::new(), 100);
        assert_eq!(deploy_history(&empty, "p").await.expect("read"), BuildHistory::default());
        assert_eq!(empty.calls(), ["list 0"]);
    }

    #[tokio::test]
    async fn reading_stops_at_the_bound_and_says_so() {
        let builds = [manual(MAX_BUILDS_READ), vec![build("tagrelay:1", Some("/a=1@x"))]].concat();
        let runner = Pages::new(builds, 100);
        let history = deploy_history(&runner, "p").await.expect("read");
        assert_eq!(history.builds.len(), MAX_BUILDS_READ);
        assert!(history.bound_reached);
        let calls = runner.calls();
        assert_eq!(calls.iter().filter(|c| c.starts_with("list")).count(), 10);
        assert_eq!(calls.iter().filter(|c| c.starts_with("get")).count(), 11);
    }

    #[tokio::test]
    async fn newest_builds_reads_the_newest_few() {
        let runner = Pages::new([vec![build("tagrelay:1", Some("/a=1@x"))], manual(150)].concat(), 100);
        let newest = newest_builds(&runner, "p", 120).await.expect("read");
        assert_eq!(newest.len(), 120, "past tagrelay builds: it is not looking for one");
        assert_eq!(newest[0].id, "tagrelay:1");
        assert_eq!(newest_builds(&runner, "p", 3).await.expect("read").len(), 3);
    }
}
