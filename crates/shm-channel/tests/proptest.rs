//! Property: any sequence of frame sizes, from empty to the largest that fits, comes out
//! exactly and in order, whatever the capacity.

use std::collections::VecDeque;
use std::sync::Arc;

use proptest::prelude::*;

use shm_channel::spsc::Spsc;
use shm_channel::Builder;
use shm_channel::Endpoint as _;
use shm_channel::{TryRecvError, TrySendError};
use shm_core::HeapRegion;

fn message(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + index * 7) as u8).collect()
}

proptest! {
    #![proptest_config(if cfg!(miri) {
        // Miri: a few cases, and no failure file (Miri isolates the file system).
        ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() }
    } else {
        ProptestConfig::with_cases(256)
    })]

    #[test]
    fn any_sizes_come_out_exactly_in_order(
        capacity_log2 in 4u32..13,
        fractions in proptest::collection::vec(0.0f64..=1.0, 1..200),
    ) {
        let capacity = 1usize << capacity_log2;
        let heap = Arc::new(HeapRegion::new(Builder::<Spsc>::new(capacity).region_len().unwrap()).unwrap());
        let (mut tx, mut rx) = Builder::<Spsc>::new(capacity).create_in(heap).unwrap();
        let max = tx.max_message_len();
        let sizes: Vec<usize> = fractions.iter().map(|f| (f * max as f64) as usize).collect();

        let mut in_flight: VecDeque<Vec<u8>> = VecDeque::new();
        let mut received = 0usize;
        let mut check = |got: Vec<u8>, in_flight: &mut VecDeque<Vec<u8>>| {
            let expected = in_flight.pop_front().expect("received more than sent");
            assert_eq!(got, expected);
            received += 1;
        };
        for (index, len) in sizes.iter().copied().enumerate() {
            let msg = message(index, len);
            loop {
                match tx.try_send(&msg) {
                    Ok(()) => {
                        in_flight.push_back(msg);
                        break;
                    }
                    Err(TrySendError::Full(())) => match rx.try_recv() {
                        Ok(got) => check(got, &mut in_flight),
                        // Only a padding frame was there: skipped, now there is room.
                        Err(TryRecvError::Empty) => {}
                        Err(other) => panic!("{other}"),
                    },
                    Err(other) => panic!("{other}"),
                }
            }
        }
        while let Ok(got) = rx.try_recv() {
            check(got, &mut in_flight);
        }
        prop_assert!(in_flight.is_empty());
        prop_assert_eq!(received, sizes.len());
    }
}
