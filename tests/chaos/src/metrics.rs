//! The agent's counters over a run of many lives: each process starts its counters at zero, so
//! the last scrape of every life is kept and added up. A life is scraped often and once more
//! right before it is killed, so what one misses is at most the moment between the two.

use std::collections::BTreeMap;

/// Sum of every sample of each counter family (`*_total`) in a Prometheus text page, labels
/// added together.
pub fn counters(page: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, v) in samples(page) {
        if name.ends_with("_total") {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

/// `(family, value)` of every sample line.
pub fn samples(page: &str) -> impl Iterator<Item = (&str, f64)> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let name = head.split('{').next()?.trim();
            Some((name, value.trim().parse::<f64>().ok()?))
        })
}

/// Sum of the samples of one family (a gauge, say) in a page.
pub fn family_sum(page: &str, family: &str) -> f64 {
    samples(page)
        .filter(|(n, _)| *n == family)
        .map(|(_, v)| v)
        .sum()
}

/// Counters of finished lives plus the latest scrape of the current one.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    finished: BTreeMap<String, f64>,
    current: BTreeMap<String, f64>,
}

impl Tally {
    /// The current life's newest scrape.
    pub fn update(&mut self, page: &str) {
        self.current = counters(page);
    }

    /// The current life ended: keep its last values.
    pub fn end_life(&mut self) {
        for (k, v) in std::mem::take(&mut self.current) {
            *self.finished.entry(k).or_insert(0.0) += v;
        }
    }

    /// A counter over all lives so far.
    pub fn get(&self, name: &str) -> u64 {
        let a = self.finished.get(name).copied().unwrap_or(0.0);
        let b = self.current.get(name).copied().unwrap_or(0.0);
        (a + b).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_labels_and_lives() {
        let page = "# HELP x_total X\n# TYPE x_total counter\nx_total{input=\"docker\"} 2\n\
                    x_total{input=\"cri\"} 3\ng 7\ng{a=\"b c\"} 1\n";
        let mut t = Tally::default();
        t.update(page);
        assert_eq!(t.get("x_total"), 5);
        t.end_life();
        t.update("x_total 1\n");
        assert_eq!(t.get("x_total"), 6);
        assert_eq!(family_sum(page, "g"), 8.0);
    }
}
