//! Many / Medium / Few shot groups from the *training* class counts (classifier-balancing
//! `shot_acc`, LOS `validate.py`): many = n > `many_above`, few = n < `few_below`, medium =
//! everything in between, inclusive. Defaults 100 and 20.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShotThresholds {
    /// A class is "many" when its train count is strictly above this (default 100).
    pub many_above: usize,
    /// A class is "few" when its train count is strictly below this (default 20).
    pub few_below: usize,
}

impl Default for ShotThresholds {
    fn default() -> Self {
        Self {
            many_above: 100,
            few_below: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShotGroup {
    Many,
    Medium,
    Few,
}

impl ShotGroup {
    pub const ALL: [ShotGroup; 3] = [ShotGroup::Many, ShotGroup::Medium, ShotGroup::Few];
    pub fn name(self) -> &'static str {
        match self {
            ShotGroup::Many => "many",
            ShotGroup::Medium => "medium",
            ShotGroup::Few => "few",
        }
    }
}

impl ShotThresholds {
    pub fn group(&self, train_count: usize) -> ShotGroup {
        if train_count > self.many_above {
            ShotGroup::Many
        } else if train_count < self.few_below {
            ShotGroup::Few
        } else {
            ShotGroup::Medium
        }
    }

    /// The group of each class.
    pub fn groups(&self, train_counts: &[usize]) -> Vec<ShotGroup> {
        train_counts.iter().map(|&n| self.group(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::exponential_counts;

    #[test]
    fn cifar100_lt_ir100_has_35_35_30() {
        let g = ShotThresholds::default().groups(&exponential_counts(500.0, 100, 100.0));
        let count = |x| g.iter().filter(|&&y| y == x).count();
        assert_eq!(
            (
                count(ShotGroup::Many),
                count(ShotGroup::Medium),
                count(ShotGroup::Few)
            ),
            (35, 35, 30)
        );
    }

    #[test]
    fn boundaries_are_inclusive_for_medium() {
        let t = ShotThresholds::default();
        assert_eq!(t.group(101), ShotGroup::Many);
        assert_eq!(t.group(100), ShotGroup::Medium);
        assert_eq!(t.group(20), ShotGroup::Medium);
        assert_eq!(t.group(19), ShotGroup::Few);
    }
}
