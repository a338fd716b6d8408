//! Logging in batches: `runs/log-batch` requests cut to the server's limits.

use std::collections::BTreeMap;

use serde_json::json;

use super::RestStore;
use super::wire::{metric_json, pair_list};
use crate::error::{Error, Result};
use crate::store::Metric;

/// Most metrics one `runs/log-batch` request may carry (MLflow server limit).
pub const MAX_BATCH_METRICS: usize = 1000;
/// Most params one `runs/log-batch` request may carry.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Most tags one `runs/log-batch` request may carry.
pub const MAX_BATCH_TAGS: usize = 100;
/// Most entities (metrics + params + tags) in one `runs/log-batch` request.
pub const MAX_BATCH_ENTITIES: usize = 1000;
/// Request bodies stay under this size: MLflow documents a 1 MB limit, and proxies in
/// front of servers often enforce one.
const MAX_BATCH_BYTES: usize = 900 * 1024;

impl RestStore {
    /// Logs metrics, params and tags in as many `runs/log-batch` requests as the server's
    /// limits require. Keys are checked first, so a bad key cannot leave a half-logged
    /// batch behind.
    pub(super) fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        let params = dedup_params(params)?;
        for batch in plan_batches(metrics, &params, tags) {
            let body = json!({
                "run_id": run_id,
                "metrics": batch.metrics.iter().map(metric_json).collect::<Vec<_>>(),
                "params": pair_list(batch.params),
                "tags": pair_list(batch.tags),
            });
            // Params and tags are the same set twice; metric points would be stored twice.
            let sent = if batch.metrics.is_empty() {
                self.post_json("runs/log-batch", &body)
            } else {
                let lost = self.batch_logged(run_id, batch.metrics);
                self.post_create("runs/log-batch", &body, lost)
            };
            self.or_not_found(sent, || format!("run {run_id}"))?;
        }
        Ok(())
    }
}

/// Drops repeats of an identical param; a key given twice with different values is refused
/// before anything is sent (the server would reject the whole batch).
pub(super) fn dedup_params(params: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::with_capacity(params.len());
    for (key, value) in params {
        match seen.get(key.as_str()) {
            Some(&previous) if previous == value => {}
            Some(&previous) => {
                return Err(Error::InvalidArgument(format!(
                    "param {key:?} given twice with different values ({previous:?} and {value:?}); a param cannot change"
                )));
            }
            None => {
                seen.insert(key, value);
                out.push((key.clone(), value.clone()));
            }
        }
    }
    Ok(out)
}

/// One `runs/log-batch` request's share.
#[derive(Debug, PartialEq)]
pub(super) struct Batch<'a> {
    metrics: &'a [Metric],
    params: &'a [(String, String)],
    tags: &'a [(String, String)],
}

/// Splits entities into requests within the server's limits (≤ 1000 metrics, ≤ 100 params,
/// ≤ 100 tags, ≤ 1000 entities, about 1 MB), in order. Params and tags go first, so a run's
/// configuration reaches the server before its metrics.
pub(super) fn plan_batches<'a>(
    metrics: &'a [Metric],
    params: &'a [(String, String)],
    tags: &'a [(String, String)],
) -> Vec<Batch<'a>> {
    // Upper estimates of each entity's JSON size.
    let pair_size = |(k, v): &(String, String)| k.len() + v.len() + 32;
    let metric_size = |m: &Metric| m.key.len() + 96;
    let mut batches = Vec::new();
    let (mut m, mut p, mut t) = (0, 0, 0);
    while m < metrics.len() || p < params.len() || t < tags.len() {
        let (p0, t0, m0) = (p, t, m);
        let mut bytes = 64;
        let mut count = 0;
        // `count == 0`: an entity too big on its own still goes, alone.
        let fits =
            |bytes: usize, size: usize, count: usize| count == 0 || bytes + size <= MAX_BATCH_BYTES;
        while p < params.len()
            && p - p0 < MAX_BATCH_PARAMS
            && fits(bytes, pair_size(&params[p]), count)
        {
            bytes += pair_size(&params[p]);
            p += 1;
            count += 1;
        }
        while t < tags.len() && t - t0 < MAX_BATCH_TAGS && fits(bytes, pair_size(&tags[t]), count) {
            bytes += pair_size(&tags[t]);
            t += 1;
            count += 1;
        }
        while m < metrics.len()
            && m - m0 < MAX_BATCH_METRICS
            && count < MAX_BATCH_ENTITIES
            && fits(bytes, metric_size(&metrics[m]), count)
        {
            bytes += metric_size(&metrics[m]);
            m += 1;
            count += 1;
        }
        batches.push(Batch {
            metrics: &metrics[m0..m],
            params: &params[p0..p],
            tags: &tags[t0..t],
        });
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(i: usize) -> Metric {
        Metric {
            key: format!("m{}", i % 3),
            value: i as f64,
            timestamp: 1_700_000_000_000 + i as i64,
            step: i as i64,
        }
    }

    fn pairs(n: usize, prefix: &str) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("{prefix}{i}"), format!("v{i}")))
            .collect()
    }

    #[test]
    fn batches_respect_every_server_limit_and_keep_order() {
        let metrics: Vec<Metric> = (0..2500).map(metric).collect();
        let params = pairs(250, "p");
        let tags = pairs(130, "t");
        let batches = plan_batches(&metrics, &params, &tags);
        for b in &batches {
            assert!(b.metrics.len() <= MAX_BATCH_METRICS);
            assert!(b.params.len() <= MAX_BATCH_PARAMS);
            assert!(b.tags.len() <= MAX_BATCH_TAGS);
            assert!(b.metrics.len() + b.params.len() + b.tags.len() <= MAX_BATCH_ENTITIES);
        }
        let sent_metrics: Vec<&Metric> = batches.iter().flat_map(|b| b.metrics).collect();
        assert_eq!(sent_metrics, metrics.iter().collect::<Vec<_>>());
        let sent_params: Vec<_> = batches.iter().flat_map(|b| b.params).collect();
        assert_eq!(sent_params, params.iter().collect::<Vec<_>>());
        let sent_tags: Vec<_> = batches.iter().flat_map(|b| b.tags).collect();
        assert_eq!(sent_tags, tags.iter().collect::<Vec<_>>());
        // 2880 entities need at least 3 requests, and 3 suffice: 100 params + 100 tags +
        // 800 metrics, 100 + 30 + 870, then 50 + 0 + 830.
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].metrics.len(), 800);
    }

    #[test]
    fn large_values_split_batches_by_size() {
        let params: Vec<(String, String)> = (0..100)
            .map(|i| (format!("p{i}"), "x".repeat(6000)))
            .collect();
        let tags: Vec<(String, String)> = (0..100)
            .map(|i| (format!("t{i}"), "y".repeat(8000)))
            .collect();
        let batches = plan_batches(&[], &params, &tags);
        assert!(batches.len() > 1);
        for b in &batches {
            let size: usize = b
                .params
                .iter()
                .chain(b.tags)
                .map(|(k, v)| k.len() + v.len())
                .sum();
            assert!(size <= MAX_BATCH_BYTES, "{size}");
        }
        assert_eq!(batches.iter().map(|b| b.params.len()).sum::<usize>(), 100);
        assert_eq!(batches.iter().map(|b| b.tags.len()).sum::<usize>(), 100);
    }

    #[test]
    fn nothing_to_log_sends_nothing() {
        assert!(plan_batches(&[], &[], &[]).is_empty());
    }

    #[test]
    fn params_are_deduplicated_and_conflicts_refused() {
        let same = vec![("lr".to_string(), "0.1".to_string()); 2];
        assert_eq!(dedup_params(&same).unwrap().len(), 1);
        let conflict = vec![
            ("lr".to_string(), "0.1".to_string()),
            ("lr".to_string(), "0.2".to_string()),
        ];
        let message = dedup_params(&conflict).unwrap_err().to_string();
        assert!(
            message.contains("\"lr\"") && message.contains("cannot change"),
            "{message}"
        );
    }
}
