//! The run's summary: JSON for scripts, one line for people.

use serde_json::{Value, json};

use crate::analysis::{Heard, percentile};
use crate::engine::{Codec, Outcome, PTIME, Role};
use crate::frontend::SetupTimes;

pub struct Report<'a> {
    pub server: &'a str,
    pub codec: Codec,
    pub talkers: usize,
    pub tones: &'a [u32],
    pub outcome: &'a Outcome,
    pub setup: &'a SetupTimes,
    pub click: Option<(f64, u64)>,
}

fn heard_word(h: Heard) -> &'static str {
    match h {
        Heard::Yes => "yes",
        Heard::No => "no",
        Heard::Unclear => "unclear",
    }
}

fn role_word(r: Role) -> String {
    match r {
        Role::Talker(k) => format!("talker {k}"),
        Role::Clicker => "clicker".into(),
        Role::Listener => "listener".into(),
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

impl Report<'_> {
    pub fn json(&self) -> Value {
        let o = self.outcome;
        let (p50, p99, max) = self
            .setup
            .summary()
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let lat = |p| percentile(&o.latency_ms, p).map(|v| round(v, 2));
        let mut worst = o.members_with_gaps.clone();
        worst.sort_by_key(|(_, g)| std::cmp::Reverse(g.lost + g.arrival_gaps + g.ts_jumps));
        let decoded_right = o.decoded.iter().filter(|d| d.right).count();
        let frames_expected = (o.window_s / PTIME.as_secs_f64()) as u64 * o.ready as u64;
        let server = o.server.map(|(before, start, end)| {
            let cpu = start.cpu_until(&end);
            let share = cpu / o.window_s.max(1e-9);
            let delta_rss = end.rss_kib as f64 - before.rss_kib as f64;
            json!({
                "cpu_s": round(cpu, 3),
                "cpu_share_of_core": round(share, 4),
                "per_member_percent_of_core": round(100.0 * share / o.ready.max(1) as f64, 4),
                "rss_before_kib": before.rss_kib,
                "rss_kib": end.rss_kib,
                "rss_per_member_kib": round(delta_rss / o.ready.max(1) as f64, 1),
                "threads": end.threads,
            })
        });
        let server_cpu = o.server.map(|(_, a, b)| a.cpu_until(&b)).unwrap_or(0.0);
        let others = (o.machine_busy_s - server_cpu - o.generator_cpu_s).max(0.0);
        let checks = json!({
            "all_set_up": o.ready == o.members && o.ended.is_empty(),
            "mix": !o.decoded.is_empty() && decoded_right == o.decoded.len(),
            "clean": o.ready > 0 && o.members_clean == o.ready && o.members_silent == 0,
            "latency_measured": self.click.is_none() || !o.latency_ms.is_empty(),
            "generator_on_time": o.late_slots == 0 && o.generator_drops == 0,
        });
        json!({
            "server": self.server,
            "codec": self.codec.name(),
            "members": o.members,
            "talkers": self.talkers,
            "tones_hz": self.tones[..self.talkers],
            "setup": {
                "ready": o.ready,
                "failed": o.members - o.ready,
                "seconds": round(o.setup_s, 2),
                "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "max_ms": round(max, 2),
                "failures": o.failed.iter().take(10).collect::<Vec<_>>(),
                "ended_during_run": o.ended.iter().take(10).collect::<Vec<_>>(),
                "still_up_at_end": self.setup.still_up_at_end,
            },
            "window_s": round(o.window_s, 3),
            "packets": {
                "sent": o.sent,
                "send_errors": o.send_errors,
                "received": o.received,
                "expected_received": frames_expected,
                "other_payload_types": o.wrong_pt,
            },
            "gaps": {
                "lost": o.totals.lost,
                "late": o.totals.late,
                "ts_jumps": o.totals.ts_jumps,
                "arrival_gaps_over_60ms": o.totals.arrival_gaps,
                "max_arrival_gap_ms": round(o.totals.max_arrival_gap_us as f64 / 1000.0, 2),
                "members_clean": o.members_clean,
                "members_with_gaps": o.members_with_gaps.len(),
                "worst": worst.iter().take(10).map(|(m, g)| json!({
                    "member": m, "packets": g.packets, "lost": g.lost, "ts_jumps": g.ts_jumps,
                    "arrival_gaps": g.arrival_gaps,
                    "max_arrival_gap_ms": round(g.max_arrival_gap_us as f64 / 1000.0, 2),
                })).collect::<Vec<_>>(),
            },
            "silence": {
                "members_with_silent_frames": o.members_silent,
                "silent_frames": o.silent_frames,
            },
            "mix": {
                "decoded": o.decoded.len(),
                "right": decoded_right,
                "sampled": o.decoded.len() < o.ready,
                "members": o.decoded.iter().map(|d| json!({
                    "member": d.member,
                    "role": role_word(d.role),
                    "frames": d.frames,
                    "heard": self.tones.iter().zip(&d.heard)
                        .map(|(t, h)| (t.to_string(), json!(heard_word(*h))))
                        .collect::<serde_json::Map<_, _>>(),
                    "right": d.right,
                })).collect::<Vec<_>>(),
            },
            "latency_ms": {
                "click_hz": self.click.map(|c| c.0),
                "click_period_ms": self.click.map(|c| c.1),
                "clicks_sent": o.clicks_sent,
                "samples": o.latency_ms.len(),
                "p50": lat(50.0), "p90": lat(90.0), "p99": lat(99.0), "max": lat(100.0),
                "own_codec_delay_subtracted_ms": round(o.codec_delay_ms, 2),
            },
            "generator": {
                "cpu_s": round(o.generator_cpu_s, 3),
                "cpu_share_of_core": round(o.generator_cpu_s / o.window_s.max(1e-9), 4),
                "slots_late_over_10ms": o.late_slots,
                "socket_drops": o.generator_drops,
                "max_lateness_ms": round(o.max_lateness_ms, 2),
                "silence_payload_bytes": o.silence_payload,
            },
            "server_process": server,
            "machine": {
                "busy_cores": round(o.machine_busy_s / o.window_s.max(1e-9), 3),
                // what neither the server nor the generator used: other processes, or
                // interrupts; a quiet machine shows a few hundredths
                "others_cores": round(others / o.window_s.max(1e-9), 3),
                // taken by the hypervisor for other machines
                "steal_cores": round(o.steal_s / o.window_s.max(1e-9), 3),
            },
            "checks": checks,
        })
    }

    pub fn line(&self) -> String {
        let j = self.json();
        let o = self.outcome;
        let mut s = format!(
            "{} {}: {}/{} members set up in {:.1} s (p99 {} ms); {:.0} s window: {} packets sent, {} received of {}; \
             gaps: {} lost, {} timestamp jumps, {} arrival gaps > 60 ms (max {} ms), {} of {} members clean, {} with silent frames; \
             mix: {}/{} decoded members right{}",
            self.server,
            self.codec.name(),
            o.ready,
            o.members,
            o.setup_s,
            j["setup"]["p99_ms"],
            o.window_s,
            o.sent,
            o.received,
            j["packets"]["expected_received"],
            o.totals.lost,
            o.totals.ts_jumps,
            o.totals.arrival_gaps,
            j["gaps"]["max_arrival_gap_ms"],
            o.members_clean,
            o.ready,
            o.members_silent,
            j["mix"]["right"],
            j["mix"]["decoded"],
            if j["mix"]["sampled"] == true {
                " (a sample: talkers, clicker, listeners spread over the room)"
            } else {
                ""
            },
        );
        if self.click.is_some() {
            s += &format!(
                "; server-added delay p50 {} ms, p99 {} ms ({} clicks heard)",
                j["latency_ms"]["p50"], j["latency_ms"]["p99"], j["latency_ms"]["samples"]
            );
        }
        if let Some(sp) = j["server_process"].as_object() {
            s += &format!(
                "; server CPU {:.1} % of a core = {} % per member, RSS {} MiB ({} KiB per member)",
                sp["cpu_share_of_core"].as_f64().unwrap_or(0.0) * 100.0,
                sp["per_member_percent_of_core"],
                sp["rss_kib"].as_u64().unwrap_or(0) / 1024,
                sp["rss_per_member_kib"],
            );
        }
        s += &format!(
            "; generator CPU {:.1} % of a core, others {:.1} %{}",
            j["generator"]["cpu_share_of_core"].as_f64().unwrap_or(0.0) * 100.0,
            j["machine"]["others_cores"].as_f64().unwrap_or(0.0) * 100.0,
            if o.late_slots > 0 {
                format!(
                    ", {} send slots > 10 ms late (the generator was starved)",
                    o.late_slots
                )
            } else {
                String::new()
            }
        );
        s
    }
}
