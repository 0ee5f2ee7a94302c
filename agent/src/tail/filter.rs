//! Include/exclude of sources by namespace, pod and container name (glob patterns).

use globset::{Glob, GlobSet, GlobSetBuilder};
use runnel_index::SourceIdentity;

/// Compiled globs of one `Filters` section.
#[derive(Debug, Clone)]
pub struct Globs {
    namespaces: Option<GlobSet>,
    pods: Option<GlobSet>,
    containers: Option<GlobSet>,
}

fn build(patterns: &[String], what: &str) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("{what} pattern {p:?}: {e}"))?);
    }
    b.build()
        .map(Some)
        .map_err(|e| format!("{what} patterns: {e}"))
}

impl Globs {
    /// Compile namespace, pod and container patterns.
    pub fn new(
        namespaces: &[String],
        pods: &[String],
        containers: &[String],
    ) -> Result<Globs, String> {
        Ok(Globs {
            namespaces: build(namespaces, "namespaces")?,
            pods: build(pods, "pods")?,
            containers: build(containers, "containers")?,
        })
    }
    fn matches(set: &Option<GlobSet>, value: Option<&str>) -> Option<bool> {
        set.as_ref().map(|s| value.is_some_and(|v| s.is_match(v)))
    }
}

/// The include and exclude sets together.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Globs,
    exclude: Globs,
}

impl Filter {
    /// Build from compiled include and exclude globs.
    pub fn new(include: Globs, exclude: Globs) -> Filter {
        Filter { include, exclude }
    }

    /// True when the source is to be read: every non-empty include list matches and no exclude
    /// pattern matches. Docker containers without Kubernetes labels match the container lists
    /// by their Docker name.
    pub fn allows(&self, id: &SourceIdentity) -> bool {
        let ns = id.namespace.as_deref();
        let pod = id.pod.as_deref();
        let container = id.container.as_deref().or(id.container_name.as_deref());
        let inc = &self.include;
        for m in [
            Globs::matches(&inc.namespaces, ns),
            Globs::matches(&inc.pods, pod),
            Globs::matches(&inc.containers, container),
        ] {
            if m == Some(false) {
                return false;
            }
        }
        let exc = &self.exclude;
        ![
            Globs::matches(&exc.namespaces, ns),
            Globs::matches(&exc.pods, pod),
            Globs::matches(&exc.containers, container),
        ]
        .contains(&Some(true))
    }
}
