//! Choosing the seats: the best block of adjacent seats, or else the closest scattered
//! ones (the order of "best" is in the module doc of `best_available`).

use std::cmp::Reverse;

use super::SeatLayout;

/// The seats chosen by [`SeatLayout::pick`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    /// The chosen seat ids, in layout order.
    pub seat_ids: Vec<i64>,
    /// True when the seats are adjacent in one row.
    pub together: bool,
    /// Their grade (a pick is always of one), as the builder's grade index: the price and
    /// name to snapshot on the reservation.
    pub grade: usize,
    /// Where those seats are in the layout's arrays, for `take`.
    pub(super) slots: Vec<u32>,
}

/// Orders together choices: smaller is better (see the module doc).
/// (leaves an orphan, dearer grade first, row, distance from the row's centre, number)
pub(super) type BlockKey = (bool, Reverse<i64>, u32, i64, i32);

/// Orders scattered choices: (sections spanned, rows spanned, dearer grade, first row).
type WindowKey = (u32, u32, Reverse<i64>, u32);

impl SeatLayout {
    /// The best `count` free seats of `grade` (of any one grade when `None`), or `None` when
    /// not that many are free. Pure: call [`Self::take`] to claim them.
    pub fn pick(&self, count: usize, grade: Option<usize>) -> Option<Pick> {
        let one;
        let grades: &[usize] = match grade {
            Some(g) if g < self.prices.len() => {
                one = [g];
                &one
            }
            Some(_) => return None,
            None => &self.by_price,
        };
        let count = u32::try_from(count).ok().filter(|c| *c > 0)?;
        match self.best_block(count, grades) {
            Some((lane, at)) => {
                let lane = &self.lanes[lane as usize];
                let start = lane.start + at;
                Some(self.pick_of((start..start + count).collect(), true, lane.grade))
            }
            None => self.closest(count, grades),
        }
    }

    fn pick_of(&self, slots: Vec<u32>, together: bool, grade: usize) -> Pick {
        Pick {
            seat_ids: slots.iter().map(|s| self.ids[*s as usize]).collect(),
            together,
            grade,
            slots,
        }
    }

    /// The best block of `count` adjacent free seats: (lane, offset of its first seat).
    ///
    /// Two passes, so that neither scans the whole map: the first looks only at lanes
    /// whose index says they hold an orphan-free block; only if there is none anywhere does
    /// the second take blocks that leave an orphan. Each stops at the first row that has
    /// what it looks for.
    fn best_block(&self, count: u32, grades: &[usize]) -> Option<(u32, u32)> {
        self.best_block_pass(count, grades, false)
            .or_else(|| self.best_block_pass(count, grades, true))
    }

    fn best_block_pass(&self, count: u32, grades: &[usize], orphans: bool) -> Option<(u32, u32)> {
        let mut best: Option<(BlockKey, u32, u32)> = None;
        let bit = count.checked_sub(1).and_then(|b| 1u32.checked_shl(b));
        for &g in grades {
            if self.grade_free[g] < count {
                continue;
            }
            let price = Reverse(self.prices[g]);
            for &li in &self.grade_lanes[g] {
                let lane = &self.lanes[li as usize];
                // Lanes come front to back, and every block of this pass has the same
                // orphan flag: once a lane's row loses, every later lane of this grade does.
                if let Some(((_, p, row, ..), ..)) = best
                    && (price, lane.row) > (p, row)
                {
                    break;
                }
                let may_be_clean = bit.is_none_or(|b| lane.clean & b != 0);
                if lane.longest < count || !(orphans || may_be_clean) {
                    continue;
                }
                self.scan_lane(li, count, price, orphans, &mut best);
            }
        }
        best.map(|(_, lane, at)| (lane, at))
    }

    /// Offers the blocks of `lane` to `best`, those leaving an orphan only if `orphans`.
    fn scan_lane(
        &self,
        li: u32,
        count: u32,
        price: Reverse<i64>,
        orphans: bool,
        best: &mut Option<(BlockKey, u32, u32)>,
    ) {
        let lane = &self.lanes[li as usize];
        let seats = &self.free[lane.start as usize..(lane.start + lane.len) as usize];
        // The offset where a block would sit exactly in the row's middle (rounded down).
        let ideal = (lane.centre2 - i64::from(count) + 1 - 2 * i64::from(lane.first_number)).div_euclid(2);
        let mut i = 0;
        while i < seats.len() {
            if !seats[i] {
                i += 1;
                continue;
            }
            let s = i;
            while i < seats.len() && seats[i] {
                i += 1;
            }
            let (s, e) = (s as i64, i as i64);
            let last = e - i64::from(count);
            if last < s {
                continue;
            }
            // Distance from the middle falls then rises along the run, and at most two
            // starts (one seat in from either end) leave an orphan: the best orphan-free and
            // the best overall start lie within two of the ideal, or at an end of the run.
            for at in [
                s,
                last,
                ideal - 2,
                ideal - 1,
                ideal,
                ideal + 1,
                ideal + 2,
                ideal + 3,
            ] {
                let at = at.clamp(s, last);
                let orphan = at - s == 1 || e - (at + i64::from(count)) == 1;
                if orphan && !orphans {
                    continue;
                }
                let number = lane.first_number + at as i32;
                let dist = (2 * i64::from(number) + i64::from(count) - 1 - lane.centre2).abs();
                let key = (orphan, price, lane.row, dist, number);
                if best.as_ref().is_none_or(|(k, ..)| key < *k) {
                    *best = Some((key, li, at as u32));
                }
            }
        }
    }

    /// The scattered fallback: see the module doc for "closest".
    fn closest(&self, count: u32, grades: &[usize]) -> Option<Pick> {
        let mut best: Option<(WindowKey, usize, usize, usize)> = None;
        for &g in grades {
            if self.grade_free[g] < count {
                continue;
            }
            let lanes = &self.grade_lanes[g];
            // Two pointers: for each first lane, the fewest following lanes with enough seats.
            let (mut end, mut sum) = (0, 0);
            for first in 0..lanes.len() {
                while sum < count && end < lanes.len() {
                    sum += self.lanes[lanes[end] as usize].free;
                    end += 1;
                }
                if sum < count {
                    break;
                }
                let (a, b) = (
                    &self.lanes[lanes[first] as usize],
                    &self.lanes[lanes[end - 1] as usize],
                );
                let key = (
                    b.section - a.section + 1,
                    b.row - a.row + 1,
                    Reverse(self.prices[g]),
                    a.row,
                );
                if best.as_ref().is_none_or(|(k, ..)| key < *k) {
                    best = Some((key, g, first, end));
                }
                sum -= self.lanes[lanes[first] as usize].free;
            }
        }
        let (_, g, first, end) = best?;

        // Free runs of the window: (longest first, front row, nearest the centre, lane, start, end).
        let mut runs: Vec<(Reverse<u32>, u32, i64, u32, u32, u32)> = Vec::new();
        for &li in &self.grade_lanes[g][first..end] {
            let lane = &self.lanes[li as usize];
            let seats = &self.free[lane.start as usize..(lane.start + lane.len) as usize];
            let mut i = 0;
            while i < seats.len() {
                let s = i;
                while i < seats.len() && seats[i] {
                    i += 1;
                }
                if i > s {
                    let (s, e) = (s as u32, i as u32);
                    let mid2 = 2 * i64::from(lane.first_number) + i64::from(s + e - 1);
                    runs.push((Reverse(e - s), lane.row, (mid2 - lane.centre2).abs(), li, s, e));
                }
                i += 1;
            }
        }
        runs.sort_unstable();

        let mut slots = Vec::with_capacity(count as usize);
        let mut rest = count;
        let mut cut = None;
        for &(Reverse(len), _, _, li, s, e) in &runs {
            if len <= rest {
                let start = self.lanes[li as usize].start;
                slots.extend(start + s..start + e);
                rest -= len;
            } else if cut.is_none() {
                // The longest run too long to take whole: the one to cut if seats are still
                // missing at the end. Longest, so it leaves an orphan only if all would.
                cut = Some((li, s, e));
            }
        }
        if rest > 0 {
            let (li, s, e) = cut?;
            let lane = &self.lanes[li as usize];
            let dist = |from: u32| {
                let mid2 = 2 * i64::from(lane.first_number) + i64::from(2 * from + rest - 1);
                (mid2 - lane.centre2).abs()
            };
            let from = if dist(e - rest) < dist(s) { e - rest } else { s };
            slots.extend(lane.start + from..lane.start + from + rest);
        }
        slots.sort_unstable();
        Some(self.pick_of(slots, false, g))
    }
}
