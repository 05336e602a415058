//! Timing in blocks: a sample taken between two device synchronisations
//! (or two reads of the clock) carries the synchronisation's own cost. A
//! launch-bound call of a few microseconds costs about as much as a
//! `cudaDeviceSynchronize` round trip, so timing one call per sample
//! measures the round trip as much as the call. The native worker times
//! blocks of calls instead, sized so the synchronisation costs at most
//! `SYNC_SHARE` of a block, and divides: that makes its samples comparable
//! with the python worker's, whose CUDA events bracket the launches alone.

use std::time::Instant;

/// Largest share of a block the synchronisation that ends it may cost.
pub const SYNC_SHARE: f64 = 1e-3;

/// At most this many calls in one block (as the python worker's host
/// batches): beyond it a sample would hide the variation between calls.
pub const MAX_BLOCK: u64 = 10_000;

/// Below a millionth of a call, a ratio counts as whole.
const ROUNDING: f64 = 1e-6;

/// Calibration readings taken of each cost; their median is used.
const CALIBRATION_READINGS: usize = 7;

/// Calls per block for a call of `call_s` seconds and a synchronisation of
/// `sync_s`: the fewest calls `k` with `sync_s <= SYNC_SHARE * k * call_s`,
/// between 1 and `MAX_BLOCK`. A call too short to measure gets the most.
pub fn block_size(call_s: f64, sync_s: f64) -> u64 {
    // NaN counts as unknown: no sync cost to spread, or no call to measure.
    if sync_s.is_nan() || sync_s <= 0.0 {
        return 1;
    }
    if call_s.is_nan() || call_s <= 0.0 {
        return MAX_BLOCK;
    }
    // Less a hair, so that an exact ratio (1000.0000000000001 in floating
    // point) is not rounded up to one call more.
    let k = (sync_s / call_s / SYNC_SHARE - ROUNDING).ceil();
    if k >= MAX_BLOCK as f64 {
        MAX_BLOCK
    } else {
        (k as u64).max(1)
    }
}

/// The median of `CALIBRATION_READINGS` timings of `f`, in seconds.
pub fn median_time(mut f: impl FnMut()) -> f64 {
    let mut readings: Vec<f64> = (0..CALIBRATION_READINGS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    readings.sort_by(f64::total_cmp);
    readings[readings.len() / 2]
}

/// Calls per block for `call` ended by `sync`: both timed, the call with
/// its synchronisation, the synchronisation alone on an idle device.
pub fn calibrate(mut call: impl FnMut(), mut sync: impl FnMut()) -> Calibration {
    let sync_s = median_time(&mut sync);
    let with_sync = median_time(|| {
        call();
        sync();
    });
    let call_s = (with_sync - sync_s).max(0.0);
    Calibration {
        call_s,
        sync_s,
        block: block_size(call_s, sync_s),
    }
}

/// What `calibrate` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// One call, without the synchronisation, in seconds.
    pub call_s: f64,
    /// The synchronisation (or clock read) that ends a block, in seconds.
    pub sync_s: f64,
    /// Calls per timed block.
    pub block: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_make_the_sync_a_thousandth_of_the_block() {
        // A 10 µs launch-bound call and a 10 µs device round trip.
        let k = block_size(10e-6, 10e-6);
        assert_eq!(k, 1000);
        assert!(10e-6 <= SYNC_SHARE * k as f64 * 10e-6);
        assert!(
            10e-6 > SYNC_SHARE * (k - 1) as f64 * 10e-6,
            "the fewest calls"
        );
        // A 20 ms call needs no block; a 1 ms one a few calls.
        assert_eq!(block_size(20e-3, 10e-6), 1);
        assert_eq!(block_size(1e-3, 10e-6), 10);
        // The CPU's "sync" is a clock read of tens of nanoseconds.
        assert_eq!(block_size(50e-6, 40e-9), 1);
        assert_eq!(block_size(1e-6, 40e-9), 40);
    }

    #[test]
    fn blocks_stay_between_one_and_the_cap() {
        assert_eq!(block_size(1e-9, 10e-6), MAX_BLOCK);
        assert_eq!(block_size(0.0, 10e-6), MAX_BLOCK);
        assert_eq!(block_size(f64::NAN, 10e-6), MAX_BLOCK);
        assert_eq!(block_size(1e-3, 0.0), 1);
        assert_eq!(block_size(1e-3, f64::NAN), 1);
    }

    #[test]
    fn calibration_sizes_the_block_from_measured_costs() {
        use std::time::Duration;
        // A 2 ms "call" and a 200 µs "sync": k = 200e-6 / (1e-3 * 2e-3) = 100.
        let c = calibrate(
            || std::thread::sleep(Duration::from_millis(2)),
            || std::thread::sleep(Duration::from_micros(200)),
        );
        assert!(c.sync_s >= 200e-6 && c.call_s >= 1.5e-3, "{c:?}");
        assert_eq!(c.block, block_size(c.call_s, c.sync_s));
        // Sleeps overshoot on a busy machine; the block follows the ratio.
        assert!((20..=1000).contains(&c.block), "{c:?}");
    }
}
