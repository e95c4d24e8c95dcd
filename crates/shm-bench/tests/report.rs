//! A whole (tiny) run through `runner::run`: the JSON report has the promised shape, and
//! the CSV, SVG and table renderings of the same report are made. No figure is checked
//! against a timing.

mod common;

use std::time::Duration;

use common::cpus;
use serde_json::Value;
use shm_bench::report::{csv, json, plot};
use shm_bench::transport::{self, TRANSPORTS};
use shm_bench::{runner, Budget, Config, Pattern};

fn main() {
    shm_testkit::run_serially(&[("json_report_matches_schema", json_report_matches_schema)]);
}

fn tiny_config(sizes: Vec<usize>) -> Config {
    Config {
        transports: TRANSPORTS.to_vec(),
        patterns: Pattern::ALL.to_vec(),
        sizes,
        reps: 1,
        cpus: cpus(),
        budget: Budget::exact(2, 20),
        floor_budget: Budget {
            warmup_time: Duration::from_millis(1),
            measure_time: Duration::from_millis(5),
            ..Budget::exact(2, 20)
        },
        verify: false,
        progress: false,
        busy_check: false,
        overhead_check: true,
    }
}

fn num(v: &Value, field: &str) -> f64 {
    v.get(field)
        .unwrap_or_else(|| panic!("missing field `{field}` in {v}"))
        .as_f64()
        .unwrap_or_else(|| panic!("field `{field}` is not a number in {v}"))
}

fn json_report_matches_schema() {
    let report = runner::run(&tiny_config(vec![64])).expect("tiny run");
    let doc: Value = serde_json::from_str(&json::to_string(&report)).expect("valid JSON");

    let m = &doc["machine"];
    assert!(m["cpu"].is_string());
    assert!(m["cores"].is_u64() && m["cores"].as_u64().unwrap() >= 1);
    assert!(m["kernel"].is_string());
    let handshake = m["handshake"].as_str().expect("handshake is a string");
    assert!(
        handshake == "membarrier" || handshake == "seqcst",
        "{handshake}"
    );
    assert!(m["affinity_cores"].as_u64().unwrap() >= 1);
    assert!(m["wait_rule"].is_string());

    let f = &doc["floors"];
    for field in ["cacheline_rtt_ns", "futex_rtt_ns", "memcpy_bytes_per_s"] {
        let x = num(f, field);
        assert!(x.is_finite() && x > 0.0, "{field} = {x}");
    }

    let results = doc["results"].as_array().expect("results is an array");
    // Every byte transport in both patterns at 64 B, but for the floors, which carry only
    // round trips (cache line, futex) or only streams (ring); every transport of typed
    // values in both typed patterns.
    let (byte_transports, typed_transports): (Vec<&&dyn transport::Transport>, Vec<_>) =
        TRANSPORTS.iter().partition(|t| t.message_size().is_none());
    let byte_rows: usize = [Pattern::PingPong, Pattern::Stream]
        .iter()
        .map(|&p| byte_transports.iter().filter(|t| t.supports(p, 64)).count())
        .sum();
    assert_eq!(
        byte_rows,
        byte_transports.len() * 2 - 3,
        "two floors ping-pong only, one stream only"
    );
    assert_eq!(results.len(), byte_rows + typed_transports.len() * 2);
    for r in results {
        let name = r["transport"].as_str().expect("transport is a string");
        let pattern = r["pattern"].as_str().expect("pattern is a string");
        let t = transport::by_name(name).unwrap_or_else(|| panic!("unknown transport {name}"));
        if pattern.starts_with("typed-") {
            assert!(
                pattern == "typed-pingpong" || pattern == "typed-stream",
                "{pattern}"
            );
            let size = t.message_size().expect("a transport of typed values");
            assert_eq!(r["size"].as_u64(), Some(size as u64));
            assert!(num(r, "vs_pipe") > 0.0, "{name}: ratio to pipe-bincode");
        } else {
            assert!(t.message_size().is_none(), "{name}: a byte transport");
            assert!(pattern == "pingpong" || pattern == "stream", "{pattern}");
            assert_eq!(r["size"].as_u64(), Some(64));
        }
        // Every stream row has its ratio to the ring floor, no round trip has one.
        if pattern.ends_with("stream") {
            assert!(num(r, "vs_ring_floor") > 0.0, "{name} {pattern}");
        } else {
            assert!(r["vs_ring_floor"].is_null(), "{name} {pattern}");
        }
        assert_eq!(r["reps"].as_u64(), Some(1));
        for field in [
            "p50_ns",
            "p99_ns",
            "msgs_per_s",
            "bytes_per_s",
            "wakes_per_msg",
            "min",
            "max",
        ] {
            num(r, field);
        }
        assert!(num(r, "min") <= num(r, "max"));
        let wakes = num(r, "wakes_per_msg");
        if name.starts_with("shm-") {
            assert!(wakes.is_finite() && wakes >= 0.0, "{name}: {wakes}");
        } else {
            assert_eq!(wakes, 0.0, "pipes and sockets make no wake syscalls");
        }
    }

    // The other renderings of the same report.
    let csv_text = csv::to_string(&report);
    assert_eq!(csv_text.lines().count(), 1 + results.len());
    assert!(csv_text.starts_with(csv::HEADER));
    // The floors and the harness check were measured in the run.
    for r in results
        .iter()
        .filter(|r| transport::is_floor(r["transport"].as_str().unwrap()))
    {
        if r["transport"] == "floor-ring" {
            assert_eq!(r["pattern"].as_str(), Some("stream"), "{r}");
            assert_eq!(num(r, "vs_ring_floor"), 1.0, "{r}");
        } else {
            assert_eq!(r["pattern"].as_str(), Some("pingpong"), "{r}");
            assert!((num(r, "vs_floor") > 0.0), "{r}");
        }
    }
    let o = &doc["overhead"];
    for field in [
        "harness_rtt_ns",
        "minimal_rtt_ns",
        "rtt_ratio",
        "stream_ratio",
    ] {
        let x = num(&o[field], "median");
        assert!(x.is_finite() && x > 0.0, "overhead {field} = {x}");
    }

    let svg = plot::to_svg(&report).expect("plot");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    let table = shm_bench::report::table::render(&report);
    assert!(table.contains("unix-socket"));
}
