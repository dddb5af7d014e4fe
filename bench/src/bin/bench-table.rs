//! Turns the harness's result lines (JSON, one per run) into markdown tables: medians over
//! rounds, and ratios against a baseline server.
//!
//! Each input line is `{"kind": "load"|"idle"|"fail", "server", "scenario", "metric", "round",
//! "report"}`, where `report` is what `switchboard bench --json` printed. Servers and scenarios
//! appear in the order they first occur in the input.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Parser as _;
use serde_json::Value;

#[derive(Debug, clap::Parser)]
struct Args {
    /// The results file (JSON lines).
    results: std::path::PathBuf,
    /// Ratios are against this server's median...
    #[arg(long, default_value = "switchboard")]
    baseline: String,
    /// ...or, if it has no results, against this one (and the table says so).
    #[arg(long, default_value = "fastwebsockets")]
    fallback_baseline: String,
}

/// The medians of one (scenario, server) cell.
#[derive(Debug, Default)]
struct Cell {
    values: Vec<f64>,
    server_cpu: Vec<f64>,
    client_cpu: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// Server and generator CPU microseconds per message.
    server_us_per_msg: Vec<f64>,
    client_us_per_msg: Vec<f64>,
    /// The same, user space only.
    server_user_us_per_msg: Vec<f64>,
    client_user_us_per_msg: Vec<f64>,
    failures: usize,
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

fn human(value: f64, metric: &str) -> String {
    match metric {
        "mbps" => format!("{value:.0} MB/s"),
        "kib" => format!("{value:.2} KiB"),
        _ if value >= 1e6 => format!("{:.2}M", value / 1e6),
        _ if value >= 1e3 => format!("{:.1}k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("{}", args.results.display()))?;
    let mut servers: Vec<String> = Vec::new();
    let mut scenarios: Vec<(String, String)> = Vec::new();
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let (kind, server, scenario) = (s("kind"), s("server"), s("scenario"));
        if kind == "skip" {
            skipped.push((server, s("reason")));
            continue;
        }
        if !servers.contains(&server) {
            servers.push(server.clone());
        }
        if !scenarios.iter().any(|(name, _)| *name == scenario) {
            scenarios.push((scenario.clone(), s("metric")));
        }
        let cell = cells.entry((scenario, server)).or_default();
        let r = &v["report"];
        match kind.as_str() {
            "load" if r["failed_connections"].as_u64() == Some(0) => {
                let metric = if s("metric") == "mbps" {
                    "mb_per_sec"
                } else {
                    "msgs_per_sec"
                };
                cell.values.extend(r[metric].as_f64());
                cell.server_cpu.extend(r["server_cpu"].as_f64());
                cell.client_cpu.extend(r["client_cpu"].as_f64());
                cell.p50.extend(r["latency"]["p50_us"].as_f64());
                cell.p99.extend(r["latency"]["p99_us"].as_f64());
                if let Some(rate) = r["msgs_per_sec"].as_f64().filter(|r| *r > 0.0) {
                    let per_msg = |cpu: Option<f64>| cpu.map(|c| c * 1e6 / rate);
                    cell.server_us_per_msg
                        .extend(per_msg(r["server_cpu"].as_f64()));
                    cell.client_us_per_msg
                        .extend(per_msg(r["client_cpu"].as_f64()));
                    cell.server_user_us_per_msg
                        .extend(per_msg(r["server_user_cpu"].as_f64()));
                    cell.client_user_us_per_msg
                        .extend(per_msg(r["client_user_cpu"].as_f64()));
                }
            }
            "idle" => cell.values.extend(r["kib_per_connection"].as_f64()),
            _ => cell.failures += 1,
        }
    }

    let has_results = |server: &str| {
        cells
            .iter()
            .any(|((_, s), c)| s == server && !c.values.is_empty())
    };
    let baseline = if has_results(&args.baseline) {
        args.baseline.clone()
    } else {
        println!(
            "> **{} has no results: ratios below are against {} instead.**\n",
            args.baseline, args.fallback_baseline
        );
        args.fallback_baseline.clone()
    };
    for (server, reason) in &skipped {
        println!("> **SKIPPED {server}: {reason}**\n");
    }

    let header = |title: &str| {
        println!("| {title} | {} |", servers.join(" | "));
        println!("| --- |{}", " --- |".repeat(servers.len()));
    };
    let cell_of =
        |scenario: &str, server: &str| cells.get(&(scenario.to_owned(), server.to_owned()));

    header(&format!("median (ratio vs {baseline})"));
    for (scenario, metric) in &scenarios {
        let base = cell_of(scenario, &baseline).and_then(|c| median(&c.values));
        let row: Vec<String> = servers
            .iter()
            .map(|server| match cell_of(scenario, server) {
                Some(c) => match median(&c.values) {
                    Some(m) => {
                        let ratio = base
                            .filter(|b| *b > 0.0)
                            .map_or(String::new(), |b| format!(" ({:.2}×)", m / b));
                        let failed = if c.failures > 0 {
                            format!(" [{} failed]", c.failures)
                        } else {
                            String::new()
                        };
                        format!("{}{ratio}{failed}", human(m, metric))
                    }
                    None if c.failures > 0 => "failed".into(),
                    None => "—".into(),
                },
                None => "—".into(),
            })
            .collect();
        println!("| {scenario} | {} |", row.join(" | "));
    }

    println!();
    header("median CPU, in cores: server / generator");
    for (scenario, _) in scenarios.iter().filter(|(_, m)| m != "kib") {
        let row: Vec<String> = servers
            .iter()
            .map(|server| {
                let c = cell_of(scenario, server);
                let pct = |v: Option<&Vec<f64>>| {
                    v.and_then(|v| median(v))
                        .map_or("?".to_owned(), |m| format!("{:.0}%", m * 100.0))
                };
                format!(
                    "{} / {}",
                    pct(c.map(|c| &c.server_cpu)),
                    pct(c.map(|c| &c.client_cpu))
                )
            })
            .collect();
        println!("| {scenario} | {} |", row.join(" | "));
    }

    println!();
    header("median CPU µs per message, all (user space): server / generator");
    for (scenario, _) in scenarios.iter().filter(|(_, m)| m != "kib") {
        let row: Vec<String> = servers
            .iter()
            .map(|server| {
                let c = cell_of(scenario, server);
                let us = |v: Option<&Vec<f64>>| {
                    v.and_then(|v| median(v))
                        .map_or("?".to_owned(), |m| format!("{m:.2}"))
                };
                format!(
                    "{} ({}) / {} ({})",
                    us(c.map(|c| &c.server_us_per_msg)),
                    us(c.map(|c| &c.server_user_us_per_msg)),
                    us(c.map(|c| &c.client_us_per_msg)),
                    us(c.map(|c| &c.client_user_us_per_msg))
                )
            })
            .collect();
        println!("| {scenario} | {} |", row.join(" | "));
    }

    println!();
    header("median latency p50 / p99 (µs)");
    for (scenario, _) in scenarios.iter().filter(|(_, m)| m != "kib") {
        let row: Vec<String> = servers
            .iter()
            .map(|server| {
                let c = cell_of(scenario, server);
                let us = |v: Option<&Vec<f64>>| {
                    v.and_then(|v| median(v))
                        .map_or("?".to_owned(), |m| format!("{m:.0}"))
                };
                format!("{} / {}", us(c.map(|c| &c.p50)), us(c.map(|c| &c.p99)))
            })
            .collect();
        println!("| {scenario} | {} |", row.join(" | "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(245_123.0, "msgs"), "245.1k");
        assert_eq!(human(1_500_000.0, "msgs"), "1.50M");
        assert_eq!(human(1234.4, "mbps"), "1234 MB/s");
        assert_eq!(human(0.5, "kib"), "0.50 KiB");
    }
}
