//! What both front ends report about call set-up.

use crate::analysis::percentile;

/// Set-up times and failures, as a front end saw them.
#[derive(Debug, Clone, Default)]
pub struct SetupTimes {
    /// Milliseconds from the request to the answer, one per member set up.
    pub ms: Vec<f64>,
    /// Members that could not join.
    pub failed: usize,
    /// Calls the server ended during the run.
    pub dropped: usize,
    /// Calls still up when the front end gave up hanging up.
    pub still_up_at_end: usize,
    /// Video terminals whose call was answered without video.
    pub video_refused: usize,
}

impl SetupTimes {
    /// (p50, p99, max) in ms.
    pub fn summary(&self) -> Option<(f64, f64, f64)> {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        Some((percentile(&v, 50.0)?, percentile(&v, 99.0)?, *v.last()?))
    }
}
