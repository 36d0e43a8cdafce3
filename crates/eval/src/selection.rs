//! Validation metrics over a set of cases and the score models are selected by: the numbers the
//! trainer logs, `nodal validate` prints and tuning compares.
use crate::ScanResult;
use nodal_core::vocab::LARGE_NODE_SHORT_AXIS_MM;
use serde::{Deserialize, Serialize};

/// The operating targets a model is selected for: at most `max_fp_per_scan` false positives per
/// scan with a Dice of at least `min_dice`, and then as much recall as possible.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectionTargets {
    /// False-positive budget per scan.
    pub max_fp_per_scan: f64,
    /// Lowest acceptable mean per-scan Dice.
    pub min_dice: f64,
}

impl Default for SelectionTargets {
    /// 3 FP/scan and Dice 0.80: half the study's 6.5 FP/scan, above its 0.73 Dice.
    fn default() -> Self {
        SelectionTargets { max_fp_per_scan: 3.0, min_dice: 0.8 }
    }
}

/// Validation metrics over the validation cases (evaluation protocol on the model's mask:
/// probability >= threshold, components below the peak cut-off or rejected by the model's
/// component filter removed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValMetrics {
    /// Cases evaluated.
    pub n_cases: usize,
    /// GT nodes.
    pub n_gt: usize,
    /// Localized / GT nodes.
    pub recall: f64,
    /// The recall a prediction identical to the ground truth reaches (GT nodes the protocol's size
    /// filter leaves countable / GT nodes); `None` without GT nodes.
    #[serde(default)]
    pub recall_ceiling: Option<f64>,
    /// Recall of the GT nodes a perfect segmentation localizes (the countable ones); `None`
    /// without such nodes.
    #[serde(default)]
    pub recall_countable: Option<f64>,
    /// False-positive components per scan.
    pub fp_per_scan: f64,
    /// Mean per-scan Dice (scans where it is defined).
    pub dice: Option<f64>,
    /// Recall of GT nodes with SAD >= 15 mm; `None` without such nodes.
    pub recall_sad_ge_15mm: Option<f64>,
    /// Recall of GT nodes with SAD >= 5 mm; `None` without such nodes.
    pub recall_sad_ge_5mm: Option<f64>,
    /// [`selection_score`] for the targets it was computed with.
    pub score: f64,
}

/// Counts summed over cases, turned into [`ValMetrics`] at the end.
#[derive(Clone, Default)]
pub struct ValTally {
    n_gt: usize,
    localized: usize,
    fp: usize,
    dices: Vec<f64>,
    /// (GT nodes, localized) with SAD >= 15 mm, with SAD >= 5 mm, and countable.
    ge15: (usize, usize),
    ge5: (usize, usize),
    countable: (usize, usize),
}

impl ValTally {
    pub fn add(&mut self, r: &ScanResult) {
        self.n_gt += r.n_gt_nodes;
        self.localized += r.n_gt_localized;
        self.fp += r.n_fp;
        self.dices.extend(r.dice);
        for n in &r.nodes {
            for (counts, t) in [
                (n.sad_mm >= LARGE_NODE_SHORT_AXIS_MM, &mut self.ge15),
                (n.sad_mm >= 5.0, &mut self.ge5),
                (n.countable, &mut self.countable),
            ] {
                if counts {
                    t.0 += 1;
                    t.1 += usize::from(n.localized);
                }
            }
        }
    }

    pub fn metrics(&self, n_cases: usize, targets: &SelectionTargets) -> ValMetrics {
        let ratio = |(n, l): (usize, usize)| (n > 0).then(|| l as f64 / n as f64);
        let recall = ratio((self.n_gt, self.localized)).unwrap_or(0.0);
        let fp_per_scan = self.fp as f64 / n_cases.max(1) as f64;
        let dice = (!self.dices.is_empty()).then(|| self.dices.iter().sum::<f64>() / self.dices.len() as f64);
        ValMetrics {
            n_cases,
            n_gt: self.n_gt,
            recall,
            recall_ceiling: ratio((self.n_gt, self.countable.0)),
            recall_countable: ratio(self.countable),
            fp_per_scan,
            dice,
            recall_sad_ge_15mm: ratio(self.ge15),
            recall_sad_ge_5mm: ratio(self.ge5),
            score: selection_score(recall, dice.unwrap_or(0.0), fp_per_scan, targets),
        }
    }
}

/// Selection score of a validation result: `1 + recall` when it meets the targets (false
/// positives within the budget, Dice at least the minimum); otherwise, always below 1, the
/// harmonic mean of recall and Dice minus 0.05 per false positive per scan beyond the budget.
/// (A sum of recall and Dice would reward one component covering the whole body: recall 1, no
/// false positive.)
pub fn selection_score(recall: f64, dice: f64, fp_per_scan: f64, targets: &SelectionTargets) -> f64 {
    if fp_per_scan <= targets.max_fp_per_scan && dice >= targets.min_dice {
        return 1.0 + recall;
    }
    let h = if recall + dice > 0.0 { 2.0 * recall * dice / (recall + dice) } else { 0.0 };
    h.min(1.0 - 1e-9) - 0.05 * (fp_per_scan - targets.max_fp_per_scan).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodal_core::{Geometry, Volume};

    #[test]
    fn selection_score_does_not_reward_a_whole_body_blob() {
        // One component over the whole body: every node localized, no FP, Dice near 0.
        let t = SelectionTargets::default();
        let blob = selection_score(1.0, 0.002, 0.0, &t);
        let model = selection_score(0.68, 0.82, 7.0, &t);
        assert!(blob < 0.01 && model > 0.5, "{blob} {model}");
        assert!((selection_score(0.5, 0.5, 5.0, &t) - 0.4).abs() < 1e-12);
        assert_eq!(selection_score(0.0, 0.0, 0.0, &t), 0.0);
        // Meeting the targets (<= 3 FP/scan, Dice >= 0.8) beats any result that misses them, and
        // among those more recall wins.
        let meets = selection_score(0.5, 0.8, 3.0, &t);
        assert!((meets - 1.5).abs() < 1e-12);
        assert!(meets > selection_score(0.99, 0.99, 3.1, &t));
        assert!(meets > selection_score(0.99, 0.79, 0.0, &t));
        assert!(selection_score(0.6, 0.9, 1.0, &t) > meets);
    }

    /// Two scans at 1 mm: a 6x6x4 node found and a lone 3x3x3 node (SAD 4.24 mm, below the size
    /// filter) missed, then the same with the small node found by a larger component.
    #[test]
    fn tally_counts_recall_against_the_countable_nodes() {
        let g = Geometry::axis_aligned([1.0; 3], [0.0; 3]);
        let mut gt = Volume::<u16>::zeros([30, 20, 8], g);
        let mut pred = Volume::<u8>::zeros([30, 20, 8], g);
        for k in 1..5 {
            for j in 2..8 {
                for i in 2..8 {
                    gt.data_mut()[[k, j, i]] = 1;
                    pred.data_mut()[[k, j, i]] = 1;
                }
            }
        }
        for k in 1..4 {
            for j in 2..5 {
                for i in 20..23 {
                    gt.data_mut()[[k, j, i]] = 2;
                }
            }
        }
        let mut tally = ValTally::default();
        tally.add(&crate::evaluate_scan(crate::Prediction::Mask(&pred), &gt, None).unwrap());
        for k in 1..5 {
            for j in 1..7 {
                for i in 19..25 {
                    pred.data_mut()[[k, j, i]] = 1;
                }
            }
        }
        tally.add(&crate::evaluate_scan(crate::Prediction::Mask(&pred), &gt, None).unwrap());
        let m = tally.metrics(2, &SelectionTargets::default());
        assert_eq!((m.n_gt, m.recall), (4, 0.75));
        assert_eq!(m.recall_ceiling, Some(0.5), "the lone small node is countable in neither scan");
        assert_eq!(m.recall_countable, Some(1.0));
    }
}
