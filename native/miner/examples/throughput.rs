//! Lines per second of the miner alone: `cargo run --release --example throughput -- LINES.json [PASSES]`
//! (a JSON list of strings), fresh and then on further passes through the same miner.
use std::time::Instant;

use polaris_miner::TemplateMiner;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: throughput LINES.json")?;
    let lines: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut miner = TemplateMiner::new(4);
    miner.add("warm 1")?; // compile the masks
    let passes: usize = std::env::args().nth(2).map_or(Ok(2), |n| n.parse())?;
    for pass in 0..passes {
        let pass = if pass == 0 {
            "fresh".to_string()
        } else {
            format!("pass {}", pass + 1)
        };
        let started = Instant::now();
        for line in &lines {
            miner.add(line)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("{pass}: {:.0} lines/s", lines.len() as f64 / seconds);
    }
    Ok(())
}
