//! Rust-only throughput of the parse step: `cargo run --release --example bench -- CATALOG.json LINES.txt`
//! (the catalog as the Python adapter hands it over, one record per line).
use std::time::Instant;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(catalog), Some(lines)) = (args.get(1), args.get(2)) else {
        return Err("usage: bench CATALOG.json LINES.txt".into());
    };
    let catalog = std::fs::read_to_string(catalog).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(lines).map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.split('\n').collect();
    let spec = serde_json::from_str(&catalog).map_err(|e| e.to_string())?;
    let parser = polaris_parse::LineParser::new(spec)?;
    let mut scratch = parser.scratch();
    let reference = 1_768_435_200_000_000;
    for _ in 0..15 {
        let started = Instant::now();
        let mut parsed = 0usize;
        for line in &lines {
            if parser.parse(line, None, reference, &mut scratch).is_ok() {
                parsed += 1;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("{parsed} lines in {seconds:.3}s = {:.0} lines/s", lines.len() as f64 / seconds);
    }
    Ok(())
}
