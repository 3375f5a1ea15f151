use std::{cmp::Reverse, collections::HashSet};

use proptest::prelude::*;

use super::{pick::BlockKey, *};

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
            let mut b = LayoutBuilder::with_capacity(vec![200_000, 150_000, 100_000, 50_000], seats.len());
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
        if grade.is_some_and(|want| want != g) || !(0..count).all(|k| start + k < s.len() && free(start + k))
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
