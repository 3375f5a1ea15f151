//! Best-available seats: choosing `count` seats of one schedule for a fan who asked for
//! "two seats, grade R" instead of picking them, as a pure function over the seat layout.
//!
//! Nothing here touches the database. A [`SeatLayout`] is the whole layout of one schedule
//! (sections in order, rows in order, seats in number order) with one free/taken flag per
//! seat and a small index per *lane* (the seats of one grade that sit side by side in one
//! row): its free-seat count, its longest run of free seats, and which counts fit in one
//! of its runs without leaving an orphan. [`SeatLayout::pick`] reads it;
//! [`SeatLayout::take`] marks a pick's seats taken and refreshes only the lanes it touched,
//! so many pickers run one after another against one in-memory layout.
//!
//! # What "best" means
//! A pick is always of **one grade** (one price per seat on the reservation). In order:
//! 1. *together*: `count` adjacent seats of one lane (same row, consecutive numbers, one
//!    grade) beat any scattered choice;
//! 2. *no orphan*: among together choices, one that leaves no free seat newly alone (a
//!    free seat whose neighbours in its lane are taken or the lane's ends) beats one that
//!    does, whatever its price or row: fans asked for together seats, and a lone seat is
//!    the one nobody else can buy together;
//! 3. *grade price*: the dearer grade first when no grade is asked for;
//! 4. *nearest the front*: first section, then first row, in layout order;
//! 5. *centre*: the block whose middle is nearest the middle of its physical row;
//! 6. the lowest seat number, so the answer is deterministic.
//!
//! When no lane has `count` free seats side by side the pick is *closest* instead
//! (`together = false`): the fewest sections spanned, then the fewest rows spanned (rows
//! counted in layout order, gaps included), then the dearer grade, then the front-most
//! window; inside that window whole free runs are taken longest first (front row, then
//! centre, on ties) and the last run is cut from its end nearest the row's centre. Taking
//! whole runs never leaves an orphan; only that last cut can, when every run long enough
//! for the remainder is exactly one seat longer.
//!
//! `pick` answers `None` when the asked grade (or, with no grade, every single grade) has
//! fewer than `count` free seats, and for a `count` of 0 or an unknown grade. The caller
//! turns `None` into SOLD_OUT when the schedule has nothing left, SEAT_UNAVAILABLE otherwise.
//!
//! # How the booking batch uses it
//! Under the schedule's booking-count lock the batch loads every seat of the schedule in
//! layout order (seat ids are generated in layout order, so `ORDER BY s.id`, as
//! `store::seat_maps` does) with its grade's position and its status, and feeds them to a
//! [`LayoutBuilder`] once. It then decides its requests in order against that one layout:
//! an explicit seat request that succeeds calls [`SeatLayout::take_ids`]; a best-available
//! request calls [`SeatLayout::pick`], checks the per-user limit and the rest on the seats
//! it got, and only when it claims them calls [`SeatLayout::take`]. Later requests of the
//! batch therefore never see those seats again, and nothing collides across instances
//! because the lock serializes batches.
//!
//! Cost: building is one pass over the seats. A pick reads the index of each lane of the
//! eligible grades front to back, scans the seats of a lane only when its index says it
//! holds what is looked for (first an orphan-free block, then any block), and stops at the
//! first row that does; the scattered fallback is one more pass over the lane index. On a
//! 50,000-seat map, built optimised, building takes about 0.5 ms and 128 pickers 0.04 to
//! 0.3 ms, the worst case (no orphan-free block anywhere) included: see the ignored test
//! `speed_of_128_pickers_on_50000_seats`.

use std::cmp::Reverse;

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
    slots: Vec<u32>,
}

/// The seats of one grade that sit side by side in one row: the unit of adjacency. A row
/// whose grade changes, or whose numbers skip (an aisle, a missing seat), has several.
#[derive(Clone, Debug)]
struct Lane {
    /// Index of its first seat in `SeatLayout::{ids, free}`; its seats follow in order.
    start: u32,
    len: u32,
    first_number: i32,
    grade: usize,
    section: u32,
    /// The row's ordinal in the whole layout: smaller is nearer the front.
    row: u32,
    /// Lowest plus highest seat number of the whole row: twice its centre, kept whole.
    centre2: i64,
    /// Index, refreshed whenever a seat is taken: free seats, the longest run of them, and
    /// bit `c - 1` set when some run holds a block of `c` seats that leaves no orphan.
    free: u32,
    longest: u32,
    clean: u32,
}

/// One schedule's seats with their free flags, indexed for picking. See the module doc.
#[derive(Clone, Debug)]
pub struct SeatLayout {
    /// Price per grade, by the grade index the builder was given.
    prices: Vec<i64>,
    /// Grade indices, dearest first (declaration order on ties): the order of a pick
    /// without a grade.
    by_price: Vec<usize>,
    /// Per grade: its lanes in layout order, and its free seats.
    grade_lanes: Vec<Vec<u32>>,
    grade_free: Vec<u32>,
    lanes: Vec<Lane>,
    ids: Vec<i64>,
    free: Vec<bool>,
    /// Seat indices sorted by id, only when ids do not ascend in layout order already
    /// (they do for generated layouts, and then `take_ids` binary-searches `ids`).
    by_id: Option<Vec<u32>>,
}

/// Builds a [`SeatLayout`] from seats given in layout order.
#[derive(Debug)]
pub struct LayoutBuilder {
    layout: SeatLayout,
    section: String,
    row: String,
    sections: u32,
    rows: u32,
    /// The current row's first lane and number range, to set `centre2` when it ends.
    row_first_lane: usize,
    row_min: i32,
    row_max: i32,
}

impl LayoutBuilder {
    /// `prices[g]` is the price of grade `g`; seats name their grade by that index (for
    /// this schema, `seat_grades.position - 1`).
    pub fn new(prices: Vec<i64>) -> Self {
        let grades = prices.len();
        Self {
            layout: SeatLayout {
                prices,
                by_price: Vec::new(),
                grade_lanes: vec![Vec::new(); grades],
                grade_free: vec![0; grades],
                lanes: Vec::new(),
                ids: Vec::new(),
                free: Vec::new(),
                by_id: None,
            },
            section: String::new(),
            row: String::new(),
            sections: 0,
            rows: 0,
            row_first_lane: 0,
            row_min: 0,
            row_max: 0,
        }
    }

    /// Room for `seats` seats, to build without reallocating.
    pub fn with_capacity(prices: Vec<i64>, seats: usize) -> Self {
        let mut b = Self::new(prices);
        b.layout.ids.reserve(seats);
        b.layout.free.reserve(seats);
        b
    }

    /// Adds the next seat in layout order. A change of `section` or `row` label starts a
    /// new row; a seat of an unknown grade is kept in its row but never picked.
    pub fn seat(&mut self, section: &str, row: &str, number: i32, id: i64, grade: usize, free: bool) {
        let l = &mut self.layout;
        let first = l.ids.is_empty();
        let new_section = first || section != self.section;
        if new_section || row != self.row {
            self.close_row();
            if new_section {
                self.sections += u32::from(!first);
                self.section.clear();
                self.section.push_str(section);
            }
            self.rows += u32::from(!first);
            self.row.clear();
            self.row.push_str(row);
            self.row_first_lane = self.layout.lanes.len();
            self.row_min = number;
            self.row_max = number;
        }
        let l = &mut self.layout;
        let slot = l.ids.len() as u32;
        let extends = l.lanes.len() > self.row_first_lane
            && l.lanes.last().is_some_and(|lane| {
                lane.grade == grade && i64::from(lane.first_number) + i64::from(lane.len) == i64::from(number)
            });
        match l.lanes.last_mut() {
            Some(lane) if extends => lane.len += 1,
            _ => l.lanes.push(Lane {
                start: slot,
                len: 1,
                first_number: number,
                grade,
                section: self.sections,
                row: self.rows,
                centre2: 0,
                free: 0,
                longest: 0,
                clean: 0,
            }),
        }
        l.ids.push(id);
        l.free.push(free && grade < l.prices.len());
        self.row_min = self.row_min.min(number);
        self.row_max = self.row_max.max(number);
    }

    fn close_row(&mut self) {
        let centre2 = i64::from(self.row_min) + i64::from(self.row_max);
        for lane in &mut self.layout.lanes[self.row_first_lane..] {
            lane.centre2 = centre2;
        }
    }

    pub fn finish(mut self) -> SeatLayout {
        self.close_row();
        let mut l = self.layout;
        for i in 0..l.lanes.len() {
            l.refresh(i);
            let lane = &l.lanes[i];
            if let Some(lanes) = l.grade_lanes.get_mut(lane.grade) {
                lanes.push(i as u32);
                l.grade_free[lane.grade] += lane.free;
            }
        }
        l.by_price = (0..l.prices.len()).collect();
        l.by_price.sort_by_key(|g| Reverse(l.prices[*g]));
        if !l.ids.is_sorted_by(|a, b| a < b) {
            let mut by_id: Vec<u32> = (0..l.ids.len() as u32).collect();
            by_id.sort_unstable_by_key(|s| l.ids[*s as usize]);
            l.by_id = Some(by_id);
        }
        l
    }
}

/// The counts `c` (bit `c - 1`, up to 32) for which a free run of `run` seats holds a block
/// leaving no orphan: the whole run, or up to `run - 2` seats taken from one end.
fn clean_counts(run: u32) -> u32 {
    let upto = run.saturating_sub(2).min(32);
    let below = u32::MAX.checked_shr(32 - upto).unwrap_or(0);
    let exact = run.checked_sub(1).and_then(|b| 1u32.checked_shl(b)).unwrap_or(0);
    below | exact
}

/// Orders together choices: smaller is better (see the module doc).
/// (leaves an orphan, dearer grade first, row, distance from the row's centre, number)
type BlockKey = (bool, Reverse<i64>, u32, i64, i32);

/// Orders scattered choices: (sections spanned, rows spanned, dearer grade, first row).
type WindowKey = (u32, u32, Reverse<i64>, u32);

impl SeatLayout {
    /// How many seats are free, of one grade or of all.
    pub fn free_seats(&self, grade: Option<usize>) -> u32 {
        match grade {
            Some(g) => self.grade_free.get(g).copied().unwrap_or(0),
            None => self.grade_free.iter().sum(),
        }
    }

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

    /// Marks a pick's seats taken. Returns false, changing nothing, if any of them is not
    /// free any more (the pick was already taken, or comes from another layout).
    #[must_use]
    pub fn take(&mut self, pick: &Pick) -> bool {
        let fits = pick.slots.iter().zip(&pick.seat_ids).all(|(s, id)| {
            let s = *s as usize;
            self.ids.get(s) == Some(id) && self.free[s]
        });
        if fits {
            self.take_slots(pick.slots.iter().copied());
        }
        fits
    }

    /// Marks the seats with these ids taken, e.g. those an explicit seat request of the
    /// same batch claimed. Unknown or already taken ids are skipped.
    pub fn take_ids(&mut self, ids: &[i64]) {
        let mut slots: Vec<u32> = ids.iter().filter_map(|id| self.slot_of(*id)).collect();
        slots.sort_unstable();
        slots.dedup();
        self.take_slots(slots.into_iter());
    }

    fn slot_of(&self, id: i64) -> Option<u32> {
        match &self.by_id {
            None => self.ids.binary_search(&id).ok().map(|s| s as u32),
            Some(by_id) => {
                let i = by_id.binary_search_by_key(&id, |s| self.ids[*s as usize]).ok()?;
                Some(by_id[i])
            }
        }
    }

    /// `slots` ascending: each touched lane is refreshed once.
    fn take_slots(&mut self, slots: impl Iterator<Item = u32>) {
        let mut last_lane = None;
        for slot in slots {
            let s = slot as usize;
            if !self.free[s] {
                continue;
            }
            self.free[s] = false;
            let lane = self.lanes.partition_point(|l| l.start <= slot) - 1;
            self.grade_free[self.lanes[lane].grade] -= 1;
            if let Some(prev) = last_lane
                && prev != lane
            {
                self.refresh(prev);
            }
            last_lane = Some(lane);
        }
        if let Some(lane) = last_lane {
            self.refresh(lane);
        }
    }

    fn refresh(&mut self, lane: usize) {
        let l = &self.lanes[lane];
        let seats = &self.free[l.start as usize..(l.start + l.len) as usize];
        let (mut free, mut longest, mut clean, mut run) = (0, 0, 0, 0);
        for f in seats.iter().chain([&false]) {
            if *f {
                run += 1;
            } else if run > 0 {
                clean |= clean_counts(run);
                run = 0;
            }
            free += u32::from(*f);
            longest = longest.max(run);
        }
        let l = &mut self.lanes[lane];
        l.free = free;
        l.longest = longest;
        l.clean = clean;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    const VIP: usize = 0;
    const R: usize = 1;
    const S: usize = 2;

    /// A layout from readable rows `(section, row, grade, pattern)`: `.` a free seat, `x` a
    /// taken one, `_` a number with no seat. Seat `n` of the `i`-th row (from 1) has id
    /// `i * 100 + n`, so `[304, 305]` reads "third row, seats 4 and 5".
    fn layout(rows: &[(&str, &str, usize, &str)]) -> SeatLayout {
        let mut b = LayoutBuilder::new(vec![300, 200, 100]);
        for (i, (section, row, grade, pattern)) in rows.iter().enumerate() {
            for (n, c) in (1..).zip(pattern.chars()) {
                if c != '_' {
                    b.seat(
                        section,
                        row,
                        n,
                        (i as i64 + 1) * 100 + i64::from(n),
                        *grade,
                        c == '.',
                    );
                }
            }
        }
        b.finish()
    }

    fn ids(pick: Option<Pick>) -> (Vec<i64>, bool) {
        pick.map_or((vec![], false), |p| (p.seat_ids, p.together))
    }

    #[test]
    fn an_empty_row_gives_its_centre() {
        let l = layout(&[("Floor", "A", R, "..........")]);
        assert_eq!(ids(l.pick(2, None)), (vec![105, 106], true));
        // Odd count in an even row: two blocks are equally central, the lower one wins.
        assert_eq!(ids(l.pick(3, None)), (vec![104, 105, 106], true));
        assert_eq!(ids(l.pick(10, None)).0.len(), 10);
    }

    #[test]
    fn a_row_with_gaps_uses_the_only_run_long_enough() {
        let l = layout(&[("Floor", "A", R, "..x....x..")]);
        // 4-6 and 5-7 each leave a seat alone; both are as central, so the lower.
        assert_eq!(ids(l.pick(3, None)), (vec![104, 105, 106], true));
        // Seats missing from the numbering break adjacency like taken ones.
        let l = layout(&[("Floor", "A", R, "..__......")]);
        assert_eq!(ids(l.pick(3, None)), (vec![105, 106, 107], true));
        let l = layout(&[("Floor", "A", R, ".._.._..")]);
        assert_eq!(ids(l.pick(3, None)), (vec![102, 104, 105], false));
    }

    #[test]
    fn the_nearest_orphan_free_block_to_the_centre() {
        // The centre-most pair, 6-7, leaves 8 alone; 5-6 and 7-8 are as near, 5-6 lower.
        let l = layout(&[("Floor", "A", R, "........xxxx")]);
        assert_eq!(ids(l.pick(2, None)), (vec![105, 106], true));
    }

    #[test]
    fn clean_counts_are_those_leaving_nobody_alone() {
        assert_eq!(clean_counts(1), 0b1);
        assert_eq!(clean_counts(2), 0b10, "one of two leaves one alone");
        assert_eq!(clean_counts(3), 0b101);
        assert_eq!(clean_counts(5), 0b10111);
        assert_eq!(clean_counts(33), u32::MAX >> 1, "32 of 33 leaves one alone");
        assert_eq!(clean_counts(40), u32::MAX);
    }

    #[test]
    fn an_exact_fit_is_taken_whole() {
        let l = layout(&[("Floor", "A", R, "xxx...xxxx")]);
        assert_eq!(ids(l.pick(3, None)), (vec![104, 105, 106], true));
    }

    #[test]
    fn no_orphan_at_a_row_end_when_a_clean_block_exists_further_back() {
        let rows = [("Floor", "A", R, "...xxxxxxx"), ("Floor", "B", R, "xxxx..xxxx")];
        // Row A: 1-2 leaves seat 3 alone, 2-3 leaves seat 1 alone at the row's end.
        assert_eq!(ids(layout(&rows[..1]).pick(2, None)), (vec![102, 103], true));
        // Row B's exact fit leaves nobody alone: it wins although it is further back.
        assert_eq!(ids(layout(&rows).pick(2, None)), (vec![205, 206], true));
    }

    #[test]
    fn no_orphan_in_the_middle_even_at_the_cost_of_the_centre() {
        let l = layout(&[("Floor", "A", R, "xx......xx")]);
        // 4-7 is dead centre but leaves 3 and 8 alone; 3-6 and 5-8 are as close; lower wins.
        assert_eq!(ids(l.pick(4, None)), (vec![103, 104, 105, 106], true));
    }

    #[test]
    fn a_grade_is_respected_and_the_dearest_comes_first() {
        let rows = [
            ("Floor", "A", VIP, "......"),
            ("Floor", "B", R, "......"),
            ("Stand", "A", S, "......"),
        ];
        let l = layout(&rows);
        assert_eq!(ids(l.pick(2, None)), (vec![103, 104], true));
        assert_eq!(ids(l.pick(2, Some(R))), (vec![203, 204], true));
        assert_eq!(
            ids(l.pick(6, Some(S))),
            (vec![301, 302, 303, 304, 305, 306], true)
        );
        assert_eq!(
            ids(l.pick(7, Some(S))),
            (vec![], false),
            "only 6 seats of grade S"
        );
        assert!(l.pick(1, Some(3)).is_none(), "no grade 3");
        assert!(l.pick(0, None).is_none());
        // The dearest grade only leaves an orphan: a clean block of the next grade wins.
        let l = layout(&[("Floor", "A", VIP, "x...xx"), ("Floor", "B", R, "......")]);
        assert_eq!(ids(l.pick(2, None)), (vec![203, 204], true));
    }

    #[test]
    fn a_grade_changing_inside_a_row_splits_it() {
        let mut b = LayoutBuilder::new(vec![300, 200]);
        for n in 1..=9 {
            let grade = if (4..=6).contains(&n) { VIP } else { R };
            b.seat("Floor", "A", n, i64::from(n), grade, true);
        }
        let l = b.finish();
        assert_eq!(ids(l.pick(3, None)), (vec![4, 5, 6], true));
        // Only 3 VIP seats, and R's six are never four side by side.
        assert_eq!(ids(l.pick(4, None)), (vec![1, 2, 3, 7], false));
        assert_eq!(ids(l.pick(4, Some(R))), (vec![1, 2, 3, 7], false));
        assert_eq!(ids(l.pick(3, Some(R))), (vec![1, 2, 3], true));
    }

    #[test]
    fn the_front_section_and_row_come_first() {
        let l = layout(&[
            ("Lower", "A", R, "xxxxxx"),
            ("Lower", "B", R, "xx..xx"),
            ("Upper", "A", R, "......"),
        ]);
        assert_eq!(ids(l.pick(2, None)), (vec![203, 204], true));
        // 2-4 would be more central but leave seat 1 alone.
        assert_eq!(ids(l.pick(3, None)), (vec![301, 302, 303], true));
    }

    #[test]
    fn without_a_block_the_closest_seats_of_one_row_then_of_few_rows() {
        // Row A has five free seats but never three side by side.
        let l = layout(&[("Floor", "A", R, "x.x.x.x..x"), ("Floor", "B", R, ".x.x.x.x.x")]);
        // Longest run first (8-9), then the single nearest the centre (6).
        assert_eq!(ids(l.pick(3, None)), (vec![106, 108, 109], false));
        let rows = [
            ("Floor", "A", R, "x.xxxxxx.x"),
            ("Floor", "B", R, "xxxxx.xxxx"),
            ("Floor", "C", R, ".x.x.x.x.x"),
        ];
        // Nothing fits in one row of A and B: two rows (A+B) are closer than three.
        assert_eq!(
            ids(layout(&rows[..2]).pick(3, None)),
            (vec![102, 109, 206], false)
        );
        // One row (C), even scattered and further back, beats two.
        assert_eq!(ids(layout(&rows).pick(3, None)), (vec![303, 305, 307], false));
        // One section beats two, even a wider spread.
        let l = layout(&[
            ("Lower", "A", R, ".x.x"),
            ("Upper", "A", R, ".xxx"),
            ("Upper", "B", R, "xxxx"),
            ("Upper", "C", R, ".xx."),
        ]);
        assert_eq!(ids(l.pick(3, None)), (vec![201, 401, 404], false));
    }

    #[test]
    fn the_last_cut_avoids_an_orphan_when_it_can() {
        // Count 5 from runs of 4, 3 and 2: the 4 whole, then one seat cut from the 3 (at its
        // end nearest the centre), not from the 2, which would leave a seat alone.
        let l = layout(&[("Floor", "A", R, "....x...x..")]);
        assert_eq!(ids(l.pick(5, None)), (vec![101, 102, 103, 104, 106], false));
    }

    #[test]
    fn pickers_in_sequence_share_no_seat_until_sold_out() {
        let mut l = layout(&[("Floor", "A", R, ".........."), ("Floor", "B", R, "..........")]);
        let mut seen = HashSet::new();
        let mut got = 0;
        while let Some(p) = l.pick(3, None) {
            assert!(l.take(&p));
            assert!(!l.take(&p), "a pick cannot be taken twice");
            for id in &p.seat_ids {
                assert!(seen.insert(*id), "seat {id} given twice");
            }
            got += p.seat_ids.len();
        }
        assert_eq!(got, 18);
        assert_eq!(l.free_seats(None), 2);
        assert!(l.pick(2, None).is_some_and(|p| !p.together));
    }

    #[test]
    fn seats_taken_by_id_are_never_picked() {
        let mut l = layout(&[("Floor", "A", R, "......")]);
        l.take_ids(&[103, 104, 999]);
        assert_eq!(l.free_seats(Some(R)), 4);
        assert_eq!(ids(l.pick(2, None)), (vec![101, 102], true));
        // Ids out of layout order take the sorted-index path.
        let mut b = LayoutBuilder::new(vec![100]);
        for (n, id) in [(1, 50), (2, 40), (3, 30), (4, 20)] {
            b.seat("Floor", "A", n, id, 0, true);
        }
        let mut l = b.finish();
        l.take_ids(&[40, 30]);
        assert_eq!(ids(l.pick(1, None)), (vec![50], true));
        assert_eq!(l.free_seats(None), 2);
    }

    /// Not a timed assertion (the machine is shared): prints how long a batch of 128
    /// pickers takes on a 50,000-seat stadium. Run it optimised:
    /// `cargo test --release --lib seats::best_available::tests::speed -- --ignored --nocapture`
    #[test]
    #[ignore = "prints timings; run on demand in release"]
    fn speed_of_128_pickers_on_50000_seats() {
        use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
        use std::time::{Duration, Instant};

        // 20 sections of 50 rows of 50 seats; grades in bands of rows, front to back.
        let labels: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        let grade_of = |row: usize| match row {
            0..10 => 0,
            10..25 => 1,
            25..40 => 2,
            _ => 3,
        };
        let mut rng = StdRng::seed_from_u64(16);
        let mixed = |i: usize| (1 + i % 10, if i.is_multiple_of(5) { None } else { Some(i % 4) });
        // The worst case for the block search: every free run is one seat longer than asked,
        // so no block anywhere avoids an orphan.
        let threes = |_: usize| (3, None);
        type Requests<'a> = &'a dyn Fn(usize) -> (usize, Option<usize>);
        let scenarios: [(&str, f64, Requests); 5] = [
            ("empty", 0.0, &mixed),
            ("half sold", 0.5, &mixed),
            ("90% sold", 0.9, &mixed),
            ("99% sold", 0.99, &mixed),
            ("runs of 4, pairs of 3", -1.0, &threes),
        ];
        for (scenario, taken, request) in scenarios {
            let seats: Vec<(usize, usize, i32, i64, usize, bool)> = (0..20)
                .flat_map(|sec| (0..50).flat_map(move |row| (1..=50).map(move |n| (sec, row, n))))
                .zip(1..)
                .map(|((sec, row, n), id)| {
                    let free = if taken < 0.0 {
                        n % 5 != 0
                    } else {
                        !rng.random_bool(taken)
                    };
                    (sec, row, n, id, grade_of(row), free)
                })
                .collect();
            let (mut builds, mut batches, mut together, mut scattered) = (Vec::new(), Vec::new(), 0, 0);
            for _ in 0..20 {
                let t = Instant::now();
                let mut b =
                    LayoutBuilder::with_capacity(vec![200_000, 150_000, 100_000, 50_000], seats.len());
                for &(sec, row, n, id, grade, free) in &seats {
                    b.seat(&labels[sec], &labels[row], n, id, grade, free);
                }
                let mut layout = b.finish();
                builds.push(t.elapsed());
                let t = Instant::now();
                for i in 0..128 {
                    let (count, grade) = request(i);
                    if let Some(pick) = layout.pick(count, grade) {
                        if pick.together {
                            together += 1;
                        } else {
                            scattered += 1;
                        }
                        assert!(layout.take(&pick));
                    }
                }
                batches.push(t.elapsed());
            }
            let median = |v: &mut Vec<Duration>| {
                v.sort();
                v[v.len() / 2]
            };
            println!(
                "{scenario:>21}: build {:?}, 128 picks {:?} (median of 20; {} together, {} scattered per batch)",
                median(&mut builds),
                median(&mut batches),
                together / 20,
                scattered / 20,
            );
        }
    }

    // ---- properties over random layouts -------------------------------------------------

    /// A random layout: per seat (section, row, number, id, grade, free), in layout order.
    #[derive(Clone, Debug)]
    struct Spec {
        prices: Vec<i64>,
        seats: Vec<(u32, u32, i32, i64, usize, bool)>,
    }

    impl Spec {
        fn build(&self, taken: &HashSet<i64>) -> SeatLayout {
            let mut b = LayoutBuilder::new(self.prices.clone());
            for &(section, row, number, id, grade, free) in &self.seats {
                let free = free && !taken.contains(&id);
                b.seat(&section.to_string(), &row.to_string(), number, id, grade, free);
            }
            b.finish()
        }

        fn free_of(&self, taken: &HashSet<i64>, grade: usize) -> usize {
            self.seats
                .iter()
                .filter(|s| s.4 == grade && s.5 && !taken.contains(&s.3))
                .count()
        }
    }

    fn spec() -> impl Strategy<Value = Spec> {
        // (new section, grade, how full, seats): rows from empty to nearly full, so that
        // long runs, exact fits and scattered singles all turn up.
        let row = (
            any::<bool>(),
            0usize..3,
            0u8..20,
            prop::collection::vec((0u8..20, prop::bool::weighted(0.1)), 0..24),
        );
        (
            prop::collection::vec(0i64..3, 1..4),
            prop::collection::vec(row, 1..9),
        )
            .prop_map(|(prices, rows)| {
                let prices: Vec<i64> = prices.into_iter().map(|p| p * 100).collect();
                let mut seats = Vec::new();
                let (mut section, mut id) = (0, 0);
                for (r, (new_section, grade, full, cells)) in rows.into_iter().enumerate() {
                    section += u32::from(new_section);
                    let mut number = 0;
                    for (kind, other_grade) in cells {
                        // Kind 0 skips a number (an aisle); up to `full` is a taken seat.
                        number += if kind == 0 { 2 } else { 1 };
                        id += 1;
                        let grade = (grade + usize::from(other_grade)) % prices.len();
                        seats.push((section, r as u32, number, id, grade, kind > full));
                    }
                }
                Spec { prices, seats }
            })
    }

    /// The best block by brute force: every start of every row, scored from scratch.
    fn reference_block(
        spec: &Spec,
        taken: &HashSet<i64>,
        count: usize,
        grade: Option<usize>,
    ) -> Option<Vec<i64>> {
        let s = &spec.seats;
        let free = |i: usize| s[i].5 && !taken.contains(&s[i].3);
        // Seats `i` and `i + 1` are neighbours in one lane.
        let next_to = |i: usize| {
            i + 1 < s.len() && s[i].1 == s[i + 1].1 && s[i].4 == s[i + 1].4 && s[i].2 + 1 == s[i + 1].2
        };
        let mut best: Option<(BlockKey, Vec<i64>)> = None;
        for start in 0..s.len() {
            let g = s[start].4;
            if grade.is_some_and(|want| want != g)
                || !(0..count).all(|k| start + k < s.len() && free(start + k))
            {
                continue;
            }
            if !(0..count - 1).all(|k| next_to(start + k)) {
                continue;
            }
            let end = start + count - 1;
            // A free neighbour whose own other neighbour is missing or not free ends up alone.
            let left_alone = start > 0
                && next_to(start - 1)
                && free(start - 1)
                && !(start > 1 && next_to(start - 2) && free(start - 2));
            let right_alone = next_to(end) && free(end + 1) && !(next_to(end + 1) && free(end + 2));
            let row: Vec<i32> = s.iter().filter(|x| x.1 == s[start].1).map(|x| x.2).collect();
            let centre2 =
                i64::from(row.iter().min().copied().unwrap_or(0) + row.iter().max().copied().unwrap_or(0));
            let dist = (i64::from(s[start].2 + s[end].2) - centre2).abs();
            let key = (
                left_alone || right_alone,
                Reverse(spec.prices[g]),
                s[start].1,
                dist,
                s[start].2,
            );
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, (start..=end).map(|i| s[i].3).collect()));
            }
        }
        best.map(|(_, ids)| ids)
    }

    fn check_pick(
        spec: &Spec,
        taken: &HashSet<i64>,
        l: &SeatLayout,
        count: usize,
        grade: Option<usize>,
    ) -> Option<Pick> {
        let pick = l.pick(count, grade);
        let enough = |g: usize| spec.free_of(taken, g) >= count;
        let possible = match grade {
            Some(g) => enough(g),
            None => (0..spec.prices.len()).any(enough),
        };
        assert_eq!(
            pick.is_some(),
            possible,
            "a pick exactly when enough seats of one grade are free"
        );
        let pick = pick?;
        let chosen: Vec<_> = spec
            .seats
            .iter()
            .filter(|s| pick.seat_ids.contains(&s.3))
            .collect();
        assert_eq!(pick.seat_ids.len(), count);
        assert_eq!(chosen.len(), count, "distinct seats of this layout");
        assert!(
            chosen.iter().all(|s| s.5 && !taken.contains(&s.3)),
            "never a taken seat"
        );
        assert!(chosen.iter().all(|s| s.4 == chosen[0].4), "one grade");
        assert!(grade.is_none_or(|g| chosen[0].4 == g), "the asked grade");
        // Together exactly when a block exists, and then the brute-force best block, which
        // leaves no orphan whenever some block does not.
        let reference = reference_block(spec, taken, count, grade);
        assert_eq!(pick.together, reference.is_some());
        if let Some(reference) = reference {
            assert_eq!(pick.seat_ids, reference);
        } else {
            // Scattered, but in one section whenever some eligible grade fits in one.
            let fits_one_section = spec.seats.iter().any(|a| {
                grade.is_none_or(|g| g == a.4)
                    && spec
                        .seats
                        .iter()
                        .filter(|s| s.0 == a.0 && s.4 == a.4 && s.5 && !taken.contains(&s.3))
                        .count()
                        >= count
            });
            if fits_one_section {
                assert!(
                    chosen.iter().all(|s| s.0 == chosen[0].0),
                    "one section: {chosen:?}"
                );
            }
        }
        Some(pick)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_pick_is_valid_and_the_best_block(spec in spec(), count in 1usize..=10, grade in prop::option::of(0usize..3)) {
            let l = spec.build(&HashSet::new());
            let grade = grade.filter(|g| *g < spec.prices.len());
            check_pick(&spec, &HashSet::new(), &l, count, grade);
        }

        #[test]
        fn pickers_in_sequence_never_share_a_seat(
            spec in spec(),
            requests in prop::collection::vec((1usize..=10, prop::option::of(0usize..3), any::<bool>()), 1..30),
        ) {
            let mut l = spec.build(&HashSet::new());
            let mut taken = HashSet::new();
            for (count, grade, by_id) in requests {
                let grade = grade.filter(|g| *g < spec.prices.len());
                let Some(pick) = check_pick(&spec, &taken, &l, count, grade) else { continue };
                // Half the claims go through take_ids, as an explicit seat request would.
                if by_id {
                    l.take_ids(&pick.seat_ids);
                } else {
                    prop_assert!(l.take(&pick));
                }
                for id in &pick.seat_ids {
                    prop_assert!(taken.insert(*id), "seat {} given twice", id);
                }
                // The index kept up to date equals one built from scratch.
                let fresh = spec.build(&taken);
                prop_assert_eq!(l.free_seats(None), fresh.free_seats(None));
                for (a, b) in l.lanes.iter().zip(&fresh.lanes) {
                    prop_assert_eq!((a.free, a.longest, a.clean), (b.free, b.longest, b.clean));
                }
            }
        }
    }
}
